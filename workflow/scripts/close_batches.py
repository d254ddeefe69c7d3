"""Snakemake adapter: after this tick's compressions, decide the closed batches (see fulliautomatix.sync)."""

from fulliautomatix import jobs, sync


def stage(db, config, smk, log):
    sync.close_batches(db, config, smk.wildcards.tick, smk.output.batches, log)


jobs.run(snakemake, stage)  # noqa: F821 - injected by Snakemake
