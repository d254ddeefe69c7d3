"""One ssh connection per host per tick: where the control sockets go, and how a tick ends them."""

from __future__ import annotations

import os
import socket
import tempfile
from pathlib import Path

from fulliautomatix import hosts


def test_the_sockets_are_in_a_private_directory_under_a_short_work_dir():
    with tempfile.TemporaryDirectory(prefix="fa") as tmp:
        work = Path(tmp) / "work"
        d = hosts.control_dir({"work_dir": str(work)})
        assert d == work / "state" / f"ssh-{os.getuid()}"
        assert hosts.Host.from_config({"host": "local"}, d).control == ""
        assert not work.exists(), "nothing is made for a local host"
        host = hosts.Host.from_config({"host": "fa-cluster", "ssh": ["ssh", "-F", "cfg"]}, d)
        assert d.is_dir() and oct(d.stat().st_mode & 0o777) == "0o700"
        assert Path(host.control).parent == d and len(host.control) + 17 < 108
        argv = host.ssh_argv()
        assert argv[:3] == ["ssh", "-F", "cfg"]
        assert f"ControlPath={host.control}" in argv and "ControlMaster=auto" in argv
        assert hosts.rsync_shell(host).endswith(f"ControlPath={host.control} -o ControlPersist=300")
        # another user, port or ssh setting: another socket; a local host: none
        other = hosts.Host.from_config({"host": "fa-cluster", "ssh": ["ssh"], "port": 2222}, d)
        assert other.control != host.control


def test_a_work_dir_too_long_for_a_socket_uses_a_private_temp_directory(tmp_path):
    work = tmp_path / ("w" * 80)
    d = hosts.control_dir({"work_dir": str(work)})
    assert d.parent == Path(tempfile.gettempdir()) and d.name.startswith(f"fa-ssh-{os.getuid()}-")
    assert hosts.Host.from_config({"host": "fa-cluster"}, d).control.startswith(str(d))
    assert oct(d.stat().st_mode & 0o777) == "0o700"
    assert d == hosts.control_dir({"work_dir": str(work)}), "the same work dir, the same directory"
    assert d != hosts.control_dir({"work_dir": str(tmp_path / ("v" * 80))})
    hosts.close_masters(d)
    assert not d.exists()


def test_no_multiplexing_when_turned_off_or_when_the_directory_is_not_private(tmp_path):
    assert hosts.control_dir({"work_dir": str(tmp_path / "w"), "ssh_multiplex": False}) is None
    with tempfile.TemporaryDirectory(prefix="fa") as tmp:
        shared = Path(tmp) / "work" / "state" / f"ssh-{os.getuid()}"
        shared.mkdir(parents=True)
        shared.chmod(0o755)
        d = hosts.control_dir({"work_dir": str(Path(tmp) / "work")})
        assert hosts.Host.from_config({"host": "fa-cluster"}, d).ssh_argv() == list(hosts.DEFAULT_SSH)
        assert hosts.Host.from_config({"host": "fa-cluster"}, None).control == ""


def test_closing_removes_every_socket_even_one_whose_master_died():
    with tempfile.TemporaryDirectory(prefix="fa") as tmp:
        d = hosts.control_dir({"work_dir": str(Path(tmp) / "work")})
        d.mkdir(parents=True)
        stale = socket.socket(socket.AF_UNIX)
        stale.bind(str(d / "0123456789abcdef"))
        stale.close()  # the socket file stays, nobody listens
        (d / "notes.txt").write_text("not a socket")
        assert hosts.close_masters(d) == ["0123456789abcdef"]
        assert sorted(p.name for p in d.iterdir()) == ["notes.txt"]
        (d / "notes.txt").unlink()
        hosts.close_masters(d)
        assert not d.exists(), "an empty directory goes too"
        assert hosts.close_masters(None) == []
