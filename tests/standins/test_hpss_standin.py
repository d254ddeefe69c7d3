"""Tests of the HPSS htar/hsi STAND-INs in tests/standins/hpss/.

These exercise the stand-in scripts themselves (not Fulliautomatix code):
namespace handling, output formats, exit codes and every fault switch, so
that backend tests built on top of them can trust what they see.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent / "hpss"
HTAR = HERE / "htar"
HSI = HERE / "hsi"


class Hpss:
    """Runs the stand-ins against a private namespace under tmp_path."""

    def __init__(self, tmp_path):
        self.root = tmp_path / "hpss-root"
        self.root.mkdir()
        self.work = tmp_path / "work"
        self.work.mkdir()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("HPSS_STANDIN")}
        self.env["HPSS_STANDIN_ROOT"] = str(self.root)
        self.env["HPSS_STANDIN_HOME"] = "/home/tester"

    def run(self, tool, *args, env=None, cwd=None, stdin=None):
        e = dict(self.env)
        e.update(env or {})
        return subprocess.run(
            [sys.executable, str(tool), *map(str, args)],
            cwd=cwd or self.work,
            env=e,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def htar(self, *args, **kw):
        return self.run(HTAR, *args, **kw)

    def hsi(self, *args, **kw):
        return self.run(HSI, *args, **kw)

    def path(self, hpss_path):
        return self.root / hpss_path.lstrip("/")


@pytest.fixture
def hpss(tmp_path):
    return Hpss(tmp_path)


@pytest.fixture
def runs(hpss):
    """A small batch of 'compressed runs' in hpss.work/batch."""
    d = hpss.work / "batch"
    (d / "sub").mkdir(parents=True)
    (d / "run001.zst").write_bytes(os.urandom(70_000))
    (d / "run002.zst").write_bytes(os.urandom(1_234))
    (d / "sub" / "meta.json").write_text('{"run": 1}\n')
    return d


def make_archive(hpss, name="/fortress/b1.tar", *extra, env=None):
    r = hpss.hsi("-q", "mkdir", "-p", os.path.dirname(name))
    assert r.returncode == 0, r.stderr
    return hpss.htar("-cvf", name, *extra, "batch", env=env)


def listing_names(stdout):
    names = []
    for line in stdout.splitlines():
        parts = line.split()
        if line.startswith("HTAR: ") and len(parts) == 7 and parts[1][0] in "-dl":
            names.append(parts[6])
    return names


# --------------------------------------------------------------------------
# general
# --------------------------------------------------------------------------


def test_scripts_are_labelled_executable_standins():
    for tool in (HTAR, HSI):
        text = tool.read_text()
        assert "STAND-IN for HPSS htar/hsi used only by the test suite; not the real tool" in text
        assert os.access(tool, os.X_OK)
        assert text.startswith("#!/usr/bin/env python3")


def test_tools_run_from_path_like_the_real_ones(hpss, runs):
    env = dict(hpss.env)
    env["PATH"] = f"{HERE}{os.pathsep}{env.get('PATH', '')}"
    r = subprocess.run(["hsi", "-q", "mkdir -p /p"], cwd=hpss.work, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    r = subprocess.run(["htar", "-cvf", "/p/a.tar", "batch"], cwd=hpss.work, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-1] == "HTAR: HTAR SUCCESSFUL"


@pytest.mark.parametrize("tool", [HTAR, HSI])
def test_root_env_required(tmp_path, tool):
    env = {k: v for k, v in os.environ.items() if not k.startswith("HPSS_STANDIN")}
    r = subprocess.run([sys.executable, str(tool), "-tvf", "/x.tar"], env=env, capture_output=True, text=True)
    assert r.returncode == 2
    assert "HPSS_STANDIN_ROOT is not set" in r.stderr
    env["HPSS_STANDIN_ROOT"] = str(tmp_path / "missing")
    r = subprocess.run([sys.executable, str(tool), "-tvf", "/x.tar"], env=env, capture_output=True, text=True)
    assert r.returncode == 2
    assert "not an existing directory" in r.stderr


def test_unknown_fault_mode_is_a_config_error(hpss):
    r = hpss.htar("-tvf", "/x.tar", env={"HPSS_STANDIN_FAIL": "htar-typo"})
    assert r.returncode == 2
    assert "unknown mode 'htar-typo'" in r.stderr
    (hpss.root / ".corrupt").write_text("sometimes\n")
    r = hpss.hsi("-q", "ls")
    assert r.returncode == 2


# --------------------------------------------------------------------------
# htar
# --------------------------------------------------------------------------


def test_create_list_extract_roundtrip(hpss, runs):
    r = make_archive(hpss)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert "HTAR: a   batch/run001.zst" in lines
    assert any(ln.startswith("HTAR: a   /tmp/HTAR_CF_CHK_") for ln in lines)
    assert any(ln.startswith("HTAR Create complete for /fortress/b1.tar, ") for ln in lines)
    assert lines[-1] == "HTAR: HTAR SUCCESSFUL"
    # archive + index in the namespace; the archive is a real ustar tar
    tar = hpss.path("/fortress/b1.tar")
    assert tar.is_file() and hpss.path("/fortress/b1.tar.idx").is_file()
    import tarfile

    with tarfile.open(tar) as tf:
        assert "batch/run001.zst" in tf.getnames()

    r = hpss.htar("-tvf", "/fortress/b1.tar")
    assert r.returncode == 0, r.stderr
    names = listing_names(r.stdout)
    assert names[:-1] == ["batch/", "batch/sub/", "batch/run001.zst", "batch/run002.zst", "batch/sub/meta.json"]
    assert names[-1].startswith("/tmp/HTAR_CF_CHK_")
    size_line = [ln for ln in r.stdout.splitlines() if ln.endswith(" batch/run001.zst")][0]
    assert size_line.split()[3] == "70000"
    assert r.stdout.splitlines()[-2].startswith("HTAR: Listing complete for /fortress/b1.tar, ")
    assert r.stdout.splitlines()[-1] == "HTAR: HTAR SUCCESSFUL"

    out = hpss.work / "restore"
    out.mkdir()
    r = hpss.htar("-xvf", "/fortress/b1.tar", "-C", out, "batch/run002.zst")
    assert r.returncode == 0, r.stderr
    assert "HTAR: x batch/run002.zst, 1234 bytes, 4 media blocks" in r.stdout.splitlines()
    assert (out / "batch" / "run002.zst").read_bytes() == (runs / "run002.zst").read_bytes()
    assert not (out / "batch" / "run001.zst").exists()
    assert r.stdout.splitlines()[-1] == "HTAR: HTAR SUCCESSFUL"


def test_extract_all_without_C_uses_cwd_and_skips_consistency_file(hpss, runs):
    assert make_archive(hpss).returncode == 0
    dest = hpss.work / "dest"
    dest.mkdir()
    r = hpss.htar("-xf", "/fortress/b1.tar", cwd=dest)
    assert r.returncode == 0, r.stderr
    for rel in ("run001.zst", "run002.zst", "sub/meta.json"):
        assert (dest / "batch" / rel).read_bytes() == (runs / rel).read_bytes()
    assert not (dest / "tmp").exists()
    assert "HTAR: x" not in r.stdout  # no -v, no per-member lines


def test_extract_missing_member_fails(hpss, runs):
    assert make_archive(hpss).returncode == 0
    r = hpss.htar("-xvf", "/fortress/b1.tar", "batch/nope.zst")
    assert r.returncode == 72
    assert "No match for 'batch/nope.zst'" in r.stderr
    assert r.stdout.splitlines()[-1] == "HTAR: HTAR FAILED"


def test_relative_archive_path_is_under_hpss_home(hpss, runs):
    r = hpss.htar("-cf", "rel.tar", "batch/run002.zst")
    assert r.returncode == 0, r.stderr
    assert hpss.path("/home/tester/rel.tar").is_file()
    r = hpss.hsi("-q", "ls", "-l", "rel.tar")
    assert r.returncode == 0 and "rel.tar" in r.stderr


def test_create_needs_parent_dir_unless_P(hpss, runs):
    r = hpss.htar("-cvf", "/nodir/deeper/x.tar", "batch")
    assert r.returncode == 72
    assert "No such file or directory" in r.stderr
    assert r.stdout.splitlines()[-1] == "HTAR: HTAR FAILED"
    assert not hpss.path("/nodir").exists()
    r = hpss.htar("-P", "-cvf", "/nodir/deeper/x.tar", "batch")
    assert r.returncode == 0, r.stderr
    assert hpss.path("/nodir/deeper/x.tar").is_file()


def test_create_with_missing_local_member_fails_without_archive(hpss, runs):
    r = hpss.htar("-cvf", "/x.tar", "batch/run001.zst", "batch/ghost.zst")
    assert r.returncode == 72
    assert "No matching names located for 'batch/ghost.zst'" in r.stderr
    assert not hpss.path("/x.tar").exists()


def test_create_with_C_and_listfile(hpss, runs):
    lst = hpss.work / "members.txt"
    lst.write_text("run001.zst\nsub/meta.json\n")
    r = hpss.htar("-cvf", "/l.tar", "-C", runs, "-L", lst)
    assert r.returncode == 0, r.stderr
    r = hpss.htar("-tf", "/l.tar")
    names = [
        ln[len("HTAR: ") :]
        for ln in r.stdout.splitlines()
        if ln.startswith("HTAR: ") and "complete" not in ln and "SUCCESSFUL" not in ln
    ]
    assert names[:2] == ["run001.zst", "sub/meta.json"]


def test_list_missing_archive_or_index(hpss, runs):
    r = hpss.htar("-tvf", "/none.tar")
    assert r.returncode == 72 and "No such file: /none.tar" in r.stderr
    assert make_archive(hpss).returncode == 0
    hpss.path("/fortress/b1.tar.idx").unlink()
    r = hpss.htar("-tvf", "/fortress/b1.tar")
    assert r.returncode == 72 and "b1.tar.idx" in r.stderr


@pytest.mark.parametrize("spec", ["-Hverify=1", "-Hverify=all", "-Hverify=info,crc", "-Hcrc:verify=2"])
def test_verify_clean_archive(hpss, runs, spec):
    r = make_archive(hpss, "/fortress/v.tar", spec)
    assert r.returncode == 0, r.stderr
    assert any(ln.startswith("HTAR: Verify complete for /fortress/v.tar") for ln in r.stdout.splitlines())
    r = hpss.htar("-Kvf", "/fortress/v.tar")
    assert r.returncode == 0, r.stderr


def test_usage_errors(hpss):
    r = hpss.htar("-cv", "batch")
    assert r.returncode == 64 and "-f Archive is required" in r.stderr
    r = hpss.htar("-cvf", "/x.tar", "-Hverify=bogus", "batch")
    assert r.returncode == 64
    r = hpss.htar("-cvf", "/x.tar")
    assert r.returncode == 64
    r = hpss.htar("-cvf", "/x.tar", "-Z", "batch")
    assert r.returncode == 64


# ---- htar faults ---------------------------------------------------------


def test_fault_htar_create_halfway_leaves_partial_archive(hpss, runs):
    full = make_archive(hpss, "/fortress/ok.tar")
    assert full.returncode == 0
    r = make_archive(hpss, "/fortress/half.tar", env={"HPSS_STANDIN_FAIL": "htar-create-halfway"})
    assert r.returncode == 72
    assert r.stdout.splitlines()[-1] == "HTAR: HTAR FAILED"
    assert "htar-create-halfway" in r.stderr
    half = hpss.path("/fortress/half.tar")
    assert 0 < half.stat().st_size < hpss.path("/fortress/ok.tar").stat().st_size
    assert not hpss.path("/fortress/half.tar.idx").exists()
    assert hpss.htar("-tvf", "/fortress/half.tar").returncode == 72


def test_halfway_overwrite_keeps_stale_index(hpss, runs):
    """Documented hazard: the index is written last, so a failed re-create
    leaves the previous .idx next to a truncated archive."""
    assert make_archive(hpss, "/fortress/b.tar", "-Hcrc").returncode == 0
    r = make_archive(hpss, "/fortress/b.tar", "-Hcrc", env={"HPSS_STANDIN_FAIL": "htar-create-halfway"})
    assert r.returncode == 72
    assert hpss.htar("-tvf", "/fortress/b.tar").returncode == 0  # stale!
    assert hpss.htar("-Kf", "/fortress/b.tar").returncode == 72


@pytest.mark.parametrize(
    "mode,args",
    [
        ("htar", ["-tvf", "/fortress/b1.tar"]),
        ("htar-list", ["-tvf", "/fortress/b1.tar"]),
        ("htar-extract", ["-xvf", "/fortress/b1.tar"]),
        ("htar-verify", ["-Kvf", "/fortress/b1.tar"]),
    ],
)
def test_fault_htar_operations(hpss, runs, mode, args):
    assert make_archive(hpss).returncode == 0
    r = hpss.htar(*args, env={"HPSS_STANDIN_FAIL": mode})
    assert r.returncode == 72
    assert f"injected fault '{mode}'" in r.stderr
    assert r.stdout.splitlines()[-1] == "HTAR: HTAR FAILED"
    assert hpss.htar(*args).returncode == 0  # switch off -> fine again


@pytest.mark.parametrize("mode", ["htar", "htar-create"])
def test_fault_htar_create_writes_nothing(hpss, runs, mode):
    r = make_archive(hpss, env={"HPSS_STANDIN_FAIL": mode})
    assert r.returncode == 72
    assert not hpss.path("/fortress/b1.tar").exists()


def test_corrupt_after_write_caught_by_hverify(hpss, runs):
    r = make_archive(hpss, "/fortress/c.tar", "-Hverify=1", env={"HPSS_STANDIN_CORRUPT": "after-write"})
    assert r.returncode == 72
    assert "CRC mismatch for member 'batch/run001.zst'" in r.stderr
    assert r.stdout.splitlines()[-1] == "HTAR: HTAR FAILED"


def test_corrupt_after_write_with_compare_only(hpss, runs):
    r = make_archive(hpss, "/fortress/c.tar", "-Hverify=compare", env={"HPSS_STANDIN_CORRUPT": "after-write"})
    assert r.returncode == 72
    assert "compare mismatch for member 'batch/run001.zst'" in r.stderr


def test_corrupt_after_write_without_verify_caught_later(hpss, runs):
    r = make_archive(hpss, "/fortress/c.tar", "-Hcrc", env={"HPSS_STANDIN_CORRUPT": "after-write"})
    assert r.returncode == 0  # htar itself does not notice
    # listing reads only the index: still looks fine
    assert hpss.htar("-tvf", "/fortress/c.tar").returncode == 0
    r = hpss.htar("-Kvf", "/fortress/c.tar")
    assert r.returncode == 72 and "CRC mismatch" in r.stderr
    dest = hpss.work / "x"
    dest.mkdir()
    r = hpss.htar("-xvf", "/fortress/c.tar", "-C", dest, "batch/run001.zst")
    assert r.returncode == 72 and "CRC mismatch" in r.stderr
    assert not (dest / "batch" / "run001.zst").exists()


def test_corruption_without_crc_is_invisible_to_htar(hpss, runs):
    """Without -Hcrc / -Hverify=crc no CRCs are stored (as in real htar), so
    only a comparison of the extracted bytes can reveal the damage."""
    r = make_archive(hpss, "/fortress/n.tar", env={"HPSS_STANDIN_CORRUPT": "after-write"})
    assert r.returncode == 0
    assert hpss.htar("-Kf", "/fortress/n.tar").returncode == 0
    dest = hpss.work / "n"
    dest.mkdir()
    r = hpss.htar("-xf", "/fortress/n.tar", "-C", dest, "batch/run001.zst")
    assert r.returncode == 0
    assert (dest / "batch" / "run001.zst").read_bytes() != (runs / "run001.zst").read_bytes()


def test_corrupt_after_success_passes_hverify_then_fails_later(hpss, runs):
    r = make_archive(hpss, "/fortress/s.tar", "-Hverify=all", env={"HPSS_STANDIN_CORRUPT": "after-success"})
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-1] == "HTAR: HTAR SUCCESSFUL"
    r = hpss.htar("-Kf", "/fortress/s.tar")
    assert r.returncode == 72 and "CRC mismatch" in r.stderr


def test_fail_switch_file_with_count(hpss, runs):
    (hpss.root / ".fail").write_text("htar-create*1\n")
    r = make_archive(hpss)
    assert r.returncode == 72
    assert (hpss.root / ".fail").read_text().strip() == ""
    r = make_archive(hpss)
    assert r.returncode == 0, r.stderr


def test_corrupt_switch_file_persistent(hpss, runs):
    (hpss.root / ".corrupt").write_text("after-write\n")
    r = make_archive(hpss, "/fortress/p.tar", "-Hverify=1")
    assert r.returncode == 72
    assert (hpss.root / ".corrupt").read_text().strip() == "after-write"
    (hpss.root / ".corrupt").unlink()
    r = make_archive(hpss, "/fortress/p.tar", "-Hverify=1")
    assert r.returncode == 0, r.stderr


# --------------------------------------------------------------------------
# hsi
# --------------------------------------------------------------------------


def test_hsi_ls_l_format_on_stderr(hpss, runs):
    assert make_archive(hpss).returncode == 0
    r = hpss.hsi("-q", "ls", "-l", "/fortress/b1.tar")
    assert r.returncode == 0, r.stderr
    assert r.stdout == ""  # real hsi writes listings to stderr
    lines = r.stderr.splitlines()
    assert lines[0] == "/fortress:"
    tok = lines[1].split()
    assert tok[0] == "-rw-r--r--" or tok[0].startswith("-")
    assert tok[1] == "1"
    assert int(tok[4]) == hpss.path("/fortress/b1.tar").stat().st_size
    assert tok[-1] == "b1.tar"
    assert len(tok) == 9

    r = hpss.hsi("-q", "ls", "-l", "/fortress")
    names = [ln.split()[-1] for ln in r.stderr.splitlines()[1:]]
    assert names == ["b1.tar", "b1.tar.idx"]
    r = hpss.hsi("-q", "ls", "/fortress")
    assert r.stderr.splitlines() == ["/fortress:", "b1.tar", "b1.tar.idx"]


def test_hsi_banner_without_q(hpss):
    r = hpss.hsi("ls", "/")
    assert r.returncode == 0
    assert r.stderr.splitlines()[0].startswith("Username: ")
    assert "STAND-IN" in r.stderr.splitlines()[0]
    r = hpss.hsi("-q", "ls", "/")
    assert not r.stderr.startswith("Username: ")


def test_hsi_reserved_switch_files_hidden(hpss):
    (hpss.root / ".fail").write_text("")
    r = hpss.hsi("-q", "ls", "-a", "/")
    assert ".fail" not in r.stderr
    r = hpss.hsi("-q", "ls", "-l", "/.fail")
    assert r.returncode == 72


def test_hsi_ls_missing(hpss):
    r = hpss.hsi("-q", "ls", "-l", "/nope/x.tar")
    assert r.returncode == 72
    assert "*** hpss_Lstat: No such file or directory [-2: HPSS_ENOENT]" in r.stderr
    assert "    /nope/x.tar" in r.stderr.splitlines()


def test_hsi_mkdir(hpss):
    r = hpss.hsi("-q", "mkdir", "/a/b")
    assert r.returncode == 72 and "HPSS_ENOENT" in r.stderr
    assert hpss.hsi("-q", "mkdir", "-p", "/a/b").returncode == 0
    assert hpss.hsi("-q", "mkdir", "-p", "/a/b").returncode == 0  # idempotent
    assert hpss.path("/a/b").is_dir()
    r = hpss.hsi("-q", "mkdir", "/a/b")
    assert r.returncode == 72 and "HPSS_EEXIST" in r.stderr


def test_hsi_put_get_rm(hpss, runs):
    src = runs / "run002.zst"
    r = hpss.hsi("-q", "put", src, ":", "/d/f.zst")
    assert r.returncode == 72 and "HPSS_ENOENT" in r.stderr
    r = hpss.hsi("-q", "put", "-P", src, ":", "/d/f.zst")
    assert r.returncode == 0, r.stderr
    assert f"put  '{src}' : '/d/f.zst' ( 1234 bytes" in r.stderr
    assert hpss.path("/d/f.zst").read_bytes() == src.read_bytes()
    r = hpss.hsi("-q", "get", "back.zst", ":", "/d/f.zst")
    assert r.returncode == 0, r.stderr
    assert "get  'back.zst' : '/d/f.zst' (" in r.stderr
    assert (hpss.work / "back.zst").read_bytes() == src.read_bytes()
    r = hpss.hsi("-q", "get", "/d/f.zst")  # local name = basename
    assert r.returncode == 0 and (hpss.work / "f.zst").exists()
    r = hpss.hsi("-q", "rm", "/d/f.zst")
    assert r.returncode == 0 and not hpss.path("/d/f.zst").exists()
    r = hpss.hsi("-q", "rm", "/d/f.zst")
    assert r.returncode == 72 and "HPSS_ENOENT" in r.stderr
    r = hpss.hsi("-q", "get", "x", ":", "/d/f.zst")
    assert r.returncode == 72
    r = hpss.hsi("-q", "put", hpss.work / "ghost", ":", "/d/g")
    assert r.returncode == 72 and "local file" in r.stderr
    assert hpss.hsi("-q", "rm", "/d").returncode == 72  # a directory
    assert hpss.hsi("-q", "rmdir", "/d").returncode == 0


def test_hsi_multiple_commands_in_one_string(hpss, runs):
    r = hpss.hsi("-q", f"mkdir -p /m/n; put {runs / 'run002.zst'} : /m/n/r.zst; ls -l /m/n/r.zst")
    assert r.returncode == 0, r.stderr
    assert r.stderr.splitlines()[-1].split()[-1] == "r.zst"
    # processing stops at the first failing command
    r = hpss.hsi("-q", "ls /nowhere; mkdir -p /never")
    assert r.returncode == 72
    assert not hpss.path("/never").exists()


def test_hsi_commands_from_stdin_and_cd(hpss):
    r = hpss.hsi("-q", stdin="mkdir -p /s/t\ncd /s\npwd\nls\n")
    assert r.returncode == 0, r.stderr
    assert "pwd0: /s" in r.stderr.splitlines()


def test_hsi_usage(hpss):
    r = hpss.hsi("-q", "frobnicate", "/x")
    assert r.returncode == 64 and "unrecognized command" in r.stderr
    r = hpss.hsi("-Z", "ls")
    assert r.returncode == 64


# ---- hsi faults ----------------------------------------------------------


@pytest.mark.parametrize(
    "mode,cmd",
    [
        ("hsi", ["ls", "/"]),
        ("hsi-ls", ["ls", "-l", "/"]),
        ("hsi-mkdir", ["mkdir", "-p", "/q"]),
        ("hsi-rm", ["rm", "/file"]),
        ("hsi-get", ["get", "out", ":", "/file"]),
        ("hsi-put", ["put", "in.txt", ":", "/file2"]),
    ],
)
def test_fault_hsi_commands(hpss, mode, cmd):
    (hpss.work / "in.txt").write_text("data\n")
    assert hpss.hsi("-q", "put", "in.txt", ":", "/file").returncode == 0
    r = hpss.hsi("-q", *cmd, env={"HPSS_STANDIN_FAIL": mode})
    assert r.returncode == 72
    assert f"injected fault '{mode}'" in r.stderr
    assert hpss.hsi("-q", *cmd).returncode == 0


def test_fault_hsi_file_switch_and_other_tool_unaffected(hpss, runs):
    (hpss.root / ".fail").write_text("hsi\n")
    assert hpss.hsi("-q", "ls", "/").returncode == 72
    assert hpss.hsi("-q", "ls", "/").returncode == 72  # persistent
    assert hpss.htar("-cf", "/x.tar", "batch").returncode == 0


def test_fault_hsi_put_halfway(hpss, runs):
    src = runs / "run001.zst"
    r = hpss.hsi("-q", "put", src, ":", "/h.zst", env={"HPSS_STANDIN_FAIL": "hsi-put-halfway"})
    assert r.returncode == 72
    assert hpss.path("/h.zst").stat().st_size == src.stat().st_size // 2


def test_corrupt_after_put(hpss, runs):
    src = runs / "run001.zst"
    r = hpss.hsi("-q", "put", src, ":", "/c.zst", env={"HPSS_STANDIN_CORRUPT": "after-put"})
    assert r.returncode == 0
    stored = hpss.path("/c.zst").read_bytes()
    assert len(stored) == src.stat().st_size
    assert stored != src.read_bytes()
