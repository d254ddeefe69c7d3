"""The three-machine commands as argv, and their pieces that run here (no test bed needed)."""

from __future__ import annotations

import datetime as _dt
import io
import os
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import replace

import pytest
import yaml

from fulliautomatix import config as fa_config
from fulliautomatix import daq, hosts, places, purge, transfer, transfer_commands
from fulliautomatix.hosts import Host

RUN = "261127_0001"


@pytest.fixture
def load(tmp_path):
    def load(data: dict) -> dict:
        p = tmp_path / "c.yaml"
        p.write_text(yaml.safe_dump({"work_dir": str(tmp_path / "work"), **data}))
        return fa_config.load(p)

    yield load
    hosts.close_masters(hosts.control_dir({"work_dir": str(tmp_path / "work")}))


def three_machines(**extra) -> dict:
    data = {
        "daq": {
            "host": "daq",
            "user": "xe",
            "port": 2201,
            "ssh": ["ssh", "-F", "/etc/fa/ssh_config"],
            "raw_dir": "/data/raw",
        },
        "cluster": "big",
        "clusters": {
            "big": {
                "host": "login.big",
                "user": "fa",
                "port": 2202,
                "scratch": "/scratch/fa",
                "ssh": ["ssh", "-i", "/etc/fa/key"],
            }
        },
    }
    return fa_config.deep_update(data, extra)


def test_ssh_argv_has_options_user_and_port_then_the_destination_and_one_command_word():
    h = Host("daq", ("ssh", "-F", "cfg"), "xe", 2201)
    argv = h.argv(["ls", "-l", "a b; c"])
    assert argv[:-1] == ["ssh", "-F", "cfg", "-p", "2201", "-l", "xe", "--", "daq"]
    assert shlex.split(argv[-1]) == ["ls", "-l", "a b; c"]
    assert h.name == "xe@daq" and h.path("/x") == "xe@daq:/x"
    assert hosts.rsync_shell(h) == "ssh -F cfg -p 2201 -l xe"


def test_hosts_come_from_the_config_sections(load):
    c = load(three_machines())
    daq, cluster = transfer.daq_host(c), transfer.cluster_host(c)
    assert replace(daq, control="") == Host("daq", ("ssh", "-F", "/etc/fa/ssh_config"), "xe", 2201)
    assert replace(cluster, control="") == Host("login.big", ("ssh", "-i", "/etc/fa/key"), "fa", 2202)
    # this machine reaches both through the tick's connections (one control socket each)
    controls = str(hosts.control_dir(c))
    assert daq.control.startswith(controls) and cluster.control.startswith(controls)
    assert daq.control != cluster.control
    # the DAQ reaches the cluster under the same name, user and port, with its own ssh (default BatchMode)
    assert places.cluster_from_daq(c) == Host("login.big", hosts.DEFAULT_SSH, "fa", 2202)
    c = load(three_machines(clusters={"big": {"from_daq": {"host": "big-internal", "ssh": ["ssh", "-q"]}}}))
    assert places.cluster_from_daq(c) == Host("big-internal", ("ssh", "-q"), "fa", 2202)


def test_the_rsync_command_run_on_the_daq(load):
    c = load(
        three_machines(
            transfer={
                "group": "darkmatter",
                "dir_mode": "2775",
                "file_mode": "0664",
                "rsync": ["rsync", "-a", "--bwlimit=50000"],
            }
        )
    )
    argv = transfer_commands.rsync_argv(c, RUN)
    assert argv[:3] == ["rsync", "-a", "--bwlimit=50000"] and argv.count("--partial") == 1
    for opt in ("--info=progress2", "--chmod=D2775,F0664", "--chown=:darkmatter", "--timeout=600"):
        assert opt in argv
    e = argv[argv.index("-e") + 1]
    assert shlex.split(e) == [*hosts.DEFAULT_SSH, "-p", "2202", "-l", "fa"]
    assert argv[-3:] == ["--", f"/data/raw/{RUN}/", f"fa@login.big:/scratch/fa/raw/.incoming/{RUN}/"]
    # and the host sends it to the DAQ as one quoted word
    remote = transfer.daq_host(c).argv(argv)
    assert remote[remote.index("--") + 1] == "daq" and shlex.split(remote[-1]) == argv


def test_a_local_daq_pushes_with_this_hosts_own_ssh(load):
    c = load(three_machines(daq={"host": "local", "raw_dir": "/data/raw"}))
    e = transfer_commands.rsync_argv(c, RUN)[transfer_commands.rsync_argv(c, RUN).index("-e") + 1]
    assert shlex.split(e)[:7] == ["ssh", "-i", "/etc/fa/key", "-p", "2202", "-l", "fa"]
    assert f"ControlPath={transfer.cluster_host(c).control}" in shlex.split(e)  # the tick's connection


def test_a_remote_daq_needs_a_name_for_a_local_cluster(load):
    c = load({"daq": {"host": "daq", "raw_dir": "/data/raw"}})
    with pytest.raises(fa_config.ConfigError, match="clusters.local.from_daq.host"):
        transfer_commands.rsync_argv(c, RUN)


@pytest.mark.parametrize(
    "data, key",
    [
        ({"transfer": {"dir_mode": "2777"}}, "transfer.dir_mode"),
        ({"transfer": {"file_mode": "0666"}}, "transfer.file_mode"),
        ({"daq": {"host": "-oProxyCommand=touch /tmp/x"}}, "daq.host"),
        ({"daq": {"user": "a b"}}, "daq.user"),
        ({"clusters": {"local": {"scratch": "s", "port": 70000}}}, "clusters.local.port"),
        ({"transfer": {"group": "$(id)"}}, "transfer.group"),
        ({"transfer": {"checksum": "md5"}}, "transfer.checksum"),
    ],
)
def test_the_schema_refuses_world_writable_modes_and_option_like_hosts(load, data, key):
    with pytest.raises(fa_config.ConfigError, match=f"config key {key}"):
        load(data)


def test_umask_lets_nothing_more_than_the_modes_through():
    assert transfer_commands.umask_for("2770", "0660") == "007"
    assert transfer_commands.umask_for("2775", "0664") == "002"
    assert transfer_commands.umask_for("0750", "0640") == "027"


def test_purge_cutoff_follows_the_policy(load):
    now = _dt.datetime(2026, 11, 27, 12, 0, tzinfo=_dt.timezone.utc)
    assert purge.purge_cutoff(load({}), now) is None
    assert purge.purge_cutoff(load({"transfer": {"purge": "purge_after_verify"}}), now) == now
    c = load({"transfer": {"purge": "purge_after_days", "purge_after_days": 2.5}})
    assert purge.purge_cutoff(c, now) == _dt.datetime(2026, 11, 25, 0, 0, tzinfo=_dt.timezone.utc)


def test_the_daq_survey_here(load, tmp_path):
    raw = tmp_path / "raw"
    (raw / RUN).mkdir(parents=True)
    (raw / RUN / "f").write_bytes(b"x")
    old = time.time() - 1000
    os.utime(raw / RUN / "f", (old, old))
    os.utime(raw / RUN, (old, old))
    base = {"daq": {"raw_dir": str(raw)}}
    s = daq.survey_daq(load(base), [RUN, "261127_0002", "bad name; x"])
    assert s.may_transfer and set(s.ages) == {RUN, "261127_0002"}
    assert 990 < s.ages[RUN] < 1100 and s.ages["261127_0002"] is None
    assert s.still_writing(2000) == {RUN: s.ages[RUN]} and s.still_writing(60) == {}
    live = daq.survey_daq(load({"daq": {"raw_dir": str(raw), "live_check": ["true"]}}), [RUN])
    assert live.live is True and "DAQ is live (`true` on local exited 0)" in live.reason
    broken = daq.survey_daq(load({"daq": {"raw_dir": str(raw), "live_check": ["sh", "-c", "exit 3"]}}), [])
    assert broken.live is None and "failed (exit 3)" in broken.reason and not broken.may_transfer


def _check_daq(config, stages, docs):
    """daq.daq_check as (stages, run documents, every line)."""
    c = daq.daq_check(config, stages, docs)
    return c.stages, c.docs, c.warnings + c.messages


def test_check_daq_drops_the_stage_or_the_runs_being_written(load, tmp_path):
    raw = tmp_path / "raw"
    (raw / RUN).mkdir(parents=True)
    docs = [{"name": RUN, "raw_status": "acquired"}, {"name": "261127_0002", "raw_status": "ondeck"}]
    c = load({"daq": {"raw_dir": str(raw), "settle_seconds": 600}})
    stages, kept, msgs = _check_daq(c, ["transfer", "process"], docs)
    assert stages == ["transfer", "process"] and [d["name"] for d in kept] == ["261127_0002"]
    assert len(msgs) == 1 and msgs[0].startswith(f"run {RUN}: the DAQ wrote to it")
    c = load({"daq": {"raw_dir": str(raw), "live_check": ["true"]}})
    stages, kept, msgs = _check_daq(c, ["transfer", "process"], docs)
    assert stages == ["process"] and kept == docs and len(msgs) == 1
    assert _check_daq(c, ["process"], docs) == (["process"], docs, [])
    # no run to transfer, nothing to purge: the DAQ is not asked (a live DAQ would drop the stage)
    assert _check_daq(c, ["transfer"], docs[1:]) == (["transfer"], docs[1:], [])
    c = load({"daq": {"raw_dir": str(raw), "live_check": ["true"]}, "transfer": {"purge": "purge_after_verify"}})
    assert _check_daq(c, ["transfer"], docs[1:])[0] == []


def test_the_manifest_reports_its_algorithm_and_falls_back(tmp_path):
    (tmp_path / "a").write_bytes(b"abc")
    m = hosts.scan(Host(), str(tmp_path), ["sha256"])
    assert m.algorithm == "sha256" and m.files[0]["hash"].startswith("ba7816bf")
    # the first tool installed wins: here the xxh128 tool is "missing"
    out = subprocess.run(
        ["bash", "-c", hosts.MANIFEST, "fa-manifest", str(tmp_path), "xxh128:no-such-xxh128sum", "sha256:sha256sum"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert hosts.parse_listing(out).algorithm == "sha256"
    none = subprocess.run(
        ["bash", "-c", hosts.MANIFEST, "fa-manifest", str(tmp_path), "xxh128:no-such-xxh128sum"],
        capture_output=True,
        text=True,
    )
    assert none.returncode == 5 and "none of these checksum tools" in none.stderr
    assert m.newest_mtime == pytest.approx((tmp_path / "a").stat().st_mtime, abs=1e-3)
    assert m.started is not None and abs(m.started - time.time()) < 60


def test_a_guarded_command_stops_when_its_caller_dies(tmp_path):
    """The hang-up guard: kill the process that started a long command, the command stops too."""
    marker = f"{tmp_path}/guarded"
    code = f"from fulliautomatix.hosts import Host; Host().run_guarded(['bash', '-c', 'sleep 300; echo', {marker!r}])"
    caller = subprocess.Popen([sys.executable, "-c", code], start_new_session=False)

    def running():
        return subprocess.run(["pgrep", "-f", marker], capture_output=True).returncode == 0

    deadline = time.monotonic() + 10
    while not running() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert running()
    os.kill(caller.pid, signal.SIGKILL)  # as kill -9 of a tick: no chance to clean up
    caller.wait()
    deadline = time.monotonic() + 10
    while running() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not running(), "the guarded command outlived its caller"


def test_a_guarded_command_reports_its_status_output_and_start_time():
    out = []
    res = Host().run_guarded(["sh", "-c", "echo one; echo two >&2; exit 4"], check=False, on_stdout=out.append)
    assert res.returncode == 4 and "".join(out) == "one\n" and res.stderr == "two\n"
    assert abs(res.started - time.time()) < 60
    with pytest.raises(hosts.CommandFailed, match="exited with 4: two"):
        Host().run_guarded(["sh", "-c", "echo two >&2; exit 4"], log=io.StringIO())
