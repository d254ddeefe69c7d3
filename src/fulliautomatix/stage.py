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

import datetime as _dt
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from bson import json_util

from . import config as fa_config
from . import dates, hosts, markers, sync
from .runsdb import RunsDB

# -- snapshots: the tick's newest copy of each run's document -------------------


def snapshot_path(config: dict, run: str) -> Path | None:
    """Where this tick keeps the run's document; None outside a tick (no tick id: the DB is read)."""
    tick = (config.get("tick") or {}).get("id")
    return fa_config.state_dir(config) / "ticks" / tick / "runs" / f"{run}.json" if tick else None


def save_snapshot(path: str | Path, doc: dict) -> None:
    """Write a run document to a file as it is (Extended JSON: dates, ObjectIds and all), atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json_util.dumps(doc, json_options=json_util.CANONICAL_JSON_OPTIONS))
    os.replace(tmp, path)


def load_snapshot(path: str | Path) -> dict | None:
    """A run document :func:`save_snapshot` wrote, with its dates as aware UTC datetimes; None if there is none.

    Times a document held as ISO strings (a JSON snapshot, a document not yet
    migrated) become dates (:func:`dates.for_db`), as every write makes them.
    """
    try:
        text = Path(path).read_text()
        return dates.for_db(json_util.loads(text, json_options=json_util.JSONOptions(
            tz_aware=True, tzinfo=_dt.timezone.utc)))
    except (OSError, ValueError):  # none, or a torn or foreign file: the caller reads the DB instead
        return None


def keep(config: dict, doc: dict | None) -> dict | None:
    """Keep doc as the run's snapshot for the stages after this one in the tick; doc."""
    path = snapshot_path(config, doc["name"]) if doc else None
    if path is not None:
        save_snapshot(path, doc)
    return doc


def keep_all(config: dict, docs) -> None:
    for doc in docs:
        keep(config, doc)


def take(db: RunsDB, config: dict, run: str) -> dict:
    """The run's document: this tick's snapshot of it, else read from the runs DB."""
    path = snapshot_path(config, run)
    doc = load_snapshot(path) if path is not None else None
    return doc if doc is not None and doc.get("name") == run else db.get(run)


# -- the steps ------------------------------------------------------------------


def replay(db: RunsDB, config: dict, input_marker: str | Path, doc: dict) -> dict:
    """Bring the run up to its input marker (an earlier stage's DB write that was lost); its newest document.

    Nothing is read or written when the snapshot already shows the marker's state.
    """
    changed, doc = sync.bring_up(db, markers.read(input_marker), doc)
    return keep(config, doc) if changed else doc


def claim(db: RunsDB, config: dict, doc: dict, field_name: str, to: str, *, expect: tuple[str, ...],
          fields: dict | None = None, note: str | None = None, via: tuple[str, ...] = ()) -> dict:
    """Claim the run for the stage: one write, conditional on the snapshot's rev; the claimed document."""
    return keep(config, db.transition(doc["name"], field_name, to, expect=expect, fields=fields, note=note,
                                      doc=doc, via=via))


def give_back(db: RunsDB, config: dict, doc: dict | None, field_name: str, to: str, fields: dict,
              note: str) -> dict:
    """Record a failed attempt: the run goes back to `to` with the failure's fields."""
    return keep(config, db.transition(doc["name"] if doc else fields["name"], field_name, to, doc=doc,
                                      note=note, fields=fields))


def record(db: RunsDB | None, config: dict, marker: dict, marker_path: str | Path, doc, note: str,
           log) -> bool:
    """Write the stage's marker, then record it in the runs DB with one conditional write.

    False when the runs DB did not take it: the marker stands, the next tick
    replays it, and sync.record has said so in one line.  `doc`: the run's
    claimed document (a batch's: {run: document}).
    """
    markers.write(marker_path, marker)
    if db is None:
        return True  # a batch job whose node cannot reach the runs DB: the host replays the marker
    newest = sync.record(db, marker, doc, note, log)
    if newest is None:
        return False
    keep_all(config, newest.values() if "runs" in marker else [newest])
    return True


def retry_hint(run: str, left: int, fix: str = "fix it") -> str:
    """What comes after a failed attempt: another one next tick, or a human (the run is held)."""
    return (f"the next tick retries ({left} attempts left)" if left > 0
            else f"no attempts left: {fix}, then `fulliautomatix retry {run}`")


def marker_again(marker_path: str | Path, marker: dict, log) -> dict:
    """A run done already whose marker was lost (the stage has re-verified it): write the marker again."""
    markers.write(marker_path, marker)
    log.write(f"run {marker['run']}: {marker['stage']} was recorded but its marker was lost: "
              "re-verified, marker written again\n")
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
    record: Callable | None = None  # record(marker, doc): instead of the plain record (purge_after_verify)
    extra: dict = field(default_factory=dict)

    @property
    def field(self) -> str:
        return markers.STAGE_MARKERS[self.name][1]

    @property
    def done(self) -> str:
        return markers.STAGE_MARKERS[self.name][2]


def attempt_of(doc: dict, sub: str) -> int:
    """This attempt's number: one more than the run's `sub`-document counted."""
    return int((doc.get(sub) or {}).get("attempts") or 0) + 1


def run_stage(db: RunsDB, config: dict, run: str, stage: Stage, marker_path: str | Path, log, *,
              input_marker: str | Path | None = None, attempts_in: str) -> dict:
    """One run through one stage (see the module docstring); its marker.  `attempts_in`: the sub-document
    counting the stage's attempts ("transfer", "compressed")."""
    hosts.check_run_name(run, config["run_name_pattern"])
    doc = take(db, config, run)
    if input_marker is not None:
        doc = replay(db, config, input_marker, doc)
    if doc.get(stage.field) == stage.done:
        return marker_again(marker_path, stage.again(doc), log)
    stage.check(doc)
    attempt = attempt_of(doc, attempts_in)
    doc = claim(db, config, doc, stage.field, stage.working, expect=stage.start,
                fields=stage.claim_fields(doc, attempt))
    try:
        marker = stage.work(doc, attempt)
    except stage.failures as exc:
        raise stage.failed(doc, attempt, exc) from None
    if stage.record is not None:
        markers.write(marker_path, marker)
        stage.record(marker, doc)
    else:
        record(db, config, marker, marker_path, doc, stage.note, log)
    return marker
