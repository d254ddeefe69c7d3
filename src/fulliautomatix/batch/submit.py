"""Submitting one run's processing job (the profiles' submit command), and recording it as queued.

Snakemake hands us its job script; we copy it into the job's own directory
(Snakemake deletes its copy when it exits, the job may start long after) and
wrap it in ``job.sh``, which records the exit status where the host reads it
first.  The record is written before the job is submitted (see
:mod:`.records`); the runs DB last, and a lost DB write is repaired by the
next tick's collection.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
import time
from pathlib import Path

from .. import states
from . import SchedulerError, walltime
from .adapters import SubmissionRefused, adapter
from .records import processing_doc, retire, submit_lock, write_record
from .requests import read_request
from .settings import connect_runs_db

JOB_SCRIPT = """#!/bin/bash
# Fulliautomatix {rule} job for run {run}, attempt {attempt}; written by fulliautomatix.batch.submit.
# Runs Snakemake's job script, then records its exit status where the host reads it first.
cd {work_dir} || exit 1
export FULLIAUTOMATIX_JOB_DIR={job_dir}
{prefix}/bin/sh {job_dir}/snakemake-job.sh
rc=$?
printf '%s\\n' "$rc" > {job_dir}/exit_code.tmp && mv -f {job_dir}/exit_code.tmp {job_dir}/exit_code
exit $rc
"""


def check_queue(settings: dict, run: str, queue: str, wall: str) -> None:
    """SchedulerError unless queue is one of the cluster's and allows the walltime."""
    known = {q["name"]: walltime.parse(q["max_walltime"]) for q in settings["queues"]}
    if queue not in known:
        raise SchedulerError(f"run {run}: queue {queue!r} is not one of the cluster's queues ({', '.join(known)})")
    if walltime.parse(wall) > known[queue]:
        raise SchedulerError(
            f"run {run}: walltime {wall} is longer than queue {queue} allows "
            f"({walltime.format(known[queue])}); not submitted"
        )


def write_job_dir(settings: dict, rule: str, run: str, attempt: int, jobscript: str) -> Path:
    """jobs/<run>/<attempt>-<time>/ with Snakemake's job script and our job.sh around it."""
    work_dir = Path(settings["work_dir"])
    job_dir = work_dir / "jobs" / run / f"{attempt}-{time.strftime('%Y%m%dT%H%M%S')}"
    job_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(jobscript, job_dir / "snakemake-job.sh")
    prefix = "".join(shlex.quote(w) + " " for w in settings["job_prefix"])
    (job_dir / "job.sh").write_text(
        JOB_SCRIPT.format(
            rule=rule,
            run=run,
            attempt=attempt,
            work_dir=shlex.quote(str(work_dir)),
            job_dir=shlex.quote(str(job_dir)),
            prefix=prefix,
        )
    )
    os.chmod(job_dir / "job.sh", 0o755)
    return job_dir


def submit(settings: dict, rule: str, run: str, queue: str, wall: str, jobscript: str) -> str:
    """Submit Snakemake's job script for one run; record it; return the job id."""
    check_queue(settings, run, queue, wall)
    work_dir = Path(settings["work_dir"])
    request = read_request(work_dir, run)
    attempt = int(request.get("attempts", 0)) + 1
    job_dir = write_job_dir(settings, rule, run, attempt, jobscript)
    record = {
        "run": run,
        "rule": rule,
        "tag": request.get("tag"),
        "name": f"{settings['job_name_prefix']}-{run}",
        "attempt": attempt,
        "dir": str(job_dir),
        "job_id": None,
        "queue": queue,
        "walltime": wall,
        "cluster": settings["cluster"],
        "submitted": states.now(),
        "collected": None,
    }
    with submit_lock(work_dir):
        write_record(work_dir, record)  # intent first: a kill now leaves the name to look for
        try:
            record["job_id"] = adapter(settings).submit(queue, wall, record["name"], str(job_dir))
        except SubmissionRefused as exc:
            record["collected"] = "not submitted"
            retire(work_dir, record)
            raise SchedulerError(f"run {run}: {exc}") from None
        except SchedulerError as exc:
            raise SchedulerError(f"run {run}: {exc}") from None
        write_record(work_dir, record)
    try:
        record_queued(settings, request, record)
    except Exception as exc:  # the record stands; the next tick's collect repairs the DB
        print(
            f"fulliautomatix: run {run}: job {record['job_id']} submitted, but the runs DB was not updated "
            f"({exc}); the next tick repairs it",
            file=sys.stderr,
        )
    return record["job_id"]


def processing_fields(request: dict, record: dict) -> dict:
    """The processing sub-document of a submitted job."""
    return processing_doc(
        request,
        attempts=record["attempt"],
        queue=record["queue"],
        job_id=record["job_id"],
        walltime=record["walltime"],
        job_name=record["name"],
        job_dir=record["dir"],
        submitted=record["submitted"],
        cluster=record["cluster"],
    )


def record_queued(settings: dict, request: dict, record: dict, db=None) -> None:
    """processed_status -> queued with the job's id, queue and walltime."""
    own = db is None
    db = db or connect_runs_db(settings)
    try:
        doc = db.get(record["run"])
        if doc["processed_status"] == "queued" and (doc.get("processing") or {}).get("job_id") == record["job_id"]:
            return
        db.transition(
            record["run"],
            states.PROCESSED,
            "queued",
            doc=doc,
            note=f"job {record['job_id']}",
            fields={"processing": processing_fields(request, record)},
        )
    finally:
        if own:
            db.close()
