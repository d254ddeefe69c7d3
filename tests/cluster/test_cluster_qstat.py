"""status_query: qstat, the setting of PBS sites, against the test bed's real qstat (slurm-wlm-torque).

Its `qstat -u` prints the alternative format (user in the second column, job
name in the fourth). Before the listing was read by column name, a tick
started while a job ran found none of our jobs, called the job "ended without
an exit code" and submitted the run again (issue 13).  status_query qstat now
lists with `qstat -f` (every attribute by name): the wrapper refuses
`-F json` and answers `-f -u` with that table, so the ticks learn to ask
`qstat -f`, and the last tick collects the job from it.
"""

import os
import shlex
import subprocess
import sys

from fa_testlib import simulate
from slurmbed import job_info, jobs_named, steps, wait_for

from fulliautomatix.batch import adapters, qstatquery
from fulliautomatix.batch import settings as batch_settings

SLOW = 'sleep 30; exec "$@"'  # the job runs ~40 s: long enough for a whole tick while it runs


def status(cfg_dir, slurm, job_id: str) -> str:
    r = subprocess.run(
        [sys.executable, "-m", "fulliautomatix.scheduler", "status", job_id],
        cwd=cfg_dir,
        capture_output=True,
        text=True,
        env={**os.environ, "SLURM_CONF": slurm["SLURM_CONF"]},
    )
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def test_a_tick_while_the_job_runs_holds_the_run_then_collects_it(fa, cluster_config, db, slurm, prefix, tmp_path):
    command = (
        f"bash -c {shlex.quote(SLOW)} slow "
        "{python} -m fulliautomatix.processor --config {pax_config} --input {raw} --output {output}"
    )
    cfg = cluster_config(
        clusters={"testbed": {"status_query": "qstat"}}, processing={"tick_wait_seconds": 0, "command": command}
    )
    (run,) = simulate(fa, cfg, 1)
    r = fa(cfg)  # submits, then leaves the job running
    assert r.returncode == 0, r.stderr
    job = db.get(run)["processing"]["job_id"]
    wait_for(lambda: job_info(slurm, job)["state"] == "RUNNING", 60, "the job to start")
    assert status(tmp_path / "work", slurm, job) == "running"

    r = fa(cfg)  # qstat -f lists the job: the run is held, not submitted again
    assert r.returncode == 0, r.stderr
    assert job_info(slurm, job)["state"] == "RUNNING", "the second tick ran while the job did"
    assert f"jobs still queued or running (left alone): {run} ({job})" in r.stderr, r.stderr
    assert "without an exit code" not in r.stderr
    assert [j["id"] for j in jobs_named(slurm, prefix)] == [job], "the run was submitted again"
    assert db.get(run)["processed_status"] in ("queued", "processing")
    # -f -u answered with its table when the status command first asked: since then `qstat -f`
    assert qstatquery.learned(tmp_path / "work") == ("full", True)
    every_listing_finds_the_job(tmp_path / "work", slurm, job, f"{prefix}-{run}")

    wait_for(lambda: job_info(slurm, job)["state"] == "COMPLETED", 90, "the job to end")
    r = fa(cfg)
    assert r.returncode == 0, r.stderr
    doc = db.get(run)
    assert doc["processed_status"] == "processed", doc.get("processing")
    assert doc["processing"]["job_id"] == job and doc["processing"]["attempts"] == 1
    assert steps(doc) == [("none", "queued"), ("queued", "processing"), ("processing", "processed")]
    assert [j["id"] for j in jobs_named(slurm, prefix)] == [job]
    assert status(tmp_path / "work", slurm, job) == "success"


def every_listing_finds_the_job(work_dir, slurm, job: str, name: str) -> None:
    """qstat -f, qstat -u and squeue of the same running job: the same id, state and name."""
    settings = batch_settings.load_settings(work_dir)
    assert settings["env"]["SLURM_CONF"] == slurm["SLURM_CONF"]
    listed = {
        query: adapters.adapter({**settings, "status_query": query}).listing()
        for query in ("qstat", "qstat-u", "squeue")
    }
    full, table, squeue = listed["qstat"][job], listed["qstat-u"][job], listed["squeue"][job]
    assert (full.name, full.state, full.partial, full.owner) == (name, "R", False, settings["username"])
    assert full.walltime and full.queue == job_info(slurm, job)["partition"]
    assert (table.name, table.state) == (name, "R") and squeue.state == "RUNNING"
    assert all(j.name.startswith(settings["job_name_prefix"] + "-") for j in listed["qstat"].values())
