"""fulliautomatix: the cron wrapper and the operators' commands.

    fulliautomatix                          # one cron tick: every stage, every pending run
    fulliautomatix --transfer --run 12      # only transfer run number 12
    fulliautomatix --dry_run                # print what would be done, change nothing
    fulliautomatix status                   # where every run is, and which are stuck
    fulliautomatix check                    # one line and exit 0/1/2/3 for Nagios (OK/WARNING/CRITICAL/UNKNOWN)
    fulliautomatix status 170101_0001       # one run's fields and history
    fulliautomatix report --days 7          # the operators' page: backlog, throughput, failures, attention
    fulliautomatix simulate-daq --runs 8    # write simulated runs, as the DAQ does
    fulliautomatix retry 170101_0001        # clear a run's failure count after a fix
    fulliautomatix restore 170101_0001 --to /tmp/restored
    fulliautomatix audit                    # read archived runs back; list strays and missing copies
    fulliautomatix db serve --port 27017    # run the embedded runs DB for other clients
    fulliautomatix db migrate               # make the string times of older run documents BSON dates
    fulliautomatix paths snakefile          # where the workflow is, for running Snakemake directly

A cron line (every 5 minutes; only warnings and errors reach cron's mail, the dated log has everything):
    */5 * * * * /path/to/fulliautomatix/.venv/bin/fulliautomatix --log warning
"""

from __future__ import annotations

import argparse
import datetime as _dt
import logging
import os
import shlex
import sys
from pathlib import Path

import yaml

from . import embedded, finish, hosts, notify, planning, progress, runsdb, states, tickguard, tickrun
from . import config as fa_config
from .batch.collect import collect
from .cli_commands import HANDLERS, Failure, cmd_paths, resolve_runs

log = logging.getLogger("fulliautomatix")

STAGES = ("transfer", "process", "compress", "archive")
COMMANDS = {  # `fulliautomatix COMMAND --help` for each one's options
    "status": "where every run is, and which runs need attention (or one run's history)",
    "check": "one line and exit status 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN, as Nagios plugins do",
    "report": "write the operators' report: one offline HTML page (or --json) of the last days",
    "simulate-daq": "write simulated raw runs and their runs DB documents, as the DAQ does",
    "restore": "fetch runs back from the archive, verified against their checksums",
    "retry": "clear a held run's failure counts, so the next tick tries it again",
    "db": "db serve: run the embedded runs DB for other clients; db migrate: string times become dates",
    "paths": "print where the workflow, profiles and default config are (for running Snakemake)",
    "audit": "read archived runs back and compare them with their checksums; list strays and missing copies",
}
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


def _global_options(ap: argparse.ArgumentParser, defaults: bool) -> None:
    d = None if not defaults else argparse.SUPPRESS
    ap.add_argument(
        "--config", default=d, help="site config, merged over the default one (`fulliautomatix paths config`)"
    )
    ap.add_argument(
        "--log", default=d, type=str.lower, choices=LOG_LEVELS, help="logging level, any case (default: info)"
    )


def tick_parser() -> argparse.ArgumentParser:
    commands = "\n".join(f"  {name:<14}{what}" for name, what in COMMANDS.items())
    examples = __doc__.split("\n\n", 1)[1]
    ap = argparse.ArgumentParser(
        prog="fulliautomatix",
        description="Fulliautomatix: ASTERIX data management (one cron tick).",
        epilog=f"commands (fulliautomatix COMMAND --help for their options):\n{commands}\n\nexamples:\n{examples}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--version", action="version", version=f"%(prog)s {fa_config.version()}")
    _global_options(ap, defaults=False)
    ap.add_argument("--transfer", action="store_true", help="Transfer data from daq to cluster")
    ap.add_argument("--process", action="store_true", help="Process data")
    ap.add_argument("--compress", action="store_true", help="Compress processed raw data")
    ap.add_argument("--archive", action="store_true", help="Archive batches of compressed runs")
    ap.add_argument("--reprocess", nargs="+", metavar="REPROCESS", help="Reprocess given runs")
    ap.add_argument("--run", nargs="+", metavar="RUN", help="Specific runs (name or number) to handle")
    ap.add_argument(
        "--dry_run",
        "--dry-run",
        dest="dry_run",
        action="store_true",
        help="Dry run (print what would be done; change nothing)",
    )
    ap.add_argument("--cluster", help="Which cluster to process on (any cluster in the config)")
    ap.add_argument("command", nargs="?", choices=COMMANDS, help=argparse.SUPPRESS)
    ap.add_argument("args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return ap


def command_parser(command: str) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog=f"fulliautomatix {command}", description=COMMANDS[command])
    _global_options(ap, defaults=True)
    if command == "status":
        ap.add_argument("runs", nargs="*", help="runs (name or number) to show in full")
        ap.add_argument(
            "--check", action="store_true", help="exit status 3 while any run is not yet archived (for scripts)"
        )
        ap.add_argument("--json", action="store_true", help="print the counts and the attention list as JSON")
    elif command == "report":
        ap.add_argument("--out", type=Path, help="where to write the page (default: report.path in the config)")
        ap.add_argument("--days", type=float, help="how many days back to look (default: report.days)")
        ap.add_argument(
            "--json", action="store_true", help="print the figures as JSON instead (and write the page only with --out)"
        )
    elif command == "simulate-daq":
        ap.add_argument("--runs", type=int, required=True, help="how many runs to write")
        ap.add_argument("--events", type=int, default=1000, help="events per run (default 1000)")
        ap.add_argument("--source", default="physics", help="run source, e.g. physics or LED")
    elif command == "restore":
        ap.add_argument("runs", nargs="+", help="runs (name or number) to fetch back from the archive")
        ap.add_argument("--to", type=Path, default=Path("restored"), help="directory to restore into")
    elif command == "retry":
        ap.add_argument("runs", nargs="+", help="runs (name or number) whose failure count to clear")
    elif command == "db":
        ap.add_argument(
            "action",
            choices=["serve", "migrate"],
            help="serve: run the embedded runs DB in the foreground; migrate: convert the string "
            "times older versions wrote into run documents to BSON dates and add their updated_day "
            "(idempotent, resumable)",
        )
        ap.add_argument("--port", type=int, default=27017, help="serve: loopback port (default 27017)")
        ap.add_argument("--batch", type=int, default=1000, help="migrate: documents per read and write (default 1000)")
    elif command == "audit":
        ap.add_argument(
            "runs",
            nargs="*",
            help="archived runs (name or number) to read back; none: the oldest audited first, and strays",
        )
        ap.add_argument("--limit", type=int, default=100, help="archived runs to read back at most (default 100)")
    elif command == "paths":
        ap.add_argument(
            "name",
            nargs="?",
            choices=list(fa_config.resource_paths()),
            help="print only this path (e.g. for $(fulliautomatix paths snakefile))",
        )
    return ap


class _Redacted(logging.Filter):
    """Masks the credentials of any URI in a log line (runsdb.redact), on screen and in the dated log."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = runsdb.redact(record.getMessage()), None
        return True


def setup_logging(level: str, log_dir: str | None) -> None:
    """The terminal gets `level`; the dated log at least INFO (so `--log warning` keeps cron quiet, not the log)."""
    root = logging.getLogger("fulliautomatix")
    wanted = getattr(logging, level.upper())
    root.setLevel(min(wanted, logging.INFO))
    root.handlers.clear()
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(wanted)
    console.setFormatter(logging.Formatter("fulliautomatix: %(message)s"))
    console.addFilter(_Redacted())
    root.addHandler(console)
    if log_dir:
        Path(log_dir).mkdir(parents=True, exist_ok=True)
        day = _dt.date.today().isoformat()
        fh = logging.FileHandler(Path(log_dir) / f"fulliautomatix-{day}.log")
        fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        fh.addFilter(_Redacted())
        root.addHandler(fh)


# -- the cron tick -------------------------------------------------------------


def _resolve_tick_runs(db: runsdb.RunsDB, args, pattern: str) -> tuple[list[str], list[str], list[str]]:
    """(runs of --run, runs of --reprocess, error lines) by name (matching `pattern`) or number."""
    runs, errors = resolve_runs(db, args.run or [], pattern)
    reprocess, more = resolve_runs(db, args.reprocess or [], pattern)
    errors += more
    for e in errors:
        log.error("%s", e)
    if args.run and not runs:
        raise Failure("none of the runs given with --run is in the runs DB; nothing done")
    if args.reprocess and not reprocess:
        raise Failure("none of the runs given with --reprocess is in the runs DB; nothing done")
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
    log.info("tick %s: stages %s%s", tick_id, ", ".join(stages), f"; runs {', '.join(runs)}" if runs else "")
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


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = tick_parser().parse_args(argv)
    if args.command:
        sub = command_parser(args.command).parse_args(args.args)
        for key, value in vars(sub).items():
            setattr(args, key, value)
    elif args.args:
        tick_parser().error(f"unrecognized arguments: {' '.join(args.args)}")
    if args.command == "paths":
        return cmd_paths(args)
    level = args.log or "info"
    setup_logging(level, None)
    try:
        overrides = {"tick": {"cluster": args.cluster}} if getattr(args, "cluster", None) else {}
        config = fa_config.load(args.config, overrides)
        setup_logging(level, config["log_dir"])
        if args.command:  # the tick's ssh connections are the tick's: a command makes its own
            return HANDLERS[args.command](args, {**config, "ssh_multiplex": False})
        return tick(args, config)
    except (
        Failure,
        fa_config.ConfigError,
        runsdb.RunsDBError,
        embedded.EmbeddedError,
        states.TransitionRefused,
    ) as exc:
        if args.command == "check":
            print(f"FULLIAUTOMATIX UNKNOWN - {exc}")
            return 3
        log.error("%s", exc)
        if isinstance(exc, runsdb.RunsDBError) and not args.command and not args.dry_run:
            for line in notify.report_failure(config, "RUNSDB", str(exc), "fulliautomatix check"):
                log.warning("%s", line)
        return 1
    except KeyboardInterrupt:
        log.error("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
