"""``fulliautomatix-scheduler``, ``fulliautomatix-cancel``: the cluster profiles' submit, status and cancel commands::

    fulliautomatix-scheduler submit --rule process_run --run 170101_0001 \\
        --queue standby --walltime 00:05:00 JOBSCRIPT     # prints the job id
    fulliautomatix-scheduler status 1234                  # prints running, success or failed
    fulliautomatix-scheduler cancel 1234 1235             # or: fulliautomatix-cancel 1234 1235

All three run in Snakemake's working directory (the config's ``work_dir``) and
read the cluster's settings from ``state/scheduler.json``, written by the
tick's main process (:mod:`.settings`).  ``python -m fulliautomatix.scheduler``
is the same command.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

from .. import hosts
from . import SchedulerError
from .adapters import adapter
from .settings import load_settings
from .status import status
from .submit import submit


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="fulliautomatix-scheduler",
        description="Submit, query and cancel Fulliautomatix's processing jobs.",
        epilog=__doc__.split("\n\n")[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("submit", help="submit a Snakemake job script; print the job id")
    p.add_argument("--rule", required=True)
    p.add_argument("--run", required=True)
    p.add_argument("--queue", required=True)
    p.add_argument("--walltime", required=True)
    p.add_argument("jobscript")
    p = sub.add_parser("status", help="print running, success or failed; always exit 0")
    p.add_argument("job_id")
    p = sub.add_parser("cancel", help="cancel jobs")
    p.add_argument("job_ids", nargs="+")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "status":
        try:
            print(status(load_settings(), args.job_id))
        except Exception as exc:  # never abort the workflow: ask again next round
            print(f"fulliautomatix: status of job {args.job_id} unknown ({exc}); asking again later", file=sys.stderr)
            print("running")
        return 0
    try:
        settings = load_settings()
        if args.command == "submit":
            hosts.check_run_name(args.run, r"[0-9A-Za-z_.-]+")
            print(submit(settings, args.rule, args.run, args.queue, args.walltime, args.jobscript))
            return 0
        return adapter(settings).cancel(args.job_ids)
    except (SchedulerError, hosts.BadRunName, OSError, subprocess.SubprocessError) as exc:
        print(f"fulliautomatix: {exc}", file=sys.stderr)
        return 1


def cancel_main(argv: list[str] | None = None) -> int:
    """`fulliautomatix-cancel ID...`: the profiles' cancel command (called without a shell)."""
    return main(["cancel", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
