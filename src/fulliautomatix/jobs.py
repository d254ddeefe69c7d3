"""The bridge between Snakemake's ``script:`` jobs and the package.

Each ``workflow/scripts/*.py`` file calls :func:`run` with one stage function.
It sends the job's output to the rule's log, connects to the runs DB, and
turns an expected failure into one line naming the run and what to do (exit
status 1), never a traceback.
"""

from __future__ import annotations

import logging
import sys

from . import archive, compress, hosts, process, runsdb, scheduler, states, transfer
from . import config as fa_config

EXPECTED = (
    archive.ArchiveError,
    compress.CompressionError,
    process.ProcessingFailed,
    process.ReprocessRefused,
    scheduler.SchedulerError,
    transfer.TransferError,
    hosts.BadRunName,
    hosts.CommandFailed,
    runsdb.RunsDBError,
    states.TransitionRefused,
    fa_config.ConfigError,
)


def run(snakemake, stage_function, connect: bool = True) -> None:
    """Run stage_function(db, config, snakemake, log) for one Snakemake job.

    With connect=False (a batch job on a node that cannot reach the runs DB)
    db is None and the stage records its result only in its marker.
    """
    log_path = snakemake.log[0]
    with open(log_path, "a", buffering=1) as log:
        sys.stderr = log
        logging.basicConfig(stream=log, level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
        config = snakemake.config
        try:
            if not connect:
                stage_function(None, config, snakemake, log)
                return
            with runsdb.connect(config, start_embedded=False) as db:
                stage_function(db, config, snakemake, log)
        except EXPECTED as exc:
            log.write(f"ERROR: {exc}\n")
            print(f"fulliautomatix: {exc}", file=sys.__stderr__)
            sys.exit(1)
