"""A real Slurm scheduler for the cluster tests (testbed/slurm), with Torque's qsub/qstat/qdel.

One private test bed for the session, in its own directory and on its own
ports, so a test bed someone started by hand (make testbed-up) is left alone.
Each test names its jobs with its own prefix and cancels what it left behind.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest

from fa_testlib import ROOT, skip_or_fail
from slurmbed import TESTBED_DIR, jobs_named, slurm_cmd

PORTS = {"TESTBED_SLURMCTLD_PORT": "16857", "TESTBED_SLURMD_PORT": "16858"}


@pytest.fixture(scope="session")
def slurm():
    """{SLURM_CONF, dir}: a running single-node Slurm (partitions standby 4 h, physics 2 d)."""
    if os.geteuid() != 0:
        skip_or_fail("the Slurm test bed needs root (it runs slurmd and installs packages)")
    env = {**os.environ, "TESTBED_DIR": str(TESTBED_DIR), **PORTS}
    try:
        r = subprocess.run(
            ["bash", str(ROOT / "testbed" / "slurm" / "up.sh")], env=env, capture_output=True, text=True, timeout=600
        )
    except subprocess.TimeoutExpired:
        skip_or_fail("testbed/slurm/up.sh did not finish within 10 minutes")
    if r.returncode != 0:
        skip_or_fail(f"the Slurm test bed did not start: {(r.stderr or r.stdout).strip()[-500:]}")
    conf = str(TESTBED_DIR / "slurm" / "slurm.conf")
    yield {"SLURM_CONF": conf, "dir": TESTBED_DIR}
    subprocess.run(["bash", str(ROOT / "testbed" / "slurm" / "down.sh")], env=env, capture_output=True, timeout=120)


@pytest.fixture
def prefix():
    """This test's job-name prefix (config key clusters.<name>.job_name_prefix)."""
    return "t" + uuid.uuid4().hex[:3]


@pytest.fixture
def cluster_config(make_config, slurm, prefix, tmp_path):
    """make_config for the test bed cluster; the test's jobs are cancelled afterwards."""

    def make(**overrides) -> Path:
        base = {
            "cluster": "testbed",
            "clusters": {
                "testbed": {
                    "scratch": str(tmp_path / "cluster"),
                    "profile": "profiles/testbed",
                    "scheduler": "pbs",
                    "submit_host": "local",
                    "status_query": "squeue",
                    "job_name_prefix": prefix,
                    "scheduler_env": {"SLURM_CONF": slurm["SLURM_CONF"]},
                }
            },
            "processing": {"tick_wait_seconds": 60},
        }
        from fulliautomatix import config as fa_config

        fa_config.deep_update(base, overrides)
        return make_config(**base)

    yield make
    ids = [j["id"] for j in jobs_named(slurm, prefix) if j["state"] in ("PENDING", "RUNNING")]
    if ids:
        slurm_cmd(slurm, "scancel", *ids, check=False)
