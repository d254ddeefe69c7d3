"""Which runs a tick works on, and how compressed runs are batched.

Pure functions of run documents and settings; the Snakefile turns their
answers into file targets.  Only runs in non-final states ever reach here, so
a tick's cost follows the pending work, not the size of the history.
"""

from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass, field

from . import dates, states

CHAIN = ("transfer", "process", "compress")


def check_doc(doc: dict, pattern: str) -> str | None:
    """Why a run document cannot be handled, or None when it is well formed."""
    name = doc.get("name")
    if not isinstance(name, str) or not re.fullmatch(pattern, name):
        return f"run {name!r}: name does not match the run name pattern {pattern}; fix the document in the runs DB"
    missing = [f for f in ("events", "source", "raw_status", "raw_location", "processed_status") if f not in doc]
    if missing:
        return f"run {name}: document lacks {', '.join(missing)}; fix the document in the runs DB"
    for f in ("events",):
        if not isinstance(doc[f], int) or isinstance(doc[f], bool) or doc[f] < 0:
            return f"run {name}: {f} must be a non-negative integer, not {doc[f]!r}"
    if not isinstance(doc["source"], str) or not doc["source"]:
        return f"run {name}: source must be a non-empty string"
    if doc["raw_status"] not in states.RAW_STATES:
        return f"run {name}: unknown raw_status {doc['raw_status']!r}"
    if doc["processed_status"] not in states.PROCESSED_STATES:
        return f"run {name}: unknown processed_status {doc['processed_status']!r}"
    return None


@dataclass
class Plan:
    """The stage targets of one tick: (stage, run) pairs, and what was left out."""

    targets: list[tuple[str, str]] = field(default_factory=list)
    held: list[str] = field(default_factory=list)  # well-formed runs waiting for a human
    bad: list[str] = field(default_factory=list)  # malformed documents
    later: list[str] = field(default_factory=list)  # runs to transfer that wait for a later tick (max_transfers)


def limits(config: dict) -> dict:
    """The attempt limits start_stage holds runs by, from the config."""
    return {
        "transfer_attempts": config["transfer"]["max_attempts"],
        "process_attempts": config["processing"]["max_attempts"],
        "compress_attempts": config["compression"]["max_attempts"],
    }


def lost(doc: dict) -> str | None:
    """Why no verified copy of the run's raw data is left, or None."""
    gone = doc.get("lost")
    return str(gone.get("reason")) if isinstance(gone, dict) and gone.get("reason") else None


def _held_compression(doc: dict, limits: dict) -> str | None:
    """Why compression of this run waits for a human: a hold recorded, or its attempts used up."""
    c = doc.get("compressed") or {}
    name = doc["name"]
    if c.get("held"):
        return str(c["held"])
    if c.get("error") and c.get("attempts", 0) >= limits.get("compress_attempts", 3):
        return (
            f"run {name}: compression failed {c['attempts']} times ({c['error']}); "
            f"fix it, then `fulliautomatix retry {name}`"
        )
    return None


def _held_processing(doc: dict, limits: dict) -> str | None:
    """Why processing of this run waits for a human: its attempts used up (failed, or never finished)."""
    proc, name = doc["processed_status"], doc["name"]
    p = doc.get("processing") or {}
    if p.get("attempts", 0) < limits["process_attempts"]:
        return None
    if proc == "failed":
        return (
            f"run {name}: processing failed {p['attempts']} times (exit {p.get('exit_code')}); "
            f"see its log, then `fulliautomatix retry {name}`"
        )
    if proc in ("queued", "processing"):
        return (
            f"run {name}: its last processing attempt ({p['attempts']} of {limits['process_attempts']}) "
            f"ended without a result (processed_status {proc}); see its log, then "
            f"`fulliautomatix retry {name}`"
        )
    return None


def start_stage(doc: dict, limits: dict) -> tuple[str | None, str | None]:
    """(first stage this run needs, reason it is held for a human)."""
    raw, proc = doc["raw_status"], doc["processed_status"]
    name = doc["name"]
    if lost(doc):
        return None, lost(doc)
    if raw in ("acquired", "transferring"):
        t = doc.get("transfer") or {}
        if raw == "acquired" and t.get("error") and t.get("refused"):
            return None, str(t["error"])  # refused on the DAQ (a symlink, a fifo, ...): the line says what to do
        if raw == "acquired" and t.get("missing"):
            return None, str(t["missing"])  # the DAQ has no directory for it
        if raw == "acquired" and t.get("error") and t.get("attempts", 0) >= limits["transfer_attempts"]:
            return None, (
                f"run {name}: transfer failed {t['attempts']} times ({t['error']}); "
                f"fix it, then `fulliautomatix retry {name}`"
            )
        return "transfer", None
    if raw in ("ondeck", "compressing"):
        held = _held_compression(doc, limits)
        if held:
            return None, held
        if proc == "processed" or raw == "compressing":
            return "compress", None
        held = _held_processing(doc, limits)
        return (None, held) if held else ("process", None)
    if raw == "compressed":
        return None, _held_compression(doc, limits)
    return None, None


def plan_targets(
    docs: list[dict], stages: list[str], pattern: str, limits: dict, has_marker, max_transfers: int | None = None
) -> Plan:
    """Stage targets for the pending runs.

    `has_marker(stage, run)` tells whether a stage's marker exists.  A run's
    chain starts at the first stage it needs and runs through the following
    enabled stages; a stage that is not enabled ends the chain.  At most
    `max_transfers` chains start with the transfer, those of the runs first in
    name order (the oldest); the others wait (plan.later).
    """
    plan = Plan()
    for doc in docs:
        problem = check_doc(doc, pattern)
        if problem:
            plan.bad.append(problem)
            continue
        first, held = start_stage(doc, limits)
        if held:
            plan.held.append(held)
        if first is None or first not in stages:
            continue
        i = CHAIN.index(first)
        # Earlier markers must exist unless their stage may rebuild them.
        if any(not has_marker(s, doc["name"]) and s not in stages for s in CHAIN[:i]):
            plan.held.append(f"run {doc['name']}: marker of an earlier stage is missing; run a tick with all stages")
            continue
        last = i
        while last + 1 < len(CHAIN) and CHAIN[last + 1] in stages:
            last += 1
        plan.targets.append((CHAIN[last], doc["name"]))
    if max_transfers is not None:
        new = sorted(name for name, first in _firsts(plan.targets, docs, limits) if first == "transfer")
        plan.later = new[max_transfers:]
        if plan.later:
            waiting = set(plan.later)
            plan.targets = [t for t in plan.targets if t[1] not in waiting]
    return plan


def _firsts(targets: list[tuple[str, str]], docs: list[dict], limits: dict):
    """(run, the first stage of its chain) of each target."""
    by_name = {d.get("name"): d for d in docs}
    return [(run, start_stage(by_name[run], limits)[0]) for _, run in targets]


def batch_name(runs: list[str]) -> str:
    return f"{runs[0]}_to_{runs[-1]}"


def plan_batches(docs: list[dict], archive: dict, now: _dt.datetime | None = None) -> dict[str, list[str]]:
    """Closed batches of compressed runs: {batch name: [run, ...]}.

    Runs already assigned to a batch (an earlier attempt) stay in it.  New
    batches are runs consecutive in name order among the runs not yet
    archived: a run that is not compressed yet ends the group before it, so
    no batch's name range ever holds a run of another batch.  A group closes
    at `batch_runs` runs or `min_bytes` bytes; a smaller one closes only once
    its oldest run has waited `max_wait_days`.
    """
    now = now or _dt.datetime.now(_dt.timezone.utc)
    batches: dict[str, list[str]] = {}
    group: list[dict] = []
    size = 0

    def close_if_waited() -> None:
        times = [t for t in (dates.as_utc((d.get("compressed") or {}).get("at")) for d in group) if t]
        if group and times and now - min(times) >= _dt.timedelta(days=archive["max_wait_days"]):
            batches[batch_name([d["name"] for d in group])] = [d["name"] for d in group]

    for doc in sorted(docs, key=lambda d: d["name"]):
        assigned = (doc.get("archive") or {}).get("batch")
        if assigned and doc.get("raw_status") in ("compressed", "archiving"):
            batches.setdefault(assigned, []).append(doc["name"])
            close_if_waited()  # an earlier batch's run ends the group too
            group, size = [], 0
            continue
        if doc.get("raw_status") != "compressed" or lost(doc) or (doc.get("compressed") or {}).get("held"):
            close_if_waited()  # a run still on its way ends the group: batches never interleave
            group, size = [], 0
            continue
        group.append(doc)
        size += int((doc.get("compressed") or {}).get("bytes", 0))
        if len(group) >= archive["batch_runs"] or (archive["min_bytes"] and size >= archive["min_bytes"]):
            batches[batch_name([d["name"] for d in group])] = [d["name"] for d in group]
            group, size = [], 0
    close_if_waited()
    return batches
