"""One ssh connection per host per tick, over the ssh test bed: opened by the tick, ended with it."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

from fulliautomatix import config as fa_config
from fulliautomatix import hosts

RUN, RUN2, RUN3 = "261128_0001", "261128_0002", "261128_0003"


def masters_in(directory: Path) -> list[str]:
    """The [mux] master processes whose socket is in `directory`."""
    out = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    return [ln for ln in out.splitlines() if ln.startswith("ssh: ") and "[mux]" in ln and str(directory) in ln]


def test_a_tick_shares_one_connection_per_host_under_work_dir_and_ends_them(bed):
    with tempfile.TemporaryDirectory(prefix="fa") as short:  # a work dir short enough for the sockets
        work = Path(short) / "work"
        ssh_log = Path(short) / "ssh.log"
        verbose = ["-E", str(ssh_log), "-v"]  # ssh's own account of every connection it makes
        cfg = bed.config(
            work_dir=str(work),
            transfer={"concurrency": 3},
            daq={"ssh": [*bed.ssh(), *verbose]},
            clusters={"bed": {"ssh": [*bed.ssh(), *verbose]}},
        )
        for i, run in enumerate((RUN, RUN2, RUN3)):
            bed.add_run(run, seed=i)
        r = bed.tick(cfg)
        assert r.returncode == 0, r.stderr
        assert all(bed.db.get(run)["raw_status"] == "ondeck" for run in (RUN, RUN2, RUN3))

        controls = work / "state" / f"ssh-{os.getuid()}"
        assert hosts.control_dir(fa_config.load(cfg)) == controls
        log = (work / "logs" / "transfer_run" / f"{RUN}.log").read_text()
        paths = {
            w.split("=", 1)[1]
            for ln in log.splitlines()
            if ln.startswith("$ ssh")
            for w in ln.split()
            if w.startswith("ControlPath=")
        }
        assert len(paths) == 2 and all(Path(p).parent == controls for p in paths), paths
        # three runs, each with 3 commands to fa-cluster and 2 to fa-daq, and the tick's own
        # survey: one real connection to each host (ssh logs "Authenticated to" once per connection)
        authenticated = [ln for ln in ssh_log.read_text().splitlines() if "Authenticated to" in ln]
        ports = sorted(ln.split("]:")[1].split(")")[0] for ln in authenticated)
        assert ports == sorted([bed.env["FA_TESTBED_DAQ_PORT"], bed.env["FA_TESTBED_CLUSTER_PORT"]]), authenticated
        # and the tick ended them: no socket left, no master running
        assert not controls.exists() or not [p for p in controls.iterdir() if p.is_socket()]
        assert masters_in(controls) == []


def test_without_multiplexing_every_command_connects(bed):
    with tempfile.TemporaryDirectory(prefix="fa") as short:
        ssh_log = Path(short) / "ssh.log"
        verbose = ["-E", str(ssh_log), "-v"]
        cfg = bed.config(
            work_dir=str(Path(short) / "work"), ssh_multiplex=False, clusters={"bed": {"ssh": [*bed.ssh(), *verbose]}}
        )
        bed.add_run(RUN)
        assert bed.tick(cfg).returncode == 0
        authenticated = [ln for ln in ssh_log.read_text().splitlines() if "Authenticated to" in ln]
        assert len(authenticated) >= 3  # prepare, checksums, mv
        assert "ControlPath" not in (Path(short) / "work" / "logs" / "transfer_run" / f"{RUN}.log").read_text()
