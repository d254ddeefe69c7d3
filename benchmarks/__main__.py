"""Fulliautomatix benchmarks (issue 6): figures as ratios measured side by side.

    python -m benchmarks                 # all seven at their default (small) sizes; `make bench`
    python -m benchmarks P3              # one benchmark (or several: P1 P6)
    python -m benchmarks --full          # the issue's full sizes (100,000 runs, 1 GiB, ...)
    python -m benchmarks --reps 9 P4     # more repetitions against a noisy machine

Each benchmark prints one line a script can read,
``P1 history-independence: 1.04 (goal <= 1.15)``, and indented lines that
explain it.  Benchmarks print; they do not fail on a missed goal (exit
status 1 only when a benchmark itself breaks).  The runs DB is the embedded
nx-27017 server throughout: a real MongoDB is faster, the ratios are what
matter.
"""

from __future__ import annotations

import argparse
import compileall
import importlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from importlib import metadata
from pathlib import Path

from .common import Context, Figure

BENCHMARKS = {
    "P1": "p1_history",
    "P2": "p2_backlog",
    "P3": "p3_roundtrips",
    "P4": "p4_transfer",
    "P5": "p5_compress",
    "P6": "p6_status",
    "P7": "p7_report",
}


def machine() -> str:
    cpu = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).parent
        ).stdout.strip()
    except OSError:
        commit = ""
    return (
        f"machine: {os.cpu_count()} cores (nproc {len(os.sched_getaffinity(0))}), {cpu}; "
        f"Python {platform.python_version()}; {platform.system()} {platform.release()}; load {load}\n"
        f"runs DB: embedded nx-27017 {metadata.version('nx-27017')} on loopback (a real MongoDB is faster; "
        f"the ratios are what matter); snakemake {metadata.version('snakemake')}; commit {commit or '?'}"
    )


def compile_package() -> None:
    """Byte-compile the package once, as an install does: each stage job is a new Python process, and
    without cached bytecode (an editable install under PYTHONDONTWRITEBYTECODE) every job compiles every
    module it imports again, about 30 ms of each job's start that no installed copy pays."""
    from fulliautomatix import jobs

    compileall.compile_dir(Path(jobs.__file__).parent, quiet=1)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=__doc__.splitlines()[0],
        epilog=__doc__.split("\n\n")[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("ids", nargs="*", metavar="ID", help="benchmarks to run (P1 ... P7; default: all)")
    ap.add_argument("--full", action="store_true", help="the issue's full sizes (takes much longer)")
    ap.add_argument("--reps", type=int, default=5, help="repetitions of each timed side (default 5)")
    ap.add_argument("--work", type=Path, help="work directory (default: a new one under the temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory afterwards")
    args = ap.parse_args(argv)
    ids = [i.upper() for i in args.ids] or list(BENCHMARKS)
    unknown = [i for i in ids if i not in BENCHMARKS]
    if unknown:
        ap.error(f"unknown benchmark {', '.join(unknown)} (known: {', '.join(BENCHMARKS)})")
    os.environ.pop("FULLIAUTOMATIX_RUNS_DB", None)
    root = args.work or Path(tempfile.mkdtemp(prefix="fulliautomatix-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    reps = max(1, args.reps)
    print(machine())
    compile_package()
    print(
        f"sizes: {'full (--full)' if args.full else 'default (small; --full for the issue sizes)'}; "
        f"reps {reps}; work dir {root}\n",
        flush=True,
    )
    figures: list[Figure] = []
    broken = []
    try:
        for id_ in ids:
            mod = importlib.import_module(f".{BENCHMARKS[id_]}", __package__)
            print(f"== {id_} {mod.NAME}", flush=True)
            t0 = time.perf_counter()
            ctx = Context(root=root / id_, full=args.full, reps=reps)
            shutil.rmtree(ctx.root, ignore_errors=True)  # left by an earlier --keep in the same --work
            ctx.root.mkdir()
            try:
                fig = mod.run(ctx)
            except Exception as exc:  # a broken benchmark must not hide the others
                traceback.print_exc()
                print(
                    f"{id_} {mod.NAME}: failed ({type(exc).__name__}: {exc}) (goal {mod.OP} {mod.GOAL:g})", flush=True
                )
                broken.append(id_)
            else:
                figures.append(fig)
                print(fig.line())
                for d in fig.details:
                    print(f"    {d}")
                print(f"    ({time.perf_counter() - t0:.0f} s)", flush=True)
            if not args.keep:  # a history can be 100,000s of files: free them now
                shutil.rmtree(ctx.root, ignore_errors=True)
            print(flush=True)
    finally:
        if not args.keep and not args.work:
            shutil.rmtree(root, ignore_errors=True)
    print("summary:")
    for fig in figures:
        print(f"{fig.line()}{'' if fig.met else '   <- misses its goal'}")
    for id_ in broken:
        print(f"{id_}: broken, see above")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
