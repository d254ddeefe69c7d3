"""The cron wrapper's tick (`fulliautomatix` with no command): take the tick lock, run the tick's
Snakemake within bounds (:mod:`fulliautomatix.tickrun`), collect its batch jobs and finish.

Apart from :mod:`fulliautomatix.cli` so that the operators' commands (status,
check) do not import the tick's modules: 0.1 s of every command's start-up.
"""

from __future__ import annotations

import logging
import os
import shlex
import sys
from pathlib import Path

import yaml

from . import finish, hosts, planning, progress, runsdb, states, tickguard, tickrun
from . import config as fa_config
from .batch.collect import collect
from .cli_commands import Failure, resolve_runs

log = logging.getLogger("fulliautomatix")

STAGES = states.STAGES


def _resolve_tick_runs(db: runsdb.RunsDB, args, pattern: str) -> tuple[list[str], list[str], list[str]]:
    """(runs of --run, runs of --reprocess, error lines) by name (matching `pattern`) or number."""
    runs, errors = resolve_runs(db, args.run or [], pattern)
    reprocess, more = resolve_runs(db, args.reprocess or [], pattern)
    errors += more
    nothing = (args.run and not runs) or (args.reprocess and not reprocess)
    for e in errors[:-1] if nothing else errors:
        log.error("%s", e)
    if nothing:  # the last line says so: one line for one run that is not found
        raise Failure(f"{errors[-1]}; nothing done")
    return runs, reprocess, errors


def tick(args, config: dict) -> int:
    # --reprocess alone reprocesses only; stage flags beside it ask for more.
    stages = [s for s in STAGES if getattr(args, s)] or ([] if args.reprocess else list(STAGES))
    state = fa_config.state_dir(config)
    if args.dry_run:  # reads only: no lock, no write (beside a running tick too)
        with runsdb.reading(config) as db:
            runs, reprocess, errors = _resolve_tick_runs(db, args, config["run_name_pattern"])
            print(planning.describe(db, config, stages, runs))
        if reprocess:
            print(
                f"reprocess (processor version {config['processing']['version']}, new output beside "
                f"the old one): {', '.join(reprocess)}"
            )
        return 1 if errors else 0
    try:
        tickguard.acquire_for_wrapper(state)
    except tickguard.TickBusy as exc:
        log.info("%s", exc)  # the documented outcome, exit status 0: cron tries again next time
        return 0
    try:
        return _tick_locked(args, config, stages, state)
    finally:  # the tick's ssh connections end with it
        hosts.close_masters(hosts.control_dir(config))


def _tick_locked(args, config: dict, stages: list[str], state: Path) -> int:
    """The tick, holding the tick lock: plan, run Snakemake, collect, finish."""
    with runsdb.connect(config) as db:
        db.ensure_indexes()
        runs, reprocess, errors = _resolve_tick_runs(db, args, config["run_name_pattern"])
        rc, ended = run_snakemake(config, stages, runs, db.uri, state, reprocess)
        if tickrun.profile_submits_jobs(fa_config.cluster(config)["profile"]):
            collect(db, config)  # record at once what this tick's jobs did
        for level, line in finish.after_snakemake(db, config, **ended):
            log.log(level, "%s", line)
    return rc or (1 if errors else 0)


def run_snakemake(
    config: dict, stages: list[str], runs: list[str], uri: str, state: Path, reprocess: list[str] = ()
) -> tuple[int, dict]:
    """Run the tick's Snakemake; (exit status, how it ended: for finish.after_snakemake)."""
    tick_id = planning.tick_id(config)
    tick_file = _write_tick_config(config, tick_id, stages, runs, state, reprocess)
    argv, env = _snakemake_command(config, tick_file, uri, state)
    also = (f"; runs {', '.join(runs)}" if runs else "") + (f"; reprocess {', '.join(reprocess)}" if reprocess else "")
    log.info("tick %s: stages %s%s", tick_id, ", ".join(stages) or "none", also)
    log.debug("$ %s", shlex.join(argv))
    log_file = Path(config["log_dir"]) / "snakemake" / f"{tick_id}.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    batch = tickrun.profile_submits_jobs(fa_config.cluster(config)["profile"])
    live = progress.LiveProgress(log_file, config["work_dir"]) if progress.LiveProgress.wanted() else None
    try:
        returncode, detached = tickrun.run_bounded(
            argv,
            cwd=config["work_dir"],
            env=env,
            log_file=log_file,
            work_dir=config["work_dir"],
            wait_seconds=config["processing"]["tick_wait_seconds"] if batch else None,
            pass_fds=tickguard.wrapper_fds(),
            on_poll=live,
        )
    finally:
        if live:
            live.close()
    if batch:
        tickrun.tidy(config["work_dir"], tick_file.parent)  # jobs still to start read their tick's file
    else:
        tick_file.unlink(missing_ok=True)
    ended = {"tick": tick_id, "returncode": returncode, "detached": detached, "errors": 0, "log_file": log_file}
    return _report_end(ended)


def _write_tick_config(
    config: dict, tick_id: str, stages: list[str], runs: list[str], state: Path, reprocess: list[str]
) -> Path:
    """Write the tick's config file (the config, its ``tick`` section for this tick) for Snakemake; its path."""
    tick_file = state / "ticks" / f"{tick_id}.yaml"
    tick_file.parent.mkdir(parents=True, exist_ok=True)
    overrides = {k: v for k, v in config.items() if k != "tick"}
    overrides["tick"] = {
        "id": tick_id,
        "stages": stages,
        "runs": runs,
        "cluster": config["tick"]["cluster"],
        "reprocess": list(reprocess),
    }
    fd = os.open(tick_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # notify.urls may hold passwords
    with os.fdopen(fd, "w") as fh:
        fh.write(yaml.safe_dump(overrides, sort_keys=False))
    return tick_file


def _snakemake_command(config: dict, tick_file: Path, uri: str, state: Path) -> tuple[list[str], dict]:
    """The Snakemake command line for the tick's config file, and its environment: (argv, env)."""
    cluster = fa_config.cluster(config)
    argv = [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(fa_config.ROOT / "workflow" / "Snakefile"),
        "--profile",
        cluster["profile"],
        "--configfile",
        str(tick_file),
    ]
    env = dict(os.environ)
    env[fa_config.DB_ENV] = uri
    env[tickguard.LOCK_ENV] = f"{tickguard.lock_path(state)}:{os.getpid()}"
    if cluster.get("submit_host", "local") == "local":
        env.update(cluster.get("scheduler_env") or {})  # the Slurm executor runs sbatch/squeue itself
    return argv, env


def _report_end(ended: dict) -> tuple[int, dict]:
    """Relay the Snakemake log's report lines and say how the tick ended; (exit status, ended with its errors)."""
    tick_id, returncode, log_file = ended["tick"], ended["returncode"], ended["log_file"]
    errors = ended["errors"] = _relay(log_file)
    if ended["detached"]:
        log.info("tick %s: its batch jobs still run, later ticks collect them", tick_id)
        return (1 if errors else 0), ended
    if returncode not in (0, None):
        log.error("tick %s: some jobs failed; details in %s", tick_id, log_file)
    elif errors:  # e.g. a stage's result the runs DB did not take
        log.error(
            "tick %s finished with %d error%s (above); details in %s",
            tick_id,
            errors,
            "" if errors == 1 else "s",
            log_file,
        )
    return (1 if returncode or errors else 0), ended


def _relay(log_file: Path) -> int:
    """Log the report lines of the Snakemake log (planning.REPORT_PREFIXES); the number of errors among them."""
    errors = 0
    for line in log_file.read_text(errors="replace").splitlines():
        for prefix, level in planning.REPORT_PREFIXES.items():
            if line.startswith(prefix):
                log.log(level, "%s", line[len(prefix) :])
                errors += level >= logging.ERROR
                break
        else:
            if "Building DAG" in line or line.startswith(("WorkflowError", "MissingInput")):
                log.debug("%s", line)
    return errors
