"""`make soak` at a CI-sized default: 12 runs through real ticks with faults injected, about a minute."""

import os
import subprocess
import sys

from fa_testlib import ROOT
from fulliautomatix import config as fa_config


def test_the_soak_survives_its_faults(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != fa_config.DB_ENV}
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.soak.soak",
            "--runs",
            "12",
            "--minutes",
            "2",
            "--seed",
            "7",
            "--dir",
            str(tmp_path / "soak"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        stdin=subprocess.DEVNULL,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert "S1 runs-recoverable: 12/12" in lines, r.stdout
    for s in ("S2", "S3", "S4", "S5"):
        [line] = [ln for ln in lines if ln.startswith(s + " ")]
        ok, of = line.split(": ")[1].split()[0].split("/")
        assert ok == of, r.stdout
    [faults] = [ln for ln in lines if ln.startswith("faults injected: ")]
    injected, survived = (int(x.split(": ")[1].split()[0].rstrip(",")) for x in faults.split(", ")[:2])
    assert injected >= 1 and survived == injected, r.stdout
