"""Shared fixtures: a real nx-27017 server, per-test configs and the real CLI.

Nothing here is mocked: tests talk to an nx-27017 server through pymongo, and
run the `fulliautomatix` console script (and through it Snakemake, rsync, tar
and zstd) as subprocesses.
"""

from __future__ import annotations

import fcntl
import os
import shlex
import subprocess
import uuid
from pathlib import Path

import pymongo
import pytest
import yaml

from fulliautomatix import config as fa_config
from fulliautomatix import embedded, hosts, runsdb

from fa_testlib import FA, REQUIRE_TESTBEDS, ROOT, skip_or_fail  # noqa: F401 - re-exported


def pytest_collection_modifyitems(items):
    """Under pytest-xdist (make test): the tests of one Slurm test bed run on one worker, one after another."""
    for item in items:
        path = Path(str(item.fspath))
        if path.parent.name == "cluster" or path.name == "test_testbed_snakemake.py":
            item.add_marker(pytest.mark.xdist_group("slurm"))


@pytest.fixture(scope="session")
def nx_server(tmp_path_factory):
    """One nx-27017 server for the session; tests use their own databases."""
    state = tmp_path_factory.mktemp("nx")
    uri, proc = embedded.ensure(state)
    yield uri
    embedded.stop(state, proc)


@pytest.fixture
def db_name():
    """A name for this test's database and runs collection.

    nx-27017 (0.8.1) keeps one table per collection *name*, shared by every
    database: only a collection name of its own isolates a test.
    """
    return "t" + uuid.uuid4().hex[:12]


@pytest.fixture
def make_config(tmp_path, nx_server, db_name):
    """Write a config for this test (tmp dirs, the session's DB) and return its path.

    Keyword overrides are deep-merged into the base, e.g.
    make_config(archive={"batch_runs": 2}).
    """

    def make(**overrides) -> Path:
        base = {
            "runs_db": {"uri": nx_server, "database": db_name, "collection": db_name},
            "work_dir": str(tmp_path / "work"),
            "log_dir": str(tmp_path / "logs"),
            "daq": {"raw_dir": str(tmp_path / "daq")},
            "clusters": {"local": {"scratch": str(tmp_path / "cluster")}},
            "archive": {"location": str(tmp_path / "archive"), "batch_runs": 2},
        }
        fa_config.deep_update(base, overrides)
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump(base))
        return path

    yield make
    # Stages called in-process leave the tick's ssh master connections open: end them.
    hosts.close_masters(hosts.control_dir({"work_dir": str(tmp_path / "work")}))


@pytest.fixture
def config_path(make_config):
    return make_config()


@pytest.fixture
def config(config_path):
    """The finalized config dict of config_path."""
    return fa_config.load(config_path)


@pytest.fixture
def db(config):
    """A RunsDB on this test's database, with indexes."""
    with runsdb.connect(config) as handle:
        handle.ensure_indexes()
        yield handle


@pytest.fixture
def raw_collection(nx_server, db_name):
    """Direct pymongo access, for tests that play the DAQ or corrupt documents."""
    client = pymongo.MongoClient(nx_server)
    yield client[db_name][db_name]
    client.close()


def run_fa(config_path: Path | None, *args: str, timeout: float = 300, env: dict | None = None):
    """Run the real `fulliautomatix` command; returns CompletedProcess (text)."""
    argv = [FA] + (["--config", str(config_path)] if config_path else []) + list(args)
    full_env = {**os.environ, **(env or {})}
    full_env.pop(fa_config.DB_ENV, None) if env is None or fa_config.DB_ENV not in env else None
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=full_env, stdin=subprocess.DEVNULL)


@pytest.fixture
def fa():
    return run_fa


@pytest.fixture(scope="session")
def ssh_testbed():
    """The ssh test bed's environment (FA_SSH_CONFIG, FA_TESTBED_DAQ_ROOT, ...).

    Started with testbed/ssh/up.sh (idempotent; it installs its packages with
    apt on a fresh machine) and left running: tests/ssh and tests/archive share it.
    """
    lock = open("/tmp/fulliautomatix-testbed.lock", "w")  # noqa: SIM115 - held for the start below
    fcntl.flock(lock, fcntl.LOCK_EX)  # pytest-xdist workers each start it: one at a time
    try:
        proc = subprocess.run(
            ["bash", str(ROOT / "testbed" / "ssh" / "up.sh")],
            capture_output=True,
            text=True,
            timeout=900,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        skip_or_fail(f"ssh test bed did not start: {exc}")
    finally:
        lock.close()
    if proc.returncode != 0:
        skip_or_fail("ssh test bed did not start: " + (proc.stderr.strip().splitlines() or ["?"])[-1])
    env_file = Path(os.environ.get("TESTBED_DIR", "/tmp/fulliautomatix-testbed")) / "ssh" / "env.sh"
    env = {}
    for line in env_file.read_text().splitlines():
        if line.startswith("export ") and "=" in line:
            key, _, value = line[len("export ") :].partition("=")
            env[key] = shlex.split(value)[0] if value else ""
    return env
