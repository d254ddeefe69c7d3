"""Stage markers: one small JSON file per run and stage.

A marker is the Snakemake target of a stage and the record of what the stage
measured.  It also says how the runs DB must look once the stage is done
(``field``, ``to`` and ``set``), so a DB write that was lost can be replayed
by :mod:`fulliautomatix.sync`.  Markers are written atomically (temporary
file, fsync, rename): a marker either exists whole or not at all.  Times are
ISO 8601 strings in a marker; the runs DB makes them dates when a marker is
replayed (:func:`fulliautomatix.dates.for_db`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from . import dates

# stage -> (marker directory under state/, DB field, state the stage ends in)
STAGE_MARKERS = {
    "transfer": ("ondeck", "raw_status", "ondeck"),
    "process": ("processed", "processed_status", "processed"),
    "compress": ("compressed", "raw_status", "compressed"),
}


def path(state_dir: str | Path, stage: str, run: str) -> Path:
    return Path(state_dir) / STAGE_MARKERS[stage][0] / f"{run}.json"


def batch_path(state_dir: str | Path, batch: str) -> Path:
    return Path(state_dir) / "archived" / f"{batch}.json"


def write(target: str | Path, data: dict) -> None:
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    with open(tmp, "w") as fh:
        json.dump(data, fh, indent=1, sort_keys=True, default=dates.json_default)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, target)


def read(target: str | Path) -> dict:
    with open(target) as fh:
        return json.load(fh)


def run_marker(stage: str, run: str, fields: dict, measured: dict) -> dict:
    """The marker of a finished run stage: the DB state it implies, and figures."""
    _, field, to = STAGE_MARKERS[stage]
    return {"run": run, "stage": stage, "field": field, "to": to, "set": fields, "measured": measured}
