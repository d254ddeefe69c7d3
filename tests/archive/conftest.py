"""Fixtures of the archive tests: one archive bed per backend (see archive_beds.py)."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from archive_beds import BACKENDS, TESTS, Log, make_bed


def _skip_or_fail(request, reason: str):
    """tests/conftest.py's skip_or_fail (skip here, fail in CI)."""
    root = request.config.pluginmanager.get_plugin(str(TESTS / "conftest.py"))
    root.skip_or_fail(reason)


@pytest.fixture(scope="session")
def ssh_testbed(request):
    """The ssh test bed's environment (FA_SSH_CONFIG, FA_TESTBED_CLUSTER_ROOT, ...).

    Started with testbed/ssh/up.sh (idempotent) and left running: other test
    files use it too, and up.sh reuses running hosts.
    """
    try:
        proc = subprocess.run(["bash", str(TESTS.parent / "testbed" / "ssh" / "up.sh")], capture_output=True,
                              text=True, timeout=600, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        _skip_or_fail(request, f"ssh test bed did not start: {exc}")
    if proc.returncode != 0:
        _skip_or_fail(request, "ssh test bed did not start: " + (proc.stderr.strip().splitlines() or ["?"])[-1])
    env_file = Path(os.environ.get("TESTBED_DIR", "/tmp/fulliautomatix-testbed")) / "ssh" / "env.sh"
    env = {}
    for line in env_file.read_text().splitlines():
        if line.startswith("export ") and "=" in line:
            key, _, value = line[len("export "):].partition("=")
            env[key] = shlex.split(value)[0] if value else ""
    return env


@pytest.fixture(params=BACKENDS)
def bed(request, tmp_path):
    """An ArchiveBed for each backend in turn (local, rsync on fa-cluster, hpss stand-in)."""
    testbed = request.getfixturevalue("ssh_testbed") if request.param == "rsync" else None
    b = make_bed(request.param, tmp_path, testbed)
    if request.param == "rsync":
        request.addfinalizer(lambda: shutil.rmtree(b.visible, ignore_errors=True))
    return b


@pytest.fixture
def config_path(bed, make_config):
    """Here: a config file using the bed's archive, with batches of two runs.

    (Overrides tests/conftest.py's, so its `config` and `db` fixtures use it.)
    """
    return make_config(archive={**bed.settings, "batch_runs": 2})


@pytest.fixture
def job_log():
    return Log()
