"""Snakemake adapter: read back a few archived runs each tick (see fulliautomatix.audit.tick_audit)."""

import sys

from fulliautomatix import audit, jobs


def stage(db, config, smk, log):
    for line in audit.tick_audit(db, config, smk.output.record, log):
        log.write(f"WARNING: LOST-COPY {line}\n")
        print(f"fulliautomatix warning: LOST-COPY {line}", file=sys.__stderr__)


jobs.run(snakemake, stage)  # noqa: F821 - injected by Snakemake
