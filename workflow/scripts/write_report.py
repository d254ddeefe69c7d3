"""Snakemake adapter: the tick's report at report.path, after the tick's other jobs (fulliautomatix.report)."""

from fulliautomatix import jobs, report


def stage(db, config, smk, log):
    report.write_tick_report(db, config, smk.output.marker, log)


jobs.run(snakemake, stage)  # noqa: F821 - injected by Snakemake
