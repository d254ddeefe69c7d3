"""Stage 2: process a run with the configured processor -- here or as a batch job.

The command is ``processing.command``: a template split into words first and
filled in word by word ({raw}, {output}, {pax_config}, {run}), so no value is
ever parsed by a shell.  Output goes to ``<scratch>/processed/<run>/<version>``;
a new processor version never overwrites an older output, and reprocessing
writes to ``<version>-r<k>`` next to the outputs that already exist.

On a cluster (a profile with a scheduler) the tick's main process writes one
*request* per run, ``state/requests/<run>.json`` (source, events, output,
walltime, queue), so neither the job nor Snakemake's resource functions need
the runs DB.  The job records ``processing`` when it starts, either in the runs
DB itself or, where compute nodes cannot reach it
(``processing.job_db_access: markers``), in ``state/started/<run>.json`` for
the host to replay; and its result in its marker, which the host replays too.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

from . import config as fa_config
from . import hosts, markers, scheduler, stage, states, walltime
from .runsdb import RunsDB


class ProcessingFailed(Exception):
    pass


class ReprocessRefused(Exception):
    pass


def pax_config(config: dict, source: str) -> str:
    configs = config["processing"]["pax_configs"]
    return configs.get(source, configs.get("default", "ASTERIX"))


def paths(config: dict, run: str, tag: str | None = None) -> dict[str, str]:
    scratch = fa_config.cluster(config)["scratch"]
    version = config["processing"]["version"]
    return {"raw": f"{scratch}/raw/{run}", "output": f"{scratch}/processed/{run}/{tag or version}"}


def command(config: dict, run: str, source: str, raw: str | None = None, output: str | None = None) -> list[str]:
    p = paths(config, run)
    values = {"raw": raw or p["raw"], "output": output or p["output"], "pax_config": pax_config(config, source),
              "run": run, "python": sys.executable}
    try:
        return [word.format(**values) for word in shlex.split(config["processing"]["command"])]
    except (KeyError, IndexError, ValueError) as exc:
        raise fa_config.ConfigError(f"config key processing.command: bad placeholder ({exc})") from None


def tail(path, lines: int = 20) -> str:
    try:
        with open(path, errors="replace") as fh:
            return "".join(fh.readlines()[-lines:])
    except OSError:
        return ""


def on_cluster(config: dict) -> bool:
    return fa_config.cluster(config)["scheduler"] != "local"


def needs_db(config: dict) -> bool:
    """Whether a processing job opens the runs DB (not where nodes cannot reach it)."""
    return not on_cluster(config) or config["processing"]["job_db_access"] == "direct"


# -- requests (the tick's sync_runs_db job) ------------------------------------------------

def make_request(config: dict, doc: dict, tag: str | None = None) -> dict:
    """The processing request of one run; raises WalltimeTooLong (message names the run)."""
    run = doc["name"]
    p = doc.get("processing") or {}
    same = tag is None or p.get("tag") == tag
    timeouts = int(p.get("timeouts", 0)) if same else 0
    attempts = int(p.get("attempts", 0)) if (same and doc.get("processed_status") != "processed") else 0
    cl = fa_config.cluster(config)
    req = {"run": run, "source": doc["source"], "events": doc["events"], "version": config["processing"]["version"],
           "tag": tag, "output": paths(config, run, tag)["output"], "attempts": attempts, "timeouts": timeouts,
           "previous_outputs": list(doc.get("processed_outputs") or []),
           "raw": f"{cl['scratch']}/reprocess/{run}/{run}" if tag else paths(config, run)["raw"]}
    if cl["scheduler"] != "local":
        req.update(walltime.plan(run, doc["events"], doc["source"], config["processing"]["walltime"], cl, timeouts))
    else:
        req.update(walltime="", seconds=0, queue="local")
    return req


def write_request(config: dict, req: dict) -> None:
    markers.write(scheduler.request_path(config["work_dir"], req["run"]), req)


def read_request(config: dict, run: str) -> dict:
    return scheduler.read_request(config["work_dir"], run)


# -- the job ---------------------------------------------------------------------------

def _record_start(db: RunsDB | None, config: dict, run: str, req: dict, job: dict, doc: dict | None) -> dict | None:
    started = {"run": run, "job_id": job.get("job_id"), "node": job.get("node"), "started": states.now()}
    if db is None:
        markers.write(scheduler.started_path(config["work_dir"], run), started)
        return None
    fields = {"processing.started": started["started"], "processing.node": started["node"]}
    if doc["processed_status"] != "queued":
        # Not recorded at submission (a scheduler plugin without our submit command, or a lost write).
        fields = {"processing": {
            "job_id": job.get("job_id"), "queue": job.get("queue") or req.get("queue"),
            "walltime": req.get("walltime"), "attempts": int(req.get("attempts", 0)) + 1, "exit_code": None,
            "processor_version": req["version"], "output": req["output"], "tag": req.get("tag"),
            "timeouts": req.get("timeouts", 0), "timed_out": None, "log_tail": None, "error": None,
            "started": started["started"], "node": started["node"]}}
    return stage.claim(db, config, doc, states.PROCESSED, "processing", via=("queued",), fields=fields,
                       note=f"job {job.get('job_id')} started")


def _start_here(db: RunsDB, config: dict, run: str, req: dict, doc: dict, argv: list[str], attempts: int,
                tag: str | None) -> dict:
    """Record a processing attempt on this machine (local profile), ``queued`` and ``processing`` in one
    write; never beyond processing.max_attempts."""
    limit = config["processing"]["max_attempts"]
    if attempts > limit:
        raise ProcessingFailed(f"run {run}: {attempts - 1} processing attempts made already "
                               f"(processing.max_attempts {limit}); see its log, then `fulliautomatix retry {run}`")
    fields = {"processing.started": states.now()}
    if doc["processed_status"] != "queued":
        fields = {"processing": {
            "attempts": attempts, "queue": "local", "job_id": None, "walltime": None, "timeouts": 0,
            "processor_version": config["processing"]["version"], "output": req["output"], "command": argv,
            "exit_code": None, "tag": tag, "started": fields["processing.started"]}}
    return stage.claim(db, config, doc, states.PROCESSED, "processing", via=("queued",), fields=fields)


def _run_processor(argv: list[str], log) -> int:
    """Run the processor; its exit status (127/126 with a line in the log when it cannot be started)."""
    from . import claims

    try:
        return subprocess.run(argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                              pass_fds=claims.held_fds()).returncode
    except FileNotFoundError as exc:
        log.write(f"processor {argv[0]!r} not found ({exc}); check processing.command\n")
        return 127
    except OSError as exc:
        log.write(f"processor {argv[0]!r} cannot be started ({exc}); check processing.command\n")
        return 126


def process_run(db: RunsDB | None, config: dict, run: str, input_marker: str, marker_path: str, log,
                log_path: str, tag: str | None = None) -> dict:
    """Process one run here (local profile) or as a batch job; write its marker; return it.

    The skeleton of every stage (fulliautomatix.stage): the run's snapshot,
    its input marker replayed, one write for its start, the processor, the
    marker, one write for its result.
    """
    hosts.check_run_name(run, config["run_name_pattern"])
    log_path = os.path.abspath(log_path)
    doc = None
    if db is not None:
        # A batch job's run was written at its submission, after the tick's snapshot: read it.
        doc = db.get(run) if on_cluster(config) else stage.take(db, config, run)
        if tag is None:
            doc = stage.replay(db, config, input_marker, doc)
    req = read_request(config, run) if on_cluster(config) else make_request(config, doc, tag)
    prev = (doc or {}).get("processing") or {}
    if (tag is None and doc is not None and doc["processed_status"] == "processed"
            and prev.get("processor_version") == config["processing"]["version"]):
        return stage.marker_again(marker_path, markers.run_marker("process", run, {"processing": prev}, prev), log)
    raw = markers.read(input_marker).get("raw", req["raw"]) if tag else req["raw"]
    argv = command(config, run, req["source"], raw=raw, output=req["output"])
    attempts = int(req.get("attempts", 0)) + 1
    if on_cluster(config):
        doc = _record_start(db, config, run, req, scheduler.job_context() or {}, doc)
    else:
        doc = _start_here(db, config, run, req, doc, argv, attempts, tag)
    log.write(f"$ {shlex.join(argv)}\n")
    log.flush()
    t0 = time.monotonic()
    rc = _run_processor(argv, log)
    seconds = round(time.monotonic() - t0, 3)
    if rc != 0:
        log.flush()
        raise _failed(db, config, run, doc, rc, attempts, seconds, log_path)
    marker = _processed_marker(config, run, req, seconds, tag)
    stage.record(db, config, marker, marker_path, doc, "processed", log)
    if tag and Path(raw).resolve().is_relative_to(Path(req["raw"]).parent.resolve()):
        shutil.rmtree(Path(raw).parent, ignore_errors=True)  # the staged copy; the archived one remains
        Path(input_marker).unlink(missing_ok=True)
    return marker


def _processed_marker(config: dict, run: str, req: dict, seconds: float, tag: str | None) -> dict:
    """The marker of a run the processor finished (exit 0)."""
    version, finished = config["processing"]["version"], states.now()
    outputs = list(req.get("previous_outputs") or [])
    outputs.append({"version": version, "output": req["output"], "tag": tag, "finished": finished})
    fields = {"processing.exit_code": 0, "processing.seconds": seconds, "processing.finished": finished,
              "processing.log_tail": None, "processing.error": None, "processing.timed_out": False,
              "processing.processor_version": version, "processing.output": req["output"],
              "processed_outputs": outputs}
    if tag:
        fields["reprocess"] = None
    marker = markers.run_marker("process", run, fields, {"seconds": seconds, "output": req["output"], "tag": tag})
    marker["via"] = ["processing"]  # a replay shows the job's start, as it happened
    return marker


def _failed(db: RunsDB | None, config: dict, run: str, doc: dict | None, rc: int, attempts: int, seconds: float,
            log_path: str) -> ProcessingFailed:
    """Record a failed processing attempt; the error to raise (its line says what comes next)."""
    if db is not None:
        stage.give_back(db, config, doc, states.PROCESSED, "failed", note=f"exit {rc}",
                        fields={"processing.exit_code": rc, "processing.log_tail": tail(log_path),
                                "processing.seconds": seconds, "processing.timed_out": False,
                                "processing.finished": states.now()})
    hint = stage.retry_hint(run, config["processing"]["max_attempts"] - attempts, fix=f"see {log_path}")
    return ProcessingFailed(f"run {run}: processor exited with {rc}; {hint}")


# -- reprocessing: raw data back on scratch ---------------------------------------------

def stage_raw(db: RunsDB, config: dict, run: str, marker_path: str, log) -> dict:
    """Make the run's raw data readable for reprocessing; write the staged marker.

    A run still ``ondeck`` has its plain copy on scratch.  Once compressed, the
    plain copy is gone: the compressed copy on scratch (or, once archived, the
    archive) is unpacked into ``<scratch>/reprocess/<run>/`` and verified
    against the transfer checksums.  That copy is removed when reprocessing
    succeeds; the compressed or archived copy stays the copy of record.
    """
    from . import archive

    hosts.check_run_name(run, config["run_name_pattern"])
    doc = db.get(run)
    raw_status = doc["raw_status"]
    scratch = Path(fa_config.cluster(config)["scratch"])
    dest = scratch / "reprocess" / run
    t = doc.get("transfer") or {}
    if raw_status == "ondeck":
        where, temporary = paths(config, run)["raw"], False
    elif raw_status == "compressed":
        src = Path((doc.get("compressed") or {}).get("path", ""))
        if not src.is_file():
            raise ReprocessRefused(f"run {run}: compressed copy {src} is missing")
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir(parents=True)
        argv = ["tar", "-C", str(dest), "-I", "zstd", "-xf", str(src)]
        log.write(f"$ {shlex.join(argv)}\n")
        proc = subprocess.run(argv, capture_output=True, text=True)
        if proc.returncode != 0:
            raise ReprocessRefused(f"run {run}: cannot unpack {src}: {proc.stderr.strip()}")
        where, temporary = str(dest / run), True
    elif raw_status == "archived":
        shutil.rmtree(dest, ignore_errors=True)
        try:
            where, temporary = str(archive.restore(db, config, run, dest)), True
        except archive.ArchiveError as exc:
            raise ReprocessRefused(str(exc)) from None
    else:
        raise ReprocessRefused(f"run {run}: raw data is {raw_status}; reprocess it once that is done")
    problems = hosts.compare_manifests(t.get("checksums") or [], hosts.manifest(
        hosts.Host(), where, t.get("checksum_algorithm", config["transfer"]["checksum"])))
    if problems:
        raise ReprocessRefused(f"run {run}: raw copy at {where} does not verify ({problems[0]})")
    log.write(f"raw data of {run} at {where} (verified{', staged for reprocessing' if temporary else ''})\n")
    marker = {"run": run, "raw": where, "temporary": temporary, "from": raw_status, "at": states.now()}
    markers.write(marker_path, marker)
    return marker


def request_reprocess(db: RunsDB, config: dict, run: str) -> str:
    """Record a reprocessing request; return its tag.  The old output stays."""
    doc = db.get(run)
    pending = doc.get("reprocess") or {}
    if pending.get("tag"):
        return pending["tag"]
    if doc["processed_status"] != "processed":
        raise ReprocessRefused(f"run {run}: processed_status is {doc['processed_status']}; only a processed "
                               "run can be reprocessed")
    if doc["raw_status"] in ("acquired", "transferring", "compressing", "archiving"):
        raise ReprocessRefused(f"run {run}: raw data is {doc['raw_status']}; try again once that is done")
    outputs = list(doc.get("processed_outputs") or [])
    p = doc.get("processing") or {}
    if not outputs and p.get("output"):  # processed before outputs were listed
        outputs = [{"version": p.get("processor_version"), "output": p["output"], "tag": p.get("tag"),
                    "finished": p.get("finished")}]
    # Where it goes: <version>-r<k> beside the k outputs the run already has.
    tag = f"{config['processing']['version']}-r{len(outputs)}"
    db.update(run, {"reprocess": {"tag": tag, "version": config["processing"]["version"],
                                  "requested": states.now()}, "processed_outputs": outputs}, doc=doc)
    return tag


# -- planning a tick's processing (the tick's sync_runs_db job) -------------------------

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
    return f"state/reprocessed/{run}/{tag}.json"


def plan_jobs(db: RunsDB, config: dict) -> JobPlan:
    """Collect finished jobs, then choose this tick's reprocessing targets."""
    plan = JobPlan()
    if on_cluster(config):
        scheduler.write_settings(config)
    collected = scheduler.collect(db, config)
    plan.held = dict(collected.held)
    plan.finished, plan.failed = collected.finished, collected.failed
    if plan.finished:
        plan.messages.append(f"jobs finished since the last tick: {', '.join(plan.finished)}")
    if plan.held:
        plan.messages.append(f"jobs still queued or running (left alone): "
                             f"{', '.join(f'{r} ({j})' for r, j in sorted(plan.held.items()))}")
    plan.exclude |= set(plan.held)
    for run in config["tick"]["reprocess"]:
        try:
            request_reprocess(db, config, run)
        except (ReprocessRefused, Exception) as exc:  # noqa: BLE001 - one line per run, the others go on
            plan.warnings.append(str(exc) if isinstance(exc, ReprocessRefused) else f"run {run}: {exc}")
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
            plan.warnings.append(f"run {run}: reprocessing failed {p['attempts']} times (exit {p.get('exit_code')}); "
                                 f"see its log, then `fulliautomatix retry {run}`")
            continue
        if doc["raw_status"] in ("compressing", "archiving", "transferring"):
            continue  # the raw data is on its way; a later tick
        try:
            write_request(config, make_request(config, doc, tag))
        except walltime.WalltimeTooLong as exc:
            plan.warnings.append(str(exc))
            continue
        plan.reprocess.append(reprocess_marker(run, tag))
    return plan


def limit_targets(db: RunsDB, config: dict, docs: list[dict], targets: list[tuple[str, str]],
                  jobs: JobPlan) -> list[tuple[str, str]]:
    """Write the requests of runs whose chain includes processing, within processing.max_jobs.

    A run over the limit, or whose walltime no queue allows, keeps the stages
    before processing (its transfer still happens) and waits for a later tick.
    """
    from . import selection

    if not on_cluster(config):
        return targets
    by_name = {d["name"]: d for d in docs}
    limits = selection.limits(config)
    free = config["processing"]["max_jobs"] - len(jobs.held) - len(jobs.reprocess)
    out, waiting = [], []
    for last, run in targets:
        doc = by_name[run]
        first, _ = selection.start_stage(doc, limits)
        chain = selection.CHAIN[selection.CHAIN.index(first): selection.CHAIN.index(last) + 1]
        if "process" not in chain or doc["processed_status"] == "processed":
            out.append((last, run))
            continue
        problem = None
        if free <= 0:
            waiting.append(run)
            problem = "wait"
        else:
            try:
                write_request(config, make_request(config, doc))
                free -= 1
            except walltime.WalltimeTooLong as exc:
                jobs.warnings.append(str(exc))
                problem = "walltime"
                try:
                    db.update(run, {"processing.error": str(exc)}, doc=doc)
                except Exception:  # noqa: BLE001 - the warning line stands
                    pass
        if problem is None:
            out.append((last, run))
        elif chain[0] == "transfer":
            out.append(("transfer", run))
    if waiting:
        jobs.messages.append(f"{len(waiting)} runs wait for a free job slot (processing.max_jobs="
                             f"{config['processing']['max_jobs']}): {', '.join(waiting[:10])}"
                             f"{' ...' if len(waiting) > 10 else ''}")
    return out


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
        req = read_request(config, run)
    except scheduler.SchedulerError:
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
        req = {**req, **walltime.plan(run, req["events"], req["source"], config["processing"]["walltime"],
                                      fa_config.cluster(config), int(req.get("timeouts", 0)) + attempt - 1)}
    return {"queue": req["queue"], "walltime": req["walltime"], "minutes": walltime.parse(req["walltime"]) // 60}


def submission_preview(config: dict, doc: dict) -> list[str]:
    """What a cluster tick would submit for a run (for --dry_run); nothing on the local profile."""
    if not on_cluster(config):
        return []
    try:
        req = make_request(config, doc)
    except walltime.WalltimeTooLong as exc:
        return [f"NOT SUBMITTED: {exc}"]
    s = scheduler.settings_for(config)
    cmds = scheduler.Commands(s)
    job_dir = f"{config['work_dir']}/jobs/{doc['name']}/<attempt>"
    argv = cmds._argv(cmds.submit_argv(req["queue"], req["walltime"], f"{s['job_name_prefix']}-{doc['name']}",
                                       job_dir))
    return [f"$ {shlex.join(argv)}   # the job runs:"]
