"""The cluster's scheduler settings, written by the tick for the profiles' submit/status/cancel commands.

The commands run in Snakemake's working directory (the config's ``work_dir``)
and read ``state/scheduler.json`` there, written by the tick's main process.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from .. import hosts, markers
from . import SchedulerError

SETTINGS = Path("state/scheduler.json")


def settings_for(config: dict) -> dict:
    """What the submit/status/cancel commands need of the config (see SETTINGS)."""
    from .. import config as fa_config

    cluster = fa_config.cluster(config)
    runs_db = config["runs_db"]
    # Over ssh, the login node is reached with the cluster's ssh options (and its
    # user and port when it is the cluster's host itself).
    same = cluster["submit_host"] == cluster.get("host")
    ssh = {
        "ssh": list(cluster.get("ssh") or hosts.DEFAULT_SSH),
        "user": cluster.get("user", "") if same else "",
        "port": cluster.get("port") if same else None,
    }
    return {
        "cluster": cluster["name"],
        "scheduler": cluster["scheduler"],
        "submit_host": cluster["submit_host"],
        "submit_ssh": ssh,
        "status_query": cluster["status_query"],
        "env": cluster["scheduler_env"],
        "username": cluster["username"],
        "job_name_prefix": cluster["job_name_prefix"],
        "job_prefix": cluster["job_prefix"],
        "queues": cluster["queues"],
        "work_dir": config["work_dir"],
        "python": sys.executable,
        "cache_seconds": config["processing"]["status_cache_seconds"],
        "job_db_access": config["processing"]["job_db_access"],
        "runs_db": {
            "uri": runs_db["uri"],
            "database": runs_db["database"],
            "collection": runs_db["collection"],
            "timeout_seconds": runs_db["timeout_seconds"],
        },
    }


def write_settings(config: dict) -> None:
    markers.write(Path(config["work_dir"]) / SETTINGS, settings_for(config))


def load_settings(work_dir: Path | str = ".") -> dict:
    path = Path(work_dir) / SETTINGS
    try:
        return markers.read(path)
    except FileNotFoundError:
        raise SchedulerError(f"{path.resolve()} is missing: run these commands from the work dir of a tick") from None


def connect_runs_db(settings: dict):
    """The runs DB, for the submit command (outside any tick: the URI a tick exported wins)."""
    from ..runsdb import RunsDB

    uri = os.environ.get("FULLIAUTOMATIX_RUNS_DB") or settings["runs_db"]["uri"]
    db = settings["runs_db"]
    return RunsDB(uri, db["database"], db["collection"], db["timeout_seconds"])
