"""The embedded default: runs_db.uri = embedded starts a private nx-27017 server per command."""

import datetime as dt
import os
import signal
import socket
import subprocess
import time

import pymongo
import pytest
import yaml

from fa_testlib import FA
from fulliautomatix import config as fa_config
from fulliautomatix import embedded, runsdb


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def assert_stopped(state):
    """No embedded server of this work dir is left running."""
    assert embedded.running_uri(state) is None
    pid_file = embedded.paths(state)["pid"]
    if pid_file.exists():
        pid = int(pid_file.read_text().split()[0])
        assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z"


def test_the_embedded_runs_db_serves_every_command(fa, make_config, tmp_path):
    path = make_config()
    data = yaml.safe_load(path.read_text())
    data["runs_db"] = {"uri": "embedded"}  # the default config's runs DB
    path.write_text(yaml.safe_dump(data))
    state = tmp_path / "work" / "state"

    r = fa(path, "--log", "debug", "simulate-daq", "--runs", "2", "--events", "200")
    assert r.returncode == 0, r.stderr
    assert (state / "runsdb.sqlite").is_file()
    assert_stopped(state)
    day = dt.date.today().isoformat()
    assert "simulated 2 runs" in (tmp_path / "logs" / f"fulliautomatix-{day}.log").read_text()

    r = fa(path, "--transfer")
    assert r.returncode == 0, r.stderr
    assert_stopped(state)
    r = fa(path, "status")
    assert r.returncode == 0, r.stderr
    assert ["ondeck", "none", "2"] in [ln.split() for ln in r.stdout.splitlines()]
    assert_stopped(state)

    # `db serve` serves the same data to other clients (a DAQ, mongosh) until stopped.
    port = free_port()
    server = subprocess.Popen(
        [FA, "--config", str(path), "db", "serve", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        stdin=subprocess.DEVNULL,
        env={k: v for k, v in os.environ.items() if k != fa_config.DB_ENV},
    )
    client = pymongo.MongoClient(f"mongodb://127.0.0.1:{port}/", serverSelectionTimeoutMS=500)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                client.admin.command("ping")
                break
            except pymongo.errors.PyMongoError:
                assert server.poll() is None, server.communicate()
                assert time.monotonic() < deadline, "db serve never answered"
                time.sleep(0.1)
        runs = client["asterix"]["runs"]
        assert sorted(d["raw_status"] for d in runs.find({}, {"raw_status": 1})) == ["ondeck", "ondeck"]
        r = fa(path, "status")
        assert r.returncode == 0 and ["ondeck", "none", "2"] in [ln.split() for ln in r.stdout.splitlines()]
        assert embedded.running_uri(state) == f"mongodb://127.0.0.1:{port}/", "commands reuse the served DB"
    finally:
        client.close()
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)


def test_a_job_handed_the_servers_address_keeps_it_after_its_owner_dies(make_config, tmp_path):
    """A tick's job gets the server's address (config.DB_ENV), not "embedded"; it is a user all the same.

    Its owner (the wrapper) killed, the server's watcher stops it only once the
    job is done: before, it stopped it under the job, whose writes then failed.
    """
    state = tmp_path / "work" / "state"
    owner = subprocess.Popen(["sleep", "300"])
    uri, server = embedded.ensure(state, owner=owner.pid)
    config = fa_config.load(make_config(runs_db={"uri": uri}))
    try:
        with runsdb.connect(config, start_embedded=False, job=True) as db:
            owner.kill()
            owner.wait()
            time.sleep(2)  # the watcher looks every 0.5 s
            assert embedded.running_uri(state) == uri, "the server stays while the job uses it"
            db.ensure_indexes()
        deadline = time.monotonic() + 30
        while server.poll() is None:
            assert time.monotonic() < deadline, "the watcher stops the server once the job is done"
            time.sleep(0.1)
        assert_stopped(state)
    finally:
        owner.kill()
        embedded.stop(state, server)


@pytest.mark.parametrize("port", ["99999", "0", "-1"])
def test_db_serve_refuses_a_port_that_is_not_one_in_one_line_and_writes_nothing(fa, make_config, tmp_path, port):
    """Before, --port 99999 left runsdb.addr holding it: every later command failed on it."""
    r = fa(make_config(runs_db={"uri": "embedded"}), "db", "serve", "--port", port)
    assert r.returncode == 1
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert f"--port {port}" in r.stderr and "1 to 65535" in r.stderr
    assert not embedded.paths(tmp_path / "work" / "state")["addr"].exists()


@pytest.mark.parametrize(
    "stale",
    [
        "mongodb://127.0.0.1:99999/ 1\n",  # what `db serve --port 99999` used to leave
        "mongodb://127.0.0.1:0/ 1\n",  # `db serve --port 0` once its server stopped
        "",  # a write cut short
        "not a uri\n",
    ],
)
def test_an_address_file_of_no_server_is_stale_not_an_error(fa, make_config, tmp_path, stale):
    """A runsdb.addr that does not parse, or whose server does not answer, is ignored: commands start their own."""
    path = make_config(runs_db={"uri": "embedded"})
    state = tmp_path / "work" / "state"
    state.mkdir(parents=True)
    embedded.paths(state)["addr"].write_text(stale)
    assert embedded.running_uri(state) is None
    r = fa(path, "status")
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert_stopped(state)


def test_an_address_file_whose_server_is_gone_is_stale_though_its_port_answers(make_config, tmp_path):
    """`db serve` killed, its runsdb.addr stays; another server later on that port is not this work dir's."""
    other, server = embedded.ensure(tmp_path / "other")
    try:
        dead = subprocess.Popen(["true"])
        dead.wait()
        state = tmp_path / "work" / "state"
        state.mkdir(parents=True)
        embedded.paths(state)["addr"].write_text(f"{other} {dead.pid}\n")
        assert embedded.running_uri(state) is None
    finally:
        embedded.stop(tmp_path / "other", server)
