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
import sys
from pathlib import Path


from . import embedded, notify, runsdb, states
from . import config as fa_config
from .cli_commands import HANDLERS, Failure, cmd_paths

log = logging.getLogger("fulliautomatix")

STAGES = states.STAGES
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
        from . import tickwrapper  # here: the operators' commands start without the tick's modules

        return tickwrapper.tick(args, config)
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
