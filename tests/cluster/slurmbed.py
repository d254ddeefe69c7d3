"""Helpers of the cluster tests: the Slurm test bed's commands, its jobs, waiting."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import psutil

TESTBED_DIR = Path(os.environ.get("FULLIAUTOMATIX_CLUSTER_TESTBED", "/tmp/fulliautomatix-cluster-tests"))


def slurm_cmd(slurm, *argv, check=True) -> str:
    r = subprocess.run(
        list(argv), capture_output=True, text=True, timeout=60, env={**os.environ, "SLURM_CONF": slurm["SLURM_CONF"]}
    )
    if check:
        assert r.returncode == 0, r.stderr
    return r.stdout


def jobs_named(slurm, prefix: str) -> list[dict]:
    """This test's jobs the scheduler remembers: [{id, name, state, partition, limit}]."""
    out = slurm_cmd(slurm, "squeue", "-h", "-t", "all", "-o", "%i|%j|%T|%P|%l")
    rows = [dict(zip(("id", "name", "state", "partition", "limit"), line.split("|"))) for line in out.splitlines()]
    return [r for r in rows if r["name"].startswith(prefix + "-")]


def job_info(slurm, job_id: str) -> dict:
    out = slurm_cmd(slurm, "squeue", "-h", "-t", "all", "-j", str(job_id), "-o", "%T|%P|%l")
    state, partition, limit = out.strip().split("|")
    return {"state": state, "partition": partition, "limit": limit}


def wait_for(predicate, timeout: float, what: str, step: float = 1.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def steps(doc, field="processed_status"):
    return [(h["from"], h["to"]) for h in doc["history"] if h["field"] == field]


def descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
