"""The test bed through Snakemake's own door, without the wrapper.

`snakemake --profile profiles/testbed --configfile config/testbed.yaml`,
repeated as cron would run it: the DAQ is fa-daq, the cluster's scratch is
on fa-cluster, processing jobs go through qsub on fa-cluster to the test
bed's Slurm (testbed/slurm, as `make testbed-up` starts it), and the runs end
`archived`.  Only this test's corners of the hosts, its work dir and its
runs DB are laid over config/testbed.yaml.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
import yaml

from fa_testlib import ROOT, skip_or_fail
from fulliautomatix import config as fa_config


@pytest.fixture(scope="module")
def testbed_slurm(ssh_testbed):
    """The test bed's Slurm at the place config/testbed.yaml names (idempotent start)."""
    if os.geteuid() != 0:
        skip_or_fail("the Slurm test bed needs root")
    try:
        r = subprocess.run(
            ["bash", str(ROOT / "testbed" / "slurm" / "up.sh")],
            capture_output=True,
            text=True,
            timeout=900,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        skip_or_fail("testbed/slurm/up.sh did not finish within 15 minutes")
    if r.returncode != 0:
        skip_or_fail(f"the Slurm test bed did not start: {(r.stderr or r.stdout).strip()[-500:]}")
    return True


def test_snakemake_with_the_testbed_profile_takes_runs_to_archived(bed, testbed_slurm, tmp_path, nx_server, db_name):
    site = {
        "work_dir": str(tmp_path / "work"),
        "log_dir": str(tmp_path / "logs"),
        "runs_db": {"uri": nx_server, "database": db_name, "collection": db_name},
        "daq": {"raw_dir": bed.daq_dir, "settle_seconds": 0},
        "clusters": {"testbed": {"scratch": bed.scratch, "job_name_prefix": bed.tid[:4]}},
        "archive": {"location": str(tmp_path / "archive")},
    }
    site_file = tmp_path / "site.yaml"
    site_file.write_text(yaml.safe_dump(site))
    merged = fa_config.deep_update(fa_config.read(ROOT / "config" / "testbed.yaml"), site)
    merged_file = tmp_path / "merged.yaml"
    merged_file.write_text(yaml.safe_dump(merged))
    r = bed.fa(merged_file, "simulate-daq", "--runs", "2", "--events", "300")
    assert r.returncode == 0, r.stderr
    names = r.stderr.strip().rsplit(": ", 1)[1].split(", ")

    env = {k: v for k, v in os.environ.items() if not k.startswith("FULLIAUTOMATIX_")}
    argv = [
        sys.executable,
        "-m",
        "snakemake",
        "--profile",
        "profiles/testbed",
        "--configfile",
        "config/testbed.yaml",
        str(site_file),
    ]
    for _ in range(6):  # cron: one tick after another
        tick = subprocess.run(
            argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL
        )
        assert tick.returncode == 0, tick.stderr[-4000:]
        if all(bed.db.get(n)["raw_status"] == "archived" for n in names):
            break
        time.sleep(2)
    for name in names:
        doc = bed.db.get(name)
        assert (doc["raw_status"], doc["processed_status"]) == ("archived", "processed"), doc
        p = doc["processing"]
        assert p["queue"] == "standby" and p["job_id"], p  # through qsub, on the test bed's Slurm
        assert doc["archive"]["batch"] == f"{names[0]}_to_{names[1]}"
    assert (tmp_path / "archive" / f"{names[0]}_to_{names[1]}.tar").exists()
