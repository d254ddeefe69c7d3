"""Archive test beds, one per backend, each with a switch to make the next upload fail.

* ``local``: a directory under the test's tmp dir.
* ``rsync``: a directory on ``fa-cluster`` of the ssh test bed (testbed/ssh).
* ``hpss``: the htar/hsi STAND-INs of tests/standins/hpss, keeping the "HPSS"
  namespace in a tmp dir.  They are not the real HPSS tools.

For local and rsync, the copy command is wrapped in the faulty-rsync
stand-in (tests/standins/rsync) so a test can cut an upload half-way or
corrupt it on the archive's disk; for hpss the stand-ins' own fault switches
do that.  ``bed.fault("halfway")`` / ``bed.fault("corrupt")`` arms one fault
for the next upload only.
"""

from __future__ import annotations

import hashlib
import tarfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from fulliautomatix import compress, markers, process, runsdb, transfer
from fulliautomatix.standins import simulate
from fulliautomatix import config as fa_config
from fa_testlib import JobLog as Log  # noqa: F401 - the archive tests' job log

TESTS = Path(__file__).resolve().parents[1]
STANDINS = TESTS / "standins"
BACKENDS = ["local", "rsync", "hpss"]


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@dataclass
class ArchiveBed:
    """An archive for one test: its config section, where to look, how to break it."""

    backend: str
    settings: dict  # the `archive` config section
    visible: Path  # archive.location as seen from this machine
    arm: dict = field(default_factory=dict)  # "halfway"/"corrupt" -> (switch file, entry)
    signs: dict = field(default_factory=dict)  # "halfway"/"corrupt" -> text of the error it causes

    def fault(self, kind: str) -> None:
        """Make the next upload fail half-way ("halfway") or arrive corrupted ("corrupt")."""
        path, entry = self.arm[kind]
        with open(path, "a") as fh:
            fh.write(entry + "\n")

    def tarball(self, batch: str) -> Path:
        return self.visible / f"{batch}.tar"

    def members(self, batch: str) -> dict[str, str]:
        """{member: sha256} of a batch tarball, read here with Python's tarfile."""
        out = {}
        with tarfile.open(self.tarball(batch)) as tar:
            for m in tar:
                if m.isfile() and m.name.endswith(".tar.zst"):
                    out[m.name] = hashlib.sha256(tar.extractfile(m).read()).hexdigest()
        return out


def faulty_copy(faults: Path) -> list[str]:
    """rsync -a --partial behind the faulty-rsync stand-in, switched by the file `faults`."""
    return [str(STANDINS / "rsync" / "faulty-rsync"), "--faults", str(faults), "--", "rsync", "-a", "--partial"]


def make_bed(backend: str, tmp_path: Path, testbed: dict | None = None) -> ArchiveBed:
    faults = tmp_path / "copy-faults"
    disk_faults = {"halfway": (faults, "halfway*1"), "corrupt": (faults, "corrupt*1")}
    disk_signs = {"halfway": "failed (exit 12", "corrupt": "sha256 of the archived file differs"}
    if backend == "local":
        return ArchiveBed(
            "local",
            {"backend": "local", "location": str(tmp_path / "archive"), "rsync": {"command": faulty_copy(faults)}},
            tmp_path / "archive",
            disk_faults,
            disk_signs,
        )
    if backend == "rsync":
        # A directory of its own on fa-cluster, the archive host of these tests.
        sub = f"fa-archive-tests/{uuid.uuid4().hex[:10]}"
        ssh = ["ssh", "-F", testbed["FA_SSH_CONFIG"], "-o", "BatchMode=yes"]
        return ArchiveBed(
            "rsync",
            {
                "backend": "rsync",
                "location": f"{testbed['FA_TESTBED_DATA_PATH']}/{sub}",
                "rsync": {"host": testbed["FA_TESTBED_CLUSTER_ALIAS"], "ssh": ssh, "command": faulty_copy(faults)},
            },
            Path(testbed["FA_TESTBED_CLUSTER_ROOT"]) / sub,
            disk_faults,
            disk_signs,
        )
    if backend == "hpss":
        # STAND-INs for htar and hsi: HPSS path /x is $HPSS_STANDIN_ROOT/x.
        root = tmp_path / "hpss"
        root.mkdir(exist_ok=True)
        env = ["env", f"HPSS_STANDIN_ROOT={root}", "HPSS_STANDIN_HOME=/home/asterix"]
        return ArchiveBed(
            "hpss",
            {
                "backend": "hpss",
                "location": "/fortress/asterix/batches",
                "hpss": {
                    "htar": [*env, str(STANDINS / "hpss" / "htar")],
                    "hsi": [*env, str(STANDINS / "hpss" / "hsi")],
                },
            },
            root / "fortress" / "asterix" / "batches",
            {"halfway": (root / ".fail", "htar-create-halfway*1"), "corrupt": (root / ".corrupt", "after-success*1")},
            {"halfway": "HPSS_EIO", "corrupt": "CRC mismatch"},
        )
    raise ValueError(backend)


def compress_runs(db: runsdb.RunsDB, config: dict, n: int, events: int = 200) -> list[str]:
    """n new simulated runs taken to `compressed` by calling the stages directly (no Snakemake)."""
    Path(config["daq"]["raw_dir"]).mkdir(parents=True, exist_ok=True)
    names = simulate.simulate(db, config, n, events, "physics")
    state = fa_config.state_dir(config)
    log_path = Path(config["work_dir"]) / "logs" / "compress_runs.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a") as log:
        for run in names:
            transfer.transfer_run(db, config, run, str(markers.path(state, "transfer", run)), log)
            process.process_run(
                db,
                config,
                run,
                str(markers.path(state, "transfer", run)),
                str(markers.path(state, "process", run)),
                log,
                str(log_path),
            )
            compress.compress_run(
                db,
                config,
                run,
                str(markers.path(state, "process", run)),
                str(markers.path(state, "compress", run)),
                log,
            )
    return names
