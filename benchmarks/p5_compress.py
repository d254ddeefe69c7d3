"""P5 compression throughput: the compress stage, verification included, vs `tar -I 'zstd -T0 -3'`.

One processed run (the same size as P4's: 256 MiB in 256 files, 1 GiB in
1,024 files with --full) sits on scratch with its transfer checksums in the
runs DB.  The compress stage (:func:`fulliautomatix.compress.compress_run`,
called in-process as its Snakemake job calls it: tar | zstd, read the
archive back -- sha256 of the file, every member's size and checksum against
the ones recorded at transfer -- then the DB update) and a plain
`tar -I 'zstd -T0 -3' -cf` of the same directory take turns.  Figure: the
stage's throughput as a fraction of tar's (tar's time divided by the
stage's, median over back-to-back pairs).  The read-back is then timed alone
on the archive the stage wrote, beside its floor (decompression alone).
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from fulliautomatix import compress, hosts, markers, tarsums, transfer

from . import rawdata
from .common import (Context, Figure, Site, cpu_now, daq_doc, interleaved, median, paired_ratio, run_name, seed,
                     spread)
from .p4_transfer import _link_copy

ID, NAME, OP, GOAL = "P5", "compression-throughput", ">=", 0.9


class Compressions:
    def __init__(self, site: Site, data: Path):
        self.site, self.data, self.next = site, data, 0
        self.scratch = Path(site.config["clusters"]["local"]["scratch"])
        self.algo = transfer.algorithms(site.config)
        self.manifest = hosts.scan(hosts.Host(), str(data), self.algo)
        self.logs = site.root / "p5-logs"
        self.logs.mkdir()
        self.last_archive: Path | None = None
        self.cpu: dict[str, list[float]] = {"stage": [], "tar": []}

    def _new_run(self) -> str:
        """A processed run on scratch, as the transfer and process stages leave it."""
        i, self.next = self.next, self.next + 1
        name = run_name(i)
        _link_copy(self.data, self.scratch / "raw" / name)
        doc = daq_doc(i)
        doc.update(raw_status="ondeck", processed_status="processed", raw_location="local/bench",
                   transfer={"checksums": self.manifest.files, "checksum_algorithm": self.manifest.algorithm,
                             "bytes": sum(f["size"] for f in self.manifest.files)},
                   processing={"processor_version": "ref-1", "exit_code": 0})
        seed(self.site.db, [doc])
        marker = markers.run_marker("process", name, {"processing": doc["processing"]}, {})
        markers.write(self.site.state / "processed" / f"{name}.json", marker)
        return name

    def timed_stage(self) -> float:
        run = self._new_run()
        with open(self.logs / f"{run}.log", "w") as log:
            c0, t0 = cpu_now(), time.perf_counter()
            compress.compress_run(self.site.db, self.site.config, run,
                                  str(self.site.state / "processed" / f"{run}.json"),
                                  str(self.site.state / "compressed" / f"{run}.json"), log)
            seconds = time.perf_counter() - t0
            self.cpu["stage"].append(cpu_now() - c0)
        archive = compress.paths(self.site.config, run)["archive"]
        if self.last_archive and self.last_archive != archive:
            self.last_archive.unlink(missing_ok=True)
        self.last_archive = archive
        return seconds

    def timed_tar(self) -> float:
        run = self._new_run()
        out = self.scratch / "tar-baseline.tar.zst"
        c0, t0 = cpu_now(), time.perf_counter()
        subprocess.run(["tar", "-C", str(self.scratch / "raw"), "-I", "zstd -T0 -3", "-cf", str(out), run],
                       check=True)
        seconds = time.perf_counter() - t0
        self.cpu["tar"].append(cpu_now() - c0)
        subprocess.run(["rm", "-rf", str(self.scratch / "raw" / run)], check=True)
        return seconds


def run(ctx: Context) -> Figure:
    size, files = ctx.size((256 << 20, 256), (1 << 30, 1024))
    data = ctx.root / "p5-data"
    ctx.say(f"  writing a {size >> 20} MiB run in {files} files; {ctx.reps} compressions each way ...")
    rawdata.write_run(data, size, files)
    with Site(ctx.root / "p5") as site:
        c = Compressions(site, data)
        c.timed_tar()  # warm-up
        c.cpu = {"stage": [], "tar": []}
        times = interleaved({"stage": c.timed_stage, "tar": c.timed_tar}, ctx.reps)
        archive = c.last_archive
        parts = {}
        for label, fn in (
            ("read-back", lambda: tarsums.read_back(hosts.Host(), str(archive), c.manifest.algorithm,
                                                    compressed=True)),
            ("zstd", lambda: subprocess.run(f"zstd -dcq -- '{archive}' >/dev/null", shell=True, check=True)),
            ("sha256", lambda: subprocess.run(["sha256sum", "--", str(archive)], check=True,
                                              stdout=subprocess.DEVNULL)),
        ):
            c0, t0 = cpu_now(), time.perf_counter()
            fn()
            parts[label] = (time.perf_counter() - t0, cpu_now() - c0)
        ratio_size = size / archive.stat().st_size
    value = paired_ratio(times["tar"], times["stage"])
    mb = size / 1e6
    return Figure(ID, NAME, value, OP, GOAL, details=[
        f"compress stage: {spread(times['stage'])}, {mb / median(times['stage']):.0f} MB/s",
        f"tar -I 'zstd -T0 -3': {spread(times['tar'])}, {mb / median(times['tar']):.0f} MB/s; "
        f"compression ratio {ratio_size:.2f}",
        f"CPU time (this process + its commands): stage {median(c.cpu['stage']):.2f} s, tar "
        f"{median(c.cpu['tar']):.2f} s; throughput per CPU second, stage vs tar: "
        f"{paired_ratio(c.cpu['tar'], c.cpu['stage']):.2f}",
        "the stage's read-back timed alone (sha256 of the file, then zstd -dc | tar --to-command="
        f"{hosts.CHECKSUM_TOOLS[c.manifest.algorithm]} per member): {parts['read-back'][0]:.2f} s, "
        f"CPU {parts['read-back'][1]:.2f} s; of which the floor, zstd -dc >/dev/null: {parts['zstd'][0]:.2f} s, "
        f"CPU {parts['zstd'][1]:.2f} s, and sha256sum of the archive: {parts['sha256'][0]:.2f} s",
    ])
