"""Snakemake adapter: archive one batch of compressed runs (see fulliautomatix.archive)."""

from pathlib import Path

from fulliautomatix import archive, jobs


def stage(db, config, smk, log):
    runs = [Path(m).stem for m in smk.input.compressed]
    archive.archive_batch(db, config, smk.wildcards.batch, runs, list(smk.input.compressed), smk.output.marker, log)


jobs.run(snakemake, stage)  # noqa: F821 - injected by Snakemake
