"""Job records on disk: where a job's files live, reading and retiring records, and the submit lock.

Every path of a processing job's life is named here (:func:`state_path`,
:func:`output_marker`), so the host, the job and the tests agree on them:

- ``state/jobs/<run>.json``: the run's current submission (job name, id, queue,
  walltime, directory), written *before* the job is submitted and completed
  after, so a host killed in between still knows what it submitted: the job's
  name finds it in the scheduler;
- ``state/jobs/by-id/<job id>``: the run of a job id (the status command's index);
- ``state/jobs/done/<run>.json``: the last collected submission;
- ``state/requests/<run>.json``: the run's processing request (:mod:`.requests`);
- ``state/started/<run>.json``: a job's start, where nodes cannot reach the runs DB;
- ``jobs/<run>/<attempt>-<time>/``: ``job.sh``, ``stdout``, ``stderr`` and
  ``exit_code`` (written by the job itself as its last act).
"""

from __future__ import annotations

import json
from pathlib import Path

from .. import claims, markers
from .listings import short_id

SUBMIT_LOCK = Path("state/submit.lock")

# kind -> file of a run (or job id) under the work dir
STATE_FILES = {
    "record": "state/jobs/{}.json",
    "done": "state/jobs/done/{}.json",
    "by-id": "state/jobs/by-id/{}",
    "request": "state/requests/{}.json",
    "started": "state/started/{}.json",
}

# Rule -> marker of a finished job, relative to work_dir (the rules' outputs in workflow/rules/process.smk).
OUTPUTS = {"process_run": "state/processed/{run}.json", "reprocess_run": "state/reprocessed/{run}/{tag}.json"}
OUTPUT_DIRS = tuple(path.split("{run}")[0] for path in OUTPUTS.values())  # "state/processed/", ...


def state_path(work_dir: Path | str, kind: str, name: str) -> Path:
    """The file of `kind` (see STATE_FILES) for a run (or, for "by-id", a job id)."""
    return Path(work_dir) / STATE_FILES[kind].format(name)


def output_marker(rule: str, run: str, tag: str | None = None) -> str:
    """The marker a finished job of `rule` writes, relative to the work dir."""
    return OUTPUTS[rule].format(run=run, tag=tag)


def record_path(work_dir: Path | str, run: str) -> Path:
    return state_path(work_dir, "record", run)


def id_index_path(work_dir: Path | str, job_id: str) -> Path:
    return state_path(work_dir, "by-id", short_id(job_id))


def done_path(work_dir: Path | str, run: str) -> Path:
    return state_path(work_dir, "done", run)


def request_path(work_dir: Path | str, run: str) -> Path:
    return state_path(work_dir, "request", run)


def started_path(work_dir: Path | str, run: str) -> Path:
    return state_path(work_dir, "started", run)


def read_record(work_dir, run: str, done: bool = False) -> dict | None:
    """The run's submission still to be collected (or, with done, the last collected one)."""
    for path in [record_path(work_dir, run)] + ([done_path(work_dir, run)] if done else []):
        try:
            return markers.read(path)
        except (FileNotFoundError, json.JSONDecodeError):
            continue
    return None


def write_record(work_dir, record: dict) -> None:
    """The run's submission, and (once it has one) its job id's index entry."""
    markers.write(record_path(work_dir, record["run"]), record)
    if record.get("job_id"):
        index = id_index_path(work_dir, record["job_id"])
        index.parent.mkdir(parents=True, exist_ok=True)
        index.write_text(record["run"] + "\n")


def retire(work_dir, record: dict) -> None:
    """A collected submission leaves the active records, so a tick reads only the pending ones."""
    markers.write(done_path(work_dir, record["run"]), record)
    record_path(work_dir, record["run"]).unlink(missing_ok=True)


def all_records(work_dir) -> list[dict]:
    out = []
    for p in sorted((Path(work_dir) / "state" / "jobs").glob("*.json")):
        try:
            out.append(markers.read(p))
        except (OSError, json.JSONDecodeError):
            continue
    return out


def exit_code(record: dict) -> int | None:
    try:
        return int((Path(record["dir"]) / "exit_code").read_text().strip())
    except (OSError, ValueError, KeyError):
        return None


def submit_lock(work_dir, timeout: float | None = None):
    """Held while a job is submitted and recorded; the wrapper takes it before leaving a tick."""
    return claims.locked(Path(work_dir) / SUBMIT_LOCK, timeout=timeout)


def processing_doc(
    request: dict,
    *,
    attempts: int,
    queue: str | None,
    job_id: str | None = None,
    walltime: str | None = None,
    timeouts: int | None = None,
    **more,
) -> dict:
    """The ``processing`` sub-document of a run whose attempt is queued: at submission, at a job's
    start that was not recorded at submission, and before a local attempt (docs/run-document.md)."""
    doc = {
        "job_id": job_id,
        "queue": queue,
        "walltime": walltime,
        "attempts": attempts,
        "exit_code": None,
        "processor_version": request["version"],
        "output": request["output"],
        "tag": request.get("tag"),
        "timeouts": int(request.get("timeouts", 0)) if timeouts is None else timeouts,
        "timed_out": None,
        "log_tail": None,
        "error": None,
    }
    doc.update(more)
    return doc
