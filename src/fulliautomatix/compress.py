"""Stage 3: compress a processed run's raw data, verify it, then drop the plain copy.

Everything happens on the cluster's host (``clusters.<name>.host``, reached
over ssh; "local" for the embedded default), where scratch is, so the data
never crosses the network::

    cluster: tar -C <scratch>/raw -cf - -- <run> | zstd, written to <scratch>/compressed/.<run>.tar.zst.partial
             and verified (tarsums.write_verified)
    cluster: sync, mv .partial -> <run>.tar.zst, rm -rf <scratch>/raw/<run>   (only after a full match,
             and only a real directory there holding only files: hosts.remove_tree)

What is checked, and when (``compression.verify``):

* ``stream``: every member of the tar stream is checksummed, with
  the algorithm the transfer used, on its way into zstd (so the bytes zstd
  compresses are the bytes checked); zstd stores its frame checksum (XXH64
  of those bytes, checked by every later decompression); the compressed
  bytes are hashed (sha256, recorded as ``compressed.hash``, their count as
  ``compressed.bytes``) as they are written to the file.
* ``decompress`` (default): tar | zstd writes the file itself; then one read
  of the file hashes it (sha256) and feeds ``zstd -dc`` (checking the frame
  checksum) into the tar parser, while the file is fsynced: the file is
  proven to decompress to the members, for about 15-20% more CPU.

In both, the parser checks every tar header and the end of the archive, the
file is fsynced and its size compared with the bytes written, and then every
member is compared here with the checksums recorded at transfer: none
missing, none extra, every size and checksum equal.  Only a full match, and a
zero exit of every command, moves the file into place and removes the
uncompressed copy ``<scratch>/raw/<run>``.  A compressed copy found already
in place (its raw copy removed by an earlier attempt) is read back in one
read of the file: sha256, ``zstd -dc`` and the parser.

When members do not match, the plain copy on scratch is checked against the
transfer's checksums: a copy that went bad (the plain one, or a compressed
one left by an earlier attempt) is recovered by :func:`recovery.recover` --
transferred again from a verified DAQ copy, or the run is LOST.  Other
failures are retried up to ``compression.max_attempts`` times.
"""

from __future__ import annotations

import time
from pathlib import Path

from . import config as fa_config
from . import hosts, markers, stage, states, tarsums
from .runsdb import RunsDB


class CompressionError(Exception):
    pass


def cluster_host(config: dict) -> hosts.Host:
    return hosts.Host.from_config(fa_config.cluster(config), hosts.control_dir(config))


def paths(config: dict, run: str) -> dict[str, Path]:
    """Where the run's copies are, as the cluster's host names them."""
    scratch = Path(fa_config.cluster(config)["scratch"])
    return {"raw": scratch / "raw" / run, "archive": scratch / "compressed" / f"{run}.tar.zst"}


def command(config: dict, run: str, out: Path | str = "-") -> list[str]:
    """tar piped through zstd, writing `out` ("-": its stdout; run on the cluster's host)."""
    c = config["compression"]
    raw = paths(config, run)["raw"]
    return ["tar", "-C", str(raw.parent), "-I", f"zstd -T{c['threads']} -{c['level']}", "-cf", str(out), "--", run]


def stream_commands(config: dict, run: str) -> tuple[list[str], list[str]]:
    """(tar writing the plain tar stream to stdout, zstd compressing it with its frame checksum)."""
    c = config["compression"]
    raw = paths(config, run)["raw"]
    return (
        ["tar", "-C", str(raw.parent), "-cf", "-", "--", run],
        ["zstd", f"-T{c['threads']}", f"-{c['level']}", "--check", "-q", "-c"],
    )


# Prints "raw" if the plain copy $1 is a directory, "archive" if $2 is a file.
PROBE = '[ -d "$1" ] && echo raw; [ -f "$2" ] && echo archive; exit 0'


def _manifest(sums: tarsums.TarSums, run: str) -> list[dict]:
    files = []
    for name, (size, digest) in sums.members.items():
        rel = name[len(run) + 1 :] if name.startswith(run + "/") else name
        files.append({"path": rel, "size": size, "hash": digest})
    return sorted(files, key=lambda f: f["path"])


def _sha256(host: hosts.Host, path: str, log) -> str | None:
    proc = host.run(["sha256sum", "--", path], check=False, log=log)
    return proc.stdout.split()[0] if proc.returncode == 0 and proc.stdout.split() else None


def _remove_raw(cluster: hosts.Host, raw: Path, log) -> None:
    """Verified: the uncompressed copy on scratch may go (the compressed copy holds it, verified).

    Only if <scratch>/raw/<run> is a real directory inside <scratch>/raw
    holding only regular files and directories, and never through a link
    (hosts.remove_tree); otherwise it is kept and the log says why.
    """
    try:
        if hosts.remove_tree(cluster, str(raw.parent), raw.name, log=log):
            log.write(f"removed {cluster.path(str(raw))}\n")
    except hosts.Unsafe as exc:
        log.write(f"kept {cluster.path(str(raw))}: {exc}; {exc.advice}, then delete it by hand\n")
    except hosts.CommandFailed as exc:
        log.write(f"could not remove {cluster.path(str(raw))}: {exc}\n")


def _compress_verified(config: dict, cluster: hosts.Host, doc: dict, log) -> dict:
    """The compression's own work: the compressed copy, verified, in place, the plain copy gone; its marker."""
    run, p = doc["name"], paths(config, doc["name"])
    recorded, algo = _recorded(config, doc)
    t0 = time.monotonic()
    tmp = str(p["archive"].with_name(f".{p['archive'].name}.partial"))
    try:
        tmp, sums = _compress(config, cluster, run, p, tmp, recorded, algo, log)
        final = str(p["archive"])
        info = {
            "path": final,
            "host": None if cluster.is_local else cluster.dest,
            "cluster": fa_config.cluster(config)["name"],
            "bytes": sums.bytes,
            "hash": sums.sha256,
            "algorithm": "sha256",
            "members_verified": len(recorded),
            "at": states.now(),
            "seconds": round(time.monotonic() - t0, 3),
            "error": None,
        }
        if tmp != final:
            cluster.run(["bash", "-c", 'sync -- "$1" && mv -f -T -- "$1" "$2"', "fa-promote", tmp, final], log=log)
    except FAILURES:
        if tmp != str(p["archive"]):
            cluster.run(["rm", "-f", "--", tmp], check=False)
        raise
    _remove_raw(cluster, p["raw"], log)
    log.write(f"verified {len(recorded)} files in {cluster.path(final)}\n")
    return markers.run_marker("compress", run, {"compressed": info}, info)


def _recorded(config: dict, doc: dict) -> tuple[list[dict], str]:
    """(the checksums its transfer recorded, their algorithm); CompressionError when there are none."""
    t = doc.get("transfer") or {}
    if not t.get("checksums"):
        raise CompressionError(
            f"run {doc['name']}: no transfer checksums in the runs DB to verify against; "
            f"re-transfer it with `fulliautomatix retry {doc['name']}`"
        )
    return t["checksums"], t.get("checksum_algorithm") or config["transfer"]["checksum"]


def compress_run(db: RunsDB, config: dict, run: str, processed_marker: str, marker_path: str, log) -> dict:
    """Compress one run; write its marker; return the marker (the skeleton: fulliautomatix.stage)."""
    cluster = cluster_host(config)
    steps = stage.Stage(
        "compress",
        "compressing",
        ("ondeck", "compressing"),
        note="compressed and verified",
        work=lambda doc, attempts: _compress_verified(config, cluster, doc, log),
        failed=lambda doc, attempts, exc: _failed(db, config, cluster, doc, exc, attempts, log),
        again=lambda doc: _marker_again(db, config, cluster, doc, str(paths(config, run)["archive"]), log),
        failures=FAILURES,
        check=lambda doc: _recorded(config, doc),
        claim_fields=lambda doc, attempts: {"compressed.attempts": attempts},
    )
    return stage.run_stage(
        db, config, run, steps, marker_path, log, input_marker=processed_marker, attempts_in="compressed"
    )


class CopyWentBad(CompressionError):
    """The copy compression reads no longer verifies: the plain copy on scratch (`plain`), or the compressed one."""

    def __init__(self, message: str, plain: bool):
        super().__init__(message)
        self.plain = plain


FAILURES = (hosts.CommandFailed, tarsums.ReadBackError, OSError, CompressionError)


def _compress(
    config: dict, cluster: hosts.Host, run: str, p: dict, tmp: str, recorded: list[dict], algo: str, log
) -> tuple[str, tarsums.TarSums]:
    """Make the compressed copy, verified as it is written (unless an earlier attempt made it: then it is
    read back); (its path, its sums).

    Raises CopyWentBad when the copy it reads does not verify, CompressionError otherwise.
    """
    raw, final = str(p["raw"]), str(p["archive"])
    found = cluster.run(["bash", "-c", PROBE, "fa-probe", raw, final], log=log).stdout.split()
    if "raw" not in found:
        if "archive" not in found:
            raise CopyWentBad(
                f"its copy on scratch {cluster.path(raw)} is gone and no compressed copy exists", plain=True
            )
        tmp = final  # raw already removed after an earlier verified compression
    else:
        hosts.make_dirs(cluster, [str(p["archive"].parent)], config["transfer"], log=log)
    sums = _write_or_read(config, cluster, run, tmp, algo, log)
    problems = hosts.compare_manifests(recorded, _manifest(sums, run))
    if not problems:
        return tmp, sums
    detail = "; ".join(problems[:3])
    if tmp == final:
        raise CopyWentBad(f"its compressed copy {cluster.path(final)} does not verify ({detail})", plain=False)
    plain = hosts.compare_manifests(recorded, hosts.scan(cluster, raw, [algo], log=log).files)
    if plain:  # the plain copy itself changed since its transfer verified
        raise CopyWentBad(
            f"its copy on scratch {cluster.path(raw)} no longer matches the checksums of its "
            f"transfer ({'; '.join(plain[:3])})",
            plain=True,
        )
    raise CompressionError(f"compressed archive does not verify: {detail}")


def _write_or_read(config: dict, cluster: hosts.Host, run: str, tmp: str, algo: str, log) -> tarsums.TarSums:
    """The sums of `tmp`: written now and verified in the same pass (``compression.verify``), or, when it
    is the compressed copy an earlier attempt left, read back in one read of the file."""
    if tmp == str(paths(config, run)["archive"]):
        return tarsums.read_back(cluster, tmp, algo, compressed=True, log=log)
    try:
        if config["compression"].get("verify", "stream") == "stream":
            tar, zstd = stream_commands(config, run)
            return tarsums.write_verified(cluster, tar, tmp, algo, log=log, compressor=zstd)
        return tarsums.write_verified(cluster, command(config, run), tmp, algo, log=log)
    except tarsums.ReadBackError as exc:  # tar, zstd or the writer failed: the file is no copy at all
        raise CompressionError(str(exc)) from None


def _failed(
    db: RunsDB, config: dict, cluster: hosts.Host, doc: dict, exc: Exception, attempts: int, log
) -> CompressionError:
    """Record a failed compression; the error to raise, whose line says which copies exist and what comes next.

    A copy that went bad is recovered (recovery.recover): transferred again
    from an intact DAQ copy, or the run is marked lost; never an endless retry.
    """
    from . import recovery  # only a failure needs it (and the transfer stage it imports): a job imports less

    run = doc["name"]
    fields = {"compressed.error": str(exc), "compressed.attempts": attempts}
    if isinstance(exc, CopyWentBad):
        line = recovery.recover(db, config, doc, str(exc), log, reprocess=exc.plain)
        if line is not None and "LOST" not in line:
            return CompressionError(line)
        if line is not None:
            db.transition(run, states.RAW, "ondeck", note="compression failed: no verified copy left", fields=fields)
            return CompressionError(line)
    stage.give_back(db, config, doc, states.RAW, "ondeck", fields, "compression failed")
    scratch = "its copy on scratch is kept" if not isinstance(exc, CopyWentBad) else "what is left on scratch is kept"
    hint = stage.retry_hint(run, config["compression"]["max_attempts"] - attempts)
    return CompressionError(f"run {run}: {exc}; {recovery.copies(config, doc, scratch)}; {hint}")


def _marker_again(db: RunsDB, config: dict, cluster: hosts.Host, doc: dict, final: str, log) -> dict:
    """A compressed run whose marker was lost: its compressed copy must still match the runs DB."""
    from . import recovery

    run = doc["name"]
    prev = doc.get("compressed") or {}
    if prev.get("hash") and _sha256(cluster, prev.get("path") or final, log) == prev["hash"]:
        return markers.run_marker("compress", run, {"compressed": prev}, prev)
    why = f"its compressed copy {cluster.path(prev.get('path') or final)} is gone or differs from the runs DB"
    line = recovery.recover(db, config, doc, why, log, reprocess=False)
    raise CompressionError(line or f"run {run}: {why}; the next tick checks again")
