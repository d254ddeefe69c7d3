"""simulate-daq: write simulated runs and insert their documents, as the DAQ does."""

from __future__ import annotations

import datetime as _dt
import shutil
import subprocess
import tempfile
from pathlib import Path

from . import hosts, rawformat
from .runsdb import RunsDB


def next_names(db: RunsDB, count: int, today: _dt.date | None = None) -> list[tuple[str, int]]:
    """(name, number) for `count` new runs: YYMMDD_NNNN, numbers continuing the DB's."""
    today = today or _dt.datetime.now(_dt.timezone.utc).date()
    number = db.last_number() + 1
    prefix = today.strftime("%y%m%d")
    return [(f"{prefix}_{(number + i) % 10000:04d}", number + i) for i in range(count)]


class SimulationError(Exception):
    pass


# Refuses a run name already on the DAQ (a runs DB reset while the DAQ directory was not), else
# makes the raw directory and clears a partial copy left by an interrupted simulation.
_MAKE_ROOM = r"""
[ ! -e "$1/$2" ] || { echo "$1/$2 already exists on the DAQ machine" >&2; exit 17; }
mkdir -p -- "$1" && rm -rf -- "$1/.$2.writing"
"""


def _push(config: dict, local_run: Path, name: str) -> None:
    """Put a run written here into the raw directory of a remote DAQ machine (over its ssh)."""
    daq = hosts.Host.from_config(config["daq"])
    raw_dir = config["daq"]["raw_dir"].rstrip("/")
    tmp = f"{raw_dir}/.{name}.writing"
    try:
        daq.run(["bash", "-c", _MAKE_ROOM, "fa-make-room", raw_dir, name])
        proc = subprocess.run(["rsync", "-a", "-e", hosts.rsync_shell(daq), "--", f"{local_run}/",
                               daq.path(tmp) + "/"], capture_output=True, text=True)
        if proc.returncode != 0:
            raise SimulationError(f"rsync to the DAQ machine failed: {proc.stderr.strip()}")
        daq.run(["mv", "-T", "--", tmp, f"{raw_dir}/{name}"])
    except hosts.CommandFailed as exc:
        raise SimulationError(f"run {name}: {exc}") from None


def simulate(db: RunsDB, config: dict, runs: int, events: int, source: str) -> list[str]:
    """Write `runs` simulated runs into the DAQ directory and register them.

    With a remote DAQ (daq.host) each run is written here first and copied
    to the DAQ machine, then renamed into place there, complete.
    """
    remote = config["daq"].get("host", "local") != "local"
    raw_dir = Path(tempfile.mkdtemp(prefix="fa-simulate-")) if remote else Path(config["daq"]["raw_dir"])
    made = []
    try:
        for name, number in next_names(db, runs):
            tmp = raw_dir / f".{name}.writing"
            rawformat.write_run(tmp, name, events)
            tmp.rename(raw_dir / name)
            if remote:
                _push(config, raw_dir / name, name)
            db.insert_run({
                "name": name, "number": number, "events": events, "source": source,
                "raw_status": "acquired", "raw_location": config["daq"]["name"], "processed_status": "none",
                "start": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            })
            made.append(name)
    finally:
        if remote:
            shutil.rmtree(raw_dir, ignore_errors=True)
    return made
