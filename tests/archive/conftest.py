"""Fixtures of the archive tests: one archive bed per backend (see archive_beds.py)."""

from __future__ import annotations

import shutil

import pytest

from archive_beds import BACKENDS, Log, make_bed


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
