"""Snakemake adapter: transfer one run (see fulliautomatix.transfer)."""

from fulliautomatix import jobs, transfer


def stage(db, config, smk, log):
    transfer.transfer_run(db, config, smk.wildcards.run, smk.output.marker, log)


jobs.run(snakemake, stage)  # noqa: F821 - injected by Snakemake
