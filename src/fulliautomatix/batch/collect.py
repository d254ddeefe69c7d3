"""Collecting processing jobs at the start of every tick: what they did, and repairing the runs DB.

One scheduler listing for all jobs.  A run whose job is still queued or
running is *held*: the tick must not submit it again.  A finished job is
recorded as processed (its marker replayed) or failed (exit code, whether the
walltime killed it, and the tail of its logs); a write the submit command or
a job lost is repaired here.
"""

from __future__ import annotations

import base64
import logging
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from .. import markers, states, sync
from . import SchedulerError
from .adapters import ACTIVE, adapter
from .listings import Job, name_fits, walltime_killed
from .records import OUTPUT_DIRS, all_records, exit_code, output_marker, record_path, retire, started_path, write_record
from .requests import read_request
from .settings import settings_for
from .submit import record_queued

log = logging.getLogger("fulliautomatix")


@dataclass
class Collected:
    held: dict  # run -> job id of jobs still queued or running
    finished: list
    failed: list


def collect(db, config: dict) -> Collected:
    """Record what jobs did since the last tick; name the runs whose jobs still run (see the module)."""
    from .. import config as fa_config

    cluster = fa_config.cluster(config)
    work_dir = Path(config["work_dir"])
    out = Collected(held={}, finished=[], failed=[])
    records = [r for r in all_records(work_dir) if not r.get("collected")]
    if cluster["scheduler"] == "local" and not records:
        return out
    try:
        jobs = adapter(settings_for(config)).listing()
    except (SchedulerError, OSError, subprocess.SubprocessError) as exc:
        # Without the scheduler's word no submitted run may be submitted again.
        log.error("cannot list the scheduler's jobs (%s); runs with submitted jobs are left alone this tick", exc)
        for r in records:
            out.held[r["run"]] = r.get("job_id")
        return out
    active, adopted = active_runs(jobs, records, cluster["job_name_prefix"])
    for r in adopted:  # submitted by a host killed before it wrote the id
        write_record(work_dir, r)
    for run, job in active.items():
        out.held[run] = job.id if job else None
    _clear_finished_incomplete(work_dir, set(active))
    for r in records:
        run = r["run"]
        if run in active:
            _repair_active(db, config, r)
            continue
        if not r.get("job_id"):
            if time.time() - os.path.getmtime(record_path(work_dir, run)) < 60:
                out.held[run] = None  # a submission may be under way (another process)
                continue
            r["collected"] = "never submitted"
            retire(work_dir, r)
            continue
        _finish(db, config, r, jobs.get(r["job_id"]), out)
    return out


def job_run(job: Job, prefix: str) -> str | None:
    """The run a listed job is named for: our job name, or the Slurm plugin's comment.

    None for a name the listing may have cut (qstat's columns): see :func:`active_runs`.
    """
    if job.name.startswith(prefix + "-") and not job.partial:
        return job.name[len(prefix) + 1 :]
    if "_wildcards_" in job.comment and job.comment.startswith("rule_process_run"):
        return job.comment.rsplit("_wildcards_", 1)[1]
    return None


def active_runs(jobs: dict[str, Job], records: list[dict], prefix: str) -> tuple[dict[str, Job | None], list[dict]]:
    """The runs with a job still queued or running, {run: job}, and the records whose job id this found.

    A job is a run's by the id recorded at its submission: qstat cuts names to
    its column (PBS Pro's to 10 characters), so names are read only where no
    id is known.  A job no record names is a run's by its full name
    ``<prefix>-<run>`` (or the Slurm plugin's comment); a submission whose id
    was never recorded (its host killed between qsub and the record) adopts
    the one unclaimed job whose name fits it, whole or cut.  Where several
    could be its job the run is held with None, and nothing is submitted
    again until they end.
    """
    live = [job for job in jobs.values() if job.state in ACTIVE]
    by_id = {r["job_id"]: r["run"] for r in records if r.get("job_id")}
    active: dict[str, Job | None] = {}
    for job in live:
        run = job_run(job, prefix)
        if run and job.id not in by_id:
            active[run] = job
    for job in live:  # after the names: a recorded id has the last word
        if job.id in by_id:
            active[by_id[job.id]] = job
    taken, adopted = set(by_id), []
    for r in records:
        if r.get("job_id"):
            continue
        fits = [job for job in live if job.id not in taken and name_fits(job, r["name"])]
        if len(fits) == 1:
            r["job_id"] = fits[0].id
            taken.add(r["job_id"])
            adopted.append(r)
            active[r["run"]] = fits[0]
        elif fits:
            active[r["run"]] = None
            log.warning(
                "run %s: its job id was never recorded and jobs %s could be its job; "
                "it is not submitted again until they end",
                r["run"],
                ", ".join(j.id for j in fits),
            )
    return active, adopted


def log_tail(paths: list, lines: int = 20) -> str:
    out = []
    for p in paths:
        try:
            with open(p, errors="replace") as fh:
                text = fh.readlines()[-lines:]
        except OSError:
            continue
        if text:
            out.append(f"==> {p} <==\n" + "".join(text))
    return "\n".join(out)[-4000:]


def clear_incomplete(work_dir, rel_paths: list[str]) -> None:
    """Drop Snakemake's 'incomplete' records of outputs a collected job finished.

    A Snakemake master killed while a job ran leaves the record behind; the job
    later writes its marker whole (atomically), so the record is stale.  Only
    called under the tick lock, when no Snakemake runs in this work dir.
    """
    base = Path(work_dir) / ".snakemake" / "incomplete"
    for rel in rel_paths:
        (base / base64.urlsafe_b64encode(rel.encode()).decode()).unlink(missing_ok=True)


def _clear_finished_incomplete(work_dir, active_runs: set) -> None:
    """Stale 'incomplete' records of processing markers that exist, for runs with no job running.

    Covers jobs submitted without our submit command (the Slurm executor), whose
    Snakemake was killed before it saw them end: markers are written whole, so
    one that exists is complete, and Snakemake must not run its job again.
    """
    base = Path(work_dir) / ".snakemake" / "incomplete"
    if not base.is_dir():
        return
    for entry in base.iterdir():
        try:
            rel = base64.urlsafe_b64decode(entry.name.encode()).decode()
        except (ValueError, UnicodeDecodeError):
            continue
        parts = rel.split("/")
        if (
            rel.startswith(OUTPUT_DIRS)
            and len(parts) >= 3
            and parts[2].split(".json")[0] not in active_runs
            and (Path(work_dir) / rel).is_file()
        ):
            entry.unlink(missing_ok=True)


# -- the runs DB: finished jobs recorded, lost writes repaired ------------------------


def _repair_active(db, config: dict, r: dict) -> None:
    """A still-running job the DB does not know as queued/processing (lost write)."""
    if db is None or not r.get("job_id"):
        return
    try:
        doc = db.get(r["run"])
        if (doc.get("processing") or {}).get("job_id") == r["job_id"]:
            # The DB knows this job (it may even have finished writing it, while the
            # scheduler still lists it as completing): only a start marker may be new.
            _replay_started(db, config, r, doc)
            return
        request = read_request(config["work_dir"], r["run"])
        record_queued(settings_for(config), request, r, db=db)
        _replay_started(db, config, r, db.get(r["run"]))
    except Exception as exc:
        log.error("run %s: cannot record its running job %s in the runs DB: %s", r["run"], r["job_id"], exc)


def _replay_started(db, config, r, doc) -> None:
    """processing, from the marker a job writes when it starts (markers mode)."""
    try:
        started = markers.read(started_path(config["work_dir"], r["run"]))
    except (OSError, ValueError):
        return
    if started.get("job_id") != r["job_id"] or doc["processed_status"] != "queued":
        return
    db.transition(
        r["run"],
        states.PROCESSED,
        "processing",
        doc=doc,
        note="job started (from its marker)",
        fields={f"processing.{k}": v for k, v in started.items() if k != "run"},
    )


def _finish(db, config: dict, r: dict, job: Job | None, out: Collected) -> None:
    run, work_dir = r["run"], Path(config["work_dir"])
    rc = exit_code(r)
    output = output_marker(r["rule"], run, r.get("tag"))
    marker_file = work_dir / output
    ok = rc == 0 and marker_file.exists()
    timed_out = walltime_killed(job, stderr=_read(Path(r["dir"]) / "stderr"))  # TIMEOUT, PBS exit codes, stderr
    if db is not None:
        try:
            doc = db.get(run)
            if doc.get("processing", {}).get("job_id") in (None, r["job_id"]):  # else: the DB moved on to a later job
                _replay_started(db, config, r, doc)
                doc = db.get(run)
                if ok:
                    sync.apply(db, markers.read(marker_file), doc=doc, note="job finished (collected)")
                else:
                    _record_failure(db, config, r, doc, rc, timed_out)
        except Exception as exc:
            log.error(
                "run %s: cannot record its finished job %s in the runs DB: %s; the next tick retries",
                run,
                r["job_id"],
                exc,
            )
            return
    clear_incomplete(work_dir, [output])
    r["collected"] = "success" if ok else ("timeout" if timed_out else f"failed (exit {rc})")
    retire(work_dir, r)
    (out.finished if ok else out.failed).append(run)


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _record_failure(db, config, r, doc, rc, timed_out) -> None:
    run = r["run"]
    tail = log_tail(
        [
            Path(config["work_dir"]) / "logs" / r["rule"] / f"{run}.log",
            Path(r["dir"]) / "stdout",
            Path(r["dir"]) / "stderr",
        ]
    )
    p = doc.get("processing") or {}
    timeouts = int(p.get("timeouts", 0)) + (1 if timed_out else 0)
    why = "killed at its walltime" if timed_out else (f"exit {rc}" if rc is not None else "ended without an exit code")
    fields = {
        "processing.exit_code": rc,
        "processing.timed_out": timed_out,
        "processing.timeouts": timeouts,
        "processing.log_tail": tail,
        "processing.finished": states.now(),
        "processing.error": f"job {r['job_id']} {why}",
    }
    if doc["processed_status"] == "failed":
        if p.get("timeouts", 0) != timeouts or p.get("timed_out") != timed_out:
            db.update(run, fields, doc=doc)
        return
    if doc["processed_status"] not in ("queued", "processing"):
        return
    db.transition(run, states.PROCESSED, "failed", doc=doc, note=f"job {r['job_id']} {why}", fields=fields)
    log.error(
        "run %s: job %s %s; %s",
        run,
        r["job_id"],
        why,
        "the next tick retries"
        if r["attempt"] < config["processing"]["max_attempts"]
        else f"no attempts left: see {r['dir']}, then `fulliautomatix retry {run}`",
    )
