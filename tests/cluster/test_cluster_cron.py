"""Cron and long jobs against the real scheduler: ticks that do not wait, kill -9, walltime kills, bounds.

Processing jobs run for hours and cron fires every few minutes.  Here a
walltime is one minute (the smallest a scheduler grants) and one run's first
attempt sleeps far longer, so it stands for a long job and then is killed at
its walltime.
"""

import shlex
import signal
import subprocess
import threading
import time

import psutil

from fa_testlib import FA, simulate
from slurmbed import descendants, job_info, jobs_named, steps, wait_for

from fulliautomatix.batch import records

SLOW_FIRST_ATTEMPT = (
    'if [ "$1" = "$SLOW_RUN" ] && [ ! -e "$2.tried" ]; then mkdir -p "$(dirname "$2")"; '
    'touch "$2.tried"; sleep 600; fi; shift 2; exec "$@"'
)


def slow_config(cluster_config, slow_run: str, **extra):
    command = (
        f"env SLOW_RUN={slow_run} bash -c {shlex.quote(SLOW_FIRST_ATTEMPT)} slow {{run}} {{output}} "
        "{python} -m fulliautomatix.processor --config {pax_config} --input {raw} --output {output}"
    )
    return cluster_config(
        processing={
            "command": command,
            "tick_wait_seconds": 5,
            "walltime": {"floor_minutes": 1, "events_per_hour": {"default": 1e9}},
        },
        clusters={
            "testbed": {
                "queues": [
                    {"name": "standby", "max_walltime": "00:01:00"},
                    {"name": "physics", "max_walltime": "00:10:00"},
                ]
            }
        },
        **extra,
    )


def timed(fa, cfg):
    t0 = time.monotonic()
    r = fa(cfg)
    return r, time.monotonic() - t0


def active(slurm, prefix, run):
    return [
        j for j in jobs_named(slurm, prefix) if j["name"] == f"{prefix}-{run}" and j["state"] in ("PENDING", "RUNNING")
    ]


def kill_tick_after_submission(cfg, work, run: str, slurm) -> str:
    """Start a tick, kill -9 every host-side process of it once it submitted `run`'s job; that job's id,
    once the job has finished."""
    tick = subprocess.Popen(
        [FA, "--config", str(cfg)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL
    )
    wait_for(lambda: (records.read_record(work, run) or {}).get("job_id"), 60, "the run's submission", step=0.1)
    victims = [psutil.Process(tick.pid)] + descendants(tick.pid)
    for p in victims:
        try:
            p.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
    tick.wait()
    job = records.read_record(work, run)["job_id"]
    wait_for(lambda: job_info(slurm, job)["state"] == "COMPLETED", 60, "the run's job to finish")
    return job


def test_long_jobs_do_not_hold_up_ticks_survive_kill_9_and_walltime_kills(
    fa, cluster_config, db, slurm, prefix, tmp_path
):
    cfg = cluster_config()
    (slow,) = simulate(fa, cfg, 1)
    cfg = slow_config(cluster_config, slow)

    # tick 1 submits the slow run and returns while its job runs
    r, seconds = timed(fa, cfg)
    assert r.returncode == 0, r.stderr
    assert "its batch jobs still run, later ticks collect them" in r.stderr
    doc = db.get(slow)
    job1 = doc["processing"]["job_id"]
    assert doc["processed_status"] in ("queued", "processing") and job1
    assert doc["processing"]["queue"] == "standby" and doc["processing"]["walltime"] == "00:01:00"

    # 1. a new run is transferred and submitted within one tick while the long job runs
    (new,) = simulate(fa, cfg, 1)
    r, seconds = timed(fa, cfg)
    assert r.returncode == 0, r.stderr
    assert seconds < 60, f"a tick took {seconds:.0f} s while a long job ran"
    assert db.get(new)["raw_status"] in ("ondeck", "compressed")
    assert db.get(new)["processing"]["job_id"], "the new run was submitted in the same tick"
    assert job_info(slurm, job1)["state"] == "RUNNING"
    assert [j["id"] for j in jobs_named(slurm, prefix) if j["name"] == f"{prefix}-{slow}"] == [job1]

    # 2. kill -9 of every host-side process of a tick right after it submitted a job
    (third,) = simulate(fa, cfg, 1)
    job3 = kill_tick_after_submission(cfg, tmp_path / "work", third, slurm)

    r, seconds = timed(fa, cfg)  # no --unlock, nothing cleaned by hand
    assert r.returncode == 0, r.stderr
    for run in (slow, new, third):
        assert len([j for j in jobs_named(slurm, prefix) if j["name"] == f"{prefix}-{run}"]) == 1, (
            f"run {run} was submitted twice"
        )
    third_doc = db.get(third)
    assert third_doc["processed_status"] == "processed", "the job that finished while no host process ran"
    assert third_doc["processing"]["job_id"] == job3
    assert db.get(new)["processed_status"] == "processed"
    assert db.get(slow)["processing"]["job_id"] == job1 and job_info(slurm, job1)["state"] == "RUNNING"

    # the walltime kill is detected, and the run goes again with twice the time (so to physics)
    wait_for(lambda: job_info(slurm, job1)["state"] == "TIMEOUT", 150, "the walltime kill")
    r, seconds = timed(fa, cfg)
    doc = db.get(slow)
    assert ("processing", "failed") in steps(doc)
    failed = next(e for e in doc["history"] if e["to"] == "failed")
    assert failed["note"] == f"job {job1} killed at its walltime"
    p = doc["processing"]
    assert (p["walltime"], p["queue"], p["attempts"], p["timeouts"]) == ("00:02:00", "physics", 2, 1)
    assert p["job_id"] != job1
    info = job_info(slurm, p["job_id"])
    assert (info["partition"], info["limit"]) == ("physics", "2:00")
    wait_for(lambda: job_info(slurm, p["job_id"])["state"] == "COMPLETED", 90, "the second attempt")
    r, seconds = timed(fa, cfg)
    assert db.get(slow)["processed_status"] == "processed"


def test_host_processes_and_queued_jobs_stay_bounded_whatever_the_backlog(
    fa, cluster_config, db, slurm, prefix, tmp_path
):
    cfg = cluster_config(processing={"max_jobs": 2, "tick_wait_seconds": 5})
    runs = simulate(fa, cfg, 6)
    peak = {"host": 0, "jobs": 0}
    done = threading.Event()
    tick = subprocess.Popen(
        [FA, "--config", str(cfg)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )

    def sample():
        while not done.is_set():
            peak["host"] = max(peak["host"], 1 + len(descendants(tick.pid)))
            peak["jobs"] = max(
                peak["jobs"], len([j for j in jobs_named(slurm, prefix) if j["state"] in ("PENDING", "RUNNING")])
            )
            time.sleep(0.2)

    sampler = threading.Thread(target=sample)
    sampler.start()
    _, stderr = tick.communicate(timeout=300)
    done.set()
    sampler.join()
    assert tick.returncode == 0, stderr
    # wrapper + Snakemake + per local job (2 local cores): shell, script, tool and its helpers;
    # plus one submit or status command (shell, python, env, qsub/squeue)
    assert peak["host"] <= 2 + 2 * 5 + 4, peak
    assert peak["jobs"] <= 2
    assert "4 runs wait for a free job slot (processing.max_jobs=2)" in stderr
    assert all(db.get(r)["raw_status"] != "acquired" for r in runs), "every run was transferred"
    assert len(jobs_named(slurm, prefix)) == 2
