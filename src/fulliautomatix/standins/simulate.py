"""simulate-daq: write simulated runs and insert their documents, as the DAQ does (a STAND-IN for the DAQ).

Run numbers continue after the highest one in the runs DB *and* on the DAQ
(a runs DB reset over a DAQ directory that still holds runs), and a name
already on the DAQ or in the DB is skipped.  The DAQ directory is listed once
(one command, over ssh for a remote DAQ).

Each run is *claimed* first: ``mkdir .<run>.writing``, which fails when that
directory exists, then a check that ``<run>`` does not.  Two simulate-daq
started at once (or a DAQ writing the same directory) therefore never write
the same run: the one that loses moves on to the next number.  The run is
written into its claim, renamed into place complete, and only then gets its
document.  A failure removes what this run left (its claim, or its placed
directory when its document cannot be inserted) and is one line naming the
run, the cause and what to do.
"""

from __future__ import annotations

import datetime as _dt
import logging
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from .. import dates, hosts
from ..runsdb import RunsDB, RunsDBError
from . import rawformat

log = logging.getLogger(__name__)

MAX_SKIPS = 1000  # names tried at most for one run before giving up
SIMULATED_NAME = re.compile(r"^\.?([0-9]{6}_([0-9]{4}))(\.writing)?$")

# The DAQ side, run as ``bash -c DAQ_SCRIPT fa-simulate-daq ACTION RAW_DIR RUN`` on the DAQ host.
# Exit 17: the run name is taken (claimed or written by another writer); other non-zero: failed.
DAQ_SCRIPT = r"""
dir=$2; tmp="$2/.$3.writing"; run="$2/$3"
case $1 in
  list) [ -d "$dir" ] || exit 0
        ls -A -- "$dir" ;;
  claim) mkdir -p -- "$dir" || exit 3
         err=$(mkdir -- "$tmp" 2>&1) || { [ -e "$tmp" ] || [ -e "$run" ] && exit 17; echo "$err" >&2; exit 3; }
         [ ! -e "$run" ] || { rmdir -- "$tmp"; exit 17; } ;;
  place) [ ! -e "$run" ] || exit 17
         mv -T -- "$tmp" "$run" ;;
  discard) rm -rf -- "$tmp" ;;
  unplace) mv -T -- "$run" "$tmp" && rm -rf -- "$tmp" ;;
  *) exit 2 ;;
esac
"""


class SimulationError(Exception):
    pass


class Interrupted(SimulationError):
    """Stopped by SIGINT (or SIGTERM, which the CLI turns into it); what the run left is removed."""


class _Taken(Exception):
    """Another writer holds this run name."""


class _Daq:
    """The DAQ's raw directory, here or on the DAQ machine, through DAQ_SCRIPT."""

    def __init__(self, config: dict):
        self.host = hosts.Host.from_config(config["daq"])
        self.raw_dir = config["daq"]["raw_dir"].rstrip("/") or "/"
        self.staging = Path()  # a remote DAQ's runs are written here first (made by __enter__)
        self.rsync_timeout = config["transfer"]["timeout_seconds"]  # a stalled copy fails, as a transfer's

    def __enter__(self) -> "_Daq":
        if not self.host.is_local:
            try:
                self.staging = Path(tempfile.mkdtemp(prefix="fa-simulate-"))
            except OSError as exc:
                raise SimulationError(
                    f"cannot make a directory for the runs to copy to {self.host.name} in "
                    f"{tempfile.gettempdir()}: {exc.strerror}; set TMPDIR"
                ) from None
        return self

    def __exit__(self, *exc) -> None:
        if not self.host.is_local:
            shutil.rmtree(self.staging, ignore_errors=True)

    @property
    def advice(self) -> str:
        """What to check when the DAQ side failed."""
        if self.host.is_local:
            return "check daq.raw_dir (a directory this user can write, with room for the run)"
        return (
            f"check daq.raw_dir on {self.host.name} (a directory the ssh user can write, with room for the run) "
            "and the ssh to it (daq.host, daq.ssh)"
        )

    def where(self, name: str = "") -> str:
        path = f"{self.raw_dir}/.{name}.writing" if name else self.raw_dir
        return path if self.host.is_local else f"{path} on {self.host.name}"

    def _do(self, action: str, name: str, what: str) -> str:
        """Run one action of DAQ_SCRIPT; `what` says what failed."""
        argv = ["bash", "-c", DAQ_SCRIPT, "fa-simulate-daq", action, self.raw_dir, name]
        try:
            proc = self.host.run(argv, check=False)
        except OSError as exc:
            raise SimulationError(f"{what}: cannot run {self.host.argv(argv)[0]}: {exc.strerror}") from None
        if proc.returncode == 17:
            raise _Taken(name)
        if proc.returncode != 0:
            tail = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
            raise SimulationError(f"{what}: {tail}")
        return proc.stdout

    def entries(self) -> set[str]:
        """The run names on the DAQ, written or being written (one command)."""
        listing = self._do("list", "", f"cannot list the DAQ directory {self.where()}")
        return {m.group(1) for m in map(SIMULATED_NAME.match, listing.splitlines()) if m}

    def claim(self, name: str) -> None:
        self._do("claim", name, f"cannot make its directory in {self.where()}")

    def write(self, name: str, events: int) -> None:
        """Write the run into its claim (for a remote DAQ: here, then rsync into the claim there)."""
        local = Path(self.raw_dir) / f".{name}.writing" if self.host.is_local else self.staging / name
        try:
            rawformat.write_run(local, name, events)
        except OSError as exc:
            here = "" if self.host.is_local else f" (here, before the copy to {self.host.name})"
            raise SimulationError(f"cannot write {exc.filename or local}{here}: {exc.strerror}") from None
        if self.host.is_local:
            return
        timeout = [f"--timeout={int(self.rsync_timeout)}"] if self.rsync_timeout else []
        argv = [
            "rsync",
            "-a",
            *timeout,
            "-e",
            hosts.rsync_shell(self.host),
            "--",
            f"{local}/",
            self.host.path(f"{self.raw_dir}/.{name}.writing") + "/",
        ]
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL)
        except OSError as exc:
            raise SimulationError(f"cannot run rsync: {exc.strerror}") from None
        finally:
            shutil.rmtree(local, ignore_errors=True)
        if proc.returncode != 0:
            tail = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[0]
            raise SimulationError(f"rsync to {self.where(name)} failed: {tail}")

    def place(self, name: str) -> None:
        self._do("place", name, f"cannot rename {self.where(name)} into place")

    def remove(self, name: str, placed: bool) -> str:
        """Remove what this run left on the DAQ; '' when done, else what to remove by hand."""
        try:
            self._do("unplace" if placed else "discard", name, "clean-up failed")
        except (SimulationError, _Taken) as exc:
            log.debug("run %s: %s", name, exc)
            left = f"{self.raw_dir}/{name}" if placed else f"{self.raw_dir}/.{name}.writing"
            return left if self.host.is_local else f"{left} on {self.host.name}"
        return ""


def _make_run(db: RunsDB, daq: _Daq, doc: dict, events: int) -> bool:
    """Claim, write, place and register one run; False when another writer has its name."""
    name = doc["name"]
    try:
        daq.claim(name)
    except _Taken:
        return False
    except SimulationError as exc:
        raise SimulationError(f"{exc}; nothing of it was left; {daq.advice}") from None
    placed = taken = False
    advice = daq.advice
    try:
        daq.write(name, events)
        daq.place(name)
        placed = True
        db.insert_run(doc)
        return True
    except _Taken:  # its directory appeared while it was written (a writer that does not claim names)
        taken, cause = True, "another writer made its directory meanwhile"
    except RunsDBError as exc:
        cause, advice = f"its document was not inserted ({exc})", "check that the runs DB accepts writes"
    except SimulationError as exc:
        cause = str(exc)
    except KeyboardInterrupt:
        left = daq.remove(name, placed)
        raise Interrupted("interrupted; " + (f"remove {left} by hand" if left else "nothing of it was left")) from None
    left = daq.remove(name, placed)
    if taken and not left:
        return False  # nothing of it left: the next number
    done = f"remove {left} by hand" if left else "nothing of it was left"
    raise SimulationError(f"{cause}; {done}; {advice}")


def _document(config: dict, name: str, number: int, events: int, source: str) -> dict:
    return {
        "name": name,
        "number": number,
        "events": events,
        "source": source,
        "raw_status": "acquired",
        "raw_location": config["daq"]["name"],
        "processed_status": "none",
        "start": dates.now(),
    }


def _first_number(db: RunsDB, on_daq: set[str]) -> int:
    """The number after the highest in the runs DB and on the DAQ."""
    in_db = db.last_number()
    daq_numbers = [int(n[-4:]) for n in on_daq]
    if daq_numbers and max(daq_numbers) > in_db:
        log.info(
            "the DAQ directory holds runs up to number %d, beyond the runs DB's %d: numbering continues after them",
            max(daq_numbers),
            in_db,
        )
    return max([in_db, *daq_numbers]) + 1


def simulate(db: RunsDB, config: dict, runs: int, events: int, source: str, today: _dt.date | None = None) -> list[str]:
    """Write `runs` simulated runs into the DAQ directory and register them; their names.

    With a remote DAQ (daq.host) each run is written here first, copied into
    its claim on the DAQ machine and renamed into place there, complete.
    """
    prefix = (today or _dt.datetime.now(_dt.timezone.utc).date()).strftime("%y%m%d")
    made: list[str] = []
    with _Daq(config) as daq:
        on_daq = daq.entries()
        number = _first_number(db, on_daq)
        for _ in range(runs):
            for _ in range(MAX_SKIPS):
                name, number = f"{prefix}_{number % 10000:04d}", number + 1
                if name in on_daq:
                    continue
                try:
                    if not db.has_run(name) and _make_run(
                        db, daq, _document(config, name, number - 1, events, source), events
                    ):
                        made.append(name)
                        break
                except RunsDBError as exc:
                    raise SimulationError(
                        f"run {name} not written: {exc}; nothing of it was left; check the runs "
                        f"DB, then run simulate-daq again{_before(made)}"
                    ) from None
                except SimulationError as exc:
                    raise type(exc)(
                        f"run {name} not written: {exc}, then run simulate-daq again{_before(made)}"
                    ) from None
                on_daq.add(name)
            else:
                raise SimulationError(
                    f"no free run name among {MAX_SKIPS} numbers up to {number - 1} in "
                    f"{daq.where()}; remove runs there or reset the runs DB{_before(made)}"
                )
    return made


def _before(made: list[str]) -> str:
    return f" ({len(made)} run(s) before it written and registered: {', '.join(made)})" if made else ""
