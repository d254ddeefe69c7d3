"""`make soak`: a chaos run of real ticks (issue 10).

    .venv/bin/python -m tests.soak.soak [--seed N] [--runs 50] [--minutes 10] [--dir DIR]

Takes `--runs` simulated runs (arriving over the first ticks) through
repeated ticks of the real `fulliautomatix` wrapper (Snakemake, rsync, tar,
zstd, the embedded nx-27017 runs DB), injecting faults of the fault matrix
(README "Reliability") at random moments, then lets ticks run clean until
every run is archived, and restores every run and compares it with what the
DAQ wrote.  After every tick it checks the invariants S1-S5 (see
invariants.py), and prints one line per invariant with counts and
`faults injected: N, survived: N`.  Exit status 1 when an invariant failed
or the runs were not all archived within `--minutes` (the first 60 % of the
time injects faults).

Faults: kill -9 of the tick's process group, or of the wrapper alone, at a
random moment; the runs DB server killed (the next tick starts it again);
the tick's rsync killed mid-copy (rsync runs at 250 kB/s here); a copy on
scratch corrupted after its transfer verified, before compression; the processor exiting 1 (processor_wrapper.py); three
ticks at once.  The choices and moments come from `--seed` (what the faults
then hit depends on timing).
"""

from __future__ import annotations

import argparse
import math
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import yaml

from fulliautomatix import runsdb
from fulliautomatix import config as fa_config

from ..fa_testlib import digests
from .invariants import Invariants

FA = str(Path(sys.executable).with_name("fulliautomatix"))
HERE = Path(__file__).resolve().parent
DURING = ("kill-group", "kill-wrapper", "kill-db", "kill-rsync", "corrupt-scratch")
BEFORE = ("processor-fails",)
FAULTS = DURING + BEFORE + ("ticks-at-once",)


class Soak:
    def __init__(self, root: Path, rng: random.Random, events: int):
        self.root, self.rng, self.events = root, rng, events
        self.dirs = {k: root / k for k in ("daq", "cluster", "archive", "work", "logs", "sentinel")}
        for d in ("fail", "ticks"):
            (root / "soak" / d).mkdir(parents=True, exist_ok=True)
        self.soak_dir = root / "soak"
        self.config_path = root / "config.yaml"
        self.inv = Invariants()
        self.injected: list[str] = []
        self.missed: list[str] = []  # faults chosen that found nothing to hit (the tick ended first, no target)
        self.survived = 0
        self.ticks = 0
        self.env = {k: v for k, v in os.environ.items() if k != fa_config.DB_ENV}

    def setup(self) -> None:
        d = self.dirs
        for sub in ("notes", "notes/deep"):
            (d["sentinel"] / sub).mkdir(parents=True, exist_ok=True)
        (d["sentinel"] / "notes" / "shift-log.txt").write_text("an operator's file beside the data\n")
        (d["sentinel"] / "notes" / "deep" / "calibration.bin").write_bytes(bytes(range(256)) * 16)
        self.inv.sentinel = digests(d["sentinel"], skip_links=True)
        command = (
            f"{{python}} {HERE / 'processor_wrapper.py'} {self.soak_dir} {{run}} --config {{pax_config}} "
            "--input {raw} --output {output}"
        )
        cfg = {
            "work_dir": str(d["work"]),
            "log_dir": str(d["logs"]),
            "daq": {"raw_dir": str(d["daq"])},
            "clusters": {"local": {"scratch": str(d["cluster"])}},
            "archive": {"location": str(d["archive"]), "batch_runs": 4, "max_wait_days": 0},
            # A fault nearly every tick is far above a real rate: room for several hits on one run.
            "processing": {"command": command, "max_attempts": 10},
            # rsync at 250 kB/s: a run's copy (about 100 kB) lasts long enough to be killed mid-copy
            "transfer": {"max_attempts": 10, "rsync": ["rsync", "-a", "--partial", "--bwlimit=250"]},
            "compression": {"max_attempts": 10},
            "report": {"every_tick": False},
            "audit": {"per_tick": 2},
        }
        self.config_path.write_text(yaml.safe_dump(cfg))
        self.config = fa_config.load(self.config_path)

    # -- the runs ----------------------------------------------------------------------------
    def simulate(self, n: int) -> None:
        r = subprocess.run(
            [FA, "--config", str(self.config_path), "simulate-daq", "--runs", str(n), "--events", str(self.events)],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=300,
        )
        if r.returncode != 0:
            raise SystemExit(f"soak: simulate-daq failed: {r.stderr.strip()}")
        for name in r.stderr.strip().rsplit(": ", 1)[1].split(", "):
            self.inv.originals[name] = digests(self.dirs["daq"] / name, skip_links=True)

    def docs(self) -> list[dict]:
        for attempt in range(5):
            try:
                with runsdb.connect(self.config) as db:
                    return list(db.col.find({}, {"transfer.checksums": 0}))
            except runsdb.RunsDBError:
                time.sleep(1 + attempt)
        raise SystemExit("soak: the runs DB cannot be read")

    # -- one tick, maybe with a fault ----------------------------------------------------------
    def start_tick(self, tag: str) -> subprocess.Popen:
        err = open(self.soak_dir / "ticks" / f"{self.ticks:03d}-{tag}.err", "w")
        return subprocess.Popen(
            [FA, "--config", str(self.config_path)],
            stdout=subprocess.DEVNULL,
            stderr=err,
            stdin=subprocess.DEVNULL,
            env=self.env,
            start_new_session=True,
        )

    def tick(self, fault: str | None) -> bool:
        """One tick (several with ticks-at-once), the fault injected; whether the fault hit something."""
        self.ticks += 1
        hit = self.before_tick(fault) if fault in BEFORE else False
        procs = [self.start_tick("a")]
        if fault == "ticks-at-once":
            procs += [self.start_tick(t) for t in "bc"]
            hit = True
        if fault in DURING:
            hit = self.during_tick(fault, procs[0], time.monotonic() + self.rng.uniform(0.3, 6.0))
        for p in procs:
            try:
                p.wait(timeout=900)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        return hit

    def before_tick(self, fault: str) -> bool:
        """processor-fails: the next processor start of a run not yet processed exits 1."""
        runs = [d["name"] for d in self.docs() if d.get("processed_status") in ("none", "failed")]
        if runs:
            (self.soak_dir / "fail" / self.rng.choice(sorted(runs))).touch()
        return bool(runs)

    def corrupt_scratch(self) -> bool:
        """A byte flipped in the copy on scratch of a run whose transfer verified (a bad disk)."""
        copies = [
            f
            for d in sorted(self.docs(), key=lambda d: d["name"])
            if d.get("raw_status") == "ondeck"
            for f in sorted((self.dirs["cluster"] / "raw" / d["name"]).rglob("*"))
            if f.is_file()
        ]
        if not copies:
            return False
        victim = self.rng.choice(copies)
        data = bytearray(victim.read_bytes())
        data[len(data) // 2] ^= 0xFF
        victim.write_bytes(bytes(data))
        return True

    def rsyncs(self) -> list[psutil.Process]:
        """The transfers' rsyncs (they run in the run's DAQ directory and name only their destination)."""
        into = str(self.dirs["cluster"] / "raw")
        return [
            p
            for p in psutil.process_iter(["name", "cmdline"])
            if p.info["name"] == "rsync" and into in " ".join(p.info["cmdline"] or [])
        ]

    def during_tick(self, fault: str, proc: subprocess.Popen, moment: float) -> bool:
        """At `moment` (the ones that need a target: from then on, as soon as there is one), while the
        tick runs: the fault.  Whether it hit something."""
        while time.monotonic() < moment and proc.poll() is None:
            time.sleep(0.05)
        while proc.poll() is None:
            if fault == "kill-group":
                os.killpg(proc.pid, signal.SIGKILL)
                return True
            if fault == "kill-wrapper":
                proc.kill()
                return True
            if fault == "kill-db":
                try:
                    pid = int((fa_config.state_dir(self.config) / "runsdb.addr").read_text().split()[1])
                    psutil.Process(pid).kill()
                    return True
                except (OSError, IndexError, ValueError, psutil.Error):
                    pass
            elif fault == "corrupt-scratch" and self.corrupt_scratch():
                return True
            elif fault == "kill-rsync":
                found = self.rsyncs()
                for p in found:
                    try:
                        p.kill()
                    except psutil.Error:
                        pass
                if found:
                    return True
            time.sleep(0.1)
        return False

    # -- the whole run -------------------------------------------------------------------------
    def check(self, when: str) -> int:
        before = len(self.inv.violations)
        self.inv.check(self.docs(), self.dirs["daq"], self.dirs["sentinel"], self.soak_dir, when)
        return len(self.inv.violations) - before

    def all_archived(self) -> bool:
        docs = self.docs()
        return len(docs) == len(self.inv.originals) and all(d.get("raw_status") == "archived" for d in docs)

    def restore_all(self) -> int:
        """Every run restored from the archive and compared with what the DAQ wrote; how many are identical."""
        to = self.root / "restored"
        names = sorted(self.inv.originals)
        r = subprocess.run(
            [FA, "--config", str(self.config_path), "restore", *names, "--to", str(to)],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=900,
        )
        good = sum(digests(to / n, skip_links=True) == self.inv.originals[n] for n in names)
        for n in names:
            if digests(to / n, skip_links=True) != self.inv.originals[n]:
                self.inv.breach(
                    f"S1 at the end: run {n}: restored copy differs from the DAQ's ({r.stderr.strip()[-200:]})"
                )
        self.inv.counts["S1"] = (good, len(names))
        return good


def run(seed: int, runs: int, minutes: float, root: Path, events: int = 200, faults=FAULTS) -> int:
    rng = random.Random(seed)
    soak = Soak(root, rng, events)
    soak.setup()
    start = time.monotonic()
    chaos_end, end = start + 0.6 * minutes * 60, start + minutes * 60
    chunks = max(6, math.ceil(runs / 3))  # about three new runs a tick, over at least six ticks
    arrivals = [len(range(i, runs, chunks)) for i in range(chunks)]
    arrivals = [a for a in arrivals if a > 0]
    while arrivals or time.monotonic() < chaos_end:
        if arrivals:
            soak.simulate(arrivals.pop(0))
        fault = rng.choice(faults) if rng.random() < 0.9 else None
        hit = soak.tick(fault)
        new = soak.check(f"tick {soak.ticks} ({fault or 'clean'})")
        if fault and hit:
            soak.injected.append(fault)
            soak.survived += new == 0
        elif fault:
            soak.missed.append(fault)
        if soak.all_archived() and not arrivals:
            break
    while not soak.all_archived() and time.monotonic() < end:
        soak.tick(None)
        soak.check(f"tick {soak.ticks} (clean)")
    finished = soak.all_archived()
    if not finished:
        soak.inv.breach(
            f"not every run archived within {minutes} minutes ({soak.ticks} ticks); see "
            f"`{FA} --config {soak.config_path} status`"
        )
    restored = soak.restore_all() if finished else 0
    soak.check("at the end")
    print(f"soak: seed {seed}, {runs} runs, {soak.ticks} ticks in {time.monotonic() - start:.0f} s, in {root}")
    for line in soak.inv.lines():
        print(line)
    kinds = ", ".join(f"{k} {soak.injected.count(k)}" for k in FAULTS if k in soak.injected)
    survived = soak.survived if finished and restored == runs else 0
    print(f"faults injected: {len(soak.injected)}, survived: {survived}" + (f" ({kinds})" if kinds else ""))
    if soak.missed:
        print(f"faults that found nothing to hit: {len(soak.missed)} ({', '.join(sorted(set(soak.missed)))})")
    for line in soak.inv.violations:
        print(f"FAILED {line}")
    return 1 if soak.inv.violations else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.soak.soak", description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--events", type=int, default=200, help="events per simulated run")
    ap.add_argument("--dir", type=Path, help="where the soak's directories go (default: a new temporary one)")
    ap.add_argument(
        "--faults", default=",".join(FAULTS), help=f"the faults to choose from (default: all: {','.join(FAULTS)})"
    )
    args = ap.parse_args(argv)
    root = args.dir or Path(tempfile.mkdtemp(prefix="fa-soak-"))
    root.mkdir(parents=True, exist_ok=True)
    faults = tuple(f for f in args.faults.split(",") if f)
    if not faults or set(faults) - set(FAULTS):
        ap.error(f"--faults: choose from {','.join(FAULTS)}")
    return run(args.seed, args.runs, args.minutes, root.resolve(), args.events, faults)


if __name__ == "__main__":
    sys.exit(main())
