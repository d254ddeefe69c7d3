"""Snakemake adapter: bring a run's raw data back for reprocessing (see fulliautomatix.process)."""

from fulliautomatix import jobs, process


def stage(db, config, smk, log):
    process.stage_raw(db, config, smk.wildcards.run, smk.output.marker, log)


jobs.run(snakemake, stage)  # noqa: F821 - injected by Snakemake
