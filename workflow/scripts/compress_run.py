"""Snakemake adapter: compress one run (see fulliautomatix.compress)."""

from fulliautomatix import compress, jobs


def stage(db, config, smk, log):
    compress.compress_run(db, config, smk.wildcards.run, smk.input.processed, smk.output.marker, log)


jobs.run(snakemake, stage)  # noqa: F821 - injected by Snakemake
