"""A tick's processing plan (its sync_runs_db job): collect earlier jobs, choose reprocessing, fill job slots.

Also what Snakemake's resource functions ask (:func:`job_resources`: queue and
walltime of a run's job, from its request) and what ``--dry_run`` shows a
cluster tick would submit (:func:`submission_preview`).
"""

from __future__ import annotations

import shlex

from .. import config as fa_config
from .. import process
from . import SchedulerError, walltime
from .adapters import adapter
from .collect import collect
from .records import output_marker
from .requests import make_request, on_cluster, read_request, write_request
from .settings import settings_for, write_settings


class JobPlan:
    """What a tick may do about processing, after collecting the jobs of earlier ticks.

    ``held``: runs whose job is still queued or running (never submitted
    again); ``reprocess``: this tick's reprocessing targets; ``exclude``: runs
    the ordinary stage chain must leave alone (held, or being reprocessed).
    """

    def __init__(self):
        self.held: dict[str, str | None] = {}
        self.reprocess: list[str] = []
        self.exclude: set[str] = set()
        self.messages: list[str] = []  # information
        self.warnings: list[str] = []  # a human should look
        self.finished: list[str] = []
        self.failed: list[str] = []


def reprocess_marker(run: str, tag: str) -> str:
    return output_marker("reprocess_run", run, tag)


def plan_jobs(db, config: dict) -> JobPlan:
    """Collect finished jobs, then choose this tick's reprocessing targets."""
    plan = JobPlan()
    if on_cluster(config):
        write_settings(config)
    collected = collect(db, config)
    plan.held = dict(collected.held)
    plan.finished, plan.failed = collected.finished, collected.failed
    if plan.finished:
        plan.messages.append(f"jobs finished since the last tick: {', '.join(plan.finished)}")
    if plan.held:
        plan.messages.append(
            f"jobs still queued or running (left alone): "
            f"{', '.join(f'{r} ({j})' for r, j in sorted(plan.held.items()))}"
        )
    plan.exclude |= set(plan.held)
    for run in config["tick"]["reprocess"]:
        try:
            process.request_reprocess(db, config, run)
        except (process.ReprocessRefused, Exception) as exc:  # noqa: BLE001 - one line per run, the others go on
            plan.warnings.append(str(exc) if isinstance(exc, process.ReprocessRefused) else f"run {run}: {exc}")
    _plan_reprocessing(db, config, plan)
    return plan


def _plan_reprocessing(db, config: dict, plan: JobPlan) -> None:
    """This tick's reprocessing targets, their requests written."""
    wanted = set(config["tick"]["runs"]) | set(config["tick"]["reprocess"])
    limit = config["processing"]["max_attempts"]
    for doc in db.reprocess_pending():
        run = doc["name"]
        plan.exclude.add(run)
        if run in plan.held or (wanted and run not in wanted):
            continue
        tag = doc["reprocess"]["tag"]
        p = doc.get("processing") or {}
        if doc["processed_status"] == "failed" and p.get("tag") == tag and p.get("attempts", 0) >= limit:
            plan.warnings.append(
                f"run {run}: reprocessing failed {p['attempts']} times (exit {p.get('exit_code')}); "
                f"see its log, then `fulliautomatix retry {run}`"
            )
            continue
        if doc["raw_status"] in ("compressing", "archiving", "transferring"):
            continue  # the raw data is on its way; a later tick
        try:
            write_request(config, make_request(config, doc, tag))
        except walltime.WalltimeTooLong as exc:
            plan.warnings.append(str(exc))
            continue
        plan.reprocess.append(reprocess_marker(run, tag))


def limit_targets(
    db, config: dict, docs: list[dict], targets: list[tuple[str, str]], jobs: JobPlan
) -> list[tuple[str, str]]:
    """Write the requests of runs whose chain includes processing, within processing.max_jobs.

    A run over the limit, or whose walltime no queue allows, keeps the stages
    before processing (its transfer still happens) and waits for a later tick.
    """
    from .. import selection

    if not on_cluster(config):
        return targets
    by_name = {d["name"]: d for d in docs}
    limits = selection.limits(config)
    free = config["processing"]["max_jobs"] - len(jobs.held) - len(jobs.reprocess)
    out, waiting = [], []
    for last, run in targets:
        doc = by_name[run]
        first, _ = selection.start_stage(doc, limits)
        chain = selection.CHAIN[selection.CHAIN.index(first) : selection.CHAIN.index(last) + 1]
        if "process" not in chain or doc["processed_status"] == "processed":
            out.append((last, run))
            continue
        if free <= 0:
            waiting.append(run)
            problem = "wait"
        else:
            problem = _request_or_problem(db, config, doc, jobs)
            free -= problem is None
        if problem is None:
            out.append((last, run))
        elif chain[0] == "transfer":
            out.append(("transfer", run))
    if waiting:
        jobs.messages.append(
            f"{len(waiting)} runs wait for a free job slot (processing.max_jobs="
            f"{config['processing']['max_jobs']}): {', '.join(waiting[:10])}"
            f"{' ...' if len(waiting) > 10 else ''}"
        )
    return out


def _request_or_problem(db, config: dict, doc: dict, jobs: JobPlan) -> str | None:
    """Write the run's request; None, or "walltime" when no queue allows it (a warning, and the run's error)."""
    try:
        write_request(config, make_request(config, doc))
        return None
    except walltime.WalltimeTooLong as exc:
        jobs.warnings.append(str(exc))
        try:
            db.update(doc["name"], {"processing.error": str(exc)}, doc=doc)
        except Exception:  # noqa: BLE001 - the warning line stands
            pass
        return "walltime"


def job_resources(config: dict, run: str, attempt: int = 1, docs: dict | None = None) -> dict:
    """Queue, walltime (HH:MM:SS) and minutes of a run's next job, for Snakemake's resources.

    Read from the run's request (written by the tick's sync_runs_db job), so
    the same answer comes in the main process and in the job; before that job
    (a dry run) computed from the run's document in `docs`, writing nothing.
    Snakemake's own restarts (attempt > 1) grow the walltime like a walltime
    kill would.
    """
    if not on_cluster(config):
        return {"queue": "local", "walltime": "", "minutes": 0}
    try:
        req = read_request(config["work_dir"], run)
    except SchedulerError:
        doc = (docs or {}).get(run)
        try:
            req = make_request(config, doc) if doc else None
        except walltime.WalltimeTooLong:
            req = None
        if req is None:
            # Not planned by this tick (its output exists, or it is held); never submitted then.
            first = walltime.queues(fa_config.cluster(config))[0]
            return {"queue": first.name, "walltime": walltime.format(60), "minutes": 1}
    if attempt > 1:
        req = {
            **req,
            **walltime.plan(
                run,
                req["events"],
                req["source"],
                config["processing"]["walltime"],
                fa_config.cluster(config),
                int(req.get("timeouts", 0)) + attempt - 1,
            ),
        }
    return {"queue": req["queue"], "walltime": req["walltime"], "minutes": walltime.parse(req["walltime"]) // 60}


def submission_preview(config: dict, doc: dict) -> list[str]:
    """What a cluster tick would submit for a run (for --dry_run); nothing on the local profile."""
    if not on_cluster(config):
        return []
    try:
        req = make_request(config, doc)
    except walltime.WalltimeTooLong as exc:
        return [f"NOT SUBMITTED: {exc}"]
    settings = settings_for(config)
    scheduler = adapter(settings)
    job_dir = f"{config['work_dir']}/jobs/{doc['name']}/<attempt>"
    argv = scheduler.argv(
        scheduler.submit_argv(req["queue"], req["walltime"], f"{settings['job_name_prefix']}-{doc['name']}", job_dir)
    )
    return [f"$ {shlex.join(argv)}   # the job runs:"]
