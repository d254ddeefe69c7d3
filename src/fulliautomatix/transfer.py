"""Stage 1: copy a run from the DAQ to the cluster's scratch, verified.

rsync copies the run into ``<scratch>/raw/.incoming/<run>/`` (``--partial``,
so an interrupted copy resumes), then every file's size and checksum is
computed on both ends and compared.  Only a full match renames the copy into
``<scratch>/raw/<run>/`` and makes the run ``ondeck``.  The DAQ copy is never
touched here unless the purge policy asks for it, and then only after the
verified copy exists.
"""

from __future__ import annotations

import time

from . import config as fa_config
from . import hosts, markers, states, sync
from .runsdb import RunsDB


class TransferError(Exception):
    pass


def daq_host(config: dict) -> hosts.Host:
    return hosts.Host(config["daq"]["host"])


def cluster_host(config: dict) -> hosts.Host:
    return hosts.Host(fa_config.cluster(config)["host"])


def locations(config: dict, run: str) -> dict[str, str]:
    scratch = fa_config.cluster(config)["scratch"]
    return {
        "source": f"{config['daq']['raw_dir']}/{run}",
        "staging": f"{scratch}/raw/.incoming/{run}",
        "final": f"{scratch}/raw/{run}",
    }


def rsync_argv(config: dict, run: str) -> list[str]:
    """The rsync command, run on the DAQ host, pushing the run to the cluster."""
    loc = locations(config, run)
    dest = cluster_host(config).path(loc["staging"] + "/")
    return [*config["transfer"]["rsync"], loc["source"] + "/", dest]


def daq_is_live(config: dict) -> bool:
    """Run the configured live check on the DAQ host (exit 0 = live)."""
    check = config["daq"]["live_check"]
    if not check:
        return False
    return daq_host(config).run(list(check), check=False, timeout=60).returncode == 0


def transfer_run(db: RunsDB, config: dict, run: str, marker_path: str, log) -> dict:
    """Transfer one run; write its marker; return the marker."""
    pattern = config["run_name_pattern"]
    hosts.check_run_name(run, pattern)
    doc = db.get(run)
    algo = config["transfer"]["checksum"]
    cl = fa_config.cluster(config)
    loc = locations(config, run)
    daq, cluster = daq_host(config), cluster_host(config)

    if doc["raw_status"] not in ("acquired", "transferring", "ondeck"):
        raise TransferError(f"run {run}: raw_status is {doc['raw_status']}, nothing to transfer")
    if doc["raw_status"] == "ondeck":
        # The marker was lost: re-verify the copy against what the DB recorded.
        recorded = (doc.get("transfer") or {}).get("checksums") or []
        problems = hosts.compare_manifests(recorded, hosts.manifest(cluster, loc["final"], algo))
        if problems:
            raise TransferError(f"run {run}: ondeck copy does not match its recorded checksums ({problems[0]}); "
                                f"reset it with `fulliautomatix retry {run}`")
        marker = markers.run_marker("transfer", run, {"raw_location": doc["raw_location"]}, doc.get("transfer") or {})
        markers.write(marker_path, marker)
        return marker

    attempts = int((doc.get("transfer") or {}).get("attempts", 0)) + 1
    doc = db.transition(run, states.RAW, "transferring", expect=("acquired", "transferring"),
                        fields={"transfer.attempts": attempts, "transfer.started": states.now()}, doc=doc)
    t0 = time.monotonic()
    try:
        # A copy renamed into place by a tick that died before its DB write goes back to
        # staging, so the same verification decides about it.
        cluster.run(["bash", "-c", 'mkdir -p "$1" && { [ ! -d "$2" ] || [ -d "$3" ] || mv "$2" "$3"; }',
                     "mkdirs", f"{loc['final'].rsplit('/', 1)[0]}/.incoming", loc["final"], loc["staging"]], log=log)
        proc = daq.run(rsync_argv(config, run), check=False, log=log)
        log.write(proc.stdout + proc.stderr)
        if proc.returncode != 0:
            raise TransferError(f"rsync exited with {proc.returncode}: {(proc.stderr.strip().splitlines() or [''])[-1]}")
        source = hosts.manifest(daq, loc["source"], algo)
        if not source:
            raise TransferError(f"source directory {loc['source']} holds no files")
        copy = hosts.manifest(cluster, loc["staging"], algo)
        problems = hosts.compare_manifests(source, copy)
        if problems:
            raise TransferError(f"copy does not verify: {'; '.join(problems[:3])}")
        cluster.run(["mv", "-T", loc["staging"], loc["final"]], log=log)
    except (TransferError, hosts.CommandFailed) as exc:
        db.transition(run, states.RAW, "acquired", fields={"transfer.error": str(exc)}, note="transfer failed", doc=doc)
        left = config["transfer"]["max_attempts"] - attempts
        hint = f"the next tick retries ({left} attempts left)" if left > 0 else f"no attempts left: fix it, then `fulliautomatix retry {run}`"
        raise TransferError(f"run {run}: transfer failed: {exc}; {hint}") from None

    seconds = round(time.monotonic() - t0, 3)
    measured = {
        "bytes": sum(f["size"] for f in source),
        "files": len(source),
        "seconds": seconds,
        "checksum_algorithm": algo,
        "destination": loc["final"],
        "attempts": attempts,
    }
    fields = {"raw_location": f"{cl['name']}/{cl['username']}",
              "transfer": {**measured, "checksums": source, "finished": states.now(), "error": None}}
    marker = markers.run_marker("transfer", run, fields, measured)
    markers.write(marker_path, marker)
    try:
        sync.apply(db, marker, doc=doc, note="transfer verified")
    except Exception as exc:  # the marker stands; the next tick's sync replays it
        log.write(f"runs DB update failed ({exc}); the next tick will repair it from the marker\n")
    purge_daq_copy(config, run, doc=None, log=log)
    return marker


def purge_daq_copy(config: dict, run: str, doc: dict | None, log) -> bool:
    """Delete the DAQ copy if the purge policy says so (verified copy exists)."""
    policy = config["transfer"]["purge"]
    if policy == "keep":
        return False
    if policy == "purge_after_days":
        return False  # purged by age at a later tick (three-machine issue)
    daq_host(config).run(["rm", "-rf", "--", locations(config, run)["source"]], log=log)
    log.write(f"purged DAQ copy of {run} (policy {policy}; verified copy on the cluster)\n")
    return True

