"""P4 transfer efficiency: the transfer stage, verification included, vs plain `rsync -a`.

One run (256 MiB in 256 files by default; 1 GiB in 1,024 files with --full)
sits in the DAQ directory.  Fulliautomatix's transfer stage (state change in
the runs DB, rsync, checksums of every file on both ends, rename into place,
DB update) and a plain `rsync -a` of the same files over the same path take
turns; the figure is the stage's time divided by rsync's (median over
back-to-back pairs).  Every copy goes to a fresh destination.

When the ssh test bed is up (testbed/ssh/up.sh: `fa-daq` and `fa-cluster`),
the headline is the path the issue asks about: the stage pushing from fa-daq
to fa-cluster **as Snakemake runs it** -- a real tick
(`fulliautomatix --transfer --run RUN`, which opens one ssh connection per
host and ends them when it ends) whose transfer_run job is timed by the
rule's `benchmark:` file -- against `ssh fa-daq rsync -a <run>/
fa-cluster:<dest>/`.  Beside it, the stage called in-process
(:func:`fulliautomatix.transfer.transfer_run`, as its job calls it) over the
same ssh connections.  Without the test bed, the same between local
directories.  Then 8 runs of an eighth of the size each are transferred one
after another and all at once (8 threads), over ssh when the bed is up.
"""

from __future__ import annotations

import copy
import os
import shlex
import shutil
import subprocess
import threading
import time
from pathlib import Path

from fulliautomatix import transfer

from . import rawdata
from .common import Context, Figure, Site, cpu_now, daq_doc, interleaved, median, paired_ratio, run_name, seed, spread

ID, NAME, OP, GOAL = "P4", "transfer-efficiency", "<=", 1.15


def _link_copy(src: Path, dst: Path, files: list[str] | None = None) -> None:
    """A hard-linked copy of a run directory (instant; same data, same page cache)."""
    dst.mkdir(parents=True)
    for name in files or sorted(p.name for p in src.iterdir()):
        (dst / name).hardlink_to(src / name)


class Transfers:
    """New runs in one site's DAQ directory, transferred by the stage or by rsync.

    `bed` (the ssh test bed's environment) makes the DAQ fa-daq and the
    cluster fa-cluster; `raw` and `scratch` are then where this machine sees
    their directories.
    """

    def __init__(self, site: Site, data: Path, bed: dict | None = None, tid: str = ""):
        self.site, self.data, self.next, self.bed = site, data, 0, bed
        if bed:
            self.raw = Path(bed["FA_TESTBED_DAQ_ROOT"]) / tid / "daq"
            self.scratch = Path(bed["FA_TESTBED_CLUSTER_ROOT"]) / tid / "scratch"
            self.remote_raw = site.config["daq"]["raw_dir"]
            self.remote_scratch = site.config["clusters"]["local"]["scratch"]
        else:
            self.raw = Path(site.config["daq"]["raw_dir"])
            self.scratch = Path(site.config["clusters"]["local"]["scratch"])
        self.markers = site.state / "ondeck"
        self.markers.mkdir(parents=True, exist_ok=True)
        self.logs = site.root / "p4-logs"
        self.logs.mkdir(exist_ok=True)
        self.measured: list[dict] = []  # what each timed stage recorded
        self.cpu: dict[str, list[float]] = {"stage": [], "rsync": []}

    def new_runs(self, count: int, files: list[str] | None = None) -> list[str]:
        idx = range(self.next, self.next + count)
        self.next += count
        for i in idx:
            _link_copy(self.data, self.raw / run_name(i), files)
        seed(self.site.db, [daq_doc(i) for i in idx])
        return [run_name(i) for i in idx]

    def stage(self, run: str, config: dict | None = None) -> dict:
        with open(self.logs / f"{run}.log", "w") as log:
            return transfer.transfer_run(
                self.site.db, config or self.site.config, run, str(self.markers / f"{run}.json"), log
            )

    def timed_stage(self, config: dict | None = None) -> float:
        run = self.new_runs(1)[0]
        c0, t0 = cpu_now(), time.perf_counter()
        marker = self.stage(run, config)
        seconds = time.perf_counter() - t0
        if config is None:
            self.cpu["stage"].append(cpu_now() - c0)
            self.measured.append(marker.get("measured", {}))
        self.cleanup()
        return seconds

    def timed_job(self) -> float:
        """A real tick transfers a new run; the transfer_run job's wall time, from its benchmark file."""
        seconds = self.site.timed_job("transfer", "transfer_run", self.new_runs(1)[0], "ondeck")
        self.cleanup()
        return seconds

    def parallel(self, files: list[str], count: int = 8) -> tuple[float, float]:
        """(seconds for `count` runs of these files one after another, the same all at once)."""
        runs = self.new_runs(count, files)
        t0 = time.perf_counter()
        for r in runs:
            self.stage(r)
        sequential = time.perf_counter() - t0
        self.cleanup()
        runs = self.new_runs(count, files)
        threads = [threading.Thread(target=self.stage, args=(r,)) for r in runs]
        t0 = time.perf_counter()
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        parallel = time.perf_counter() - t0
        self.cleanup()
        return sequential, parallel

    def timed_rsync(self) -> float:
        run = self.new_runs(1)[0]
        dest = self.scratch / "rsync-baseline" / run
        dest.parent.mkdir(parents=True, exist_ok=True)
        if self.bed:
            argv = [
                *shlex.split(self.bed["FA_TESTBED_SSH"]),
                "fa-daq",
                "--",
                shlex.join(
                    [
                        "rsync",
                        "-a",
                        f"{self.remote_raw}/{run}/",
                        f"fa-cluster:{self.remote_scratch}/rsync-baseline/{run}/",
                    ]
                ),
            ]
        else:
            argv = ["rsync", "-a", f"{self.raw / run}/", f"{dest}/"]
        c0, t0 = cpu_now(), time.perf_counter()
        subprocess.run(argv, check=True, stdin=subprocess.DEVNULL)
        seconds = time.perf_counter() - t0
        self.cpu["rsync"].append(cpu_now() - c0)
        self.cleanup()
        return seconds

    def cleanup(self) -> None:
        """Drop the copies made so far (untimed), so disk use stays at one run."""
        for d in (self.scratch / "raw", self.scratch / "rsync-baseline"):
            shutil.rmtree(d, ignore_errors=True)


def ssh_bed() -> dict | None:
    """The ssh test bed's environment if it is up and answers, else None."""
    env_file = Path(os.environ.get("TESTBED_DIR", "/tmp/fulliautomatix-testbed")) / "ssh" / "env.sh"
    if not env_file.exists():
        return None
    env = {}
    for line in env_file.read_text().splitlines():
        if line.startswith("export ") and "=" in line:
            key, _, value = line[len("export ") :].partition("=")
            env[key] = shlex.split(value)[0] if value else ""
    try:
        ok = (
            subprocess.run(
                [*shlex.split(env["FA_TESTBED_SSH"]), "fa-daq", "--", "ssh fa-cluster true"],
                capture_output=True,
                timeout=20,
                stdin=subprocess.DEVNULL,
            ).returncode
            == 0
        )
    except (KeyError, OSError, subprocess.TimeoutExpired):
        return None
    return env if ok else None


def over_ssh(ctx: Context, data: Path, bed: dict, eighth: list[str]) -> tuple[float, list[str]]:
    """The stage under Snakemake, and in-process, vs rsync -a between the test bed's fa-daq and fa-cluster."""
    tid = f"bench-{os.getpid()}"
    remote = f"{bed['FA_TESTBED_DATA_PATH']}/{tid}"
    ssh = shlex.split(bed["FA_TESTBED_SSH"])
    views = [Path(bed["FA_TESTBED_DAQ_ROOT"]) / tid, Path(bed["FA_TESTBED_CLUSTER_ROOT"]) / tid]
    try:
        for v in views:
            (v / "daq").mkdir(parents=True)
        (views[1] / "scratch").mkdir()
        local_data = views[0] / "data"  # hard links need the test bed's file system
        shutil.copytree(data, local_data, copy_function=os.link)
        site = Site(
            ctx.root / "p4-ssh",
            daq={"host": "fa-daq", "ssh": ssh, "raw_dir": f"{remote}/daq"},
            clusters={
                "local": {"host": "fa-cluster", "ssh": ssh, "username": "asterix", "scratch": f"{remote}/scratch"}
            },
        )
        with site:
            t = Transfers(site, local_data, bed, tid)
            t.timed_job()  # warm-up
            jobs = interleaved({"job": t.timed_job, "rsync": t.timed_rsync}, ctx.reps)
            t.timed_stage()
            t.measured.clear()
            times = interleaved({"stage": t.timed_stage, "rsync": t.timed_rsync}, ctx.reps)
            parts = {k: median([m.get(k, 0) for m in t.measured]) for k in ("rsync_seconds", "verify_seconds")}
            sequential, parallel = t.parallel(eighth)
    finally:
        for v in views:
            shutil.rmtree(v, ignore_errors=True)
    ratio = paired_ratio(jobs["job"], jobs["rsync"])
    return ratio, [
        f"over ssh (test bed: fa-daq -> fa-cluster, loopback), transfer_run job under Snakemake (its benchmark "
        f"file): {spread(jobs['job'])}; ssh fa-daq rsync -a beside it: {spread(jobs['rsync'])}; ratio {ratio:.2f}",
        f"over ssh, the stage in-process (one ssh connection per host, kept open between runs as in a tick): "
        f"{spread(times['stage'])}, of which rsync {parts['rsync_seconds']:.2f} s, checksums "
        f"{parts['verify_seconds']:.2f} s; ssh fa-daq rsync -a: {spread(times['rsync'])}; ratio "
        f"{paired_ratio(times['stage'], times['rsync']):.2f}",
        f"over ssh, 8 runs of {len(eighth)} files (in-process): one after another {sequential:.2f} s, all at once "
        f"{parallel:.2f} s ({sequential / parallel:.2f}x)",
    ]


def locally(ctx: Context, data: Path, size: int, files: int) -> tuple[float, list[str], list[str]]:
    """The stage under Snakemake and in-process vs rsync -a between local directories:
    (the job's ratio, the lines explaining it, the eighth of the files for the 8-run comparison)."""
    with Site(ctx.root / "p4") as site:
        t = Transfers(site, data)
        t.timed_job()  # warm-up: page cache
        jobs = interleaved({"job": t.timed_job, "rsync": t.timed_rsync}, ctx.reps)
        t.timed_stage()
        t.measured.clear()
        t.cpu = {"stage": [], "rsync": []}
        times = interleaved({"stage": t.timed_stage, "rsync": t.timed_rsync}, ctx.reps)
        parts = {k: median([m.get(k, 0) for m in t.measured]) for k in ("rsync_seconds", "verify_seconds")}
        algo = t.measured[-1].get("checksum_algorithm", "?")
        sha = copy.deepcopy(site.config)
        sha["transfer"]["checksum"] = "sha256"
        sha_times = [t.timed_stage(sha) for _ in range(max(1, ctx.reps - 2))]
        # 8 runs of an eighth of the size: one after another, then all at once.
        eighth = sorted(p.name for p in data.iterdir())[: max(1, files // 8)]
        sequential, parallel = t.parallel(eighth)
    ratio = paired_ratio(jobs["job"], jobs["rsync"])
    mb = size / 1e6
    return (
        ratio,
        [
            f"local directories, transfer_run job under Snakemake (its benchmark file): {spread(jobs['job'])}; "
            f"rsync -a beside it {spread(jobs['rsync'])}; ratio {ratio:.2f}",
            f"local directories, the stage in-process ({algo} verification): {spread(times['stage'])}, "
            f"{mb / median(times['stage']):.0f} MB/s, of which rsync {parts['rsync_seconds']:.2f} s, checksums of both "
            f"copies {parts['verify_seconds']:.2f} s (medians, as the stage records them); rsync -a "
            f"{spread(times['rsync'])}, {mb / median(times['rsync']):.0f} MB/s; ratio "
            f"{paired_ratio(times['stage'], times['rsync']):.2f}",
            f"CPU time (this process + its commands): stage {median(t.cpu['stage']):.2f} s, rsync "
            f"{median(t.cpu['rsync']):.2f} s, ratio {paired_ratio(t.cpu['stage'], t.cpu['rsync']):.2f}",
            f"with transfer.checksum sha256 (in-process): {median(sha_times):.3f} s, "
            f"ratio {median(sha_times) / median(times['rsync']):.2f}",
            f"local directories, 8 runs of {len(eighth)} files (in-process): one after another {sequential:.2f} s, "
            f"all at once {parallel:.2f} s ({sequential / parallel:.2f}x)",
        ],
        eighth,
    )


def run(ctx: Context) -> Figure:
    size, files = ctx.size((256 << 20, 256), (1 << 30, 1024))
    data = ctx.root / "p4-data"
    ctx.say(
        f"  writing a {size >> 20} MiB run in {files} files; {ctx.reps} transfers each way under Snakemake "
        "and in-process ..."
    )
    rawdata.write_run(data, size, files)
    ratio, lines, eighth = locally(ctx, data, size, files)
    bed = ssh_bed()
    if bed:
        ctx.say("  the ssh test bed is up: the same over ssh ...")
        ssh_ratio, ssh_lines = over_ssh(ctx, data, bed, eighth)
    else:
        ssh_ratio, ssh_lines = None, ["over ssh: not measured (the ssh test bed is not up; testbed/ssh/up.sh)"]
    where = "over ssh" if ssh_ratio is not None else "between local directories"
    return Figure(
        ID,
        NAME,
        ssh_ratio if ssh_ratio is not None else ratio,
        OP,
        GOAL,
        details=[
            f"figure: the transfer_run job under Snakemake, {where}",
            *ssh_lines,
            *lines,
            "page cache warm; the test bed's hosts share this machine's disk and loopback",
        ],
    )
