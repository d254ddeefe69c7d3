"""Stage 4: batches of compressed runs, tarred, archived, verified; and restore.

A backend stores one tarball per batch and can read members back.  The
``local`` backend (a directory) is the embedded default.  A batch becomes
``archived`` only after its tarball has been read back from the archive and
every member's checksum matched the one recorded at compression; only then may
the compressed copies on scratch be purged.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

from . import compress, hosts, markers, states, sync
from .runsdb import RunsDB


class ArchiveError(Exception):
    pass


class LocalBackend:
    """Batches as tar files in a directory (``archive.location``)."""

    name = "local"

    def __init__(self, location: str):
        self.root = Path(location)

    def tarball(self, batch: str) -> str:
        return str(self.root / f"{batch}.tar")

    def store(self, batch: str, files: list[Path], log) -> str:
        """Write the batch tarball (staged, then renamed) and return its location."""
        self.root.mkdir(parents=True, exist_ok=True)
        final = Path(self.tarball(batch))
        staging = self.root / ".incoming" / final.name
        staging.parent.mkdir(parents=True, exist_ok=True)
        argv = ["tar", "-cf", str(staging), "-C", str(files[0].parent), "--", *[f.name for f in files]]
        log.write("$ " + " ".join(argv) + "\n")
        proc = subprocess.run(argv, capture_output=True, text=True)
        if proc.returncode != 0:
            staging.unlink(missing_ok=True)
            raise ArchiveError(f"tar exited with {proc.returncode}: {proc.stderr.strip()}")
        with open(staging, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(staging, final)
        return str(final)

    def read_back(self, location: str) -> dict[str, dict]:
        """{member: {size, hash}} read from the archived tarball itself."""
        out = {}
        try:
            with tarfile.open(location, mode="r:") as tar:
                for m in tar:
                    if m.isfile():
                        h = hashlib.sha256()
                        fh = tar.extractfile(m)
                        for chunk in iter(lambda: fh.read(1 << 20), b""):
                            h.update(chunk)
                        out[m.name] = {"size": m.size, "hash": h.hexdigest()}
        except (OSError, tarfile.TarError) as exc:
            raise ArchiveError(f"cannot read {location}: {exc}") from None
        return out

    def fetch(self, location: str, member: str, dest: Path) -> Path:
        """Copy one member out of the tarball into dest."""
        dest.mkdir(parents=True, exist_ok=True)
        with tarfile.open(location, mode="r:") as tar:
            src = tar.extractfile(member)
            if src is None:
                raise ArchiveError(f"{member} is not in {location}")
            out = dest / member
            with open(out, "wb") as fh:
                shutil.copyfileobj(src, fh, 1 << 20)
        return out


def backend(config: dict):
    a = config["archive"]
    if a["backend"] == "local":
        return LocalBackend(a["location"])
    raise ArchiveError(f"archive backend {a['backend']!r} is not available")


def verify(be, location: str, expected: dict[str, dict]) -> list[str]:
    """Differences between the archived tarball and what the DB recorded."""
    actual = be.read_back(location)
    problems = [f"missing member {m}" for m in sorted(expected.keys() - actual.keys())]
    for m in sorted(expected.keys() & actual.keys()):
        if actual[m]["size"] != expected[m]["bytes"] or actual[m]["hash"] != expected[m]["hash"]:
            problems.append(f"member {m} differs from its recorded checksum")
    return problems


def archive_batch(db: RunsDB, config: dict, batch: str, members: list[str], compressed_markers: list[str],
                  marker_path: str, log) -> dict:
    pattern = config["run_name_pattern"]
    for run in members:
        hosts.check_run_name(run, pattern)
    for m in compressed_markers:
        sync.apply(db, markers.read(m))
    be = backend(config)
    docs, expected, files = {}, {}, []
    for run in members:
        doc = db.get(run)
        c = doc.get("compressed") or {}
        if not c.get("hash"):
            raise ArchiveError(f"run {run}: no compressed checksum in the runs DB; cannot archive batch {batch}")
        docs[run] = db.transition(run, states.RAW, "archiving", expect=("compressed", "archiving"),
                                  fields={"archive.batch": batch, "archive.error": None}, doc=doc)
        expected[f"{run}.tar.zst"] = {"bytes": c["bytes"], "hash": c["hash"]}
        files.append(Path(c["path"]))
    location = be.tarball(batch)
    try:
        # A tarball left by an earlier attempt is trusted only if it verifies.
        if not (Path(location).exists() and not verify(be, location, expected)):
            missing = [str(f) for f in files if not f.exists()]
            if missing:
                raise ArchiveError(f"compressed copies missing: {', '.join(missing[:3])}")
            location = be.store(batch, files, log)
            problems = verify(be, location, expected)
            if problems:
                raise ArchiveError(f"archived tarball {location} does not verify: {'; '.join(problems[:3])}")
    except ArchiveError as exc:
        for run in members:
            db.transition(run, states.RAW, "compressed", note="archive failed",
                          fields={"archive.error": str(exc)}, doc=docs[run])
        raise ArchiveError(f"batch {batch} ({', '.join(members)}): {exc}; runs stay compressed, "
                           "their compressed copies are kept, and the next tick retries") from None
    verified_at = states.now()
    runs = {}
    for run in members:
        member = f"{run}.tar.zst"
        runs[run] = {
            "raw_location": f"{be.name}:{location}#{member}",
            "archive": {"batch": batch, "backend": be.name, "tarball": location, "member": member,
                        "verified": verified_at, "error": None},
        }
    marker = {"batch": batch, "location": location, "backend": be.name, "runs": runs, "verified": verified_at}
    markers.write(marker_path, marker)
    try:
        sync.apply_batch(db, marker, note="archived and verified")
    except Exception as exc:
        log.write(f"runs DB update failed ({exc}); the next tick will repair it from the marker\n")
    if config["archive"]["purge_compressed"]:
        for f in files:
            f.unlink(missing_ok=True)
        log.write(f"batch {batch} verified at {location}; purged {len(files)} compressed copies\n")
    return marker


def restore(db: RunsDB, config: dict, run: str, dest: Path) -> Path:
    """Bring a run back from the archive into dest/<run>, verified."""
    hosts.check_run_name(run, config["run_name_pattern"])
    doc = db.get(run)
    a = doc.get("archive") or {}
    if doc.get("raw_status") != "archived" or not a.get("tarball"):
        raise ArchiveError(f"run {run}: not archived (raw_status {doc.get('raw_status')}); nothing to restore")
    be = backend(config)
    work = dest / f".{run}.restoring"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    member = be.fetch(a["tarball"], a["member"], work)
    proc = subprocess.run(["tar", "-C", str(work), "-I", "zstd", "-xf", str(member)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise ArchiveError(f"run {run}: cannot unpack {member}: {proc.stderr.strip()}")
    member.unlink()
    t = doc.get("transfer") or {}
    actual = hosts.manifest(hosts.Host(), str(work / run), t.get("checksum_algorithm", "sha256"))
    problems = hosts.compare_manifests(t.get("checksums") or [], actual)
    if problems:
        raise ArchiveError(f"run {run}: restored copy does not verify ({problems[0]}); left in {work}")
    final = dest / run
    if final.exists():
        raise ArchiveError(f"run {run}: {final} already exists; choose another --to directory")
    os.replace(work / run, final)
    shutil.rmtree(work)
    return final


__all__ = ["archive_batch", "restore", "backend", "LocalBackend", "ArchiveError", "compress"]
