"""PBS and Slurm behind one small interface: submit, one listing of all our jobs, cancel, and job states.

Like a transfer tool in Rucio or the Slurm executor plugin's job interface:
the rest of the package asks :func:`adapter` for the cluster's scheduler and
never builds a scheduler command itself.  Commands run on the cluster's
``submit_host`` ("local" on a login node, else over ssh), always as argv
lists, with the cluster's ``scheduler_env`` in front.  The pure parts (argv
building, the job id a submission printed, what a listed state means) are
methods and functions without side effects, tested in tests/unit/test_adapters.py.
"""

from __future__ import annotations

import os
import shlex
import socket
import subprocess

from .. import hosts
from . import SchedulerError, qstatquery
from .listings import Job, ListingError, parse_listing, short_id

# Scheduler job states, by what they mean for us (squeue's words and qstat's letters).
ACTIVE = {
    "PENDING",
    "RUNNING",
    "CONFIGURING",
    "COMPLETING",
    "SUSPENDED",
    "REQUEUED",
    "RESIZING",
    "STAGE_OUT",
    "SIGNALING",
    "REQUEUE_HOLD",
    "REQUEUE_FED",
    "RESV_DEL_HOLD",
    "STOPPED",
    "Q",
    "R",
    "H",
    "W",
    "T",
    "S",
    "E",
    "B",
}
SUCCEEDED = {"COMPLETED"}
# qstat's "C" and "F" say the job ended, not how: the exit-code file decides.
ENDED_UNKNOWN = {"C", "F"}


def status_word(job: Job | None, ours: bool) -> str:
    """running, success or failed for a listed job (None: gone from the scheduler) without an exit-code file.

    ours: the job has a record of ours (then only the exit-code file, or the
    scheduler's COMPLETED, says it succeeded; Snakemake checks the outputs of
    others').
    """
    if job is None:
        return "failed"  # gone from the scheduler without writing its exit code
    if job.state in ACTIVE:
        return "running"
    if job.state in SUCCEEDED:
        return "success"
    if job.state in ENDED_UNKNOWN and not ours:  # not one of ours: trust the scheduler
        return "failed" if job.exit_status not in (None, 0) else "success"
    return "failed"


class SubmissionRefused(SchedulerError):
    """The submit command exited non-zero: no job exists."""


def submitted_id(stdout: str) -> str:
    """The job id sbatch --parsable ('123' or '123;cluster') or qsub ('123.server') printed; '' if none."""
    text = stdout.strip()
    return short_id(text.splitlines()[-1].split(";")[0]) if text else ""


class Scheduler:
    """The scheduler's command-line tools on the submit host; a subclass names the commands."""

    name = ""

    def __init__(self, settings: dict):
        self.settings = settings
        ssh = settings.get("submit_ssh") or {}
        self.host = hosts.Host(
            settings["submit_host"], tuple(ssh.get("ssh") or hosts.DEFAULT_SSH), ssh.get("user") or "", ssh.get("port")
        )

    def argv(self, argv: list[str]) -> list[str]:
        """argv as it runs: with scheduler_env, on the submit host."""
        env = [f"{k}={v}" for k, v in sorted(self.settings["env"].items())]
        return self.host.argv((["env", *env] if env else []) + argv)

    def run(self, argv: list[str], timeout: float = 30) -> subprocess.CompletedProcess:
        return subprocess.run(
            self.argv(argv), capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
        )

    def submit_argv(self, queue: str, walltime: str, name: str, job_dir: str) -> list[str]:
        raise NotImplementedError

    def cancel_argv(self, ids: list[str]) -> list[str]:
        raise NotImplementedError

    def list_argv(self) -> list[str]:
        """The listing's command: squeue with an explicit format (either scheduler may answer squeue)."""
        return ["squeue", "-h", "-t", "all", "-u", self.settings["username"], "-o", "%i|%j|%T|%k"]

    def submit(self, queue: str, walltime: str, name: str, job_dir: str) -> str:
        """Submit job_dir/job.sh; its job id.  SubmissionRefused, or SchedulerError when it printed no id."""
        proc = self.run(self.submit_argv(queue, walltime, name, job_dir))
        if proc.returncode != 0:
            raise SubmissionRefused(f"submission failed (exit {proc.returncode}): {proc.stderr.strip()[:300]}")
        job_id = submitted_id(proc.stdout)
        if not job_id:
            raise SchedulerError(f"the scheduler printed no job id ({proc.stderr.strip()[:200]})")
        return job_id

    def cancel(self, ids: list[str]) -> int:
        return self.run(self.cancel_argv([short_id(j) for j in ids])).returncode

    def listing(self) -> dict[str, Job]:
        """This user's jobs the scheduler remembers: {id: Job}, from one query."""
        argv = self.list_argv()
        proc = self.run(argv)
        if proc.returncode != 0:
            raise SchedulerError(f"{shlex.join(argv)} exited with {proc.returncode}: {proc.stderr.strip()[:200]}")
        try:
            return parse_listing(
                proc.stdout, argv[0], self.settings["username"], self.settings.get("job_name_prefix", "")
            )
        except ListingError as exc:
            raise SchedulerError(f"{shlex.join(argv)}: {exc}") from None


class Slurm(Scheduler):
    name = "slurm"

    def submit_argv(self, queue: str, walltime: str, name: str, job_dir: str) -> list[str]:
        return [
            "sbatch",
            "--parsable",
            "-p",
            queue,
            "-t",
            walltime,
            "-J",
            name,
            "-o",
            f"{job_dir}/stdout",
            "-e",
            f"{job_dir}/stderr",
            f"{job_dir}/job.sh",
        ]

    def cancel_argv(self, ids: list[str]) -> list[str]:
        return ["scancel", *ids]


class Pbs(Scheduler):
    """Torque, PBS Pro, OpenPBS (and Slurm's Torque wrapper); listed as status_query says."""

    name = "pbs"

    def submit_argv(self, queue: str, walltime: str, name: str, job_dir: str) -> list[str]:
        return [
            "qsub",
            "-q",
            queue,
            "-l",
            f"walltime={walltime}",
            "-N",
            name,
            "-o",
            f"{job_dir}/stdout",
            "-e",
            f"{job_dir}/stderr",
            f"{job_dir}/job.sh",
        ]

    def cancel_argv(self, ids: list[str]) -> list[str]:
        return ["qdel", *ids]

    def list_argv(self) -> list[str]:
        """With status_query qstat, the first qstat -f to try (see qstatquery)."""
        user, query = self.settings["username"], self.settings["status_query"]
        if query == "squeue":
            return super().list_argv()
        if query == "qstat-u":
            return ["qstat", "-u", user]  # the alternative format on every PBS flavour: see listings
        return qstatquery.argv(qstatquery.learned(self.settings["work_dir"])[0], user)

    def listing(self) -> dict[str, Job]:
        """One query (more while learning which qstat -f the server answers)."""
        if self.settings["status_query"] != "qstat":
            return super().listing()
        try:
            return qstatquery.listing(
                self.run, self.settings["work_dir"], self.settings["username"], self.settings.get("job_name_prefix", "")
            )
        except ListingError as exc:
            raise SchedulerError(str(exc)) from None


def adapter(settings: dict) -> Scheduler:
    """The cluster's scheduler (settings: see :mod:`.settings`)."""
    return Slurm(settings) if settings["scheduler"] == "slurm" else Pbs(settings)


def job_context() -> dict | None:
    """{job_id, queue, node} when running inside a batch job, else None."""
    job_id = os.environ.get("SLURM_JOB_ID") or os.environ.get("PBS_JOBID")
    if not job_id:
        return None
    queue = os.environ.get("SLURM_JOB_PARTITION") or os.environ.get("PBS_QUEUE")
    return {"job_id": short_id(job_id), "queue": queue, "node": socket.gethostname()}
