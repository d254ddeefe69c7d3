"""Fixtures of the three-machine tests: the ssh test bed (testbed/ssh) and a per-test bed on it.

This machine plays the host; ``fa-daq`` and ``fa-cluster`` are private sshds
that each see their own ``/srv/asterix``.  Tests seed DAQ runs and inspect the
cluster through the host-side views of those directories
(``$FA_TESTBED_DAQ_ROOT``, ``$FA_TESTBED_CLUSTER_ROOT``), as the DAQ writing
its own disk would; fulliautomatix itself reaches them only over ssh.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from fulliautomatix import runsdb
from sshbed import ROOT, TESTS, Bed


def _skip_or_fail(request, reason: str):
    """tests/conftest.py's skip_or_fail (skip here, fail in CI)."""
    root = request.config.pluginmanager.get_plugin(str(TESTS / "conftest.py"))
    root.skip_or_fail(reason)


@pytest.fixture(scope="session")
def ssh_testbed(request):
    """The ssh test bed's environment (FA_SSH_CONFIG, FA_TESTBED_DAQ_ROOT, ...).

    Started with testbed/ssh/up.sh (idempotent; it installs its packages with
    apt on a fresh machine) and left running: other test files use it too.
    """
    try:
        proc = subprocess.run(["bash", str(ROOT / "testbed" / "ssh" / "up.sh")], capture_output=True, text=True,
                              timeout=900, stdin=subprocess.DEVNULL)
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


@pytest.fixture
def bed(ssh_testbed, tmp_path, make_config, fa, nx_server, db_name):
    tid = "t" + uuid.uuid4().hex[:10]
    db = runsdb.RunsDB(nx_server, db_name, db_name)
    db.ensure_indexes()
    b = Bed(tid, ssh_testbed, tmp_path, make_config, fa, db)
    b.daq_view.mkdir(parents=True)
    yield b
    db.close()
    for root in (ssh_testbed["FA_TESTBED_DAQ_ROOT"], ssh_testbed["FA_TESTBED_CLUSTER_ROOT"]):
        shutil.rmtree(Path(root) / tid, ignore_errors=True)
