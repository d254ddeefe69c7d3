"""The operators' commands of `fulliautomatix` (status, check, report, simulate-daq, retry, restore, audit,
db, paths): each a handler of the parsed arguments and the loaded config, returning the exit status.

The parser and the cron tick are in :mod:`fulliautomatix.cli`.
"""

from __future__ import annotations

import logging
import re
import signal

# A handler imports the modules only it needs: `status` and `check`, run every few minutes by people and
# monitoring, start without the archive, report and simulation modules (0.05 s of each start).
from . import embedded, healthcheck, runsdb, status
from . import config as fa_config

log = logging.getLogger("fulliautomatix")


class Failure(Exception):
    """An expected failure: one line for the operator, exit status 1."""


def resolve_runs(db: runsdb.RunsDB, refs: list[str], pattern: str | None = None) -> tuple[list[str], list[str]]:
    """(names found, error lines for refs that are not runs); with `pattern`, a ref that is neither a run name
    matching it nor a number is refused before the runs DB is asked (``restore ../../etc``)."""
    names, errors = [], []
    for ref in refs:
        if pattern and not re.fullmatch(pattern, ref) and not ref.isdigit():
            errors.append(f"run {ref!r}: not a run name (run_name_pattern {pattern}) or number; refused")
            continue
        try:
            names.append(db.resolve(ref)["name"])
        except runsdb.UnknownRun as exc:
            errors.append(str(exc))
    return names, errors


def cmd_status(args, config: dict) -> int:
    with runsdb.connect(config) as db:
        if args.runs:
            names, errors = resolve_runs(db, args.runs, config["run_name_pattern"])
            for name in names:
                print(status.run_details(db.get(name)))
            for e in errors:
                log.error("%s", e)
            return 1 if errors else 0
        pending = db.pending(history=True)
        print(status.overview(db.counts(), pending, config, args.json, db=db))
    return 3 if args.check and pending else 0


def cmd_check(args, config: dict) -> int:
    code, line = healthcheck.nagios(config)
    print(line)
    return code


def cmd_report(args, config: dict) -> int:
    if args.days is not None and args.days <= 0:
        raise Failure("--days must be more than 0")
    from . import report

    try:
        report.command(config, args.days, args.out, args.json)
    except report.ReportError as exc:
        raise Failure(str(exc)) from None
    return 0


def _terminated(signum, frame):
    raise KeyboardInterrupt  # so a run being written is removed, as on Ctrl-C


def cmd_simulate(args, config: dict) -> int:
    if args.runs < 1 or args.events < 1:
        raise Failure("--runs and --events must be at least 1")
    from .standins import simulate

    with runsdb.connect(config) as db:
        db.ensure_indexes()
        previous = signal.signal(signal.SIGTERM, _terminated)
        try:
            made = simulate.simulate(db, config, args.runs, args.events, args.source)
        except simulate.Interrupted as exc:
            log.error("simulate-daq: %s", exc)
            return 130
        except simulate.SimulationError as exc:
            raise Failure(f"simulate-daq: {exc}") from None
        finally:
            signal.signal(signal.SIGTERM, previous)
    log.info("simulated %d runs in %s: %s", len(made), config["daq"]["raw_dir"], ", ".join(made))
    return 0


# What `retry` clears: failure counts, and the holds a human's fix resolves.
RETRY_CLEARS = {
    "transfer.attempts": 0,
    "transfer.error": None,
    "transfer.missing": None,
    "processing.attempts": 0,
    "compressed.attempts": 0,
    "compressed.error": None,
    "compressed.held": None,
    "lost": None,
}


def cmd_retry(args, config: dict) -> int:
    """Clear the failure counts of held or failed runs (attention.retry_refusal); any other run is refused."""
    from . import attention

    with runsdb.connect(config) as db:
        names, errors = resolve_runs(db, args.runs, config["run_name_pattern"])
        for name in names:
            doc = db.get(name)
            refused = attention.retry_refusal(doc, config)
            if refused:
                errors.append(refused)
                continue
            db.update(name, dict(RETRY_CLEARS), doc=doc)
            log.info("run %s: failure counts cleared; the next tick tries it again", name)
        for e in errors:
            log.error("%s", e)
    return 1 if errors else 0


def cmd_restore(args, config: dict) -> int:
    from . import archive, hosts

    failed = False
    with runsdb.connect(config) as db:
        names, errors = resolve_runs(db, args.runs, config["run_name_pattern"])
        for e in errors:
            log.error("%s", e)
        for name in names:
            try:
                where = archive.restore(db, config, name, args.to.resolve())
                print(f"{name}: restored to {where} (verified against its recorded checksums)")
            except (archive.ArchiveError, hosts.BadRunName, OSError) as exc:
                log.error("%s", exc)
                failed = True
    return 1 if errors or failed else 0


def cmd_audit(args, config: dict) -> int:
    """The archive's fixity check and strays (fulliautomatix.audit); exit 1 when anything is found."""
    from . import archive, audit

    with runsdb.connect(config) as db:
        names, errors = resolve_runs(db, args.runs, config["run_name_pattern"])
        archived = [doc for doc in (db.resolve(name) for name in names) if _archived_or_refused(doc, errors)]
        for e in errors:
            log.error("%s", e)
        if args.runs and not archived:
            return 1
        found = audit.audit(db, config, args.limit, archive.DebugLog(), archived)
    for line in found.lines():
        print(line)
    return 1 if errors or found.bad or found.strays or found.missing or found.unreachable else 0


def _archived_or_refused(doc: dict, errors: list[str]) -> bool:
    """Whether a run named to `audit` is archived; else the line saying so joins `errors`."""
    if doc.get("raw_status") == "archived":
        return True
    name = doc["name"]
    errors.append(
        f"run {name}: not archived (raw_status {doc.get('raw_status')}), so it has no archived copy to read "
        f"back; nothing audited for it (`fulliautomatix status {name}` says where it is)"
    )
    return False


def cmd_paths(args) -> int:
    """Print the resource paths (no config, no runs DB needed)."""
    paths = fa_config.resource_paths()
    if args.name:
        print(paths[args.name])
    else:
        for name, path in paths.items():
            print(f"{name:<10} {path}")
    return 0


def cmd_db(args, config: dict) -> int:
    if args.action == "migrate":
        if args.batch < 1:
            raise Failure("--batch must be at least 1")
        from . import migrate

        with runsdb.connect(config) as db:
            progress = migrate.migrate_dates(db, out=lambda line: print(line, flush=True), batch=args.batch)
        return 1 if progress.left else 0
    if not 0 < args.port < 65536:  # before anything is written: a bad port in runsdb.addr stalls every command
        raise Failure(f"--port {args.port} is not a TCP port: give one from 1 to 65535, e.g. --port 27017")
    print(f"serving the embedded runs DB on mongodb://127.0.0.1:{args.port}/ (Ctrl-C stops it)", flush=True)
    embedded.serve(fa_config.state_dir(config), args.port)
    return 0


HANDLERS = {
    "status": cmd_status,
    "check": cmd_check,
    "report": cmd_report,
    "simulate-daq": cmd_simulate,
    "retry": cmd_retry,
    "restore": cmd_restore,
    "db": cmd_db,
    "audit": cmd_audit,
}
