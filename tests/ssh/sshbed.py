"""Helpers of the three-machine tests (tests/ssh): a test's corner of the ssh test bed."""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field
from pathlib import Path

import xxhash

from fa_testlib import digests
from fulliautomatix import config as fa_config
from fulliautomatix import runsdb

BIN = Path(__file__).resolve().parent / "bin"  # test-only wrappers (see each one's header)


def xxh128(path: Path) -> str:
    h = xxhash.xxh3_128()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class Bed:
    """One test's corner of the test bed: /srv/asterix/<tid>/... on each host."""

    tid: str
    env: dict
    tmp: Path
    make_config: object
    fa: object
    db: runsdb.RunsDB
    overrides: dict = field(default_factory=dict)

    # where things are, as each host names them, and as this machine sees them (for seeding and checks)
    @property
    def daq_dir(self) -> str:
        return f"{self.env['FA_TESTBED_DATA_PATH']}/{self.tid}/daq"

    @property
    def scratch(self) -> str:
        return f"{self.env['FA_TESTBED_DATA_PATH']}/{self.tid}/scratch"

    @property
    def daq_view(self) -> Path:
        return Path(self.env["FA_TESTBED_DAQ_ROOT"]) / self.tid / "daq"

    @property
    def scratch_view(self) -> Path:
        return Path(self.env["FA_TESTBED_CLUSTER_ROOT"]) / self.tid / "scratch"

    def copy_view(self, run: str) -> Path:
        return self.scratch_view / "raw" / run

    def staging_view(self, run: str) -> Path:
        return self.scratch_view / "raw" / ".incoming" / run

    def ssh(self, *extra: str) -> list[str]:
        return [*extra, "ssh", "-F", self.env["FA_SSH_CONFIG"]]

    def config(self, **overrides) -> Path:
        """Write this test's config: DAQ fa-daq, cluster fa-cluster ("bed"), the session's runs DB."""
        base = {
            "daq": {"host": "fa-daq", "ssh": self.ssh(), "raw_dir": self.daq_dir, "live_check": []},
            "cluster": "bed",
            "clusters": {
                "bed": {"host": "fa-cluster", "ssh": self.ssh(), "username": "asterix", "scratch": self.scratch}
            },
            "transfer": {"checksum": "auto"},
        }
        fa_config.deep_update(base, self.overrides)
        fa_config.deep_update(base, overrides)
        return self.make_config(**base)

    def add_run(self, name: str, sizes=(300_000, 70_000), seed: int = 1) -> dict[str, str]:
        """Write a run on the DAQ (a subdirectory too) and insert its document, as the DAQ does."""
        run_dir = self.daq_view / name
        (run_dir / "meta").mkdir(parents=True)
        rng = random.Random(f"{name}-{seed}")
        for i, size in enumerate(sizes):
            (run_dir / f"raw_{i:03d}.bin").write_bytes(rng.randbytes(size))
        (run_dir / "meta" / "run.json").write_text(f'{{"name": "{name}"}}\n')
        os.utime(run_dir, None)
        self.db.insert_run(
            {
                "name": name,
                "number": int(name[-4:]),
                "events": 100,
                "source": "physics",
                "raw_status": "acquired",
                "raw_location": "zinc",
                "processed_status": "none",
            }
        )
        return digests(run_dir)

    def tick(self, config: Path, *args: str):
        return self.fa(config, "--transfer", *args)

    def job_log(self, run: str) -> str:
        p = self.tmp / "work" / "logs" / "transfer_run" / f"{run}.log"
        return p.read_text() if p.exists() else ""
