"""Snakemake adapter: purge DAQ copies that are due (see fulliautomatix.purge)."""

from fulliautomatix import jobs, purge


def stage(db, config, smk, log):
    purge.purge_daq_copies(db, config, smk.wildcards.tick, smk.output.report, log)


jobs.run(snakemake, stage)  # noqa: F821 - injected by Snakemake
