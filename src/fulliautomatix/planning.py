"""What the Snakefile does once per tick, in its main process only.

:func:`prepare` takes the tick lock, connects to the runs DB (starting the
embedded server when needed and handing its address to the jobs through the
environment), checks whether the DAQ is live, and plans the tick's targets
from the runs in non-final states.  Cluster jobs that re-parse the Snakefile
never get here, so they never query the runs DB.
"""

from __future__ import annotations

import atexit
import fcntl
import logging
import os
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import config as fa_config
from . import embedded, markers, process, runsdb, selection, transfer

log = logging.getLogger("fulliautomatix")

LOCK_ENV = "FULLIAUTOMATIX_TICK_LOCK"

# Prefixes of the lines the wrapper picks out of a tick's Snakemake log, with
# the level it logs them at (jobs.run prints a failed job's line as an error).
REPORT_PREFIXES = {
    "fulliautomatix: ": logging.ERROR,
    "fulliautomatix warning: ": logging.WARNING,
    "fulliautomatix info: ": logging.INFO,
}


class TickBusy(Exception):
    """Another tick holds the lock."""


@dataclass
class TickPlan:
    tick: str
    stages: list[str]
    targets: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)  # for information
    bad: list[str] = field(default_factory=list)  # malformed run documents: errors
    held: list[str] = field(default_factory=list)  # runs waiting for a human: warnings

    def report(self) -> list[str]:
        """The plan's lines for the Snakemake log, prefixed for the wrapper (REPORT_PREFIXES)."""
        return ([f"fulliautomatix: {m}" for m in self.bad]
                + [f"fulliautomatix warning: {m}" for m in self.held]
                + [f"fulliautomatix info: {m}" for m in self.messages])


_held: dict[str, object] = {}


def lock_fds() -> tuple[int, ...]:
    """File descriptors of the tick locks this process holds.

    Handing them to the tick's Snakemake (``pass_fds``) keeps the lock held
    while Snakemake runs, even if the wrapper that took it is killed.
    """
    return tuple(fh.fileno() for fh in _held.values())


def acquire_lock(state_dir: Path) -> None:
    """Hold the tick lock until this process exits, or raise TickBusy.

    When the fulliautomatix wrapper already holds it for this process tree
    (LOCK_ENV names the lock and the wrapper's pid), nothing more is needed.
    """
    path = state_dir / "tick.lock"
    if os.environ.get(LOCK_ENV) == f"{path}:{os.getppid()}":
        return
    state_dir.mkdir(parents=True, exist_ok=True)
    fh = open(path, "a+")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.seek(0)
        holder = fh.read().strip() or "unknown"
        fh.close()
        raise TickBusy(f"another tick is running (pid {holder}); this one does nothing") from None
    fh.seek(0)
    fh.truncate()
    fh.write(f"{os.getpid()}\n")
    fh.flush()
    _held[str(path)] = fh


def tick_id(config: dict) -> str:
    return config["tick"]["id"] or time.strftime("%Y%m%dT%H%M%S") + f"-{os.getpid()}"


def stage_marker(stage: str, run: str) -> str:
    """A stage marker's path relative to the work dir (Snakemake's targets)."""
    return f"state/{markers.STAGE_MARKERS[stage][0]}/{run}.json"


def prepare(config: dict) -> TickPlan:
    """Lock, connect, check the DAQ, and plan; see the module docstring."""
    state = fa_config.state_dir(config)
    acquire_lock(state)
    if config["runs_db"]["uri"] == "embedded":
        uri, proc = embedded.ensure(state)
        atexit.register(embedded.stop, state, proc)
        config["runs_db"]["uri"] = uri
    os.environ[fa_config.DB_ENV] = config["runs_db"]["uri"]
    plan = TickPlan(tick=tick_id(config), stages=list(config["tick"]["stages"]))
    rdb = config["runs_db"]
    db = runsdb.RunsDB(rdb["uri"], rdb["database"], rdb["collection"], rdb["timeout_seconds"])
    try:
        db.ping()
        db.ensure_indexes()
        # Jobs of earlier ticks first: what they did changes the documents.
        jobs = process.plan_jobs(db, config)
        docs = [d for d in db.pending() if d.get("name") not in jobs.exclude]
    finally:
        db.close()
    wanted = set(config["tick"]["runs"])
    if wanted:
        docs = [d for d in docs if d.get("name") in wanted]
    # One call to the DAQ: live (no transfers this tick), or runs still being written (held back).
    plan.stages, docs, daq_messages = transfer.check_daq(config, plan.stages, docs)
    plan.messages += daq_messages
    limits = {"transfer_attempts": config["transfer"]["max_attempts"],
              "process_attempts": config["processing"]["max_attempts"]}

    def has_marker(stage: str, run: str) -> bool:
        return markers.path(state, stage, run).exists()

    chosen = selection.plan_targets(docs, plan.stages, config["run_name_pattern"], limits, has_marker)
    db = runsdb.RunsDB(rdb["uri"], rdb["database"], rdb["collection"], rdb["timeout_seconds"])
    try:
        targets = process.limit_targets(db, config, docs, chosen.targets, jobs)
    finally:
        db.close()
    plan.targets = [stage_marker(stage, run) for stage, run in targets]
    if "process" in plan.stages:
        plan.targets += jobs.reprocess
    plan.bad, plan.held = chosen.bad, chosen.held + jobs.warnings
    plan.messages += jobs.messages
    return plan


def describe(db: runsdb.RunsDB, config: dict, stages: list[str], runs: list[str]) -> str:
    """What a tick would do, with the commands it would run (for --dry_run)."""
    from . import archive, compress, process

    docs = db.pending()
    if runs:
        docs = [d for d in docs if d["name"] in set(runs)]
    stages, docs, daq_messages = transfer.check_daq(config, stages, docs)
    limits = {"transfer_attempts": config["transfer"]["max_attempts"],
              "process_attempts": config["processing"]["max_attempts"]}
    state = fa_config.state_dir(config)
    chosen = selection.plan_targets(docs, stages, config["run_name_pattern"], limits,
                                    lambda stage, run: markers.path(state, stage, run).exists())
    by_name = {d["name"]: d for d in docs}
    lines = [f"dry run: stages {', '.join(stages)}; nothing is changed"] + daq_messages
    for last, run in chosen.targets:
        doc = by_name[run]
        first, _ = selection.start_stage(doc, limits)
        chain = selection.CHAIN[selection.CHAIN.index(first): selection.CHAIN.index(last) + 1]
        lines.append(f"run {run} ({doc['raw_status']}, processed {doc['processed_status']}): {' -> '.join(chain)}")
        for stage in chain:
            if stage == "transfer":
                argv = transfer.daq_host(config).argv(transfer.rsync_argv(config, run))
            elif stage == "process":
                lines += [f"    {line}" for line in process.submission_preview(config, doc)]
                argv = process.command(config, run, doc["source"])
            else:
                argv = compress.cluster_host(config).argv(
                    compress.command(config, run, compress.paths(config, run)["archive"]))
            lines.append("    $ " + " ".join(shlex.quote(a) for a in argv))
    if "archive" in stages:
        batches = selection.plan_batches(
            [d for d in docs if selection.check_doc(d, config["run_name_pattern"]) is None], config["archive"])
        be = archive.backend(config)
        for batch, members in batches.items():
            lines.append(f"batch {batch}: {', '.join(members)} -> {be.tarball(batch)}")
    lines += [f"skipped: {m}" for m in chosen.bad + chosen.held]
    if len(lines) == 1:
        lines.append("nothing to do")
    return "\n".join(lines)
