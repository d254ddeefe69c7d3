"""hosts.CONFINE and the commands built on it, run by bash on real directories here."""

import os
import socket

import pytest

from fulliautomatix import hosts
from fulliautomatix.hosts import Host


@pytest.fixture
def root(tmp_path):
    r = tmp_path / "daq"
    (r / "111111_0001" / "sub").mkdir(parents=True)
    (r / "111111_0001" / "a.bin").write_bytes(b"a" * 10)
    (r / "111111_0001" / "sub" / "b.bin").write_bytes(b"b" * 20)
    return r


def bind_socket(path):
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(path))  # the socket file stays after close


def scan(root, name="111111_0001"):
    return hosts.scan(Host(), f"{root}/{name}", ["sha256"], confined_to=str(root))


def test_a_real_directory_is_scanned(root):
    m = scan(root)
    assert [f["path"] for f in m.files] == ["a.bin", "sub/b.bin"]


def test_the_root_may_itself_be_a_link(root, tmp_path):
    (tmp_path / "linked-daq").symlink_to(root)
    assert len(scan(tmp_path / "linked-daq").files) == 2


@pytest.mark.parametrize(
    "make, kind, words",
    [
        (lambda d, t: (d / "l").symlink_to(t / "elsewhere"), "link", "l is a symbolic link (to "),
        (lambda d, t: (d / "sub" / "l").symlink_to("../a.bin"), "link", "sub/l is a symbolic link (to ../a.bin)"),
        (lambda d, t: os.mkfifo(d / "sub" / "p"), "special", "sub/p is a fifo"),
        (lambda d, t: bind_socket(d / "s"), "special", "s is a socket"),
    ],
)
def test_a_link_or_special_file_inside_is_refused(root, tmp_path, make, kind, words):
    (tmp_path / "elsewhere").write_text("not run data")
    make(root / "111111_0001", tmp_path)
    with pytest.raises(hosts.Unsafe) as err:
        scan(root)
    assert err.value.kind == kind and f"{root}/111111_0001/{words}" in err.value.what
    assert err.value.returncode == hosts.UNSAFE_EXIT and str(err.value).startswith("refused: ")


def test_a_run_that_is_a_link_is_refused_before_anything_is_read(root, tmp_path):
    (root / "111111_0002").symlink_to(root / "111111_0001")
    with pytest.raises(hosts.Unsafe) as err:
        scan(root, "111111_0002")
    assert err.value.kind == "dirlink" and err.value.advice == "replace the link by the real directory"
    assert f"{root}/111111_0002 is a symbolic link (to {root}/111111_0001)" == err.value.what
    (root / "111111_0003").write_text("a file")
    with pytest.raises(hosts.Unsafe, match="is not a directory"):
        scan(root, "111111_0003")


def test_a_missing_run_is_an_ordinary_failure(root):
    with pytest.raises(hosts.CommandFailed) as err:
        scan(root, "111111_0009")
    assert not isinstance(err.value, hosts.Unsafe)


def test_only_a_directory_directly_in_the_root_can_be_confined(root):
    for bad in (f"{root}/a/b", "/elsewhere/111111_0001", f"{root}/..", f"{root}/"):
        with pytest.raises(ValueError):
            hosts.manifest_argv(bad, "sha256", confined_to=str(root))
    assert hosts.split_confined(f"{root}/111111_0001/", f"{root}/") == [f"{root}/", "111111_0001"]


def test_a_refusal_is_raised_even_unchecked(root):
    (root / "111111_0002").symlink_to("111111_0001")
    argv = ["bash", "-c", hosts.CONFINE + 'confine "$1" "$2" || exit', "fa-x", str(root), "111111_0002"]
    with pytest.raises(hosts.Unsafe):
        Host().run(argv, check=False)
    with pytest.raises(hosts.Unsafe):
        Host().run_guarded(argv, check=False)
    assert Host().run(["bash", "-c", "exit 97"], check=False).returncode == 97, "97 alone is no refusal"
