# Setup: config validation, the read-only view of this tick, input functions.
#
# Parsing reads and never writes: the runs DB's pending runs and the markers
# on disk shape what `snakemake -n` shows.  Every change -- the tick lock,
# collecting batch jobs, replaying markers, asking the DAQ, writing requests,
# choosing batches -- happens in a job: the sync_runs_db and close_batches
# checkpoints decide what the rest of the tick does.

import json
import os
import sys
from pathlib import Path

# In a source checkout, its own package (whatever else is installed); an installed
# copy of the workflow has no src/ beside it and imports the installed package.
if (Path(workflow.basedir).parent / "src" / "fulliautomatix").is_dir():
    sys.path.insert(0, str(Path(workflow.basedir).parent / "src"))

from fulliautomatix import config as fa_config
from fulliautomatix import planning
from fulliautomatix.batch import plan as batch_plan
from fulliautomatix import tickguard

# finalize validates (snakemake.utils.validate against the schema's JSON twin of
# workflow/schemas/config.schema.yaml, filling its defaults), as the wrapper does. Relative paths: see fa_config.relative_base (the last
# --configfile's directory when installed).
try:
    fa_config.finalize(config, fa_config.relative_base((workflow.overwrite_configfiles or [None])[-1]))
except fa_config.ConfigError as exc:  # one line for the user, as the wrapper prints it
    sys.exit(f"fulliautomatix: {exc}")


workdir: config["work_dir"]


wildcard_constraints:
    run=config["run_name_pattern"].strip("^$"),
    batch="[0-9A-Za-z_]+",
    tick="[0-9A-Za-z_-]+",
    tag="[0-9A-Za-z_.-]+",


workflow.register_resource("transfer_slots", config["transfer"]["concurrency"])

if workflow.is_main_process:
    tickguard.name_this_snakemake()  # its local jobs find the tick's guard, and our commands
    TICK = planning.read_plan(config)
else:
    TICK = planning.TickPlan(tick=config["tick"]["id"], stages=[])


def get_tick_plan():
    """The plan the sync_runs_db checkpoint wrote for this tick."""
    with open(checkpoints.sync_runs_db.get(tick=TICK.tick).output.plan) as fh:
        return json.load(fh)


def tick_plan_or_view():
    """The plan of this tick; in a dry run (-n), the parse-time view of it."""
    return TICK.as_dict() if workflow.dryrun else get_tick_plan()


def get_tick_targets(wildcards):
    """The tick's plan and its stage targets, and the purge (finish_tick's and write_report's inputs).

    A dry run (-n) shows the parse-time view: each pending run's chain with
    its queue and walltime; the checkpoint's DAQ survey may leave some out.
    """
    plan = tick_plan_or_view()
    targets = [planning.plan_path(TICK.tick)] + plan["targets"]
    if "transfer" in plan["stages"] and config["transfer"]["purge"] != "keep":
        targets.append(f"state/purges/{TICK.tick}.json")
    return targets


def get_tick_end(wildcards):
    """The tick's last jobs, which need every target: finish_tick's record, and write_report's marker when
    report.every_tick is on.  A busy tick (another tick runs): its plan only."""
    if not workflow.dryrun and get_tick_plan()["busy"]:
        return [planning.plan_path(TICK.tick)]
    ends = expand(rules.finish_tick.output.record, tick=TICK.tick)
    if config["report"]["every_tick"]:
        ends += expand(rules.write_report.output.marker, tick=TICK.tick)
    return ends


def get_archive_targets(wildcards):
    """Archived-batch markers of the batches closed after this tick's compressions.

    A function of its own: until close_batches has run, Snakemake puts only
    that checkpoint in its place, and the tick's other targets go on meanwhile.
    """
    plan = tick_plan_or_view()
    if "archive" not in plan["stages"]:
        return []
    batches_file = planning.batches_path(TICK.tick)
    if workflow.dryrun:
        return [batches_file]
    with open(checkpoints.close_batches.get(tick=TICK.tick).output.batches) as fh:
        batches = json.load(fh)["batches"]
    return [batches_file] + [f"state/archived/{batch}.json" for batch in batches]


def get_audit_target(wildcards):
    """The audit record of this tick, when it archives and audit.per_tick is not 0."""
    plan = tick_plan_or_view()
    if "archive" not in plan["stages"] or not config["audit"]["per_tick"] or config["tick"]["runs"]:
        return []
    return expand("state/ticks/{tick}/audit.json", tick=TICK.tick)


def get_compressed_this_tick(wildcards):
    """The compressed markers of this tick's compressions: batches are closed after them."""
    return expand(rules.compress_run.output.marker, run=tick_plan_or_view()["compress_runs"])


def get_batch_members(wildcards):
    """Compressed markers of the runs in one batch."""
    with open(checkpoints.close_batches.get(tick=TICK.tick).output.batches) as fh:
        batches = json.load(fh)["batches"]
    if wildcards.batch not in batches:  # e.g. a run's name given as the target
        raise ValueError(
            f"state/archived/{wildcards.batch}.json: no batch of that name is complete in this tick "
            f"(closed: {', '.join(batches) or 'none'}). Archive markers are named by batch, "
            "<first run>_to_<last run>, and a tick archives a run's batch once it is complete: "
            "run a whole tick (`fulliautomatix --archive`, or snakemake without a target); "
            "`fulliautomatix status` tells where each run is"
        )
    return expand(rules.compress_run.output.marker, run=batches[wildcards.batch])


def get_queue(wildcards):
    """Queue of a run's processing job (first queue whose limit holds its walltime)."""
    return batch_plan.job_resources(config, wildcards.run, docs=TICK.docs)["queue"]


def get_walltime(wildcards, attempt):
    """Walltime (HH:MM:SS) of a run's processing job: events, source, earlier walltime kills."""
    return batch_plan.job_resources(config, wildcards.run, attempt, docs=TICK.docs)["walltime"]


def get_runtime_minutes(wildcards, attempt):
    """The same walltime in minutes, as the Slurm executor wants it."""
    return batch_plan.job_resources(config, wildcards.run, attempt, docs=TICK.docs)["minutes"]
