"""Commands as argv lists, here and over ssh; per-file manifests and their comparison."""

import hashlib
import io
import os
import shlex
import shutil
import subprocess

import pytest

from fulliautomatix import hosts
from fulliautomatix.hosts import Host

NASTY = [
    "plain",
    "two words",
    "170101_0001; rm -rf ~",
    "$(reboot)",
    "`id`",
    "it's",
    'say "hi"',
    "back\\slash",
    "new\nline",
    "*.bin",
    "~",
    "",
    "--",
    "-rf",
    "a|b&c>d<e",
    "ünïcödé",
]


def test_run_names_are_checked_against_the_pattern():
    assert hosts.check_run_name("170101_0001", "^[0-9]{6}_[0-9]{4}$") == "170101_0001"
    for bad in ("170101_0001; rm -rf ~", "170101_0001\n", "../170101_0001", None):
        with pytest.raises(hosts.BadRunName, match="pattern"):
            hosts.check_run_name(bad, "^[0-9]{6}_[0-9]{4}$")


def test_a_local_host_runs_the_argv_unchanged():
    argv = ["rsync", "-a", *NASTY]
    out = Host().argv(argv)
    assert out == argv and out is not argv
    assert Host("local").is_local


def test_a_remote_argv_round_trips_through_shlex():
    argv = ["rsync", "-a", "--partial", *NASTY]
    remote = Host("daq").argv(argv)
    assert remote[0] == "ssh" and "daq" in remote[:-1]
    assert "rsync" not in remote[:-1] and "$(reboot)" not in remote, (
        "the remote command is one word for the remote shell"
    )
    assert shlex.split(remote[-1]) == argv


def test_the_remote_shell_sees_each_word_as_a_literal(tmp_path):
    """What ssh does with the command word: the login shell runs it with -c."""
    argv = ["printf", "<%s>\\n", *NASTY]
    remote = Host("daq").argv(argv)
    out = subprocess.run(["sh", "-c", remote[-1]], capture_output=True, text=True, cwd=tmp_path, check=True).stdout
    assert out == "".join(f"<{w}>\n" for w in NASTY)
    assert list(tmp_path.iterdir()) == [], "nothing was run but printf"


def test_ssh_options_and_destinations_come_from_the_host():
    ssh = ("ssh", "-F", "/etc/fa/ssh_config", "-o", "BatchMode=yes")
    h = Host("asterix@login.cluster", ssh=ssh)
    remote = h.argv(["true"])
    assert remote[: len(ssh)] == list(ssh)
    assert "asterix@login.cluster" in remote and remote[-1] == "true"
    assert not h.is_local


def test_paths_as_rsync_names_them():
    assert Host().path("/data/daq/170101_0001/") == "/data/daq/170101_0001/"
    assert Host("cluster").path("/scratch/raw/170101_0001/") == "cluster:/scratch/raw/170101_0001/"


def test_run_here_captures_output_and_logs_the_command():
    log = io.StringIO()
    proc = Host().run(["printf", "%s", "a b; c"], log=log)
    assert proc.stdout == "a b; c"
    assert log.getvalue() == "$ printf %s 'a b; c'\n"


def test_a_failing_command_raises_with_its_status_and_last_stderr_line():
    with pytest.raises(hosts.CommandFailed) as err:
        Host().run(["sh", "-c", "echo first >&2; echo 'last words' >&2; exit 3"])
    assert err.value.returncode == 3
    assert "exited with 3" in str(err.value) and "last words" in str(err.value)
    assert Host().run(["false"], check=False).returncode == 1


# -- manifests -------------------------------------------------------------------


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "170101_0001"
    (root / "sub dir").mkdir(parents=True)
    files = {"raw_000.bin": b"\x00\x01" * 1000, "raw_001.bin": b"", "sub dir/odd name;$x.bin": b"abc" * 7}
    for rel, data in files.items():
        (root / rel).write_bytes(data)
    return root, files


ALGOS = [("sha256", hashlib.sha256), ("blake2b", hashlib.blake2b)]


@pytest.mark.parametrize("algorithm, h", ALGOS)
def test_manifest_lists_every_file_with_size_and_checksum(tree, algorithm, h):
    root, files = tree
    got = hosts.manifest(Host(), str(root), algorithm)
    assert got == [{"path": rel, "size": len(data), "hash": h(data).hexdigest()} for rel, data in sorted(files.items())]


@pytest.mark.skipif(shutil.which("xxh128sum") is None, reason="xxh128sum not installed")
def test_manifest_with_xxh128(tree):
    root, files = tree
    got = hosts.manifest(Host(), str(root), "xxh128")
    assert [f["path"] for f in got] == sorted(files) and all(len(f["hash"]) == 32 for f in got)


@pytest.mark.parametrize("algorithm", ["xxh128", "sha256"])
def test_a_manifest_of_many_files_keeps_every_line_whole(tmp_path, algorithm):
    """Four checksum processes share one pipe: 1,024 files of long names make each write
    tens of KiB, which broke lines apart when a process wrote its output in 4 KiB pieces."""
    expected = {}
    for i in range(1024):
        name = f"a_longish_run_file_name_from_the_daq_{i:04d}.bin"
        data = os.urandom(64 + i)
        (tmp_path / name).write_bytes(data)
        expected[name] = hashlib.sha256(data).hexdigest()
    for _ in range(3):
        got = hosts.manifest(Host(), str(tmp_path), algorithm)
        assert [f["path"] for f in got] == sorted(expected)
        if algorithm == "sha256":
            assert {f["path"]: f["hash"] for f in got} == expected


def test_a_host_without_stdbuf_gets_the_same_manifest(tmp_path):
    """Without stdbuf the checksum processes take 8 files each and write their lines at once."""
    data = tmp_path / "run"
    data.mkdir()
    for i in range(40):
        (data / f"f{i:02d}.bin").write_bytes(os.urandom(100 + i))
    tools = tmp_path / "bin"
    tools.mkdir()
    for tool in ("bash", "find", "wc", "xargs", "sha256sum", "hostname"):
        (tools / tool).symlink_to(shutil.which(tool))
    argv = hosts.manifest_argv(str(data), "sha256")
    argv[0] = str(tools / "bash")
    out = subprocess.run(argv, capture_output=True, text=True, check=True, env={"PATH": str(tools)}).stdout
    assert hosts.parse_manifest(out) == hosts.manifest(Host(), str(data), "sha256")


def test_manifest_of_an_empty_and_of_a_missing_directory(tmp_path):
    assert hosts.manifest(Host(), str(tmp_path), "sha256") == []
    with pytest.raises(hosts.CommandFailed):
        hosts.manifest(Host(), str(tmp_path / "absent"), "sha256")


def test_the_remote_manifest_command_is_the_same_command(tree):
    root, _ = tree
    argv = hosts.manifest_argv(str(root), "sha256")
    remote = Host("cluster").argv(argv)
    assert shlex.split(remote[-1]) == argv
    out = subprocess.run(["sh", "-c", remote[-1]], capture_output=True, text=True, check=True).stdout
    assert hosts.parse_manifest(out) == hosts.manifest(Host(), str(root), "sha256")


def test_an_incomplete_listing_is_an_error(tree):
    root, _ = tree
    out = subprocess.run(hosts.manifest_argv(str(root), "sha256"), capture_output=True, text=True, check=True).stdout
    cut = "\n".join(ln for ln in out.splitlines() if not (ln.endswith("./raw_001.bin") and not ln.startswith("S ")))
    assert cut != out.rstrip("\n")
    with pytest.raises(ValueError, match="raw_001.bin"):
        hosts.parse_manifest(cut)


def F(path, size=10, digest="aa"):
    return {"path": path, "size": size, "hash": digest}


def test_identical_manifests_compare_equal():
    m = [F("a"), F("b/c", 3, "bb")]
    assert hosts.compare_manifests(m, list(reversed(m))) == []


def test_every_difference_is_named():
    expected = [F("a"), F("b"), F("c"), F("d")]
    actual = [F("a"), F("b", size=11), F("c", digest="ff"), F("e")]
    assert hosts.compare_manifests(expected, actual) == [
        "missing d",
        "unexpected e",
        "size of b: 11 != 10",
        "checksum of c differs",
    ]


def test_an_empty_copy_of_a_full_directory_does_not_verify():
    assert hosts.compare_manifests([F("a")], []) == ["missing a"]


def test_the_guard_returns_for_many_quick_commands_in_a_row():
    """bash 5.2's `wait -n` missed a job that ended before it was called and hung (within ~12 calls)."""
    h = Host()
    for i in range(60):
        res = h.run_guarded(["sh", "-c", f"echo {i}; exit 3"], check=False)
        assert (res.returncode, res.stdout) == (3, f"{i}\n")


def test_the_guard_stops_the_command_when_the_controlling_side_goes_away():
    script = hosts.GUARD
    proc = subprocess.Popen(
        ["bash", "-c", script, "fa-guard", "sleep", "30"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    proc.stdin.close()  # EOF: what the far side sees when the tick or its ssh dies
    assert proc.wait(timeout=10) == 129
    assert b"the controlling side went away; stopped sleep" in proc.stderr.read()


def test_where_a_batch_tarball_is_copied_from_and_by_whom():
    from fulliautomatix.archive import disk

    cluster = Host("fa-cluster", ("ssh", "-F", "cfg"))
    local = disk.DiskBackend.local("/arch", ["rsync", "-a"], "/st")
    on_cluster = disk.DiskBackend.remote(
        {"host": "fa-cluster", "ssh": ["ssh", "-F", "cfg"]}, "/arch", ["rsync", "-a"], "/st"
    )
    elsewhere = disk.DiskBackend.remote(
        {"host": "tape", "user": "u", "ssh": ["ssh", "-F", "cfg"]}, "/arch", ["rsync", "-a"], "/st"
    )
    # scratch here: pushed from here
    assert local._copy_argv(Host(), "/st/b.tar", "/arch/.incoming/b.tar") == (
        Host(),
        ["rsync", "-a", "/st/b.tar", "/arch/.incoming/b.tar"],
    )
    assert elsewhere._copy_argv(Host(), "/st/b.tar", "/in/b.tar")[1] == [
        "rsync",
        "-a",
        "-e",
        "ssh -F cfg -l u",
        "/st/b.tar",
        "u@tape:/in/b.tar",
    ]
    # scratch on the cluster, archive here: pulled over the cluster's ssh
    assert local._copy_argv(cluster, "/st/b.tar", "/in/b.tar") == (
        Host(),
        ["rsync", "-a", "-e", "ssh -F cfg", "fa-cluster:/st/b.tar", "/in/b.tar"],
    )
    # archive on the cluster's host: a plain copy there
    assert on_cluster._copy_argv(cluster, "/st/b.tar", "/in/b.tar") == (
        cluster,
        ["rsync", "-a", "/st/b.tar", "/in/b.tar"],
    )
    # both remote and different: pushed by the cluster's host with its own ssh (not this machine's -F cfg)
    where, argv = elsewhere._copy_argv(cluster, "/st/b.tar", "/in/b.tar")
    assert where == cluster and argv[-2:] == ["/st/b.tar", "u@tape:/in/b.tar"] and "cfg" not in argv[3]


def test_a_failure_names_its_cause_not_the_last_line_and_an_inline_script_by_name():
    stderr = (
        'rsync: [receiver] write failed on "/scratch/x": No space left on device (28)\n'
        "rsync error: error in file IO (code 11) at receiver.c(381)\nrsync: write error: Broken pipe (32)\n"
    )
    assert hosts.cause(stderr) == 'rsync: [receiver] write failed on "/scratch/x": No space left on device (28)'
    assert hosts.cause("one\ntwo\n") == "two"
    with pytest.raises(hosts.CommandFailed) as err:
        Host().run(["bash", "-c", "echo x >&2\nexit 4", "fa-thing", "arg"])
    assert str(err.value) == "fa-thing arg exited with 4: x"
    remote = Host("daq").argv(["bash", "-c", "multi\nline", "fa-thing", "a b"])
    assert "\n" not in hosts.short(remote) and "fa-thing 'a b'" in hosts.short(remote)
