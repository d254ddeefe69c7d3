"""P4 transfer efficiency: the transfer stage, verification included, vs plain `rsync -a`.

One run (256 MiB in 256 files by default; 1 GiB in 1,024 files with --full)
sits in the DAQ directory.  Fulliautomatix's transfer stage
(:func:`fulliautomatix.transfer.transfer_run`, called in-process as its
Snakemake job calls it: state change in the runs DB, rsync, checksums of
every file on both ends, rename into place, DB update) and a plain
`rsync -a` of the same files over the same path (local directories on the
embedded default) take turns; the figure is the median time of the stage
divided by the median time of rsync.  Every copy goes to a fresh
destination.  Then 8 runs of an eighth of the size each are transferred one
after another and all at once (8 threads).
"""

from __future__ import annotations

import copy
import shutil
import subprocess
import threading
import time
from pathlib import Path

from fulliautomatix import transfer

from . import rawdata
from .common import Context, Figure, Site, daq_doc, interleaved, median, run_name, seed, spread

ID, NAME, OP, GOAL = "P4", "transfer-efficiency", "<=", 1.25


def _link_copy(src: Path, dst: Path, files: list[str] | None = None) -> None:
    """A hard-linked copy of a run directory (instant; same data, same page cache)."""
    dst.mkdir(parents=True)
    for name in files or sorted(p.name for p in src.iterdir()):
        (dst / name).hardlink_to(src / name)


class Transfers:
    """New runs in one site's DAQ directory, transferred by the stage or by rsync."""

    def __init__(self, site: Site, data: Path):
        self.site, self.data, self.next = site, data, 0
        self.raw = Path(site.config["daq"]["raw_dir"])
        self.scratch = Path(site.config["clusters"]["local"]["scratch"])
        self.markers = site.state / "ondeck"
        self.markers.mkdir(parents=True, exist_ok=True)
        self.logs = site.root / "p4-logs"
        self.logs.mkdir(exist_ok=True)
        self.last_marker: dict = {}

    def new_runs(self, count: int, files: list[str] | None = None) -> list[str]:
        idx = range(self.next, self.next + count)
        self.next += count
        for i in idx:
            _link_copy(self.data, self.raw / run_name(i), files)
        seed(self.site.db, [daq_doc(i) for i in idx])
        return [run_name(i) for i in idx]

    def stage(self, run: str, config: dict | None = None) -> None:
        with open(self.logs / f"{run}.log", "w") as log:
            self.last_marker = transfer.transfer_run(self.site.db, config or self.site.config, run,
                                                     str(self.markers / f"{run}.json"), log)

    def timed_stage(self, config: dict | None = None) -> float:
        run = self.new_runs(1)[0]
        t0 = time.perf_counter()
        self.stage(run, config)
        seconds = time.perf_counter() - t0
        self.cleanup()
        return seconds

    def timed_rsync(self) -> float:
        run = self.new_runs(1)[0]
        dest = self.scratch / "rsync-baseline" / run
        dest.parent.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        subprocess.run(["rsync", "-a", f"{self.raw / run}/", f"{dest}/"], check=True)
        seconds = time.perf_counter() - t0
        self.cleanup()
        return seconds

    def cleanup(self) -> None:
        """Drop the copies made so far (untimed), so disk use stays at one run."""
        for d in (self.scratch / "raw", self.scratch / "rsync-baseline"):
            shutil.rmtree(d, ignore_errors=True)


def run(ctx: Context) -> Figure:
    size, files = ctx.size((256 << 20, 256), (1 << 30, 1024))
    data = ctx.root / "p4-data"
    ctx.say(f"  writing a {size >> 20} MiB run in {files} files; {ctx.reps} transfers each way ...")
    rawdata.write_run(data, size, files)
    with Site(ctx.root / "p4") as site:
        t = Transfers(site, data)
        t.timed_stage()  # warm-up: page cache, first connection
        times = interleaved({"stage": t.timed_stage, "rsync": t.timed_rsync}, ctx.reps)
        measured = t.last_marker.get("measured", {})
        sha = copy.deepcopy(site.config)
        sha["transfer"]["checksum"] = "sha256"
        sha_times = [t.timed_stage(sha) for _ in range(max(1, ctx.reps - 1))]
        # 8 runs of an eighth of the size: one after another, then all at once.
        eighth = sorted(p.name for p in data.iterdir())[: max(1, files // 8)]
        runs = t.new_runs(8, eighth)
        t0 = time.perf_counter()
        for r in runs:
            t.stage(r)
        sequential = time.perf_counter() - t0
        t.cleanup()
        runs = t.new_runs(8, eighth)
        threads = [threading.Thread(target=t.stage, args=(r,)) for r in runs]
        t0 = time.perf_counter()
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        parallel = time.perf_counter() - t0
        t.cleanup()
    ratio = median(times["stage"]) / median(times["rsync"])
    mb = size / 1e6
    return Figure(ID, NAME, ratio, OP, GOAL, details=[
        f"transfer stage ({measured.get('checksum_algorithm', '?')} verification): {spread(times['stage'])}, "
        f"{mb / median(times['stage']):.0f} MB/s; last one: rsync {measured.get('rsync_seconds', 0):.2f} s "
        f"+ checksums of both copies {measured.get('verify_seconds', 0):.2f} s",
        f"plain rsync -a: {spread(times['rsync'])}, {mb / median(times['rsync']):.0f} MB/s",
        f"with transfer.checksum sha256: {median(sha_times):.3f} s, "
        f"ratio {median(sha_times) / median(times['rsync']):.2f}",
        f"8 runs of {len(eighth)} files: one after another {sequential:.2f} s, all at once {parallel:.2f} s "
        f"({sequential / parallel:.2f}x)",
        "path: local directories on one disk (the embedded default), page cache warm",
    ])
