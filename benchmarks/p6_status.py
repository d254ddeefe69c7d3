"""P6 status at a glance: `fulliautomatix status` vs one `$group` aggregation.

A site's runs DB holds N runs (10,000 by default, 100,000 with --full): all
archived but 24 in the other states, a few of them failed.  `fulliautomatix
--config ... status` and a Python process that connects with pymongo and runs
one `$group` by raw_status over the same collection take turns, both as fresh
processes against the running embedded server (as after `fulliautomatix db
serve`).  Figure: status's time divided by the aggregation's (median
over back-to-back pairs).  The same work in-process (no interpreter start-up) and status
with no server running (it then starts and stops its own) are shown beside.
"""

from __future__ import annotations

import subprocess
import sys
import time

from fulliautomatix import status

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

ID, NAME, OP, GOAL = "P6", "status-at-a-glance", "<=", 2
PENDING = [
    ("acquired", "none"),
    ("transferring", "none"),
    ("ondeck", "none"),
    ("ondeck", "queued"),
    ("ondeck", "processing"),
    ("ondeck", "processed"),
    ("ondeck", "failed"),
    ("compressing", "processed"),
    ("compressed", "processed"),
    ("archiving", "processed"),
]

GROUP = [{"$group": {"_id": "$raw_status", "n": {"$sum": 1}}}]
GROUP_SCRIPT = """
import sys, pymongo
client = pymongo.MongoClient(sys.argv[1])
rows = list(client[sys.argv[2]][sys.argv[3]].aggregate([{"$group": {"_id": "$raw_status", "n": {"$sum": 1}}}]))
client.close()
"""


def _docs(n: int):
    pending = 24
    for i in range(n - pending):
        yield archived_doc(i)
    for k in range(pending):
        doc = daq_doc(n - pending + k)
        doc["raw_status"], doc["processed_status"] = PENDING[k % len(PENDING)]
        if doc["processed_status"] == "failed":
            doc["processing"] = {"attempts": 1, "exit_code": 2, "log_tail": "bench: simulated failure"}
        yield doc


def run(ctx: Context) -> Figure:
    n = ctx.size(10_000, 100_000)
    ctx.say(f"  {n:,} runs in the DB; {ctx.reps + 2} of each, taking turns ...")
    with Site(ctx.root / "p6") as site:
        seed(site.db, _docs(n))
        rdb = site.config["runs_db"]
        env = clean_env()

        def status_cli() -> float:
            t0 = time.perf_counter()
            subprocess.run(
                [FA, "--config", str(site.config_path), "status"],
                env=env,
                check=True,
                stdout=subprocess.DEVNULL,
                stdin=subprocess.DEVNULL,
            )
            return time.perf_counter() - t0

        def group_process() -> float:
            t0 = time.perf_counter()
            subprocess.run(
                [sys.executable, "-c", GROUP_SCRIPT, site.uri, rdb["database"], rdb["collection"]],
                env=env,
                check=True,
                stdin=subprocess.DEVNULL,
            )
            return time.perf_counter() - t0

        def status_inproc() -> float:
            t0 = time.perf_counter()
            pending = site.db.pending()
            status.table(site.db.counts(), pending, site.config)
            return time.perf_counter() - t0

        def group_inproc() -> float:
            t0 = time.perf_counter()
            list(site.db.col.aggregate(GROUP))
            return time.perf_counter() - t0

        status_cli(), group_process()  # warm-up
        times = interleaved({"status": status_cli, "group": group_process}, ctx.reps + 2)
        inproc = interleaved({"status": status_inproc, "group": group_inproc}, ctx.reps + 2)
        site.stop_server()
        cold = status_cli()
    ratio = paired_ratio(times["status"], times["group"])
    return Figure(
        ID,
        NAME,
        ratio,
        OP,
        GOAL,
        details=[
            f"fulliautomatix status: {spread(times['status'])}",
            f"python + pymongo, one $group: {spread(times['group'])}",
            "in-process (no interpreter start-up), status's DB work + table: "
            f"{median(inproc['status']) * 1000:.1f} ms; one $group {median(inproc['group']) * 1000:.1f} ms; "
            f"in-process ratio {paired_ratio(inproc['status'], inproc['group']):.2f} "
            f"(the figure above: {ratio:.2f}, two fresh processes)",
            f"status with no server running (starts and stops nx-27017 itself): {cold:.3f} s",
        ],
    )
