"""P7 report at scale: `fulliautomatix report` vs `fulliautomatix status` on the same runs DB.

A site's runs DB holds N runs (10,000 by default, 100,000 with --full), 50 a
day up to now, each with the history, stage records and ``updated_at`` its
life left (``updated_day`` too): all archived but 24 in the other states (a few failed, one stuck).
`fulliautomatix --config ... report --out FILE` (the default 14-day window)
and `fulliautomatix --config ... status` take turns, both as fresh processes
against the running embedded server.  Figure: the report's time divided by
status's (median over back-to-back pairs).  Beside it: the report's work
in-process (reading, the one pass, drawing), how many runs it read, the
page's size, and what reading every run's history would cost instead.
"""

from __future__ import annotations

import datetime as _dt
import subprocess
import time

from fulliautomatix import dates, report

from .common import (
    FA,
    Context,
    Figure,
    Site,
    archived_doc,
    clean_env,
    daq_doc,
    interleaved,
    median,
    paired_ratio,
    seed,
    spread,
)
from .p6_status import PENDING

ID, NAME, OP, GOAL = "P7", "report-at-scale", "<=", 5
PER_DAY = 50
# Hours after a run's start at which each step of archived_doc's history happened.
STEP_HOURS = [0.5, 1.0, 1.2, 3.0, 4.0, 4.2, 4.5, 20.0, 20.5]


def _aged(doc: dict, start: _dt.datetime) -> dict:
    """archived_doc's life moved to `start`: history, stage records and updated_at at real times."""
    at = [start + _dt.timedelta(hours=h) for h in STEP_HOURS]
    iso = [t.isoformat(timespec="seconds") for t in at]
    doc["start"] = start.isoformat(timespec="seconds")
    for entry, when in zip(doc["history"], iso):
        entry["at"] = when
    doc["transfer"].update(finished=iso[1], mb_per_second=95.0 + (doc["number"] % 10))
    doc["processing"].update(finished=iso[5], walltime="00:05:00", seconds=120.0 + doc["number"] % 60)
    doc["compressed"]["at"] = iso[6]
    doc["archive"].update(verified=iso[8], bytes=doc["compressed"]["bytes"])
    doc["updated_at"] = iso[-1]
    doc["updated_day"] = dates.day_number(at[-1])
    return doc


def _docs(n: int, now: _dt.datetime):
    pending = 24
    first = now - _dt.timedelta(days=n / PER_DAY)
    for i in range(n - pending):
        yield _aged(archived_doc(i), first + _dt.timedelta(days=i / PER_DAY) - _dt.timedelta(days=1))
    for k in range(pending):
        doc = daq_doc(n - pending + k)
        doc["start"] = (now - _dt.timedelta(hours=k)).isoformat(timespec="seconds")
        doc["raw_status"], doc["processed_status"] = PENDING[k % len(PENDING)]
        if doc["processed_status"] == "failed":
            doc["processing"] = {"attempts": 1, "exit_code": 2, "log_tail": "bench: simulated failure"}
        if k == 1:  # transferring for 23 h: stuck
            doc["history"] = [
                {
                    "at": (now - _dt.timedelta(hours=23)).isoformat(timespec="seconds"),
                    "field": "raw_status",
                    "from": "acquired",
                    "to": "transferring",
                    "host": "bench",
                }
            ]
        yield doc


def run(ctx: Context) -> Figure:
    n = ctx.size(10_000, 100_000)
    now = _dt.datetime.now(_dt.timezone.utc)
    ctx.say(f"  seeding {n:,} runs with histories ({PER_DAY} a day up to now); {ctx.reps + 2} of each, in turns ...")
    with Site(ctx.root / "p7") as site:
        seed(site.db, _docs(n, now))
        env = clean_env()
        page = ctx.root / "report.html"

        def command(*args: str) -> float:
            t0 = time.perf_counter()
            subprocess.run(
                [FA, "--config", str(site.config_path), *args],
                env=env,
                check=True,
                stdout=subprocess.DEVNULL,
                stdin=subprocess.DEVNULL,
            )
            return time.perf_counter() - t0

        command("report", "--out", str(page)), command("status")  # warm-up
        times = interleaved(
            {"report": lambda: command("report", "--out", str(page)), "status": lambda: command("status")}, ctx.reps + 2
        )
        t0 = time.perf_counter()
        figures = report.build(site.db, site.config)
        built = time.perf_counter() - t0
        t0 = time.perf_counter()
        report.write_html(figures, ctx.root / "inproc.html")
        drawn = time.perf_counter() - t0
        every, scan = _scan(site)
    ratio = paired_ratio(times["report"], times["status"])
    kinds = sorted({i["kind"] for i in figures["attention"]})
    return Figure(
        ID,
        NAME,
        ratio,
        OP,
        GOAL,
        details=[
            f"fulliautomatix report (14 days): {spread(times['report'])}",
            f"fulliautomatix status:           {spread(times['status'])}",
            f"in-process: reading + one pass {built:.3f} s ({figures['runs_read']:,} of {n:,} runs read: pending or "
            f"written in the window), drawing the page {drawn:.3f} s ({page.stat().st_size / 1024:.0f} KiB); "
            f"attention: {', '.join(kinds) or 'none'}",
            f"reading every run's history instead (one find over all of them): {every} in {scan:.1f} s "
            f"(the report would take about {(median(times['report']) + scan - built) / median(times['status']):.0f}"
            " times status's time)",
        ],
    )


def _scan(site: Site) -> tuple[str, float]:
    """What reading every run's history would cost: one find over the collection, through a client of its own."""
    import pymongo
    import pymongo.errors

    rdb = site.config["runs_db"]
    client = pymongo.MongoClient(site.uri, socketTimeoutMS=600_000)
    t0 = time.perf_counter()
    try:
        n = sum(1 for _ in client[rdb["database"]][rdb["collection"]].find({}, {"transfer.checksums": 0}))
        return f"{n:,} runs", time.perf_counter() - t0
    except pymongo.errors.PyMongoError as exc:
        return f"failed ({type(exc).__name__})", time.perf_counter() - t0
    finally:
        client.close()
