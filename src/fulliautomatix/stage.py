"""The skeleton every stage job follows: take the run, claim it, work, write the marker, record.

The four stages (transfer, process, compress, archive) differ only in their
work; around it each does the same, here:

1. take the run's document from the tick's snapshot
   (``state/ticks/<tick>/runs/<run>.json``, written by the sync_runs_db
   checkpoint for the runs it plans, by close_batches for the runs it
   batches, and by each job after its writes, so the next stage of the run in
   the same tick starts from the newest revision); the runs DB is read only
   when there is none (:func:`take`);
2. replay the input marker, which writes only when the snapshot is behind it
   (:func:`replay`);
3. claim the run with one write, conditional on the snapshot's ``rev``
   (:func:`claim`; :meth:`runsdb.RunsDB.transition` re-reads the run only when
   it changed meanwhile);
4. the stage's own work;
5. write the marker, then record the result with one conditional write
   (:func:`record`): when that write is lost the marker stands and the next
   tick replays it (:func:`fulliautomatix.sync.record` says so in one line).

A failed attempt sends the run back with its error (:func:`give_back`) and
says what comes next (:func:`retry_hint`); a run found done whose marker was
lost is re-verified by the stage and its marker written again
(:func:`marker_again`).  :func:`run_stage` puts these together for a stage of
one run; the archive stage uses them for a batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from . import hosts, markers, selection, states, sync
from .runsdb import RunsDB
from .snapshots import keep, keep_all, load_snapshot, snapshot_path

__all__ = [
    "Stage",
    "attempt_of",
    "claim",
    "give_back",
    "keep",
    "keep_all",
    "marker_again",
    "record",
    "replay",
    "retry_hint",
    "run_stage",
    "take",
]

# -- the steps ------------------------------------------------------------------


def take(db: RunsDB, config: dict, run: str) -> dict:
    """The run's document: this tick's snapshot of it, else read from the runs DB."""
    path = snapshot_path(config, run)
    doc = load_snapshot(path) if path is not None else None
    return doc if doc is not None and doc.get("name") == run else db.get(run)


def replay(db: RunsDB, config: dict, input_marker: str | Path, doc: dict) -> dict:
    """Bring the run up to its input marker (an earlier stage's DB write that was lost); its newest document.

    Nothing is read or written when the snapshot already shows the marker's state.
    """
    changed, doc = sync.bring_up(db, markers.read(input_marker), doc)
    return keep(config, doc) if changed else doc


def claim(
    db: RunsDB,
    config: dict,
    doc: dict,
    field_name: str,
    to: str,
    *,
    expect: tuple[str, ...] | None = None,
    fields: dict | None = None,
    note: str | None = None,
    via: tuple[str, ...] = (),
) -> dict:
    """Claim the run for the stage: one write, conditional on the snapshot's rev; the claimed document."""
    return keep(
        config, db.transition(doc["name"], field_name, to, expect=expect, fields=fields, note=note, doc=doc, via=via)
    )


def give_back(db: RunsDB, config: dict, doc: dict, field_name: str, to: str, fields: dict, note: str) -> dict:
    """Record a failed attempt: the run goes back to `to` with the failure's fields (one conditional write)."""
    return keep(config, db.transition(doc["name"], field_name, to, doc=doc, note=note, fields=fields))


def record(db: RunsDB | None, config: dict, marker: dict, marker_path: str | Path, doc, note: str, log):
    """Write the stage's marker, then record it in the runs DB with one conditional write (a batch's: one
    bulk write); the run's newest document (a batch's: {run: document}).

    None when the runs DB did not take it: the marker stands, the next tick
    replays it, and sync.record has said so in one line.  `doc`: the run's
    claimed document (a batch's: {run: document}); no `db`: a batch job whose
    node cannot reach the runs DB (the host replays the marker).
    """
    markers.write(marker_path, marker)
    if db is None:
        return None
    newest = sync.record(db, marker, doc, note, log)
    if newest is not None:
        keep_all(config, newest.values() if "runs" in marker else [newest])
    return newest


def retry_hint(run: str, left: int, fix: str = "fix it") -> str:
    """What comes after a failed attempt: another one next tick, or a human (the run is held)."""
    return (
        f"the next tick retries ({left} attempts left)"
        if left > 0
        else f"no attempts left: {fix}, then `fulliautomatix retry {run}`"
    )


def marker_again(marker_path: str | Path, marker: dict, log) -> dict:
    """A run done already whose marker was lost (the stage has re-verified it): write the marker again."""
    markers.write(marker_path, marker)
    log.write(
        f"run {marker['run']}: {marker['stage']} was recorded but its marker was lost: "
        "re-verified, marker written again\n"
    )
    return marker


# -- one run through one stage ----------------------------------------------------


@dataclass
class Stage:
    """What a stage does to one run, for :func:`run_stage`; its own work in three functions.

    ``work(doc, attempt)`` returns the marker or raises one of ``failures``;
    ``failed(doc, attempt, exc)`` records the failed attempt (with
    :func:`give_back`) and returns the error to raise; ``again(doc)``
    re-verifies a run already in the stage's state and returns its marker.
    """

    name: str  # "transfer", "compress": its marker and final state (markers.STAGE_MARKERS)
    working: str  # the state the run is claimed in
    start: tuple[str, ...]  # the states the claim may start from (`working` among them: a retry)
    work: Callable[[dict, int], dict]
    failed: Callable[[dict, int, Exception], Exception]
    again: Callable[[dict], dict]
    failures: tuple[type[Exception], ...]
    note: str  # the history note of the record
    claim_fields: Callable[[dict, int], dict] = lambda doc, attempt: {}
    check: Callable[[dict], None] = lambda doc: None  # refuses a run before it is claimed (raises)
    record: Callable | None = None  # record(marker, doc): instead of the plain :func:`record` (purge_after_verify)

    @property
    def field(self) -> str:
        return markers.STAGE_MARKERS[self.name][1]

    @property
    def done(self) -> str:
        return markers.STAGE_MARKERS[self.name][2]


def refuse_held(doc: dict, config: dict) -> None:
    """A run held for a human (failed too often, refused, lost) is worked on only after `retry`.

    A tick never plans it (selection.start_stage); this stops the other door,
    a run's marker named as Snakemake's target, from trying it again behind
    the operator's back while `status` says HELD.
    """
    _, held = selection.start_stage(doc, selection.limits(config))
    if held:
        raise states.TransitionRefused(f"{held} (it is held: no job works on it until then)")


def attempt_of(doc: dict, sub: str) -> int:
    """This attempt's number: one more than the run's `sub`-document counted."""
    return int((doc.get(sub) or {}).get("attempts") or 0) + 1


def run_stage(
    db: RunsDB,
    config: dict,
    run: str,
    stage: Stage,
    marker_path: str | Path,
    log,
    *,
    input_marker: str | Path | None = None,
    attempts_in: str,
) -> dict:
    """One run through one stage (see the module docstring); its marker.  `attempts_in`: the sub-document
    counting the stage's attempts ("transfer", "compressed")."""
    hosts.check_run_name(run, config["run_name_pattern"])
    doc = take(db, config, run)
    if input_marker is not None:
        doc = replay(db, config, input_marker, doc)
    if doc.get(stage.field) == stage.done:
        return marker_again(marker_path, stage.again(doc), log)
    stage.check(doc)
    refuse_held(doc, config)
    attempt = attempt_of(doc, attempts_in)
    doc = claim(
        db, config, doc, stage.field, stage.working, expect=stage.start, fields=stage.claim_fields(doc, attempt)
    )
    try:
        marker = stage.work(doc, attempt)
    except stage.failures as exc:
        raise stage.failed(doc, attempt, exc) from None
    if stage.record is not None:  # it writes the marker and records it (stage.record) its own way
        stage.record(marker, doc)
    else:
        record(db, config, marker, marker_path, doc, stage.note, log)
    return marker
