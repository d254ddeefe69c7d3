"""P3 runs-DB round trips per run per stage, counted with pymongo command monitoring.

N runs (8 by default, 32 with --full) go from acquired to archived through
real cron ticks.  Every Python process of those ticks loads
``benchmarks/probe/sitecustomize.py``, which registers a pymongo
CommandListener and writes each command it saw (name, filter shape, documents
returned, server time) to a file; the package itself is not changed.  The
processes are told apart by what they run: the cron wrapper, the Snakemake
that plans the tick, and one job script per stage and run.

Figure: the largest number of commands per run in any stage (transfer,
process, compress, archive).  Per-tick costs (wrapper, planning, the
sync_runs_db checkpoint, the audit_archive read-back's pages of
RunsDB.after_number) are shown apart.  The same life is then lived again
with K archived runs in the DB (10,000, or 100,000 with --full): a query
whose cost grows with finished runs shows up as more documents returned or
more server time.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from pathlib import Path

from fulliautomatix.standins import rawformat

from .common import (
    PROBE_DIR,
    Context,
    Figure,
    Site,
    archived_doc,
    clean_env,
    daq_doc,
    run_name,
    seed,
    write_history_markers,
)

ID, NAME, OP, GOAL = "P3", "db-round-trips-per-run-stage", "<=", 3
CONNECTION_COMMANDS = ("ping", "endSessions")  # a job's connection check and its session clean-up
STAGE_RULES = {
    "transfer_run": "transfer",
    "process_run": "process",
    "compress_run": "compress",
    "archive_batch": "archive",
}


def classify(argv: list[str]) -> str:
    """Which part of the tick a process is, from its argv."""
    first = argv[0] if argv else ""
    m = re.search(r"\.snakemake/scripts/tmp[^/]*?\.([a-z_]+)\.py$", first)
    if m:
        return m.group(1)
    if first.endswith("/fulliautomatix"):
        return "wrapper"
    if "snakemake" in first:
        return "planning"
    return "other:" + Path(first).name


def lifecycle(ctx: Context, label: str, runs: int, background: int, max_ticks: int = 4) -> dict:
    """Live `runs` runs to archived; return per-part command records and the tick count."""
    probe = ctx.root / f"{label}-probe"
    probe.mkdir()
    with Site(ctx.root / label, archive={"batch_runs": 4}) as site:
        if background:
            seed(site.db, (archived_doc(i) for i in range(background)))
            write_history_markers(site.state, range(background))
        raw = Path(site.config["daq"]["raw_dir"])
        new = range(background, background + runs)
        for i in new:
            rawformat.write_run(raw / run_name(i), run_name(i), 50)
        seed(site.db, (daq_doc(i, events=50) for i in new))
        env = clean_env(PYTHONPATH=str(PROBE_DIR), FULLIAUTOMATIX_BENCH_PROBE=str(probe))
        ticks, failures = 0, []
        while ticks < max_ticks:
            ticks += 1
            try:
                site.tick(env=env)
            except RuntimeError as exc:
                failures.append(str(exc).splitlines()[0])
            left = sum(n for (raw_s, _), n in site.db.counts().items() if raw_s != "archived")
            if not left:
                break
    parts: dict[str, list[dict]] = defaultdict(list)
    processes: Counter = Counter()
    connections: Counter = Counter()
    for f in probe.glob("*.json"):
        rec = json.loads(f.read_text())
        part = classify(rec["argv"])
        parts[part] += rec["commands"]
        processes[part] += 1
        connections[part] += rec["connections"]
    return {
        "parts": parts,
        "processes": processes,
        "connections": connections,
        "ticks": ticks,
        "left": left,
        "failures": failures,
    }


def _per_run(life: dict, runs: int) -> dict[str, float]:
    return {stage: len(life["parts"].get(rule, [])) / runs for rule, stage in STAGE_RULES.items()}


def _breakdown(cmds: list[dict]) -> str:
    c = Counter(x["shape"] for x in cmds)
    return ", ".join(f"{n}x {shape}" for shape, n in c.most_common())


def _per_call(a: list[dict], b: list[dict]) -> dict:
    """{shape: ((docs, ms) per call without history, (docs, ms) per call with it)} for shapes in both."""

    def means(cmds):
        acc = defaultdict(lambda: [0, 0, 0])
        for x in cmds:
            acc[x["shape"]][0] += 1
            acc[x["shape"]][1] += x["docs"]
            acc[x["shape"]][2] += x["micros"] / 1000
        return {k: (d / n, ms / n) for k, (n, d, ms) in acc.items()}

    ma, mb = means(a), means(b)
    return {k: (ma[k], mb[k]) for k in ma.keys() & mb.keys()}


def run(ctx: Context) -> Figure:
    runs, background = ctx.size(8, 32), ctx.size(10_000, 100_000)
    ctx.say(f"  {runs} runs from acquired to archived, with 0 and then {background:,} archived runs in the DB ...")
    lives = {0: lifecycle(ctx, "p3-empty", runs, 0), background: lifecycle(ctx, "p3-history", runs, background)}
    base = lives[0]
    per_run = _per_run(base, runs)
    worst = max(per_run.values())
    details = []
    for rule, stage in STAGE_RULES.items():
        cmds = base["parts"].get(rule, [])
        data = sum(1 for x in cmds if x["name"] not in CONNECTION_COMMANDS) / runs
        details.append(
            f"{stage:9s} {per_run[stage]:.2f} per run = {data:.2f} reads/writes + "
            f"{per_run[stage] - data:.2f} ping/endSessions   ({_breakdown(cmds)})"
        )
    ticks = base["ticks"]
    for part in ("wrapper", "planning", "sync_runs_db", "audit_archive"):
        cmds = base["parts"].get(part, [])
        details.append(f"per tick, {part}: {len(cmds) / ticks:.1f} commands ({_breakdown(cmds)})")
    total = sum(len(v) for v in base["parts"].values())
    conns = sum(base["connections"].values())
    details.append(
        f"all processes, {ticks} ticks: {total} commands ({total / runs:.1f} per run), "
        f"{conns} connections opened (each a handshake round trip, not counted above)"
    )
    others = [p for p in base["parts"] if p.startswith("other:")]
    if others:
        details.append("other processes that used the DB: " + ", ".join(others))
    for label, life in (("empty DB", base), ("with history", lives[background])):
        if life["left"] or life["failures"]:
            details.append(
                f"WARNING ({label}): {life['left']} runs not archived after {life['ticks']} ticks; "
                f"failed ticks: {'; '.join(life['failures']) or 'none'}"
            )
    # Cost against history: the same life with `background` archived runs in the DB.
    hist = lives[background]
    grown = []
    for part in sorted(set(base["parts"]) & set(hist["parts"])):
        for shape, (a, b) in _per_call(base["parts"][part], hist["parts"][part]).items():
            (da, ma), (db_, mb) = a, b
            if db_ > da + 0.5 or (mb > 3 * ma and mb - ma > 5):
                grown.append(f"{part}: {shape}: per call {da:.1f} -> {db_:.1f} documents, {ma:.1f} -> {mb:.1f} ms")
    same = [
        stage
        for rule, stage in STAGE_RULES.items()
        if len(base["parts"].get(rule, [])) == len(hist["parts"].get(rule, []))
    ]
    details.append(
        f"same life with {background:,} archived runs in the DB: commands per run the same in "
        f"{len(same)} of {len(STAGE_RULES)} stages; queries whose cost per call grew: "
        f"{len(grown) or 'none'}"
    )
    details += [f"  grew: {g}" for g in grown]
    return Figure(ID, NAME, worst, OP, GOAL, details=details)
