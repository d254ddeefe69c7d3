"""The bridge between Snakemake's ``script:`` jobs and the package.

Each ``workflow/scripts/*.py`` file calls :func:`run` with one stage function.
It gives the job a log file of its own attempt (the rule's ``log:`` path is a
link to it, so a rerun never truncates an earlier attempt's log), makes sure
the tick holds its lock and runs DB (:mod:`fulliautomatix.tickguard`),
refuses a forced rebuild of work already done, connects to the runs DB (no
``ping`` first, no ``endSessions`` at the end: :func:`runsdb.connect`), and
turns an expected failure into one line naming the run and what to do (exit
status 1), never a traceback.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path
from typing import NoReturn

import pymongo.errors

from . import claims, hosts, runsdb, states, tickguard
from . import config as fa_config


class AlreadyDone(Exception):
    """A forced rebuild (-f, -R, --forcerun) of a stage whose marker exists."""


# The failures a job reports in one line, by module and class.  A job imports
# only its own stage's module (imports are a large part of a short job's
# time), and an exception of a module that was never imported cannot occur.
EXPECTED_BY_MODULE = {
    "fulliautomatix.archive.backend": ("ArchiveError",),
    "fulliautomatix.compress": ("CompressionError",),
    "fulliautomatix.process": ("ProcessingFailed", "ReprocessRefused"),
    "fulliautomatix.report": ("ReportError",),
    "fulliautomatix.batch": ("SchedulerError",),
    "fulliautomatix.transfer": ("TransferError",),
}
EXPECTED = (
    AlreadyDone,
    claims.Busy,
    tickguard.TickBusy,
    hosts.BadRunName,
    hosts.CommandFailed,
    runsdb.RunsDBError,
    states.TransitionRefused,
    fa_config.ConfigError,
)


def expected() -> tuple[type, ...]:
    """EXPECTED and the stage failures of every stage module this process imported."""
    more = [
        getattr(sys.modules[m], name) for m, names in EXPECTED_BY_MODULE.items() if m in sys.modules for name in names
    ]
    return EXPECTED + tuple(more)


# What a forced rebuild of a finished stage would need instead, by rule.
DONE_HINTS = {
    "transfer_run": "its verified copy is on the cluster already",
    "process_run": "it is processed already",
    "compress_run": "it is compressed and verified already",
    "archive_batch": "the batch is archived and verified already",
}


def attempt_log(log_path: str) -> Path:
    """A new log file for this attempt; the rule's log path becomes a link to it.

    ``logs/process_run/RUN.log`` -> ``RUN/<time>-<pid>.log`` beside it.
    Snakemake deletes a rule's log before each run of the job; it deletes
    only the link, so every earlier attempt's log is kept.
    """
    link = Path(log_path)
    attempts = link.with_suffix("")
    attempts.mkdir(parents=True, exist_ok=True)
    own = attempts / f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}.log"
    own.touch()
    tmp = link.with_name(f".{link.name}.{os.getpid()}")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(os.path.relpath(own, link.parent))
    os.replace(tmp, link)
    return own


def refuse_forced(snakemake) -> None:
    """A stage marker that exists when its job starts was forced (markers are update()
    outputs, so Snakemake keeps them): refuse, and Snakemake keeps the marker."""
    rule = snakemake.rule
    existing = [m for m in snakemake.output if Path(m).exists()]
    if rule not in DONE_HINTS or not existing:
        return
    name = dict(snakemake.wildcards.items()).get("run") or dict(snakemake.wildcards.items()).get("batch")
    what = f"run {name}" if rule != "archive_batch" else f"batch {name}"
    command = f"fulliautomatix --reprocess {name if rule != 'archive_batch' else 'RUN'}"
    raise AlreadyDone(
        f"{what}: {DONE_HINTS[rule]} ({existing[0]}); a forced rebuild changes nothing. "
        f"To process it again, with a new output beside the old one: `{command}`"
    )


def _claim(snakemake) -> None:
    """Hold the job's run (or batch) for as long as this job works on it (see fulliautomatix.claims)."""
    wildcards = dict(snakemake.wildcards.items())
    name = wildcards.get("run") or wildcards.get("batch")
    if name:
        tick = (snakemake.config.get("tick") or {}).get("id") or "?"
        claims.claim(snakemake.config, name, f"job {snakemake.rule} of tick {tick}")


def run(snakemake, stage_function, connect: bool = True, local: bool = True, on_busy=None) -> None:
    """Run stage_function(db, config, snakemake, log) for one Snakemake job, then end the job's process.

    With connect=False (a batch job on a node that cannot reach the runs DB)
    db is None and the stage records its result only in its marker.  local:
    the job runs on this host as part of a tick (it holds the tick lock);
    a batch job on a compute node relies on the host's tick instead.
    on_busy(snakemake, message): what the job does when another tick runs;
    without it the job fails with that one line (exit status 1).
    """
    end(_run(snakemake, stage_function, connect, local, on_busy))


def _run(snakemake, stage_function, connect: bool, local: bool, on_busy) -> int:
    log_path = attempt_log(snakemake.log[0])
    with open(log_path, "a", buffering=1) as log:
        sys.stderr = log
        logging.basicConfig(stream=log, level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
        config = snakemake.config
        try:
            refuse_forced(snakemake)
            if local:
                try:
                    tickguard.begin(config)
                except tickguard.TickBusy as exc:
                    if on_busy is None:
                        raise
                    on_busy(snakemake, str(exc))
                    log.write(f"{exc}\n")
                    print(f"fulliautomatix info: {exc}", file=sys.__stderr__)
                    return 0
                _claim(snakemake)
            if not connect:
                stage_function(None, config, snakemake, log)
                return 0
            with runsdb.connect(config, start_embedded=False, job=True) as db:
                try:
                    stage_function(db, config, snakemake, log)
                except pymongo.errors.ConnectionFailure as exc:  # no ping first: the first command tells
                    raise db.unreachable(exc) from None
            return 0
        except expected() as exc:
            line = runsdb.redact(str(exc))
            log.write(f"ERROR: {line}\n")
            print(f"fulliautomatix: {line}", file=sys.__stderr__)
            return 1
        finally:
            # Let the job's claims go before end() skips every exit handler
            # (a processor started by this job keeps its inherited copy).
            for name in claims.names_held():
                claims.release(config, name)


def end(status: int) -> NoReturn:
    """End the job's process at once, its files flushed and closed.

    A normal exit would wait up to half a second more: pymongo's monitor
    threads notice a closed client only between their 0.5 s sleeps, and an
    exit handler joins them -- about 0.4 s of every short job's time.
    """
    logging.shutdown()
    for stream in (sys.stdout, sys.__stdout__, sys.__stderr__):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(status)
