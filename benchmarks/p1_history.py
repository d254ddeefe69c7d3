"""P1 history independence: a no-op tick with many archived runs vs with 100.

Two sites, each with its own embedded nx-27017 runs DB, hold only archived
runs (with the documents, histories and markers their lives left behind):
100 in one, N in the other (10,000 by default, 100,000 with --full).  The
real cron tick, `fulliautomatix --config ...` (wrapper, Snakemake, the
sync_runs_db checkpoint job), runs on each in turn; the figure is the median
wall time with N divided by the median with 100.
"""

from __future__ import annotations

from .common import Context, Figure, Site, archived_doc, interleaved, median, seed, spread, write_history_markers

ID, NAME, OP, GOAL = "P1", "history-independence", "<=", 1.15


def run(ctx: Context) -> Figure:
    small, big = 100, ctx.size(10_000, 100_000)
    ctx.say(f"  seeding {small:,} and {big:,} archived runs (documents, histories, markers) ...")
    with Site(ctx.root / "p1-small") as s_small, Site(ctx.root / "p1-big") as s_big:
        for site, n in ((s_small, small), (s_big, n_big := big)):
            seed(site.db, (archived_doc(i) for i in range(n)))
            write_history_markers(site.state, range(n))
        for site in (s_small, s_big):  # first tick creates .snakemake/ and the like
            site.tick()
        times = interleaved({"small": s_small.tick, "big": s_big.tick}, ctx.reps)
    ratio = median(times["big"]) / median(times["small"])
    return Figure(ID, NAME, ratio, OP, GOAL, details=[
        f"no-op tick, {small:,} archived runs:  {spread(times['small'])}",
        f"no-op tick, {n_big:,} archived runs: {spread(times['big'])}",
    ])
