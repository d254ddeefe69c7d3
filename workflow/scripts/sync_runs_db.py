"""Snakemake adapter: a tick's first job -- lock, sync the runs DB, ask the DAQ, plan (fulliautomatix.planning)."""

import sys

from fulliautomatix import jobs, planning


def stage(db, config, smk, log):
    plan = planning.plan_tick(db, config, smk.wildcards.tick, smk.output.plan)
    for line in plan.report():
        log.write(f"{line}\n")
        print(line, file=sys.__stderr__)
    log.write(f"targets: {len(plan.targets)}; stages: {', '.join(plan.stages) or 'none'}\n")


def busy(smk, message):
    planning.busy_plan(smk.wildcards.tick, smk.output.plan, message)


jobs.run(snakemake, stage, on_busy=busy)  # noqa: F821 - injected by Snakemake
