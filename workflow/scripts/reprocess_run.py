"""Snakemake adapter: process a run again into a new output (see fulliautomatix.process)."""

from fulliautomatix import jobs, process


def stage(db, config, smk, log):
    process.process_run(
        db, config, smk.wildcards.run, smk.input.staged, smk.output.marker, log, smk.log[0], tag=smk.wildcards.tag
    )


jobs.run(
    snakemake,
    stage,
    connect=process.needs_db(snakemake.config),  # noqa: F821
    local=not process.on_cluster(snakemake.config),
)  # noqa: F821 - injected by Snakemake
