"""P5 compression throughput: the compress stage, verification included, vs `tar -I 'zstd -T0 -3'`.

One processed run (the same size as P4's: 256 MiB in 256 files, 1 GiB in
1,024 files with --full) sits on scratch with its transfer checksums in the
runs DB.  The compress stage and a plain `tar -I 'zstd -T0 -3' -cf` of the
same directory take turns.  Figure: the stage's throughput as a fraction of
tar's (tar's time divided by the stage's, median over back-to-back pairs),
with the stage timed **as Snakemake runs it**: a real tick
(`fulliautomatix --compress --run RUN`) runs the compress_run job, and its
time is the job's own wall time from the rule's `benchmark:` file (the job's
Python process, imports, DB connection, the compression and its
verification, the DB update) -- not the tick's start-up around it.  The
figure is the job with the default `compression.verify: decompress` (tar |
zstd writes the file, then one read of it feeds sha256, `zstd -dc` and the
member checks); beside it the job with `stream` (members checked on their
way into zstd, the compressed bytes hashed as they are written), the stage
called in-process (:func:`fulliautomatix.compress.compress_run`, as the job
calls it) in both modes, and the parts timed alone on the archive the stage
wrote: the one-pass read-back, decompression alone (the floor of any
read-back), and sha256sum of the file.  With `decompress` the stage does
tar's work and then decompresses it all again, so the CPU both need caps its
ratio at tar's CPU / (tar's CPU + zstd -dc's CPU) on a machine whose cores
tar already keeps busy; the details print that ceiling from this run's
measurements.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import yaml

from fulliautomatix import compress, hosts, markers, tarsums, transfer

from . import rawdata
from .common import Context, Figure, Site, cpu_now, daq_doc, interleaved, median, paired_ratio, run_name, seed, spread
from .p4_transfer import _link_copy

ID, NAME, OP, GOAL = "P5", "compression-throughput", ">=", 0.85


class Compressions:
    def __init__(self, site: Site, data: Path):
        self.site, self.data, self.next = site, data, 0
        self.scratch = Path(site.config["clusters"]["local"]["scratch"])
        self.algo = transfer.algorithms(site.config)
        self.manifest = hosts.scan(hosts.Host(), str(data), self.algo)
        self.logs = site.root / "p5-logs"
        self.logs.mkdir()
        self.last_archive: Path | None = None
        self.cpu: dict[str, list[float]] = {"tar": []}  # by side: tar, stream, decompress
        self.work: list[float] = []  # compressed.seconds of each job: from its claim to its marker

    def _new_run(self) -> str:
        """A processed run on scratch, as the transfer and process stages leave it."""
        i, self.next = self.next, self.next + 1
        name = run_name(i)
        _link_copy(self.data, self.scratch / "raw" / name)
        doc = daq_doc(i)
        doc.update(
            raw_status="ondeck",
            processed_status="processed",
            raw_location="local/bench",
            transfer={
                "checksums": self.manifest.files,
                "checksum_algorithm": self.manifest.algorithm,
                "bytes": sum(f["size"] for f in self.manifest.files),
            },
            processing={"processor_version": "ref-1", "exit_code": 0},
        )
        seed(self.site.db, [doc])
        ondeck = markers.run_marker("transfer", name, {"raw_location": doc["raw_location"]}, {})
        markers.write(self.site.state / "ondeck" / f"{name}.json", ondeck)
        marker = markers.run_marker("process", name, {"processing": doc["processing"]}, {})
        markers.write(self.site.state / "processed" / f"{name}.json", marker)
        return name

    def _drop_archive(self, run: str) -> None:
        archive = compress.paths(self.site.config, run)["archive"]
        if self.last_archive and self.last_archive != archive:
            self.last_archive.unlink(missing_ok=True)
        self.last_archive = archive

    def timed_job(self, config: Path | None = None) -> float:
        """A real tick compresses the run; the compress_run job's wall time, from its benchmark file.

        `config`: another config file of the site (_with_verify); its jobs' claim-to-marker times are
        not kept in `work`."""
        run = self._new_run()
        seconds = self.site.timed_job("compress", "compress_run", run, "compressed", config)
        if config is None:
            self.work.append(self.site.db.get(run)["compressed"]["seconds"])
        self._drop_archive(run)
        return seconds

    def timed_stage(self, verify: str = "stream") -> float:
        run = self._new_run()
        config = {**self.site.config, "compression": {**self.site.config["compression"], "verify": verify}}
        with open(self.logs / f"{run}.log", "w") as log:
            c0, t0 = cpu_now(), time.perf_counter()
            compress.compress_run(
                self.site.db,
                config,
                run,
                str(self.site.state / "processed" / f"{run}.json"),
                str(self.site.state / "compressed" / f"{run}.json"),
                log,
            )
            seconds = time.perf_counter() - t0
            self.cpu.setdefault(verify, []).append(cpu_now() - c0)
        self._drop_archive(run)
        return seconds

    def timed_tar(self) -> float:
        run = self._new_run()
        out = self.scratch / "tar-baseline.tar.zst"
        c0, t0 = cpu_now(), time.perf_counter()
        subprocess.run(["tar", "-C", str(self.scratch / "raw"), "-I", "zstd -T0 -3", "-cf", str(out), run], check=True)
        seconds = time.perf_counter() - t0
        self.cpu["tar"].append(cpu_now() - c0)
        subprocess.run(["rm", "-rf", str(self.scratch / "raw" / run)], check=True)
        return seconds


def _with_verify(site: Site, verify: str) -> Path:
    """A second config file of the site (same runs DB and directories) with compression.verify `verify`."""
    config = yaml.safe_load(site.config_path.read_text())
    config.setdefault("compression", {})["verify"] = verify
    path = site.root / f"config-{verify}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def _parts(archive: Path, algorithm: str) -> dict[str, tuple[float, float]]:
    """(seconds, CPU seconds) of the one-pass read-back and its floors, each timed alone."""
    parts = {}
    for label, fn in (
        ("read-back", lambda: tarsums.read_back(hosts.Host(), str(archive), algorithm, compressed=True)),
        ("zstd", lambda: subprocess.run(f"zstd -dcq -- '{archive}' >/dev/null", shell=True, check=True)),
        ("sha256", lambda: subprocess.run(["sha256sum", "--", str(archive)], check=True, stdout=subprocess.DEVNULL)),
    ):
        c0, t0 = cpu_now(), time.perf_counter()
        fn()
        parts[label] = (time.perf_counter() - t0, cpu_now() - c0)
    return parts


def run(ctx: Context) -> Figure:
    size, files = ctx.size((256 << 20, 256), (1 << 30, 1024))
    data = ctx.root / "p5-data"
    ctx.say(
        f"  writing a {size >> 20} MiB run in {files} files; {ctx.reps} compressions each way, under "
        "Snakemake and in-process ..."
    )
    rawdata.write_run(data, size, files)
    with Site(ctx.root / "p5") as site:
        c = Compressions(site, data)
        stream = _with_verify(site, "stream")
        c.timed_tar()  # warm-up
        c.timed_job()
        c.cpu, c.work = {"tar": []}, []
        jobs = interleaved(
            {"job": c.timed_job, "tar": c.timed_tar, "stream job": lambda: c.timed_job(stream)}, ctx.reps
        )
        c.cpu = {"tar": []}
        times = interleaved(
            {"stage": c.timed_stage, "tar": c.timed_tar, "decompress": lambda: c.timed_stage("decompress")}, ctx.reps
        )
        parts = _parts(c.last_archive, c.manifest.algorithm)
        ratio_size = size / c.last_archive.stat().st_size
    value = paired_ratio(jobs["tar"], jobs["job"])
    in_process = paired_ratio(times["tar"], times["stage"])
    mb = size / 1e6
    tar_cpu, unz_cpu = median(c.cpu["tar"]), parts["zstd"][1]
    return Figure(
        ID,
        NAME,
        value,
        OP,
        GOAL,
        details=[
            f"compress_run job under Snakemake (its benchmark file), verify: decompress (the default): "
            f"{spread(jobs['job'])}, {mb / median(jobs['job']):.0f} MB/s; tar beside it {spread(jobs['tar'])}; "
            f"ratio {value:.2f}; "
            f"of the job's time, {median(c.work):.2f} s from its claim to its marker (compressed.seconds), the rest "
            f"({median(jobs['job']) - median(c.work):.2f} s) is the job's start: Python, Snakemake's script "
            "preamble, imports, DB connection",
            f"the same job with verify: stream: {spread(jobs['stream job'])}; ratio "
            f"{paired_ratio(jobs['tar'], jobs['stream job']):.2f}",
            f"the ceiling of verify: decompress: it does tar's work ({tar_cpu:.2f} CPU-s, measured beside it) and "
            f"then decompresses all of it again (zstd -dc alone: {unz_cpu:.2f} CPU-s), so with tar keeping the "
            f"cores busy the ratio cannot pass {tar_cpu:.2f} / ({tar_cpu:.2f} + {unz_cpu:.2f}) = "
            f"{tar_cpu / (tar_cpu + unz_cpu):.2f} in-process, less the job's start as a job; and as the stage runs "
            f"them, one after the other (beside each other they cost more CPU on 2 cores), the read-back takes at "
            f"least zstd -dc's own {parts['zstd'][0]:.2f} s (one core): {median(times['tar']):.2f} / "
            f"({median(times['tar']):.2f} + {parts['zstd'][0]:.2f}) = "
            f"{median(times['tar']) / (median(times['tar']) + parts['zstd'][0]):.2f} in-process",
            f"the stage in-process (compress.compress_run, verify: stream): {spread(times['stage'])}, "
            f"{mb / median(times['stage']):.0f} MB/s; tar beside it {spread(times['tar'])}; ratio {in_process:.2f}",
            f"the stage in-process with verify: decompress (the written bytes decompressed and checked again): "
            f"{spread(times['decompress'])}; ratio {paired_ratio(times['tar'], times['decompress']):.2f}",
            f"tar -I 'zstd -T0 -3': {mb / median(jobs['tar'] + times['tar']):.0f} MB/s; "
            f"compression ratio {ratio_size:.2f}",
            f"CPU time (this process + its commands): stage {median(c.cpu['stream']):.2f} s (verify: decompress "
            f"{median(c.cpu['decompress']):.2f} s), tar {median(c.cpu['tar']):.2f} s; throughput per CPU second, "
            f"stage vs tar: {paired_ratio(c.cpu['tar'], c.cpu['stream']):.2f} (decompress: "
            f"{paired_ratio(c.cpu['tar'], c.cpu['decompress']):.2f})",
            f"timed alone on the archive: the one-pass read-back (one read: sha256, zstd -dc, tar parser with "
            f"{c.manifest.algorithm} per member) {parts['read-back'][0]:.2f} s, CPU {parts['read-back'][1]:.2f} s; "
            f"its floor, zstd -dc >/dev/null: {parts['zstd'][0]:.2f} s, CPU {parts['zstd'][1]:.2f} s; "
            f"sha256sum of the archive: {parts['sha256'][0]:.2f} s",
        ],
    )
