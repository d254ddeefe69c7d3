"""The tick's snapshots: the newest copy of each run's document, handed from job to job.

The sync_runs_db checkpoint writes one for each run it plans
(``state/ticks/<tick>/runs/<run>.json``), close_batches one for each run it
batches, and every stage job rewrites it after each of its writes, so the
next stage of the run in the same tick starts from the newest revision
without reading the runs DB (:mod:`fulliautomatix.stage`).  Extended JSON:
dates and ObjectIds come back as they were.
"""

from __future__ import annotations

import datetime as _dt
import os
from pathlib import Path

from bson import json_util

from . import config as fa_config
from . import dates


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
        return dates.for_db(
            json_util.loads(text, json_options=json_util.JSONOptions(tz_aware=True, tzinfo=_dt.timezone.utc))
        )
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
