"""Bring one archived run back from the archive, verified.

:func:`restore` fetches only the run's member, checks it against the
recorded sha256, unpacks it, and checks every file against the checksums
recorded when the run left the DAQ.  A copy that fails is recorded on the
run (``archive.copy_ok`` false; status lists it as LOST-COPY).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from pathlib import Path

from .. import hosts, states
from ..checksums import file_hash
from ..runsdb import RunsDB
from .backend import ArchiveError, DebugLog
from .choose import make

logger = logging.getLogger("fulliautomatix")


def restore(db: RunsDB, config: dict, run: str, dest: Path, log=None) -> Path:
    """Bring a run back from the archive into dest/<run>, verified; return that path."""
    log = log or DebugLog()
    hosts.check_run_name(run, config["run_name_pattern"])
    doc = db.get(run)
    a = doc.get("archive") or {}
    if doc.get(states.RAW) != "archived" or not a.get("tarball"):
        raise ArchiveError(
            f"run {run}: never archived (raw_status {doc.get(states.RAW)}, raw_location "
            f"{doc.get('raw_location')}); there is nothing to restore"
        )
    final = dest / run
    if final.exists():
        raise ArchiveError(f"run {run}: {final} already exists; choose another --to directory")
    be = make(config, name=a.get("backend"), host=a.get("host"))
    work = dest / f".{run}.restoring"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        member = be.fetch(a["tarball"], a["member"], work, log)
    except ArchiveError as exc:
        raise ArchiveError(f"run {run}: {exc}") from None
    recorded = a.get("hash") or (doc.get("compressed") or {}).get("hash")
    if file_hash(member) != recorded:
        raise _copy_failed(
            db,
            doc,
            f"{a['member']} fetched from {be.url(a['tarball'])} differs from its recorded sha256; left in {work}",
        )
    proc = subprocess.run(["tar", "-C", str(work), "-I", "zstd", "-xf", str(member)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise _copy_failed(
            db,
            doc,
            f"cannot unpack {member} from {be.url(a['tarball'])}: {(proc.stderr.strip().splitlines() or [''])[-1]}",
        )
    member.unlink()
    t = doc.get("transfer") or {}
    actual = hosts.manifest(hosts.Host(), str(work / run), t.get("checksum_algorithm", "sha256"))
    problems = hosts.compare_manifests(t.get("checksums") or [], actual)
    if problems:
        raise _copy_failed(
            db, doc, f"the copy restored from {be.url(a['tarball'])} does not verify ({problems[0]}); left in {work}"
        )
    os.replace(work / run, final)
    shutil.rmtree(work)
    if a.get("copy_ok") in (False,):  # (nx-27017 gives a false it stored back as 0)
        db.update(run, {"archive.copy_ok": True, "archive.copy_error": None, "archive.copy_checked": states.now()})
    return final


def _copy_failed(db: RunsDB, doc: dict, what: str) -> ArchiveError:
    """Record that the run's archived copy failed verification (status lists it as LOST-COPY); the error."""
    run = doc["name"]
    daq = (doc.get("transfer") or {}).get("daq_copy") or "unknown"
    line = f"its archived copy failed verification on restore: {what}; the DAQ copy is {daq}" + (
        "" if daq == "kept" else ": no other verified copy is recorded"
    )
    try:
        db.update(run, {"archive.copy_ok": False, "archive.copy_error": line, "archive.copy_checked": states.now()})
    except Exception as exc:  # noqa: BLE001 - the error line below still says what happened
        logger.warning("run %s: could not record the failed verification (%s)", run, exc)
    return ArchiveError(f"run {run}: {line}")
