"""simulate-daq through the real CLI: run numbers free on the DAQ and in the runs DB, failures one line.

Failures are injected for real: a DAQ directory whose parent is a regular
file (root ignores file modes, so a read-only directory would not fail), and
a DAQ directory on a full tmpfs mounted in a private mount namespace.
"""

from __future__ import annotations

import datetime as _dt
import shlex
import signal
import subprocess
import time

import pytest

from fa_testlib import FA, digests
from fulliautomatix.standins import rawformat


def today() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%y%m%d")


def tree_of_simulated(where, name, events):
    """The tree simulate-daq writes for a run (it is deterministic per name)."""
    rawformat.write_run(where / name, name, events)
    return digests(where / name, with_dirs=True)


def made(stderr: str) -> list[str]:
    return stderr.strip().splitlines()[-1].rsplit(": ", 1)[1].split(", ")


def assert_one_line(r, run: str):
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"fulliautomatix: simulate-daq: run {run} not written: "), r.stderr
    assert "then run simulate-daq again" in lines[0]
    return lines[0]


def test_a_fresh_runs_db_over_a_daq_holding_runs_skips_their_numbers(fa, config_path, db, raw_collection, tmp_path):
    daq = tmp_path / "daq"
    day = today()
    for name in (f"{day}_0001", f"{day}_0002", "991231_0007"):
        rawformat.write_run(daq / name, name, 10)
    (daq / f".{day}_0008.writing").mkdir()  # another simulate-daq's claim (or a leftover): taken too
    before = digests(daq, with_dirs=True)
    r = fa(config_path, "simulate-daq", "--runs", "2", "--events", "20")
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    names = made(r.stderr)
    assert names == [f"{day}_0009", f"{day}_0010"], "numbering continues after the DAQ's highest number"
    after = digests(daq, with_dirs=True)
    assert {k: v for k, v in after.items() if k in before} == before, "the runs already there are untouched"
    assert sorted(p.name for p in daq.iterdir()) == sorted(
        [*names, f"{day}_0001", f"{day}_0002", "991231_0007", f".{day}_0008.writing"]
    )
    docs = sorted(raw_collection.find({}), key=lambda d: d["name"])
    assert [(d["name"], d["number"]) for d in docs] == [(names[0], 9), (names[1], 10)]
    assert all(list((daq / n).glob("raw_*.bin")) for n in names)


def test_the_runs_db_numbers_count_too_and_its_names_are_skipped(fa, config_path, db, raw_collection, tmp_path):
    day = today()
    rawformat.write_run(tmp_path / "daq" / f"{day}_0002", f"{day}_0002", 10)
    db.insert_run(
        {
            "name": f"{day}_0012",
            "number": 12,
            "events": 10,
            "source": "physics",
            "raw_status": "acquired",
            "raw_location": "zinc",
            "processed_status": "none",
        }
    )
    r = fa(config_path, "simulate-daq", "--runs", "1", "--events", "20")
    assert r.returncode == 0, r.stderr
    assert made(r.stderr) == [f"{day}_0013"]
    assert raw_collection.count_documents({}) == 2


def test_two_simulate_daq_at_once_never_write_the_same_run(config_path, db, raw_collection, tmp_path):
    argv = [FA, "--config", str(config_path), "simulate-daq", "--runs", "4", "--events", "1500"]
    procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    names = made(outs[0][1]) + made(outs[1][1])
    assert len(set(names)) == 8, f"each run written by one of them only: {names}"
    daq = tmp_path / "daq"
    assert sorted(p.name for p in daq.iterdir()) == sorted(names), "no claim left behind"
    assert sorted(d["name"] for d in raw_collection.find({})) == sorted(names)
    for name in names:  # each run is whole: the files of the run of that name, and no other's
        assert digests(daq / name, with_dirs=True) == tree_of_simulated(tmp_path / "expected", name, 1500)


def test_a_daq_directory_that_cannot_be_made_is_one_line_and_nothing_is_left(
    fa, make_config, db, raw_collection, tmp_path
):
    plain = tmp_path / "plain"
    plain.write_text("a regular file where a directory should be\n")
    cfg = make_config(daq={"raw_dir": str(plain / "daq")})
    before = digests(tmp_path, with_dirs=True)
    r = fa(cfg, "simulate-daq", "--runs", "2", "--events", "20", env={"TMPDIR": str(tmp_path)})
    line = assert_one_line(r, f"{today()}_0001")
    assert "Not a directory" in line and "nothing of it was left" in line and "daq.raw_dir" in line
    after = {k: v for k, v in digests(tmp_path, with_dirs=True).items() if not k.startswith(("logs", "work"))}
    assert after == before, "no directory, no staging copy, nothing"
    assert raw_collection.count_documents({}) == 0


def test_a_full_daq_disk_is_one_line_keeping_the_runs_before_it(make_config, db, raw_collection, tmp_path):
    """The DAQ directory is a 1 MiB tmpfs: the first run (768 kB) fits, the second fills it mid-write."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    cfg = make_config(daq={"raw_dir": str(mnt / "daq")})
    fa = shlex.join([FA, "--config", str(cfg), "simulate-daq", "--runs", "3", "--events", "1500"])
    script = (
        f"mount -t tmpfs -o size=1m fa-test-full {shlex.quote(str(mnt))} || exit 99\n"
        f"{fa}\nrc=$?\nls -A {shlex.quote(str(mnt / 'daq'))} >{shlex.quote(str(tmp_path / 'left'))}\n"
        "exit $rc\n"
    )
    try:
        r = subprocess.run(
            ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script],
            capture_output=True,
            text=True,
            timeout=300,
            stdin=subprocess.DEVNULL,
        )
    except FileNotFoundError:
        pytest.skip("unshare is not installed")
    if r.returncode == 99 or "unshare failed" in r.stderr:
        pytest.skip(f"no private tmpfs here: {r.stderr.strip()}")
    first, second = f"{today()}_0001", f"{today()}_0002"
    line = assert_one_line(r, second)
    assert "No space left on device" in line and "nothing of it was left" in line
    assert f"before it written and registered: {first}" in line
    assert (tmp_path / "left").read_text().split() == [first], "the run before it stays; no claim is left"
    assert [d["name"] for d in raw_collection.find({})] == [first]


def test_a_simulate_daq_stopped_while_writing_leaves_nothing(config_path, db, raw_collection, tmp_path):
    daq = tmp_path / "daq"
    argv = [FA, "--config", str(config_path), "simulate-daq", "--runs", "2", "--events", "40000"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    claim = daq / f".{today()}_0001.writing"
    deadline = time.monotonic() + 60
    while not (claim / "raw_001.bin").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "still writing its first run"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert lines == [
        f"fulliautomatix: simulate-daq: run {today()}_0001 not written: interrupted; nothing of it was "
        "left, then run simulate-daq again"
    ], err
    assert list(daq.iterdir()) == []
    assert raw_collection.count_documents({}) == 0
