"""Snakemake adapter: purge DAQ copies that are due (see fulliautomatix.transfer)."""

from fulliautomatix import jobs, transfer


def stage(db, config, smk, log):
    transfer.purge_daq_copies(db, config, smk.wildcards.tick, smk.output.report, log)


jobs.run(snakemake, stage)  # noqa: F821 - injected by Snakemake
