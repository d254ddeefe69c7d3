"""Stage 1: copy a run from the DAQ to the cluster's scratch, verified.

Three machines take part: this one (the *host*) only issues commands; the DAQ
machine runs rsync and pushes the run straight to the cluster, so the data
never passes through the host::

    host --ssh--> DAQ:  cd <raw_dir>/<run> && rsync --partial ./ cluster:<scratch>/raw/.incoming/<run>/
    host --ssh--> DAQ:      checksums of <raw_dir>/<run>            } at the same time,
    host --ssh--> cluster:  checksums of <scratch>/raw/.incoming/<run> } each read where it lies
    host --ssh--> cluster:  mv -T .incoming/<run> raw/<run>        (only after a full match)

Either host may be "local" (the embedded default has both on this machine).

Before a tick transfers anything, :func:`survey_daq` asks the DAQ (one ssh
call) whether it is live (``daq.live_check``) and when each waiting run was
last written to.  A run written to within ``daq.settle_seconds`` is not
transferred; a run whose files changed after that point, up to the moment its
checksums were computed, fails verification.

A mismatch leaves the run off ``ondeck`` (back to ``acquired`` with the error
recorded), deletes only the files of the copy that differ, and the next tick
retries; after ``transfer.max_attempts`` the run is held for a human.

A run directory that is a symbolic link, leaves ``daq.raw_dir``, or holds a
link or any file that is not regular (fifo, socket, device) is refused on the
DAQ by the rsync command itself before anything is read (:data:`.transfer_commands.CONFINED_RSYNC`)
and again by the DAQ's checksum command (``hosts.scan(..., confined_to=)``):
the run is held at once (``transfer.refused``) with one line naming the run,
the path and what to do in ``transfer.error``, until ``fulliautomatix retry``.

The DAQ copy is deleted only by :mod:`fulliautomatix.purge`, only under a
purge policy, and only when a checksum-verified copy exists *and* the DAQ copy
is still exactly the set of files that was verified, none of them modified
since.
"""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor

from . import config as fa_config
from . import dates, hosts, markers, purge, stage, states
from .places import cluster_host, daq_host, locations  # transfer.daq_host(...) elsewhere
from .runsdb import RunsDB
from .transfer_commands import confined_rsync_argv, prepare_argv, rsync_failure


class TransferError(Exception):
    pass


PROGRESS_EVERY = 5.0  # seconds between rsync progress lines in the job log


def algorithms(config: dict) -> list[str]:
    """Checksum algorithms to try, best first (transfer.checksum)."""
    algo = config["transfer"]["checksum"]
    return list(hosts.AUTO_CHECKSUMS) if algo == "auto" else [algo]


# -- one run -------------------------------------------------------------------


class _Progress:
    """rsync --info=progress2 output (\r-separated updates) as a log line every PROGRESS_EVERY s."""

    def __init__(self, log):
        self.log, self.partial, self.last_line, self.last_time, self.written = log, "", "", 0.0, ""

    def __call__(self, text: str) -> None:
        *done, self.partial = re.split(r"[\r\n]", self.partial + text)
        lines = [d.strip() for d in done if d.strip()]
        if not lines:
            return
        self.last_line = lines[-1]
        if time.monotonic() - self.last_time >= PROGRESS_EVERY:
            self.last_time = time.monotonic()
            self.log.write(f"progress: {self.last_line}\n")
            self.log.flush()
            self.written = self.last_line

    def close(self) -> None:
        final = self.partial.strip() or self.last_line
        if final and final != self.written:
            self.log.write(f"progress: {final}\n")


def refusal(config: dict, run: str, exc: hosts.Unsafe) -> str:
    """The one line naming the run, the offending path and what to do."""
    return (
        f"run {run}: {exc}: a run must be a real directory in daq.raw_dir holding only regular files "
        f"and directories; {exc.advice}, then `fulliautomatix retry {run}`"
    )


def _rsync(daq: hosts.Host, config: dict, run: str, log) -> float | None:
    """Run rsync on the DAQ, progress lines to the log; the DAQ's clock at its start."""
    progress = _Progress(log)
    res = daq.run_guarded(confined_rsync_argv(config, run), check=False, log=log, on_stdout=progress)
    progress.close()
    if res.stderr.strip():
        log.write(res.stderr if res.stderr.endswith("\n") else res.stderr + "\n")
    if res.returncode != 0:
        raise TransferError(rsync_failure(config, run, res.returncode, res.stderr))
    return res.started


def _scan_both(daq: hosts.Host, cluster: hosts.Host, config: dict, source: str, copy: str, log):
    """Checksums on both ends at once, each computed where the data lies, with one algorithm.

    The DAQ side is confined to daq.raw_dir (hosts.Unsafe when refused).
    """
    algos, raw_dir = algorithms(config), config["daq"]["raw_dir"]
    with ThreadPoolExecutor(2) as pool:
        fs = pool.submit(hosts.scan, daq, source, algos, log=log, confined_to=raw_dir)
        fc = pool.submit(hosts.scan, cluster, copy, algos, log=log)
        src, dst = fs.result(), fc.result()
    if src.algorithm != dst.algorithm:
        # One side lacks the better tool: recompute the other side with the common one.
        if algos.index(src.algorithm) < algos.index(dst.algorithm):
            src = hosts.scan(daq, source, [dst.algorithm], log=log, confined_to=raw_dir)
        else:
            dst = hosts.scan(cluster, copy, [src.algorithm], log=log)
    return src, dst


def _copy_and_verify(config: dict, run: str, log):
    """rsync the run to staging, checksum both ends, move a full match into place.

    Returns (the DAQ copy's manifest, the DAQ's clock when rsync started, rsync seconds, verify seconds).
    """
    loc = locations(config, run)
    daq, cluster = daq_host(config), cluster_host(config)
    t0 = time.monotonic()
    cluster.run(prepare_argv(config, run), log=log)
    snapshot = _rsync(daq, config, run, log)
    rsync_seconds = hosts.elapsed(t0)
    t1 = time.monotonic()
    source, copy = _scan_both(daq, cluster, config, loc["source"], loc["staging"], log)
    verify_seconds = hosts.elapsed(t1)
    if not source.files:
        raise TransferError(f"source directory {loc['source']} holds no files")
    settle = float(config["daq"]["settle_seconds"])
    if snapshot is not None and source.newest_mtime is not None and source.newest_mtime > snapshot - settle:
        when = (
            "while it was copied"
            if source.newest_mtime > snapshot
            else f"{snapshot - source.newest_mtime:.0f} s before the copy started (settle time {settle:g} s)"
        )
        raise TransferError(f"the DAQ wrote to {loc['source']} {when}: it is still being written")
    problems = hosts.compare_manifests(source.files, copy.files)
    if problems:
        bad = hosts.bad_paths(source.files, copy.files)
        _discard(cluster, loc["staging"], bad, log)
        raise TransferError(
            f"copy does not verify: {'; '.join(problems[:3])}"
            + (f" (and {len(problems) - 3} more)" if len(problems) > 3 else "")
            + (f"; removed {len(bad)} bad files from staging" if bad else "")
        )
    cluster.run(["mv", "-T", "--", loc["staging"], loc["final"]], log=log)
    return source, snapshot, rsync_seconds, verify_seconds


def _failed(db: RunsDB, config: dict, doc: dict, attempts: int, exc: Exception, log) -> TransferError:
    """Record a failed transfer; the error to raise.

    A refused run (hosts.Unsafe) is held for a human: its staging copy is
    deleted and the next ticks leave it alone until `fulliautomatix retry`.
    """
    run = doc["name"]
    fields: dict = {"transfer.error": str(exc)}
    if isinstance(exc, hosts.Unsafe):
        fields = {"transfer.error": refusal(config, run, exc), "transfer.refused": True}
        log.write(f"{fields['transfer.error']}\n")
        staging = locations(config, run)["staging"]
        try:
            hosts.remove_tree(cluster_host(config), staging.rsplit("/", 1)[0], run, links_ok=True, log=log)
        except (hosts.CommandFailed, OSError) as rm_exc:
            log.write(f"could not delete the staging copy {staging}: {rm_exc}\n")
    stage.give_back(db, config, doc, states.RAW, "acquired", fields, "transfer failed")
    if isinstance(exc, hosts.Unsafe):
        return TransferError(fields["transfer.error"])
    hint = stage.retry_hint(run, config["transfer"]["max_attempts"] - attempts)
    return TransferError(f"run {run}: transfer failed: {exc}; {hint}")


def _marker_again(config: dict, doc: dict, log) -> dict:
    """An ondeck run whose marker was lost: re-verify the copy against what the DB recorded."""
    run = doc["name"]
    recorded = doc.get("transfer") or {}
    copy = hosts.scan(
        cluster_host(config),
        recorded.get("destination") or locations(config, run)["final"],
        [recorded.get("checksum_algorithm") or "sha256"],
        log=log,
    )
    problems = hosts.compare_manifests(recorded.get("checksums") or [], copy.files)
    if problems:
        raise TransferError(
            f"run {run}: ondeck copy does not match its recorded checksums ({problems[0]}); "
            f"reset it with `fulliautomatix retry {run}`"
        )
    return markers.run_marker("transfer", run, {"raw_location": doc["raw_location"]}, recorded)


def _transferable(doc: dict) -> None:
    if doc["raw_status"] not in ("acquired", "transferring", "ondeck"):
        raise TransferError(f"run {doc['name']}: raw_status is {doc['raw_status']}, nothing to transfer")


def _copy(config: dict, doc: dict, attempts: int, log) -> dict:
    """The transfer's own work: copy and verify the run; its marker."""
    run, cl = doc["name"], fa_config.cluster(config)
    t0 = time.monotonic()
    source, snapshot, rsync_seconds, verify_seconds = _copy_and_verify(config, run, log)
    seconds = hosts.elapsed(t0)
    nbytes = sum(f["size"] for f in source.files)
    final = locations(config, run)["final"]
    measured = {
        "bytes": nbytes,
        "files": len(source.files),
        "seconds": seconds,
        "rsync_seconds": rsync_seconds,
        "verify_seconds": verify_seconds,
        "mb_per_second": round(nbytes / 1e6 / max(rsync_seconds, 1e-3), 3),
        "checksum_algorithm": source.algorithm,
        "cluster": cl["name"],
        "destination": final,
        "attempts": attempts,
    }
    info = {
        **measured,
        "checksums": source.files,
        "started": doc["transfer"]["started"],
        "finished": states.now(),
        "error": None,
        "daq_copy": "kept",
        "daq_snapshot": snapshot,
    }
    log.write(
        f"verified {len(source.files)} files, {nbytes} bytes ({source.algorithm}) in {final} "
        f"on {cluster_host(config).name}; {seconds:.1f} s\n"
    )
    fields = {"raw_location": f"{cl['name']}/{cl['username']}", "transfer": info}
    return markers.run_marker("transfer", run, fields, measured)


def transfer_run(db: RunsDB, config: dict, run: str, marker_path: str, log) -> dict:
    """Transfer one run; write its marker; return the marker (the skeleton: fulliautomatix.stage)."""
    purge_after = config["transfer"]["purge"] == "purge_after_verify"
    steps = stage.Stage(
        "transfer",
        "transferring",
        ("acquired", "transferring"),
        note="transfer verified",
        work=lambda doc, attempts: _copy(config, doc, attempts, log),
        failed=lambda doc, attempts, exc: _failed(db, config, doc, attempts, exc, log),
        again=lambda doc: _marker_again(config, doc, log),
        failures=(TransferError, hosts.CommandFailed),
        check=_transferable,
        claim_fields=lambda doc, attempts: {
            "transfer.attempts": attempts,
            "transfer.started": states.now(),
            "transfer.refused": None,
        },
        record=(lambda marker, doc: _purge_after_verify(db, config, marker, doc, marker_path, log))
        if purge_after
        else None,
    )
    return stage.run_stage(db, config, run, steps, marker_path, log, attempts_in="transfer")


def _purge_after_verify(db: RunsDB, config: dict, marker: dict, doc: dict, marker_path: str, log) -> None:
    """Record the verified transfer, then purge the DAQ copy (purge_after_verify)."""
    run, info = marker["run"], marker["set"]["transfer"]
    with purge.purging(config):  # the tick's purge step must not take this run meanwhile
        doc = stage.record(db, config, marker, marker_path, doc, "transfer verified", log)
        if doc is None:
            return
        try:
            how = purge.purge_daq_copy(
                config, run, info["checksums"], info["daq_snapshot"], log, algorithm=info["checksum_algorithm"]
            )
            fields = {
                "transfer.daq_copy": how,
                "transfer.daq_purge": {
                    "at": states.now(),
                    "policy": "purge_after_verify",
                    "verified_by": f"copy {info['destination']} "
                    f"on {cluster_host(config).name}, verified {dates.iso(info['finished'])}",
                    "error": None,
                },
            }
        except (purge.PurgeRefused, hosts.CommandFailed) as exc:
            log.write(f"DAQ copy of {run} kept: {exc}; a later tick tries again\n")
            fields = {"transfer.daq_purge": {"at": states.now(), "error": str(exc)}}
        stage.keep(config, db.update(run, fields, doc=doc))


def _discard(cluster: hosts.Host, staging: str, bad: list[str], log) -> None:
    """Delete the files of a copy that did not verify, so the retry copies them afresh."""
    if not bad:
        return
    if len(bad) > 200 or sum(len(p) for p in bad) > 32768:
        cluster.run(["rm", "-rf", "--", staging], log=log)
    else:
        cluster.run(["bash", "-c", 'cd -- "$1" && shift && rm -f -- "$@"', "fa-discard", staging, *bad], log=log)
