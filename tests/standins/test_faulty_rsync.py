"""The faulty-rsync stand-in itself: passes through, fails half-way, corrupts, counts."""

import subprocess
from pathlib import Path

TOOL = Path(__file__).parent / "rsync" / "faulty-rsync"


def copy(faults, src, dest):
    return subprocess.run(
        [str(TOOL), "--faults", str(faults), "--", "rsync", "-a", "--partial", str(src), str(dest)],
        capture_output=True,
        text=True,
    )


def test_no_fault_is_a_plain_rsync(tmp_path):
    src = tmp_path / "a.bin"
    src.write_bytes(bytes(range(256)) * 40)
    r = copy(tmp_path / "none", src, tmp_path / "b.bin")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "b.bin").read_bytes() == src.read_bytes()


def test_halfway_then_resume(tmp_path):
    src = tmp_path / "a.bin"
    src.write_bytes(bytes(range(256)) * 40)
    faults = tmp_path / "faults"
    faults.write_text("halfway*1\n")
    r = copy(faults, src, tmp_path / "b.bin")
    assert r.returncode == 12
    assert "STAND-IN injected fault 'halfway'" in r.stderr
    assert (tmp_path / "b.bin").read_bytes() == src.read_bytes()[: len(src.read_bytes()) // 2]
    assert faults.read_text().strip() == ""  # used up
    r = copy(faults, src, tmp_path / "b.bin")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "b.bin").read_bytes() == src.read_bytes()


def test_corrupt_flips_one_byte_and_reports_success(tmp_path):
    src = tmp_path / "a.bin"
    data = bytes(range(256)) * 40
    src.write_bytes(data)
    faults = tmp_path / "faults"
    faults.write_text("corrupt*2")
    for _ in range(2):
        r = copy(faults, src, tmp_path / "b.bin")
        assert r.returncode == 0, r.stderr
        got = (tmp_path / "b.bin").read_bytes()
        assert len(got) == len(data) and sum(x != y for x, y in zip(got, data)) == 1
        (tmp_path / "b.bin").unlink()
    assert copy(faults, src, tmp_path / "b.bin").returncode == 0
    assert (tmp_path / "b.bin").read_bytes() == data


def test_unknown_mode_is_refused(tmp_path):
    src = tmp_path / "a.bin"
    src.write_bytes(b"x")
    faults = tmp_path / "faults"
    faults.write_text("hafway")
    r = copy(faults, src, tmp_path / "b.bin")
    assert r.returncode == 2 and "unknown fault 'hafway'" in r.stderr
    assert not (tmp_path / "b.bin").exists()
