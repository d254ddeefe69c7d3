"""Fixtures of the three-machine tests: the ssh test bed (testbed/ssh) and a per-test bed on it.

This machine plays the host; ``fa-daq`` and ``fa-cluster`` are private sshds
that each see their own ``/srv/asterix``.  Tests seed DAQ runs and inspect the
cluster through the host-side views of those directories
(``$FA_TESTBED_DAQ_ROOT``, ``$FA_TESTBED_CLUSTER_ROOT``), as the DAQ writing
its own disk would; fulliautomatix itself reaches them only over ssh.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest

from fulliautomatix import runsdb
from sshbed import Bed


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
