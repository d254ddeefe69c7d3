"""The tick's Snakemake, run within bounds: a tick that submits batch jobs leaves them running.

Called by the tick (:mod:`fulliautomatix.cli`): :func:`run_bounded` runs its
Snakemake and stops waiting once only batch jobs are left; :func:`tidy` drops
what such ticks leave behind once no job can need it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

from .batch.records import submit_lock

SUBMITTED_LINES = ("with external jobid", "has been submitted with SLURM jobid")


def _local_work(pid: int) -> bool:
    """Whether Snakemake (pid) runs a local job: a workflow script among its descendants."""
    import psutil

    try:
        for child in psutil.Process(pid).children(recursive=True):
            try:
                if any(".snakemake/scripts/" in word for word in child.cmdline()):
                    return True
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
    except psutil.NoSuchProcess:
        return False
    return False


def _submitted(log_file: Path) -> bool:
    try:
        text = log_file.read_text(errors="replace")
    except OSError:
        return False
    return any(s in text for s in SUBMITTED_LINES)


def run_bounded(
    argv: list[str],
    *,
    cwd,
    env: dict,
    log_file: Path,
    work_dir,
    wait_seconds: float | None,
    poll: float = 1.0,
    quiet_seconds: float = 3.0,
    pass_fds: tuple[int, ...] = (),
    on_poll=None,
) -> tuple[int | None, bool]:
    """Run the tick's Snakemake; leave its batch jobs running once its own work is done.

    Returns (exit status, detached).  With wait_seconds (a profile that
    submits batch jobs) Snakemake is stopped -- SIGKILL to its process group,
    so no job is cancelled -- once it has run for wait_seconds, has submitted
    jobs, and has had no local job for quiet_seconds.  The submit lock is held
    meanwhile, so no submission is cut between the scheduler's answer and its
    record.  What it leaves is exactly what a killed tick leaves: the next
    tick collects the jobs (:func:`fulliautomatix.batch.collect.collect`).

    Without wait_seconds Snakemake stays in the tick's process group, so
    killing the tick (kill -9 of its group) stops its Snakemake and local jobs
    too.  pass_fds hands Snakemake the tick lock, held as long as it runs.
    on_poll() is called every poll round (the live progress line on a terminal).
    """
    own_group = wait_seconds is not None
    proc = _start(argv, cwd=cwd, env=env, log_file=log_file, own_group=own_group, pass_fds=pass_fds)
    t0 = time.monotonic()
    quiet_since = None
    try:
        while True:
            try:
                return proc.wait(timeout=poll), False
            except subprocess.TimeoutExpired:
                if on_poll:
                    on_poll()
            if wait_seconds is None or time.monotonic() - t0 < wait_seconds or not _submitted(log_file):
                continue
            if _local_work(proc.pid):
                quiet_since = None
                continue
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since >= quiet_seconds:
                return _detach(proc, work_dir)
    except BaseException:
        _stop_as_on_ctrl_c(proc, own_group)
        raise


def _start(argv: list[str], *, cwd, env: dict, log_file: Path, own_group: bool, pass_fds) -> subprocess.Popen:
    """Start Snakemake writing to log_file; in a session of its own when it may be left running (own_group)."""
    with open(log_file, "w") as out:
        return subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=own_group,
            pass_fds=pass_fds,
        )


def _detach(proc: subprocess.Popen, work_dir) -> tuple[int | None, bool]:
    """Stop Snakemake, leaving its batch jobs running: (None, True); or its status if it ended meanwhile.

    SIGKILL to its process group under the submit lock, so no submission is
    cut between the scheduler's answer and its record, and no job is cancelled.
    """
    import signal

    with submit_lock(work_dir, timeout=300):
        if proc.poll() is not None:
            return proc.returncode, False
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    return None, True


def _stop_as_on_ctrl_c(proc: subprocess.Popen, own_group: bool) -> None:
    """Ctrl-C or an error in the tick: Snakemake stops as on Ctrl-C (cancels its jobs); SIGKILL after 60 s."""
    import signal

    if proc.poll() is not None:
        return
    signal_snakemake = (lambda sig: os.killpg(proc.pid, sig)) if own_group else proc.send_signal
    signal_snakemake(signal.SIGINT)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        signal_snakemake(signal.SIGKILL)


def profile_submits_jobs(profile_dir: str) -> bool:
    """Whether a Snakemake profile runs jobs through a batch scheduler (not executor: local)."""
    import yaml

    try:
        with open(Path(profile_dir) / "config.yaml") as fh:
            return (yaml.safe_load(fh) or {}).get("executor", "local") not in ("local", "dryrun", "touch")
    except OSError:
        return False


def tidy(work_dir, tick_dir: Path, keep_days: float = 14) -> None:
    """Drop what ticks that submitted jobs leave behind, once no job can need it.

    Tick config files are read by batch jobs that may start days later; the
    job-script directories (``.snakemake/tmp.*``) of a Snakemake left running
    jobs are not needed at all (every job runs its own copy, see :func:`fulliautomatix.batch.submit.submit`).
    """
    cutoff = time.time() - keep_days * 86400
    for p in tick_dir.glob("*.yaml"):
        try:
            if p.stat().st_mtime < cutoff:
                p.unlink()
        except OSError:
            continue
    for d in (Path(work_dir) / ".snakemake").glob("tmp.*"):
        try:
            if d.is_dir() and d.stat().st_mtime < time.time() - 86400:
                shutil.rmtree(d, ignore_errors=True)
        except OSError:
            continue
