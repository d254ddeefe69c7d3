"""Snakemake adapter: process one run, here or as a batch job (see fulliautomatix.process)."""

from fulliautomatix import jobs, process


def stage(db, config, smk, log):
    process.process_run(db, config, smk.wildcards.run, smk.input.ondeck, smk.output.marker, log, smk.log[0])


jobs.run(
    snakemake,
    stage,
    connect=process.needs_db(snakemake.config),  # noqa: F821
    local=not process.on_cluster(snakemake.config),
)  # noqa: F821 - injected by Snakemake
