"""A job's status for Snakemake (the profiles' status command): running, success or failed.

Answered from the job's exit-code file first, then from one listing of all
this user's jobs per poll round (cached for ``processing.status_cache_seconds``
in ``state/scheduler-cache.json``), never from one scheduler query per job.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from .. import markers
from .adapters import adapter, status_word
from .listings import Job, short_id
from .records import exit_code, id_index_path, read_record, record_path

CACHE = Path("state/scheduler-cache.json")


def cached_listing(settings: dict, newer_than: float = 0.0) -> dict[str, Job]:
    """One listing per poll round: reuse one younger than cache_seconds (and newer_than)."""
    path = Path(settings["work_dir"]) / CACHE
    try:
        data = json.loads(path.read_text())
        if time.time() - data["at"] < settings["cache_seconds"] and data["at"] >= newer_than:
            return {k: Job(**v) for k, v in data["jobs"].items()}
    except (OSError, ValueError, KeyError, TypeError):
        pass
    jobs = adapter(settings).listing()
    markers.write(path, {"at": time.time(), "jobs": {k: vars(v) for k, v in jobs.items()}})
    return jobs


def status(settings: dict, job_id: str) -> str:
    """running, success or failed for one job id (the profile's status command)."""
    job_id = short_id(job_id)
    work_dir = Path(settings["work_dir"])
    record = None
    try:
        run = id_index_path(work_dir, job_id).read_text().strip()
        record = read_record(work_dir, run, done=True)
    except OSError:
        pass
    if record and record.get("job_id") == job_id:
        rc = exit_code(record)
        if rc is not None:
            return "success" if rc == 0 else "failed"
    submitted = 0.0
    if record and record_path(work_dir, record["run"]).exists():
        submitted = os.path.getmtime(record_path(work_dir, record["run"]))
    jobs = cached_listing(settings)
    if job_id not in jobs and submitted:
        jobs = cached_listing(settings, newer_than=submitted + 0.001)  # the cache may predate the job
    return status_word(jobs.get(job_id), ours=record is not None)
