"""simulate-daq: write simulated runs and insert their documents, as the DAQ does."""

from __future__ import annotations

import datetime as _dt
from pathlib import Path

from . import rawformat
from .runsdb import RunsDB


def next_names(db: RunsDB, count: int, today: _dt.date | None = None) -> list[tuple[str, int]]:
    """(name, number) for `count` new runs: YYMMDD_NNNN, numbers continuing the DB's."""
    today = today or _dt.datetime.now(_dt.timezone.utc).date()
    number = db.last_number() + 1
    prefix = today.strftime("%y%m%d")
    return [(f"{prefix}_{(number + i) % 10000:04d}", number + i) for i in range(count)]


def simulate(db: RunsDB, config: dict, runs: int, events: int, source: str) -> list[str]:
    """Write `runs` simulated runs into the DAQ directory and register them."""
    raw_dir = Path(config["daq"]["raw_dir"])
    made = []
    for name, number in next_names(db, runs):
        tmp = raw_dir / f".{name}.writing"
        rawformat.write_run(tmp, name, events)
        tmp.rename(raw_dir / name)
        db.insert_run({
            "name": name, "number": number, "events": events, "source": source,
            "raw_status": "acquired", "raw_location": config["daq"]["name"], "processed_status": "none",
            "start": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        })
        made.append(name)
    return made
