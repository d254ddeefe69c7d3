"""A tick's plan: which runs go through which stages.

Two views of the same choice (:func:`choose`):

* :func:`read_plan`, at Snakefile parse time, only *reads*: the runs in
  non-final states and the stage markers on disk.  It shapes what
  ``snakemake -n`` shows (every run's chain, queue and walltime) and changes
  nothing anywhere, so ``-n``, ``--lint``, ``--summary`` and ``--dag`` are safe.
* :func:`plan_tick`, the ``sync_runs_db`` checkpoint's job, makes the
  changes a tick starts with: it holds the tick lock, collects batch jobs of
  earlier ticks, replays markers the runs DB missed, asks the DAQ once whether
  it is live and which runs are still being written, writes the processing
  requests, hands each planned run's document to its jobs (:mod:`fulliautomatix.stage`),
  and records the plan (``state/ticks/<tick>/plan.json``) that the
  rest of the tick's DAG is built from.
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import config as fa_config
from . import attention, claims, daq, markers, process, runsdb, selection, states, sync, transfer, transfer_commands
from .attention import duplicate_line
from .batch import plan as batch_plan
from .snapshots import keep_all

log = logging.getLogger("fulliautomatix")

# Prefixes of the lines the wrapper picks out of a tick's Snakemake log, with
# the level it logs them at (jobs.run prints a failed job's line as an error).
REPORT_PREFIXES = {
    "fulliautomatix: ": logging.ERROR,
    "fulliautomatix warning: ": logging.WARNING,
    "fulliautomatix info: ": logging.INFO,
}


@dataclass
class TickPlan:
    tick: str
    stages: list[str]
    targets: list[str] = field(default_factory=list)  # stage markers, relative to work_dir
    compress_runs: list[str] = field(default_factory=list)  # runs this tick compresses
    docs: dict[str, dict] = field(default_factory=dict)  # the pending runs, by name (parse-time view)
    messages: list[str] = field(default_factory=list)  # for information
    bad: list[str] = field(default_factory=list)  # malformed run documents: errors
    held: list[str] = field(default_factory=list)  # runs waiting for a human: warnings
    busy: str = ""  # another tick holds the lock: this one does nothing
    daq: str = ""  # what the DAQ said: live, idle, unreachable; "" not asked this tick

    def report(self) -> list[str]:
        """The plan's lines for the Snakemake log, prefixed for the wrapper (REPORT_PREFIXES)."""
        if self.busy:
            return [f"fulliautomatix info: {self.busy}"]
        return (
            [f"fulliautomatix: {m}" for m in self.bad]
            + [f"fulliautomatix warning: {m}" for m in self.held]
            + [f"fulliautomatix info: {m}" for m in self.messages]
        )

    def as_dict(self) -> dict:
        return {
            "tick": self.tick,
            "stages": self.stages,
            "targets": self.targets,
            "compress_runs": self.compress_runs,
            "messages": self.messages,
            "bad": self.bad,
            "held": self.held,
            "busy": self.busy,
            "daq": self.daq,
        }


def tick_id(config: dict) -> str:
    return config["tick"]["id"] or time.strftime("%Y%m%dT%H%M%S") + f"-{os.getpid()}"


def plan_path(tick: str) -> str:
    """The sync_runs_db checkpoint's output, relative to work_dir."""
    return f"state/ticks/{tick}/plan.json"


def batches_path(tick: str) -> str:
    """The close_batches checkpoint's output, relative to work_dir."""
    return f"state/ticks/{tick}/batches.json"


def report_path(tick: str) -> str:
    """The write_report rule's output, relative to work_dir (the page itself is at report.path)."""
    return f"state/ticks/{tick}/report.json"


def stage_marker(stage: str, run: str) -> str:
    """A stage marker's path relative to the work dir (Snakemake's targets)."""
    return f"state/{markers.STAGE_MARKERS[stage][0]}/{run}.json"


def _limits(config: dict) -> dict:
    return selection.limits(config)


def choose(config: dict, plan: TickPlan, docs: list[dict]) -> list[tuple[str, str]]:
    """(stage, run) targets for the pending runs; fills plan.bad and plan.held."""
    state = fa_config.state_dir(config)
    wanted = set(config["tick"]["runs"])
    if wanted:
        docs = [d for d in docs if d.get("name") in wanted]
    chosen = selection.plan_targets(
        docs,
        plan.stages,
        config["run_name_pattern"],
        _limits(config),
        lambda stage, run: markers.path(state, stage, run).exists(),
        config["transfer"]["max_per_tick"],
    )
    plan.bad += chosen.bad
    plan.held += chosen.held
    if chosen.later:
        plan.messages.append(
            f"{len(chosen.later)} more runs wait for later ticks (transfer.max_per_tick="
            f"{config['transfer']['max_per_tick']}), from {chosen.later[0]}"
        )
    return chosen.targets


def _finish(plan: TickPlan, targets: list[tuple[str, str]], extra: list[str] = ()) -> TickPlan:
    plan.targets = [stage_marker(stage, run) for stage, run in targets] + list(extra)
    plan.compress_runs = [run for stage, run in targets if stage == "compress"]
    return plan


def read_plan(config: dict) -> TickPlan:
    """The parse-time view of this tick; reads the runs DB and the markers, writes nothing."""
    plan = TickPlan(tick=tick_id(config), stages=list(config["tick"]["stages"]))
    try:
        with runsdb.reading(config, os.environ.get(fa_config.DB_ENV), missing_ok=True) as db:
            docs = db.pending() if db is not None else []
    except runsdb.RunsDBError as exc:
        plan.messages.append(f"runs DB not readable while planning ({exc}); the tick's first job will say more")
        return plan
    plan.docs = {d["name"]: d for d in docs if isinstance(d.get("name"), str)}
    return _finish(plan, choose(config, plan, docs))


def _bad_documents(db: runsdb.RunsDB, config: dict, duplicates: dict[str, list[str]]) -> tuple[set, list[str]]:
    """(names no stage may touch, their BAD lines): names held by several documents, unknown states."""
    wanted = set(config["tick"]["runs"])
    lines = [
        duplicate_line(config, name, ids) for name, ids in sorted(duplicates.items()) if not wanted or name in wanted
    ]
    for doc in db.unknown_states():
        if not wanted or doc.get("name") in wanted:
            lines.append(
                selection.check_doc(doc, config["run_name_pattern"])
                or f"run {doc.get('name')}: unknown raw_status {doc.get(states.RAW)!r}"
            )
    return set(duplicates), lines


def _record_missing(db: runsdb.RunsDB, docs: list[dict], missing: dict[str, str]) -> None:
    """Record (or clear) in transfer.missing which runs the DAQ has no directory for (status shows them HELD)."""
    for doc in docs:
        name = doc.get("name")
        now = missing.get(name)
        if doc.get(states.RAW) == "acquired" and (doc.get("transfer") or {}).get("missing") != now:
            db.update(name, {"transfer.missing": now}, doc=doc)
            doc.setdefault("transfer", {})["missing"] = now


def _ask_daq(db: runsdb.RunsDB, config: dict, plan: TickPlan, every: list[dict]) -> list[dict]:
    """One call to the DAQ: live (no transfers this tick), runs still being written or without a
    directory (recorded, HELD). Sets plan.stages and plan.daq; returns the run documents left."""
    check = daq.daq_check(config, plan.stages, every)
    if "transfer" in check.stages:
        _record_missing(db, every, check.missing)
    plan.stages, plan.daq = check.stages, check.daq
    plan.messages += check.messages
    plan.held += check.warnings
    if plan.daq in ("live", "unreachable"):  # no transfers this tick: acquired runs wait, they are not stuck
        attention.record_daq_live(config, (check.messages + check.warnings or [""])[0])
    return check.docs


def plan_tick(db: runsdb.RunsDB, config: dict, tick: str, out_path: str) -> TickPlan:
    """The sync_runs_db checkpoint: sync the runs DB, ask the DAQ, choose and record the plan."""
    plan = TickPlan(tick=tick, stages=list(config["tick"]["stages"]))
    untouchable, plan.bad = _bad_documents(db, config, db.ensure_indexes())
    # Jobs of earlier ticks first: what they did changes the documents.
    jobs = batch_plan.plan_jobs(db, config)
    claimed = claims.busy(config)  # runs a job of an earlier, killed tick still works on
    jobs.exclude |= untouchable | set(claimed)
    plan.messages += [claimed[name] for name in sorted(claimed)]
    every = [d for d in db.pending(whole=True) if d.get("name") not in jobs.exclude]
    valid = [d for d in every if selection.check_doc(d, config["run_name_pattern"]) is None]
    repaired = sync.reconcile(db, fa_config.state_dir(config), valid)
    if repaired:  # read again only the runs the replay changed
        plan.messages.append(f"runs DB repaired from markers: {', '.join(repaired)}")
        fresh = {name: db.get(name) for name in repaired}
        every = [fresh.get(d.get("name"), d) for d in every]
    docs = _ask_daq(db, config, plan, every)
    targets = batch_plan.limit_targets(db, config, docs, choose(config, plan, docs), jobs)
    plan.held += jobs.warnings
    plan.messages += jobs.messages
    reprocessing = "process" in plan.stages or bool(config["tick"]["reprocess"])
    _finish(plan, targets, jobs.reprocess if reprocessing else [])
    by_name = {d.get("name"): d for d in docs}
    keep_all(config, [by_name[run] for _, run in targets if run in by_name])  # each job's document (stage.take)
    if plan.targets:
        _open_cluster_connection(config)
    markers.write(out_path, plan.as_dict())
    _prune_ticks(Path(out_path).parent.parent, keep=100)
    return plan


def _open_cluster_connection(config: dict) -> None:
    """Open the tick's ssh master connection to the cluster's host now, before the stages' jobs run
    side by side (the DAQ's is opened by the survey): their commands all share it (hosts.control_dir)."""
    cluster = transfer.cluster_host(config)
    if cluster.control:
        try:
            cluster.run(["true"], check=False, timeout=120)
        except (OSError, subprocess.TimeoutExpired) as exc:  # each command then connects by itself
            log.warning("ssh to %s: %s", cluster.name, exc)


def busy_plan(tick: str, out_path: str, message: str) -> TickPlan:
    """The plan of a tick that found another one running: nothing to do."""
    plan = TickPlan(tick=tick, stages=[], busy=message)
    markers.write(out_path, plan.as_dict())
    return plan


def _prune_ticks(directory: Path, keep: int) -> None:
    """Old tick plans are of no further use; keep the most recent ones."""
    ticks = sorted((p for p in directory.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)
    for p in ticks[:-keep]:
        shutil.rmtree(p, ignore_errors=True)


def describe(db: runsdb.RunsDB, config: dict, stages: list[str], runs: list[str]) -> str:
    """What a tick would do, with the commands it would run (for --dry_run)."""
    from . import archive, compress

    docs = db.pending()
    if runs:
        docs = [d for d in docs if d["name"] in set(runs)]
    check = daq.daq_check(config, stages, docs)
    stages, docs, daq_messages = check.stages, check.docs, check.warnings + check.messages
    plan = TickPlan(tick="", stages=stages)
    targets = choose(config, plan, docs)
    by_name = {d["name"]: d for d in docs}
    lines = [f"dry run: stages {', '.join(stages) or 'none'}; nothing is changed"] + daq_messages
    for last, run in targets:
        doc = by_name[run]
        first, _ = selection.start_stage(doc, _limits(config))
        chain = selection.CHAIN[selection.CHAIN.index(first) : selection.CHAIN.index(last) + 1]
        lines.append(f"run {run} ({doc['raw_status']}, processed {doc['processed_status']}): {' -> '.join(chain)}")
        for stage in chain:
            if stage == "transfer":
                argv = transfer.daq_host(config).argv(transfer_commands.rsync_argv(config, run))
            elif stage == "process":
                lines += [f"    {line}" for line in batch_plan.submission_preview(config, doc)]
                argv = process.command(config, run, doc["source"])
            else:
                argv = compress.cluster_host(config).argv(compress.command(config, run))
            lines.append("    $ " + " ".join(shlex.quote(a) for a in argv))
            if stage == "compress":
                lines.append(f"      (written to {compress.paths(config, run)['archive']}, verified as it is written)")
    if "archive" in stages:
        batches = selection.plan_batches(
            [d for d in docs if selection.check_doc(d, config["run_name_pattern"]) is None], config["archive"]
        )
        be = archive.backend(config)
        for batch, members in batches.items():
            lines.append(f"batch {batch}: {', '.join(members)} -> {be.tarball(batch)}")
    lines += [f"skipped: {m}" for m in plan.bad + plan.held]
    if len(lines) == 1:
        lines.append("nothing to do")
    return "\n".join(lines)
