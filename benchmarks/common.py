"""What the benchmarks share: sites, seeded histories, timing, figures.

A :class:`Site` is one self-contained Fulliautomatix installation for a
benchmark: its own work, DAQ, scratch and archive directories, its own config
file, and its own embedded runs DB (an nx-27017 server on loopback, started
here as ``fulliautomatix`` itself would start it, and reused by every tick as
it reuses a running ``fulliautomatix db serve``).  Sites never share a
server: nx-27017 shares collections across database names.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from fulliautomatix import config as fa_config
from fulliautomatix import embedded, hosts, runsdb

FA = str(Path(sys.executable).with_name("fulliautomatix"))
PROBE_DIR = Path(__file__).resolve().parent / "probe"


@dataclass
class Figure:
    """One benchmark's headline figure and the lines that explain it."""

    id: str
    name: str
    value: float
    op: str  # "<=" or ">="
    goal: float
    details: list[str] = field(default_factory=list)
    fmt: str = "{:.2f}"

    @property
    def met(self) -> bool:
        return self.value <= self.goal if self.op == "<=" else self.value >= self.goal

    def line(self) -> str:
        return f"{self.id} {self.name}: {self.fmt.format(self.value)} (goal {self.op} {self.goal:g})"


@dataclass
class Context:
    """Run-wide settings: where to work and which sizes to use."""

    root: Path
    full: bool
    reps: int
    out: object = sys.stdout

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def size(self, default, full):
        return full if self.full else default


class Site:
    """A work dir with its own config and embedded nx-27017 runs DB (see module doc)."""

    def __init__(self, root: Path, **overrides):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=False)
        base = {
            "runs_db": {"uri": "embedded"},
            "work_dir": str(self.root / "work"),
            "log_dir": str(self.root / "logs"),
            "daq": {"raw_dir": str(self.root / "daq")},
            "clusters": {"local": {"scratch": str(self.root / "cluster")}},
            "archive": {"location": str(self.root / "archive")},
        }
        fa_config.deep_update(base, overrides)
        self.config_path = self.root / "config.yaml"
        self.config_path.write_text(yaml.safe_dump(base, sort_keys=False))
        self.config = fa_config.load(self.config_path)
        if self.config["daq"]["host"] == "local":
            Path(self.config["daq"]["raw_dir"]).mkdir(parents=True, exist_ok=True)
        self.state = fa_config.state_dir(self.config)
        self.uri, self._server = embedded.ensure(self.state)
        rdb = self.config["runs_db"]
        self.db = runsdb.RunsDB(self.uri, rdb["database"], rdb["collection"], rdb["timeout_seconds"])
        self.db.ensure_indexes()

    def server_cpu(self) -> float:
        """CPU seconds the embedded server has used so far."""
        import psutil

        if self._server is None or self._server.poll() is not None:
            return 0.0
        t = psutil.Process(self._server.pid).cpu_times()
        return t.user + t.system

    def timed_job(self, stage: str, rule: str, run: str, done: str, config: Path | None = None) -> float:
        """A real tick (`--<stage> --run RUN`) runs the rule's job; its wall time (job_seconds); the run
        must end in raw_status `done`."""
        self.tick(f"--{stage}", "--run", run, config=config)
        if self.db.get(run)["raw_status"] != done:
            raise RuntimeError(f"the tick did not {stage} {run}")
        return self.job_seconds(rule, run)

    def tick(self, *args: str, env: dict | None = None, check: bool = True, config: Path | None = None) -> float:
        """Run one real cron tick (`fulliautomatix --config ...`: `config` or the site's); its wall time.

        Its CPU time (every process of the tick, plus the DB server's share) is left in `last_cpu`:
        unlike wall time it hardly moves when other work shares the machine.
        """
        r0, s0 = resource.getrusage(resource.RUSAGE_CHILDREN), self.server_cpu()
        t0 = time.perf_counter()
        proc = subprocess.run(
            [FA, "--config", str(config or self.config_path), *args],
            env=env or clean_env(),
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
        )
        seconds = time.perf_counter() - t0
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.last_cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime) + self.server_cpu() - s0
        if check and proc.returncode != 0:
            raise RuntimeError(f"tick failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
        return seconds

    def stop_server(self) -> None:
        """Stop the embedded server (a later tick or command starts its own)."""
        self.db.close()
        embedded.stop(self.state, self._server)
        self._server = None

    def close(self) -> None:
        hosts.close_masters(hosts.control_dir(self.config))  # what stages called in-process opened
        self.stop_server()

    def job_seconds(self, rule: str, name: str) -> float:
        """A job's wall time as Snakemake measured it (the rule's benchmark file, column s)."""
        tsv = Path(self.config["work_dir"]) / "benchmarks" / rule / f"{name}.tsv"
        rows = [line.split("\t") for line in tsv.read_text().splitlines()]
        return float(rows[1][rows[0].index("s")])

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def clean_env(**extra: str) -> dict:
    """The environment for a tick: no runs-DB override, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if k != fa_config.DB_ENV}
    env.update(extra)
    return env


# -- seeded run documents -------------------------------------------------------

EPOCH = _dt.date(2017, 1, 1)
RUNS_PER_DAY = 50


def run_name(i: int) -> str:
    """The i-th run's name (YYMMDD_NNNN, 50 runs a day from 2017-01-01)."""
    day = EPOCH + _dt.timedelta(days=i // RUNS_PER_DAY)
    return f"{day:%y%m%d}_{i % RUNS_PER_DAY:04d}"


def _history(steps: list[tuple[str, str, str]], at: str) -> list[dict]:
    return [{"at": at, "field": f, "from": a, "to": b, "host": "bench"} for f, a, b in steps]


RAW_LIFE = ["acquired", "transferring", "ondeck", "compressing", "compressed", "archiving", "archived"]
PROC_LIFE = ["none", "queued", "processing", "processed"]


def daq_doc(i: int, events: int = 1000, raw_location: str = "zinc") -> dict:
    """A run as the DAQ inserts it."""
    return {
        "name": run_name(i),
        "number": i + 1,
        "events": events,
        "source": "physics",
        "raw_status": "acquired",
        "raw_location": raw_location,
        "processed_status": "none",
        "start": f"{EPOCH + _dt.timedelta(days=i // RUNS_PER_DAY)}T00:00:00+00:00",
    }


def archived_doc(i: int, files: int = 4) -> dict:
    """A run at the end of its life, with what every stage records and its history."""
    doc = daq_doc(i)
    name, at = doc["name"], doc["start"]
    batch = f"{run_name(i - i % 4)}_to_{run_name(i - i % 4 + 3)}"
    steps = [("raw_status", a, b) for a, b in zip(RAW_LIFE[:3], RAW_LIFE[1:3])]
    steps += [("processed_status", a, b) for a, b in zip(PROC_LIFE, PROC_LIFE[1:])]
    steps += [("raw_status", a, b) for a, b in zip(RAW_LIFE[2:], RAW_LIFE[3:])]
    checksums = [{"path": f"raw_{k:03d}.bin", "size": 128012, "hash": f"{i:016x}{k:048x}"} for k in range(files)]
    tarball = f"/archive/{batch}.tar"
    doc.update(
        {
            "raw_status": "archived",
            "processed_status": "processed",
            "raw_location": f"local:{tarball}#{name}.tar.zst",
            "transfer": {
                "bytes": 128012 * files,
                "files": files,
                "seconds": 0.4,
                "checksum_algorithm": "sha256",
                "destination": f"/scratch/raw/{name}",
                "attempts": 1,
                "checksums": checksums,
                "finished": at,
                "error": None,
            },
            "processing": {
                "attempts": 1,
                "queue": "local",
                "job_id": None,
                "processor_version": "ref-1",
                "output": f"/scratch/processed/{name}/ref-1",
                "exit_code": 0,
                "seconds": 2.1,
                "finished": at,
                "log_tail": None,
            },
            "compressed": {
                "path": f"/scratch/compressed/{name}.tar.zst",
                "bytes": 180000,
                "hash": "0" * 64,
                "algorithm": "sha256",
                "members_verified": files,
                "at": at,
                "seconds": 0.3,
                "error": None,
            },
            "archive": {
                "batch": batch,
                "backend": "local",
                "tarball": tarball,
                "member": f"{name}.tar.zst",
                "verified": at,
                "error": None,
            },
            "history": _history(steps, at),
            "rev": len(steps),
        }
    )
    return doc


def seed(db: runsdb.RunsDB, docs, chunk: int = 2000) -> int:
    """Insert documents in bulk through RunsDB.insert_runs; return how many."""
    n, batch = 0, []
    for doc in docs:
        batch.append(doc)
        if len(batch) >= chunk:
            n += db.insert_runs(batch)
            batch = []
    if batch:
        n += db.insert_runs(batch)
    return n


def write_history_markers(state: Path, indexes: range) -> None:
    """The stage and batch markers that archived runs leave in state/ (unsynced writes)."""
    dirs = {stage: state / stage for stage in ("ondeck", "processed", "compressed", "archived")}
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    for i in indexes:
        name = run_name(i)
        for stage, field_, to in (
            ("ondeck", "raw_status", "ondeck"),
            ("processed", "processed_status", "processed"),
            ("compressed", "raw_status", "compressed"),
        ):
            (dirs[stage] / f"{name}.json").write_text(json.dumps({"run": name, "field": field_, "to": to}))
        if i % 4 == 3:
            batch = f"{run_name(i - 3)}_to_{name}"
            (dirs["archived"] / f"{batch}.json").write_text(json.dumps({"batch": batch}))


# -- timing and memory ------------------------------------------------------------


def interleaved(fns: dict, reps: int) -> dict[str, list[float]]:
    """Call each function `reps` times, alternating between them; their returned times."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(reps):
        for label, fn in fns.items():
            times[label].append(fn())
    return times


def median(values) -> float:
    return statistics.median(values)


def cpu_now() -> float:
    """CPU seconds used so far by this process and its finished children."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def paired_ratio(a: list[float], b: list[float]) -> float:
    """Median of a[i] / b[i] over pairs measured back to back.

    A pair shares the machine's load of its moment, so this is steadier on a
    busy machine than the ratio of the two medians.
    """
    return median([x / y for x, y in zip(a, b)])


def spread(values) -> str:
    """'1.23 s (1.20-1.30, n=5)'"""
    return f"{median(values):.3f} s ({min(values):.3f}-{max(values):.3f}, n={len(values)})"


class TreeMemory:
    """Peak resident memory of a process and its descendants, sampled every `every` s.

    Also records each process's own high-water mark (VmHWM), which the
    kernel keeps exactly, so a short peak between samples is not lost for
    the largest process.
    """

    def __init__(self, pid: int, every: float = 0.02):
        import psutil

        self._psutil = psutil
        self.root = psutil.Process(pid)
        self.every = every
        self.peak_sum = 0  # bytes, largest sampled sum of RSS over the tree
        self.hwm: dict[int, tuple[str, int]] = {}  # pid -> (name, VmHWM bytes)
        self.own: set[int] = {pid}  # the process and its direct children
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        ps = self._psutil
        try:
            self.own |= {c.pid for c in self.root.children()}
            procs = [self.root] + self.root.children(recursive=True)
        except ps.Error:
            return
        total = 0
        for p in procs:
            try:
                total += p.memory_info().rss
                with open(f"/proc/{p.pid}/status") as fh:
                    for line in fh:
                        if line.startswith("VmHWM:"):
                            hwm = int(line.split()[1]) * 1024
                            name = " ".join(p.cmdline()[:3])[-60:]
                            if hwm > self.hwm.get(p.pid, ("", 0))[1]:
                                self.hwm[p.pid] = (name, hwm)
            except (ps.Error, OSError):
                continue
        self.peak_sum = max(self.peak_sum, total)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.every)

    def start(self) -> "TreeMemory":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._sample()
        self._stop.set()
        self._thread.join()

    def own_peak(self) -> int:
        """Sum of the high-water marks of the process and its direct children."""
        return sum(self.hwm[p][1] for p in self.own if p in self.hwm)

    def largest(self) -> tuple[str, int]:
        return max(self.hwm.values(), key=lambda v: v[1], default=("", 0))


def mib(n: float) -> str:
    return f"{n / 2**20:.0f} MiB"
