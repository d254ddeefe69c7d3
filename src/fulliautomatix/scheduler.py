"""The batch scheduler: submitting processing jobs, their status, and collecting them.

The cluster profiles call this module (``cluster-generic``'s submit, status
and cancel commands); the Snakefile's main process calls :func:`collect` at
the start of every tick::

    python -m fulliautomatix.scheduler submit --rule process_run --run 170101_0001 \\
        --queue standby --walltime 00:05:00 JOBSCRIPT     # prints the job id
    python -m fulliautomatix.scheduler status 1234        # prints running, success or failed
    python -m fulliautomatix.scheduler cancel 1234 1235   # or: fulliautomatix-cancel 1234 1235

All three run in Snakemake's working directory (the config's ``work_dir``) and
read the cluster's settings from ``state/scheduler.json``, written by the
Snakefile's main process.  Scheduler commands run on the cluster's
``submit_host`` ("local" on a login node, else over ssh), always as argv lists.

A job's life on disk, under ``jobs/<run>/<attempt>-<time>/`` (a directory the
compute nodes and this host share): ``job.sh`` (our wrapper around
Snakemake's job script), ``stdout``, ``stderr`` and ``exit_code``, written by
the job itself as its last act.  ``state/jobs/<run>.json`` is the run's current
submission (job name, id, queue, walltime, directory), written *before* the
job is submitted and completed after, so a host killed in between still knows
what it submitted: the job's name finds it in the scheduler.

Status questions are answered from the exit-code file first, then from one
listing of all this user's jobs per poll round (cached for
``processing.status_cache_seconds``), never from one scheduler query per job.
"""

from __future__ import annotations

import argparse
import base64
import fcntl
import json
import logging
import os
import shlex
import shutil
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from . import hosts, markers, qstatquery, states, sync
from .listings import (  # noqa: F401 - re-exported
    Job, ListingError, name_fits, parse_listing, short_id, walltime_killed)

log = logging.getLogger("fulliautomatix")

SETTINGS = Path("state/scheduler.json")
CACHE = Path("state/scheduler-cache.json")
SUBMIT_LOCK = Path("state/submit.lock")

# Scheduler job states, by what they mean for us.
ACTIVE = {"PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "SUSPENDED", "REQUEUED", "RESIZING",
          "STAGE_OUT", "SIGNALING", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD", "STOPPED",
          "Q", "R", "H", "W", "T", "S", "E", "B"}
SUCCEEDED = {"COMPLETED"}
# qstat's "C" and "F" say the job ended, not how: the exit-code file decides.
ENDED_UNKNOWN = {"C", "F"}

# Rule -> (marker of a finished job, relative to work_dir).
OUTPUTS = {"process_run": "state/processed/{run}.json", "reprocess_run": "state/reprocessed/{run}/{tag}.json"}


class SchedulerError(Exception):
    pass


# -- settings ------------------------------------------------------------------

def settings_for(config: dict) -> dict:
    """What the submit/status/cancel commands need of the config (see SETTINGS)."""
    from . import config as fa_config

    cl = fa_config.cluster(config)
    rdb = config["runs_db"]
    # Over ssh, the login node is reached with the cluster's ssh options (and its
    # user and port when it is the cluster's host itself).
    same = cl["submit_host"] == cl.get("host")
    ssh = {"ssh": list(cl.get("ssh") or hosts.DEFAULT_SSH), "user": cl.get("user", "") if same else "",
           "port": cl.get("port") if same else None}
    return {
        "cluster": cl["name"], "scheduler": cl["scheduler"], "submit_host": cl["submit_host"], "submit_ssh": ssh,
        "status_query": cl["status_query"], "env": cl["scheduler_env"], "username": cl["username"],
        "job_name_prefix": cl["job_name_prefix"], "job_prefix": cl["job_prefix"], "queues": cl["queues"],
        "work_dir": config["work_dir"], "python": sys.executable,
        "cache_seconds": config["processing"]["status_cache_seconds"],
        "job_db_access": config["processing"]["job_db_access"],
        "runs_db": {"uri": rdb["uri"], "database": rdb["database"], "collection": rdb["collection"],
                    "timeout_seconds": rdb["timeout_seconds"]},
    }


def write_settings(config: dict) -> None:
    markers.write(Path(config["work_dir"]) / SETTINGS, settings_for(config))


def load_settings(work_dir: Path | str = ".") -> dict:
    path = Path(work_dir) / SETTINGS
    try:
        return markers.read(path)
    except FileNotFoundError:
        raise SchedulerError(f"{path.resolve()} is missing: run these commands from the work dir of a tick") from None


# -- scheduler commands ----------------------------------------------------------

class Commands:
    """The scheduler's command-line tools, run on the submit host."""

    def __init__(self, s: dict):
        self.s = s
        ssh = s.get("submit_ssh") or {}
        self.host = hosts.Host(s["submit_host"], tuple(ssh.get("ssh") or hosts.DEFAULT_SSH), ssh.get("user") or "",
                               ssh.get("port"))

    def _argv(self, argv: list[str]) -> list[str]:
        env = [f"{k}={v}" for k, v in sorted(self.s["env"].items())]
        return self.host.argv((["env", *env] if env else []) + argv)

    def run(self, argv: list[str], timeout: float = 30) -> subprocess.CompletedProcess:
        return subprocess.run(self._argv(argv), capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)

    def submit_argv(self, queue: str, walltime: str, name: str, job_dir: str) -> list[str]:
        if self.s["scheduler"] == "slurm":
            return ["sbatch", "--parsable", "-p", queue, "-t", walltime, "-J", name,
                    "-o", f"{job_dir}/stdout", "-e", f"{job_dir}/stderr", f"{job_dir}/job.sh"]
        return ["qsub", "-q", queue, "-l", f"walltime={walltime}", "-N", name,
                "-o", f"{job_dir}/stdout", "-e", f"{job_dir}/stderr", f"{job_dir}/job.sh"]

    def cancel_argv(self, ids: list[str]) -> list[str]:
        return (["scancel"] if self.s["scheduler"] == "slurm" else ["qdel"]) + ids

    def list_argv(self) -> list[str]:
        """The listing's command: with status_query qstat, the first qstat -f to try (see qstatquery)."""
        user, query = self.s["username"], self.s["status_query"]
        if query == "squeue" or self.s["scheduler"] == "slurm":
            return ["squeue", "-h", "-t", "all", "-u", user, "-o", "%i|%j|%T|%k"]
        if query == "qstat-u":
            return ["qstat", "-u", user]  # the alternative format on every PBS flavour: see listings
        return qstatquery.argv(qstatquery.learned(self.s["work_dir"])[0], user)

    def listing(self) -> dict[str, Job]:
        """This user's jobs the scheduler remembers: {id: Job}. One query (more while learning which qstat -f)."""
        if self.s["status_query"] == "qstat" and self.s["scheduler"] != "slurm":
            try:
                return qstatquery.listing(self.run, self.s["work_dir"], self.s["username"],
                                          self.s.get("job_name_prefix", ""))
            except ListingError as exc:
                raise SchedulerError(str(exc)) from None
        argv = self.list_argv()
        proc = self.run(argv)
        if proc.returncode != 0:
            raise SchedulerError(f"{shlex.join(argv)} exited with {proc.returncode}: {proc.stderr.strip()[:200]}")
        try:
            return parse_listing(proc.stdout, argv[0], self.s["username"], self.s.get("job_name_prefix", ""))
        except ListingError as exc:
            raise SchedulerError(f"{shlex.join(argv)}: {exc}") from None


# -- job records -----------------------------------------------------------------

def record_path(work_dir: Path | str, run: str) -> Path:
    return Path(work_dir) / "state" / "jobs" / f"{run}.json"


def id_index_path(work_dir: Path | str, job_id: str) -> Path:
    return Path(work_dir) / "state" / "jobs" / "by-id" / short_id(job_id)


def done_path(work_dir: Path | str, run: str) -> Path:
    return Path(work_dir) / "state" / "jobs" / "done" / f"{run}.json"


def read_record(work_dir, run: str, done: bool = False) -> dict | None:
    """The run's submission still to be collected (or, with done, the last collected one)."""
    for path in [record_path(work_dir, run)] + ([done_path(work_dir, run)] if done else []):
        try:
            return markers.read(path)
        except (FileNotFoundError, json.JSONDecodeError):
            continue
    return None


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


def request_path(work_dir, run: str) -> Path:
    return Path(work_dir) / "state" / "requests" / f"{run}.json"


def read_request(work_dir, run: str) -> dict:
    try:
        return markers.read(request_path(work_dir, run))
    except FileNotFoundError:
        raise SchedulerError(f"run {run}: no processing request {request_path(work_dir, run)}; "
                             "the tick that planned it writes one") from None


@contextmanager
def submit_lock(work_dir, timeout: float | None = None):
    """Held while a job is submitted and recorded; the wrapper takes it before leaving a tick."""
    path = Path(work_dir) / SUBMIT_LOCK
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if deadline is not None and time.monotonic() > deadline:
                    raise TimeoutError(f"{path} is held") from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


JOB_SCRIPT = """#!/bin/bash
# Fulliautomatix {rule} job for run {run}, attempt {attempt}; written by fulliautomatix.scheduler submit.
# Runs Snakemake's job script, then records its exit status where the host reads it first.
cd {work_dir} || exit 1
export FULLIAUTOMATIX_JOB_DIR={job_dir}
{prefix}/bin/sh {job_dir}/snakemake-job.sh
rc=$?
printf '%s\\n' "$rc" > {job_dir}/exit_code.tmp && mv -f {job_dir}/exit_code.tmp {job_dir}/exit_code
exit $rc
"""


def submit(s: dict, rule: str, run: str, queue: str, walltime: str, jobscript: str) -> str:
    """Submit Snakemake's job script for one run; record it; return the job id."""
    from . import walltime as wt

    work_dir = Path(s["work_dir"])
    known = {q["name"]: wt.parse(q["max_walltime"]) for q in s["queues"]}
    if queue not in known:
        raise SchedulerError(f"run {run}: queue {queue!r} is not one of the cluster's queues ({', '.join(known)})")
    if wt.parse(walltime) > known[queue]:
        raise SchedulerError(f"run {run}: walltime {walltime} is longer than queue {queue} allows "
                             f"({wt.format(known[queue])}); not submitted")
    request = read_request(work_dir, run)
    attempt = int(request.get("attempts", 0)) + 1
    stamp = time.strftime("%Y%m%dT%H%M%S")
    job_dir = work_dir / "jobs" / run / f"{attempt}-{stamp}"
    job_dir.mkdir(parents=True, exist_ok=True)
    # Snakemake deletes its copy when it exits; the job may start long after.
    shutil.copyfile(jobscript, job_dir / "snakemake-job.sh")
    prefix = "".join(shlex.quote(w) + " " for w in s["job_prefix"])
    (job_dir / "job.sh").write_text(JOB_SCRIPT.format(
        rule=rule, run=run, attempt=attempt, work_dir=shlex.quote(str(work_dir)),
        job_dir=shlex.quote(str(job_dir)), prefix=prefix))
    os.chmod(job_dir / "job.sh", 0o755)
    name = f"{s['job_name_prefix']}-{run}"
    record = {"run": run, "rule": rule, "tag": request.get("tag"), "name": name, "attempt": attempt,
              "dir": str(job_dir), "job_id": None, "queue": queue, "walltime": walltime,
              "cluster": s["cluster"], "submitted": states.now(), "collected": None}
    cmds = Commands(s)
    with submit_lock(work_dir):
        markers.write(record_path(work_dir, run), record)  # intent first: a kill now leaves the name to look for
        proc = cmds.run(cmds.submit_argv(queue, walltime, name, str(job_dir)))
        if proc.returncode != 0:
            record["collected"] = "not submitted"
            retire(work_dir, record)
            raise SchedulerError(f"run {run}: submission failed (exit {proc.returncode}): {proc.stderr.strip()[:300]}")
        job_id = short_id(proc.stdout.strip().splitlines()[-1].split(";")[0]) if proc.stdout.strip() else ""
        if not job_id:
            raise SchedulerError(f"run {run}: the scheduler printed no job id ({proc.stderr.strip()[:200]})")
        record["job_id"] = job_id
        markers.write(record_path(work_dir, run), record)
        index = id_index_path(work_dir, job_id)
        index.parent.mkdir(parents=True, exist_ok=True)
        index.write_text(run + "\n")
    try:
        record_queued(s, request, record)
    except Exception as exc:  # the record stands; the next tick's collect repairs the DB
        print(f"fulliautomatix: run {run}: job {job_id} submitted, but the runs DB was not updated ({exc}); "
              "the next tick repairs it", file=sys.stderr)
    return job_id


def processing_fields(request: dict, record: dict) -> dict:
    return {"job_id": record["job_id"], "job_name": record["name"], "queue": record["queue"],
            "walltime": record["walltime"], "attempts": record["attempt"], "exit_code": None,
            "processor_version": request["version"], "output": request["output"], "tag": request.get("tag"),
            "job_dir": record["dir"], "submitted": record["submitted"], "cluster": record["cluster"],
            "timeouts": int(request.get("timeouts", 0)), "timed_out": None, "log_tail": None, "error": None}


def _connect(s: dict):
    from .runsdb import RunsDB

    uri = os.environ.get("FULLIAUTOMATIX_RUNS_DB") or s["runs_db"]["uri"]
    r = s["runs_db"]
    return RunsDB(uri, r["database"], r["collection"], r["timeout_seconds"])


def record_queued(s: dict, request: dict, record: dict, db=None) -> None:
    """processed_status -> queued with the job's id, queue and walltime."""
    own = db is None
    db = db or _connect(s)
    try:
        doc = db.get(record["run"])
        if doc["processed_status"] == "queued" and (doc.get("processing") or {}).get("job_id") == record["job_id"]:
            return
        db.transition(record["run"], states.PROCESSED, "queued", doc=doc, note=f"job {record['job_id']}",
                      fields={"processing": processing_fields(request, record)})
    finally:
        if own:
            db.close()


# -- status ----------------------------------------------------------------------

def cached_listing(s: dict, newer_than: float = 0.0) -> dict[str, Job]:
    """One listing per poll round: reuse one younger than cache_seconds (and newer_than)."""
    path = Path(s["work_dir"]) / CACHE
    try:
        data = json.loads(path.read_text())
        if time.time() - data["at"] < s["cache_seconds"] and data["at"] >= newer_than:
            return {k: Job(**v) for k, v in data["jobs"].items()}
    except (OSError, ValueError, KeyError, TypeError):
        pass
    jobs = Commands(s).listing()
    markers.write(path, {"at": time.time(), "jobs": {k: vars(v) for k, v in jobs.items()}})
    return jobs


def status(s: dict, job_id: str) -> str:
    """running, success or failed for one job id (the profile's status command)."""
    job_id = short_id(job_id)
    work_dir = Path(s["work_dir"])
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
    jobs = cached_listing(s)
    if job_id not in jobs and submitted:
        jobs = cached_listing(s, newer_than=submitted + 0.001)  # the cache may predate the job
    job = jobs.get(job_id)
    if job is None:
        return "failed"  # gone from the scheduler without writing its exit code
    if job.state in ACTIVE:
        return "running"
    if job.state in SUCCEEDED:
        return "success"
    if job.state in ENDED_UNKNOWN and record is None:  # not one of ours: trust the scheduler
        return "failed" if job.exit_status not in (None, 0) else "success"  # Snakemake checks the outputs
    return "failed"


# -- collecting finished jobs (the host, every tick) ----------------------------------

def job_run(job: Job, prefix: str) -> str | None:
    """The run a listed job is named for: our job name, or the Slurm plugin's comment.

    None for a name the listing may have cut (qstat's columns): see :func:`active_runs`.
    """
    if job.name.startswith(prefix + "-") and not job.partial:
        return job.name[len(prefix) + 1:]
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
            log.warning("run %s: its job id was never recorded and jobs %s could be its job; "
                        "it is not submitted again until they end", r["run"], ", ".join(j.id for j in fits))
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
        if (rel.startswith(("state/processed/", "state/reprocessed/")) and len(parts) >= 3
                and parts[2].split(".json")[0] not in active_runs and (Path(work_dir) / rel).is_file()):
            entry.unlink(missing_ok=True)


@dataclass
class Collected:
    held: dict  # run -> job id of jobs still queued or running
    finished: list
    failed: list


def collect(db, config: dict) -> Collected:
    """Record what jobs did since the last tick; name the runs whose jobs still run.

    One scheduler listing for all jobs.  A run whose job is still queued or
    running is *held*: the tick must not submit it again.  A finished job is
    recorded as processed (its marker replayed) or failed (exit code, whether
    the walltime killed it, and the tail of its logs).
    """
    from . import config as fa_config

    cl = fa_config.cluster(config)
    work_dir = Path(config["work_dir"])
    out = Collected(held={}, finished=[], failed=[])
    records = [r for r in all_records(work_dir) if not r.get("collected")]
    if cl["scheduler"] == "local" and not records:
        return out
    s = settings_for(config)
    try:
        jobs = Commands(s).listing()
    except (SchedulerError, OSError, subprocess.SubprocessError) as exc:
        # Without the scheduler's word no submitted run may be submitted again.
        log.error("cannot list the scheduler's jobs (%s); runs with submitted jobs are left alone this tick", exc)
        for r in records:
            out.held[r["run"]] = r.get("job_id")
        return out
    active, adopted = active_runs(jobs, records, cl["job_name_prefix"])
    for r in adopted:  # submitted by a host killed before it wrote the id
        markers.write(record_path(work_dir, r["run"]), r)
        id_index_path(work_dir, r["job_id"]).parent.mkdir(parents=True, exist_ok=True)
        id_index_path(work_dir, r["job_id"]).write_text(r["run"] + "\n")
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


def started_path(work_dir, run: str) -> Path:
    return Path(work_dir) / "state" / "started" / f"{run}.json"


def _replay_started(db, config, r, doc) -> None:
    """processing, from the marker a job writes when it starts (markers mode)."""
    try:
        started = markers.read(started_path(config["work_dir"], r["run"]))
    except (OSError, ValueError):
        return
    if started.get("job_id") != r["job_id"] or doc["processed_status"] != "queued":
        return
    db.transition(r["run"], states.PROCESSED, "processing", doc=doc, note="job started (from its marker)",
                  fields={f"processing.{k}": v for k, v in started.items() if k != "run"})


def _finish(db, config: dict, r: dict, job: Job | None, out: Collected) -> None:
    run, work_dir = r["run"], Path(config["work_dir"])
    rc = exit_code(r)
    output = OUTPUTS[r["rule"]].format(run=run, tag=r.get("tag"))
    marker_file = work_dir / output
    ok = rc == 0 and marker_file.exists()
    stderr = Path(r["dir"]) / "stderr"
    timed_out = walltime_killed(job, stderr=_read(stderr))  # Slurm's TIMEOUT, PBS exit codes, stderr lines
    if db is not None:
        try:
            doc = db.get(run)
            if doc.get("processing", {}).get("job_id") not in (None, r["job_id"]):
                pass  # the DB already moved on to a later job
            else:
                _replay_started(db, config, r, doc)
                doc = db.get(run)
                if ok:
                    sync.apply(db, markers.read(marker_file), doc=doc, note="job finished (collected)")
                else:
                    _record_failure(db, config, r, doc, rc, timed_out)
        except Exception as exc:
            log.error("run %s: cannot record its finished job %s in the runs DB: %s; the next tick retries",
                      run, r["job_id"], exc)
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
    tail = log_tail([Path(config["work_dir"]) / "logs" / r["rule"] / f"{run}.log",
                     Path(r["dir"]) / "stdout", Path(r["dir"]) / "stderr"])
    p = doc.get("processing") or {}
    timeouts = int(p.get("timeouts", 0)) + (1 if timed_out else 0)
    why = "killed at its walltime" if timed_out else (f"exit {rc}" if rc is not None else "ended without an exit code")
    fields = {"processing.exit_code": rc, "processing.timed_out": timed_out, "processing.timeouts": timeouts,
              "processing.log_tail": tail, "processing.finished": states.now(),
              "processing.error": f"job {r['job_id']} {why}"}
    if doc["processed_status"] == "failed":
        if p.get("timeouts", 0) != timeouts or p.get("timed_out") != timed_out:
            db.update(run, fields, doc=doc)
        return
    if doc["processed_status"] not in ("queued", "processing"):
        return
    db.transition(run, states.PROCESSED, "failed", doc=doc, note=f"job {r['job_id']} {why}", fields=fields)
    log.error("run %s: job %s %s; %s", run, r["job_id"], why,
              "the next tick retries" if r["attempt"] < config["processing"]["max_attempts"]
              else f"no attempts left: see {r['dir']}, then `fulliautomatix retry {run}`")


# -- in the job -------------------------------------------------------------------

def job_context() -> dict | None:
    """{job_id, queue, node} when running inside a batch job, else None."""
    jid = os.environ.get("SLURM_JOB_ID") or os.environ.get("PBS_JOBID")
    if not jid:
        return None
    queue = os.environ.get("SLURM_JOB_PARTITION") or os.environ.get("PBS_QUEUE")
    return {"job_id": short_id(jid), "queue": queue, "node": socket.gethostname()}


# -- command line -------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m fulliautomatix.scheduler",
                                 description="Submit, query and cancel Fulliautomatix's processing jobs.",
                                 epilog=__doc__.split("\n\n")[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("submit", help="submit a Snakemake job script; print the job id")
    p.add_argument("--rule", required=True)
    p.add_argument("--run", required=True)
    p.add_argument("--queue", required=True)
    p.add_argument("--walltime", required=True)
    p.add_argument("jobscript")
    p = sub.add_parser("status", help="print running, success or failed; always exit 0")
    p.add_argument("job_id")
    p = sub.add_parser("cancel", help="cancel jobs")
    p.add_argument("job_ids", nargs="+")
    args = ap.parse_args(argv)
    if args.command == "status":
        try:
            print(status(load_settings(), args.job_id))
        except Exception as exc:  # never abort the workflow: ask again next round
            print(f"fulliautomatix: status of job {args.job_id} unknown ({exc}); asking again later", file=sys.stderr)
            print("running")
        return 0
    try:
        s = load_settings()
        if args.command == "submit":
            hosts.check_run_name(args.run, r"[0-9A-Za-z_.-]+")
            print(submit(s, args.rule, args.run, args.queue, args.walltime, args.jobscript))
            return 0
        cmds = Commands(s)
        proc = cmds.run(cmds.cancel_argv([short_id(j) for j in args.job_ids]))
        return proc.returncode
    except (SchedulerError, hosts.BadRunName, OSError, subprocess.SubprocessError) as exc:
        print(f"fulliautomatix: {exc}", file=sys.stderr)
        return 1


def cancel_main(argv: list[str] | None = None) -> int:
    """`fulliautomatix-cancel ID...`: the profiles' cancel command (called without a shell)."""
    return main(["cancel", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())


# -- the tick's Snakemake: waiting for batch jobs, within bounds ------------------------------

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


def run_bounded(argv: list[str], *, cwd, env: dict, log_file: Path, work_dir, wait_seconds: float | None,
                poll: float = 1.0, quiet_seconds: float = 3.0,
                pass_fds: tuple[int, ...] = (), on_poll=None) -> tuple[int | None, bool]:
    """Run the tick's Snakemake; leave its batch jobs running once its own work is done.

    Returns (exit status, detached).  With wait_seconds (a profile that
    submits batch jobs) Snakemake is stopped -- SIGKILL to its process group,
    so no job is cancelled -- once it has run for wait_seconds, has submitted
    jobs, and has had no local job for quiet_seconds.  The submit lock is held
    meanwhile, so no submission is cut between the scheduler's answer and its
    record.  What it leaves is exactly what a killed tick leaves: the next
    tick collects the jobs (:func:`collect`).

    Without wait_seconds Snakemake stays in the tick's process group, so
    killing the tick (kill -9 of its group) stops its Snakemake and local jobs
    too.  pass_fds hands Snakemake the tick lock, held as long as it runs.
    on_poll() is called every poll round (the live progress line on a terminal).
    """
    import signal

    own_group = wait_seconds is not None
    with open(log_file, "w") as out:
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=own_group, pass_fds=pass_fds)
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
            if time.monotonic() - quiet_since < quiet_seconds:
                continue
            with submit_lock(work_dir, timeout=300):
                if proc.poll() is not None:
                    return proc.returncode, False
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            return None, True
    except BaseException:
        if proc.poll() is None:  # Ctrl-C or an error here: Snakemake stops as on Ctrl-C (cancels its jobs)
            signal_snakemake = (lambda sig: os.killpg(proc.pid, sig)) if own_group else proc.send_signal
            signal_snakemake(signal.SIGINT)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                signal_snakemake(signal.SIGKILL)
        raise


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
    jobs are not needed at all (every job runs its own copy, see :func:`submit`).
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
