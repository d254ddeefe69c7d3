"""P1 history independence: a no-op tick with many archived runs vs with 100.

Two sites, each with its own embedded nx-27017 runs DB, hold only archived
runs (with the documents, histories and markers their lives left behind):
100 in one, N in the other (100,000, by default and with --full: the
benchmark takes about 2 minutes on 2 cores, most of it seeding).  The
real cron tick, `fulliautomatix --config ...` (wrapper, Snakemake, the
sync_runs_db checkpoint job), runs on each in turn; the figure is the wall
time with N divided by the wall time with 100 (median over back-to-back
pairs).  The CPU time of the same ticks (all their processes plus the DB
server's share) is shown beside it, as it is steadier on a busy machine.
"""

from __future__ import annotations

from .common import (
    Context,
    Figure,
    Site,
    archived_doc,
    interleaved,
    median,
    paired_ratio,
    seed,
    spread,
    write_history_markers,
)

ID, NAME, OP, GOAL = "P1", "history-independence", "<=", 1.15


def run(ctx: Context) -> Figure:
    small, big = 100, 100_000
    ctx.say(f"  seeding {small:,} and {big:,} archived runs (documents, histories, markers) ...")
    with Site(ctx.root / "p1-small") as s_small, Site(ctx.root / "p1-big") as s_big:
        for site, n in ((s_small, small), (s_big, big)):
            seed(site.db, (archived_doc(i) for i in range(n)))
            write_history_markers(site.state, range(n))
        for site in (s_small, s_big):  # first tick creates .snakemake/ and the like
            site.tick()
        cpu: dict[str, list[float]] = {"small": [], "big": []}

        def timed(label: str, site: Site):
            def tick() -> float:
                wall = site.tick()
                cpu[label].append(site.last_cpu)
                return wall

            return tick

        times = interleaved({"small": timed("small", s_small), "big": timed("big", s_big)}, ctx.reps)
    ratio = paired_ratio(times["big"], times["small"])
    return Figure(
        ID,
        NAME,
        ratio,
        OP,
        GOAL,
        details=[
            f"no-op tick, {small:,} archived runs:  wall {spread(times['small'])}; CPU {median(cpu['small']):.2f} s",
            f"no-op tick, {big:,} archived runs: wall {spread(times['big'])}; CPU {median(cpu['big']):.2f} s",
            f"CPU time ratio (all processes of the tick + the DB server): {paired_ratio(cpu['big'], cpu['small']):.2f}",
        ],
    )
