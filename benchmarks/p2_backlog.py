"""P2 backlog planning: a full cron tick facing N freshly acquired runs vs 10.

Each site holds N runs just written by the DAQ (small raw directories and
their documents, raw_status acquired).  The real cron tick starts
(`fulliautomatix`, every stage); the clock stops when the first transfer
begins (the first `$ rsync` line in a transfer_run job log), and the tick is
then stopped.  Peak memory up to that moment is the sum of the kernel's
high-water marks (VmHWM) of the tick's own processes (the cron wrapper and
the Snakemake that plans); the sampled peak of the whole process tree (jobs
included) is shown beside it.  Figures: time and memory with N divided by
the same with 10, medians over back-to-back pairs (N = 1,000 by default,
5,000 with --full).  A tick takes at most transfer.max_per_tick runs from
the DAQ (oldest first), so its plan and DAG stay small however long the
backlog.  The local profile uses Snakemake's greedy scheduler; one extra tick
with the ILP scheduler shows why.
"""

from __future__ import annotations

import copy
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import yaml

from fulliautomatix import config as fa_config
from fulliautomatix import daq, planning
from fulliautomatix.standins import rawformat

from .common import FA, Context, Figure, Site, TreeMemory, clean_env, daq_doc, median, mib, paired_ratio, seed, spread

ID, NAME, OP, GOAL = "P2", "backlog-planning", "<=", 2


def _site(ctx: Context, label: str, n: int) -> Site:
    site = Site(ctx.root / label)
    raw = Path(site.config["daq"]["raw_dir"])
    for i in range(n):
        rawformat.write_run(raw / daq_doc(i)["name"], daq_doc(i)["name"], 20)
    seed(site.db, (daq_doc(i, events=20) for i in range(n)))
    return site


def _first_rsync(log_dir: Path) -> bool:
    try:
        entries = list(os.scandir(log_dir))
    except FileNotFoundError:
        return False
    for e in entries:
        try:
            with open(e.path, errors="replace") as fh:
                if any(line.startswith("$ ") and "rsync" in line for line in fh):
                    return True
        except OSError:
            continue
    return False


def time_to_first_transfer(site: Site, timeout: float = 900, home: str = "") -> tuple[float, int, int]:
    """(seconds until the first rsync starts, the tick's own peak memory, peak tree RSS)."""
    log_dir = Path(site.config["work_dir"]) / "logs" / "transfer_run"
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [FA, "--config", str(site.config_path)],
        env=clean_env(**({"FULLIAUTOMATIX_HOME": home} if home else {})),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    mem = TreeMemory(proc.pid).start()
    try:
        while not _first_rsync(log_dir):
            if proc.poll() is not None:
                raise RuntimeError(f"tick ended before any transfer began: {proc.stderr.read().decode()[-2000:]}")
            if time.perf_counter() - t0 > timeout:
                raise RuntimeError(f"no transfer began within {timeout:.0f} s")
            time.sleep(0.01)
        seconds = time.perf_counter() - t0
    finally:
        mem.stop()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        proc.stderr.close()
    return seconds, mem.own_peak(), mem.peak_sum


def planning_parts(site: Site) -> tuple[float, float, float]:
    """(seconds of the tick's planning, in-process: the parse-time read, planning.read_plan; the
    sync_runs_db job's planning.plan_tick; of which the DAQ survey)."""
    config = copy.deepcopy(site.config)
    config["tick"]["stages"] = ["transfer", "process", "compress", "archive"]
    names = [d["name"] for d in site.db.pending()]
    t0 = time.perf_counter()
    planning.read_plan(config)
    read = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        planning.plan_tick(site.db, config, "p2", f"{tmp}/plan.json")
        plan = time.perf_counter() - t0
    t0 = time.perf_counter()
    daq.survey_daq(site.config, names)
    survey = time.perf_counter() - t0
    return read, plan, survey


def _ilp_home(ctx: Context) -> str:
    """A copy of the workflow, profiles and config whose shared profile asks for the ILP scheduler
    (workflow/profiles/default decides `scheduler` for every profile), for FULLIAUTOMATIX_HOME."""
    home = ctx.root / "home-ilp"
    for part in ("workflow", "profiles", "config"):
        shutil.copytree(fa_config.ROOT / part, home / part)
    shared = home / "workflow" / "profiles" / "default" / "config.yaml"
    cfg = yaml.safe_load(shared.read_text())
    cfg["scheduler"] = "ilp"
    shared.write_text(yaml.safe_dump(cfg))
    return str(home)


def run(ctx: Context) -> Figure:
    small, big = 10, ctx.size(1_000, 5_000)
    reps = max(2, ctx.reps - 2)
    ctx.say(f"  {reps} ticks each facing {small} and {big:,} acquired runs (fresh sites) ...")
    results: dict[int, list[tuple[float, int, int]]] = {small: [], big: []}
    for r in range(reps):
        for n in (small, big):
            with _site(ctx, f"p2-{n}-{r}", n) as site:
                results[n].append(time_to_first_transfer(site))
    with _site(ctx, f"p2-{big}-ilp", big) as site:
        ilp = time_to_first_transfer(site, home=_ilp_home(ctx))
    parts = {}
    for n in (small, big):
        with _site(ctx, f"p2-{n}-parts", n) as site:
            parts[n] = planning_parts(site)
    t = {n: [x[0] for x in results[n]] for n in results}
    m = {n: median([x[1] for x in results[n]]) for n in results}
    tree = {n: median([x[2] for x in results[n]]) for n in results}
    time_ratio = paired_ratio(t[big], t[small])
    mem_ratio = paired_ratio([x[1] for x in results[big]], [x[1] for x in results[small]])
    fig = Figure(
        ID,
        NAME,
        max(time_ratio, mem_ratio),
        OP,
        GOAL,
        details=[
            f"time to first transfer: {small} runs {spread(t[small])}; {big:,} runs {spread(t[big])}; "
            f"ratio {time_ratio:.2f}",
            f"peak memory (wrapper + Snakemake, VmHWM): {small} runs {mib(m[small])}; {big:,} runs {mib(m[big])}; "
            f"ratio {mem_ratio:.2f}",
            f"sampled peak of the whole process tree (jobs included): {small} runs {mib(tree[small])}; "
            f"{big:,} runs {mib(tree[big])}",
            f"of which Fulliautomatix's planning, timed alone: the parse's read (planning.read_plan) {small} runs "
            f"{parts[small][0]:.2f} s, {big:,} runs {parts[big][0]:.2f} s; the sync_runs_db job's plan "
            f"(planning.plan_tick) {parts[small][1]:.2f} s and {parts[big][1]:.2f} s, in it the DAQ survey "
            f"{parts[small][2]:.2f} s and {parts[big][2]:.2f} s; the rest is Snakemake and its jobs",
            f"same tick, {big:,} runs, Snakemake's ILP scheduler instead of greedy: {ilp[0]:.3f} s to first "
            f"transfer ({ilp[0] / median(t[big]):.2f}x greedy)",
            "figure = the larger of the time and memory ratios",
        ],
    )
    return fig
