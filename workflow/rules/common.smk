# Setup: config validation, the tick's plan (main process only), input functions.

import json
import sys
from pathlib import Path

from snakemake.utils import validate

# In a source checkout, its own package (whatever else is installed); an installed
# copy of the workflow has no src/ beside it and imports the installed package.
if (Path(workflow.basedir).parent / "src" / "fulliautomatix").is_dir():
    sys.path.insert(0, str(Path(workflow.basedir).parent / "src"))

from fulliautomatix import config as fa_config
from fulliautomatix import planning
from fulliautomatix import process


validate(config, schema="../schemas/config.schema.yaml")
# Relative paths: see fa_config.relative_base (the last --configfile's directory when installed).
fa_config.finalize(config, fa_config.relative_base((workflow.overwrite_configfiles or [None])[-1]))


workdir: config["work_dir"]


wildcard_constraints:
    run=config["run_name_pattern"].strip("^$"),
    batch="[0-9A-Za-z_]+",
    tick="[0-9A-Za-z_-]+",
    tag="[0-9A-Za-z_.-]+",


workflow.register_resource("transfer_slots", config["transfer"]["concurrency"])

if workflow.is_main_process:
    TICK = planning.prepare(config)
    for line in TICK.report():
        logger.warning(line)
else:
    TICK = planning.TickPlan(tick="", stages=[])


def get_stage_targets(wildcards):
    """Stage markers of the runs this tick works on."""
    return TICK.targets


def get_purge_targets(wildcards):
    """This tick's purge report, when it transfers and the purge policy is not keep."""
    if "transfer" in TICK.stages and config["transfer"]["purge"] != "keep":
        return [f"state/purges/{TICK.tick}.json"]
    return []


def get_tick_plan():
    """The batch plan written by the sync_runs_db checkpoint of this tick."""
    with open(checkpoints.sync_runs_db.get(tick=TICK.tick).output.plan) as fh:
        return json.load(fh)


def get_archive_targets(wildcards):
    """Archived-batch markers of the batches closed in this tick's plan."""
    batches = get_tick_plan()["batches"] if "archive" in TICK.stages else {}
    return [f"state/archived/{batch}.json" for batch in batches] or [
        checkpoints.sync_runs_db.get(tick=TICK.tick).output.plan
    ]


def get_batch_members(wildcards):
    """Compressed markers of the runs in one batch."""
    runs = get_tick_plan()["batches"][wildcards.batch]
    return expand(rules.compress_run.output.marker, run=runs)


def get_queue(wildcards):
    """Queue of a run's processing job (first queue whose limit holds its walltime)."""
    return process.job_resources(config, wildcards.run)["queue"]


def get_walltime(wildcards, attempt):
    """Walltime (HH:MM:SS) of a run's processing job: events, source, earlier walltime kills."""
    return process.job_resources(config, wildcards.run, attempt)["walltime"]


def get_runtime_minutes(wildcards, attempt):
    """The same walltime in minutes, as the Slurm executor wants it."""
    return process.job_resources(config, wildcards.run, attempt)["minutes"]
