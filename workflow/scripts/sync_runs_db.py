"""Snakemake adapter: repair the runs DB from markers and plan batches (see fulliautomatix.sync)."""

from fulliautomatix import jobs, sync


def stage(db, config, smk, log):
    sync.sync_and_plan(db, config, smk.wildcards.tick, smk.output.plan, log)


jobs.run(snakemake, stage)  # noqa: F821 - injected by Snakemake
