"""Stage 3: compress a processed run's raw data, verify it, then drop the plain copy.

``tar | zstd`` writes ``<scratch>/compressed/<run>.tar.zst``.  The archive is
then read back (decompressed as a stream) and every member's size and checksum
compared with the checksums recorded at transfer.  Only a full match removes
the uncompressed copy ``<scratch>/raw/<run>``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import time
from pathlib import Path

from . import config as fa_config
from . import hosts, markers, states, sync
from .checksums import file_hash, hasher
from .runsdb import RunsDB


class CompressionError(Exception):
    pass


def paths(config: dict, run: str) -> dict[str, Path]:
    scratch = Path(fa_config.cluster(config)["scratch"])
    return {"raw": scratch / "raw" / run, "archive": scratch / "compressed" / f"{run}.tar.zst"}


def command(config: dict, run: str, out: Path) -> list[str]:
    """tar piped through zstd, writing `out`."""
    c = config["compression"]
    raw = paths(config, run)["raw"]
    return ["tar", "-C", str(raw.parent), "-I", f"zstd -T{c['threads']} -{c['level']}", "-cf", str(out), "--", run]


def tar_manifest(archive: Path, run: str, algorithm: str) -> list[dict]:
    """Size and checksum of every file in a .tar.zst, read as one stream."""
    proc = subprocess.Popen(["zstd", "-dc", "--", str(archive)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    files = []
    try:
        with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                h = hasher(algorithm)
                fh = tar.extractfile(member)
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
                rel = member.name[len(run) + 1:] if member.name.startswith(run + "/") else member.name
                files.append({"path": rel, "size": member.size, "hash": h.hexdigest()})
    except tarfile.TarError as exc:
        raise CompressionError(f"{archive} is not a readable archive: {exc}") from None
    finally:
        proc.stdout.close()
        err = proc.stderr.read().decode(errors="replace")
        proc.stderr.close()
        if proc.wait() != 0:
            raise CompressionError(f"zstd could not read {archive}: {err.strip()}")
    return sorted(files, key=lambda f: f["path"])


def compress_run(db: RunsDB, config: dict, run: str, processed_marker: str, marker_path: str, log) -> dict:
    hosts.check_run_name(run, config["run_name_pattern"])
    doc = db.get(run)
    sync.apply(db, markers.read(processed_marker), doc=doc)
    doc = db.get(run)
    p = paths(config, run)
    recorded = (doc.get("transfer") or {}).get("checksums") or []
    algo = (doc.get("transfer") or {}).get("checksum_algorithm") or config["transfer"]["checksum"]
    if not recorded:
        raise CompressionError(f"run {run}: no transfer checksums in the runs DB to verify against; "
                               f"re-transfer it with `fulliautomatix retry {run}`")
    if doc["raw_status"] == "compressed":
        prev = doc.get("compressed") or {}
        if p["archive"].exists() and file_hash(p["archive"]) == prev.get("hash"):
            marker = markers.run_marker("compress", run, {"compressed": prev}, prev)
            markers.write(marker_path, marker)
            return marker
        raise CompressionError(f"run {run}: compressed copy {p['archive']} is missing or differs from the runs DB")
    doc = db.transition(run, states.RAW, "compressing", expect=("ondeck", "compressing"), doc=doc)
    t0 = time.monotonic()
    p["archive"].parent.mkdir(parents=True, exist_ok=True)
    tmp = p["archive"].with_name(f".{p['archive'].name}.partial")
    try:
        if not p["raw"].is_dir():
            if p["archive"].exists():  # raw already removed after an earlier verified compression
                tmp = p["archive"]
            else:
                raise CompressionError(f"raw copy {p['raw']} is missing and no compressed copy exists")
        else:
            argv = command(config, run, tmp)
            log.write("$ " + " ".join(argv) + "\n")
            proc = subprocess.run(argv, capture_output=True, text=True)
            if proc.returncode != 0:
                raise CompressionError(f"tar/zstd exited with {proc.returncode}: {proc.stderr.strip()}")
        problems = hosts.compare_manifests(recorded, tar_manifest(tmp, run, algo))
        if problems:
            raise CompressionError(f"compressed archive does not verify: {'; '.join(problems[:3])}")
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        if tmp != p["archive"]:
            os.replace(tmp, p["archive"])
    except CompressionError as exc:
        if tmp != p["archive"]:
            tmp.unlink(missing_ok=True)
        db.transition(run, states.RAW, "ondeck", doc=doc, note="compression failed",
                      fields={"compressed.error": str(exc)})
        raise CompressionError(f"run {run}: {exc}; the raw copy is untouched and the next tick retries") from None
    info = {"path": str(p["archive"]), "bytes": p["archive"].stat().st_size, "hash": file_hash(p["archive"]),
            "algorithm": "sha256", "members_verified": len(recorded), "at": states.now(),
            "seconds": round(time.monotonic() - t0, 3), "error": None}
    marker = markers.run_marker("compress", run, {"compressed": info}, info)
    markers.write(marker_path, marker)
    # Verified: the uncompressed copy on scratch may go (the DAQ copy is untouched).
    shutil.rmtree(p["raw"], ignore_errors=True)
    log.write(f"verified {len(recorded)} files in {p['archive']}; removed {p['raw']}\n")
    try:
        sync.apply(db, marker, doc=doc, note="compressed and verified")
    except Exception as exc:
        log.write(f"runs DB update failed ({exc}); the next tick will repair it from the marker\n")
    return marker
