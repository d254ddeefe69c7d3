"""Bringing the runs DB up to date with the stage markers.

Every stage writes its marker first and then the DB.  When the DB write is
lost (a crash, the DB down, a compute node that cannot reach it) the marker
still says what happened, and :func:`apply` replays it: it walks the allowed
transitions from the state the DB has to the state the marker records, each
step with a history entry noting the repair.  Applying a marker twice changes
nothing.  A marker's times are ISO strings; the runs DB stores them as dates
(every write goes through :func:`fulliautomatix.dates.for_db`).
"""

from __future__ import annotations

import logging
from collections import deque
from pathlib import Path

from . import config as fa_config
from . import claims, markers, selection, snapshots, states
from .runsdb import Conflict, RunsDB

log = logging.getLogger(__name__)


def path_between(field: str, start: str, goal: str) -> list[str]:
    """Shortest list of states leading from start to goal (excluding start)."""
    table = states.TRANSITIONS[field]
    prev: dict[str, str | None] = {start: None}
    todo = deque([start])
    while todo:
        cur = todo.popleft()
        if cur == goal:
            out = []
            while cur != start:
                out.append(cur)
                cur = prev[cur]
            return out[::-1]
        for nxt in sorted(table.get(cur, ())):
            if nxt not in prev and (field, cur, nxt) not in states.RECOVERY:
                prev[nxt] = cur
                todo.append(nxt)
    raise states.TransitionRefused(f"{field}: no way from {start} to {goal}")


def _steps(field: str, start: str, goal: str, via) -> list[str]:
    """The states from start to goal, through the marker's `via` states where the rules allow.

    A processing job's marker says it went through ``processing``; replaying
    it from ``queued`` then records that step too, as it happened.
    """
    for v in via:
        if v not in (start, goal) and v in states.TRANSITIONS[field]:
            try:
                return path_between(field, start, v) + path_between(field, v, goal)
            except states.TransitionRefused:
                continue
    return path_between(field, start, goal)


def _behind(field: str, current: str, goal: str) -> bool:
    order = states.RAW_STATES if field == states.RAW else states.PROCESSED_STATES
    if field == states.PROCESSED:
        # processed is the goal of every processing marker; any other state is behind it
        return current != goal
    return order.index(current) < order.index(goal)


def apply(db: RunsDB, marker: dict, doc: dict | None = None, note: str = "repaired from marker") -> bool:
    """Make the run's DB document agree with a run marker.  True if changed."""
    return bring_up(db, marker, doc, note)[0]


def bring_up(
    db: RunsDB, marker: dict, doc: dict | None = None, note: str = "repaired from marker"
) -> tuple[bool, dict | None]:
    """:func:`apply`, with the run's newest document: (changed, document).

    Safe to call while another process applies the same marker: when the
    run changes under it, it re-reads the run and stops if nothing is left.
    With a `doc` that already shows the marker's state nothing is read.
    """
    run, field, goal = marker["run"], marker["field"], marker["to"]
    for attempt in range(3):
        if doc is None or attempt:
            doc = db.get(run)
        current = doc.get(field)
        if current == goal or not _behind(field, current, goal):
            return False, doc
        try:
            steps = _steps(field, current, goal, marker.get("via") or ())
            for i, step in enumerate(steps):
                last = i == len(steps) - 1
                doc = db.transition(run, field, step, fields=marker["set"] if last else None, note=note, doc=doc)
        except (Conflict, states.TransitionRefused):
            if attempt == 2:
                raise
            continue
        if note.startswith("repaired"):
            log.warning("run %s: runs DB was behind its %s marker; set %s to %s", run, marker["stage"], field, goal)
        return True, doc
    return False, doc


def record(db: RunsDB, marker: dict, doc, note: str, log):
    """Apply a stage's fresh marker to the runs DB; the newest document (a batch's: {run: document}), or
    None (and one error line) when the DB cannot take it.

    The marker stands and the next tick replays it, but the tick must not
    look done: the line goes to the job's log and, prefixed for the
    wrapper (planning.REPORT_PREFIXES), to the tick's Snakemake log.
    """
    import sys

    from .runsdb import redact

    try:
        if "runs" in marker:
            return record_batch(db, marker, doc or {}, note)
        return bring_up(db, marker, doc=doc, note=note)[1]
    except Exception as exc:  # noqa: BLE001 - any failure: the marker stands, the next tick's sync replays it
        what = f"run {marker['run']}" if "run" in marker else f"batch {marker.get('batch')}"
        line = (
            f"{what}: the runs DB did not record it as {marker.get('to', 'archived')} "
            f"({redact(type(exc).__name__ + ': ' + str(exc))[:300]}); its marker stands and the next tick "
            "repairs the runs DB from it"
        )
        log.write(f"runs DB update failed: {line}\n")
        print(f"fulliautomatix: {line}", file=sys.__stderr__)
        return None


def record_batch(db: RunsDB, batch_marker: dict, docs: dict[str, dict], note: str) -> dict[str, dict]:
    """An archived batch's marker in the runs DB: one bulk write when every member is still `archiving` in
    `docs` (the snapshots its job claimed); otherwise run by run.  {run: newest document}."""
    runs = batch_marker["runs"]
    if set(docs) == set(runs) and all(d.get(states.RAW) == "archiving" for d in docs.values()):
        return db.transition_many(docs, states.RAW, "archived", runs, expect=("archiving",), note=note)
    out = {}
    for run, fields in runs.items():
        marker = {"run": run, "stage": "archive", "field": states.RAW, "to": "archived", "set": fields}
        out[run] = bring_up(db, marker, docs.get(run), note=note)[1]
    return out


def apply_batch(db: RunsDB, batch_marker: dict, note: str = "repaired from batch marker") -> list[str]:
    """Make every member of an archived batch 'archived' in the DB."""
    changed = []
    for run, fields in batch_marker["runs"].items():
        marker = {"run": run, "stage": "archive", "field": states.RAW, "to": "archived", "set": fields}
        if apply(db, marker, note=note):
            changed.append(run)
    return changed


def reconcile(db: RunsDB, state_dir: str | Path, docs: list[dict]) -> list[str]:
    """Replay every marker that is ahead of the DB, for the given runs.

    Returns the names of runs whose document was repaired.
    """
    repaired = []
    for doc in docs:
        for stage in markers.STAGE_MARKERS:
            p = markers.path(state_dir, stage, doc["name"])
            if p.exists():
                try:
                    if apply(db, markers.read(p), doc=doc):
                        repaired.append(doc["name"])
                        doc = db.get(doc["name"])
                except states.TransitionRefused as exc:
                    log.error("run %s: cannot replay %s marker: %s", doc["name"], stage, exc)
        batch = (doc.get("archive") or {}).get("batch")
        if batch and doc.get(states.RAW) in ("compressed", "archiving"):
            p = markers.batch_path(state_dir, batch)
            if p.exists():
                repaired += apply_batch(db, markers.read(p))
    return sorted(set(repaired))


def close_batches(db: RunsDB, config: dict, tick: str, out_path: str | Path, log) -> dict:
    """The close_batches checkpoint: after this tick's compressions, decide the closed batches."""
    pattern = config["run_name_pattern"]
    wanted = set(config["tick"]["runs"])
    every = [d for d in db.pending(whole=True) if selection.check_doc(d, pattern) is None]
    compressed = [d for d in every if d.get(states.RAW) in ("compressing", "compressed", "archiving")]
    if reconcile(db, fa_config.state_dir(config), compressed):  # a compression whose DB write was lost
        every = [d for d in db.pending(whole=True) if selection.check_doc(d, pattern) is None]
    # A batch is archived whole: with --run, plan from every run and keep the
    # batches that hold a wanted run.
    batches = selection.plan_batches(every, config["archive"])
    if wanted:
        batches = {b: runs for b, runs in batches.items() if wanted & set(runs)}
    claimed = claims.busy(config)  # a job of an earlier, killed tick still archives it
    for b in [b for b, runs in batches.items() if b in claimed or claimed.keys() & set(runs)]:
        log.write(f"batch {b}: left alone: {claimed.get(b) or 'a run of it is claimed'}\n")
        del batches[b]
    plan = {"tick": tick, "batches": batches}
    members = {run for runs in batches.values() for run in runs}
    snapshots.keep_all(config, [d for d in every if d["name"] in members])  # each archive job's documents
    markers.write(out_path, plan)
    log.write(f"closed batches: {', '.join(batches) or 'none'}\n")
    return plan
