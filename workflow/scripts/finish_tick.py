"""Snakemake adapter: the end of a tick -- summary, notifications, metrics, old logs (fulliautomatix.finish)."""

import sys

from fulliautomatix import finish, jobs, planning


def stage(db, config, smk, log):
    tick = smk.wildcards.tick
    line, warnings = finish.finish_tick(
        db, config, tick, planning.plan_path(tick), planning.batches_path(tick), smk.output.record
    )
    for warning in warnings:
        log.write(f"WARNING: {warning}\n")
        print(f"fulliautomatix warning: {warning}", file=sys.__stderr__)
    log.write(f"{line}\n")
    print(f"fulliautomatix info: {line}", file=sys.__stderr__)


jobs.run(snakemake, stage)  # noqa: F821 - injected by Snakemake
