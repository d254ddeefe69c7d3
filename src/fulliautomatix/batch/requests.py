"""A run's processing request: what its job needs, written by the tick so the job never asks the runs DB.

On a cluster the tick's main process writes one request per run,
``state/requests/<run>.json`` (source, events, output, walltime, queue); the
job, the submit command and Snakemake's resource functions read it.  On the
local profile the stage builds the same request from the run's document.
"""

from __future__ import annotations

from .. import config as fa_config
from .. import markers
from . import SchedulerError, walltime
from .records import request_path


def on_cluster(config: dict) -> bool:
    return fa_config.cluster(config)["scheduler"] != "local"


def paths(config: dict, run: str, tag: str | None = None) -> dict[str, str]:
    """Where a run's raw data is read and its output written on the cluster's scratch."""
    scratch = fa_config.cluster(config)["scratch"]
    version = config["processing"]["version"]
    return {"raw": f"{scratch}/raw/{run}", "output": f"{scratch}/processed/{run}/{tag or version}"}


def make_request(config: dict, doc: dict, tag: str | None = None) -> dict:
    """The processing request of one run; raises WalltimeTooLong (message names the run)."""
    run = doc["name"]
    p = doc.get("processing") or {}
    same = tag is None or p.get("tag") == tag
    timeouts = int(p.get("timeouts", 0)) if same else 0
    attempts = int(p.get("attempts", 0)) if (same and doc.get("processed_status") != "processed") else 0
    cluster = fa_config.cluster(config)
    req = {
        "run": run,
        "source": doc["source"],
        "events": doc["events"],
        "version": config["processing"]["version"],
        "tag": tag,
        "output": paths(config, run, tag)["output"],
        "attempts": attempts,
        "timeouts": timeouts,
        "previous_outputs": list(doc.get("processed_outputs") or []),
        "raw": f"{cluster['scratch']}/reprocess/{run}/{run}" if tag else paths(config, run)["raw"],
    }
    if cluster["scheduler"] != "local":
        req.update(
            walltime.plan(run, doc["events"], doc["source"], config["processing"]["walltime"], cluster, timeouts)
        )
    else:
        req.update(walltime="", seconds=0, queue="local")
    return req


def write_request(config: dict, req: dict) -> None:
    markers.write(request_path(config["work_dir"], req["run"]), req)


def read_request(work_dir, run: str) -> dict:
    try:
        return markers.read(request_path(work_dir, run))
    except FileNotFoundError:
        raise SchedulerError(
            f"run {run}: no processing request {request_path(work_dir, run)}; the tick that planned it writes one"
        ) from None
