"""simulate-daq with a remote DAQ (fa-daq): free run numbers from one listing over ssh; failures one line.

fa-daq's raw directory is seeded and inspected through this machine's view of
it (bed.daq_view); simulate-daq reaches it only over ssh.
"""

from __future__ import annotations

import datetime as _dt
import uuid

from fulliautomatix.standins import rawformat
from sshbed import BIN


def today() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%y%m%d")


def made(stderr: str) -> list[str]:
    return stderr.strip().splitlines()[-1].rsplit(": ", 1)[1].split(", ")


def assert_one_line(r, run: str) -> str:
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"fulliautomatix: simulate-daq: run {run} not written: "), r.stderr
    assert "then run simulate-daq again" in lines[0] and "nothing of it was left" in lines[0]
    return lines[0]


def recorded(bed, tmp_path, *first_words: str, **overrides):
    """A config whose every DAQ ssh (rsync's too) is logged to calls.log, one line each."""
    calls = tmp_path / "calls.log"
    calls.touch()
    ssh = [*first_words, str(BIN / "ssh-recorder"), str(calls), "ssh", "-F", bed.env["FA_SSH_CONFIG"]]
    return bed.config(daq={"ssh": ssh}, **overrides), calls


def test_a_fresh_runs_db_over_the_remote_daq_skips_its_runs(bed, tmp_path):
    """The second `make testbed-up` case: the DAQ keeps its runs, the runs DB starts empty."""
    day = today()
    r = bed.fa(bed.config(), "simulate-daq", "--runs", "2", "--events", "50")
    assert r.returncode == 0, r.stderr
    first = made(r.stderr)
    rawformat.write_run(bed.daq_view / f"{day}_0005", f"{day}_0005", 10)  # the DAQ wrote one more itself
    (bed.daq_view / f".{day}_0006.writing").mkdir()  # and is writing another
    fresh = "f" + uuid.uuid4().hex[:12]  # a runs DB of its own (nx-27017 isolates by collection name)
    cfg, calls = recorded(bed, tmp_path, runs_db={"database": fresh, "collection": fresh})
    r = bed.fa(cfg, "simulate-daq", "--runs", "2", "--events", "50")
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    names = made(r.stderr)
    assert first == [f"{day}_0001", f"{day}_0002"] and names == [f"{day}_0007", f"{day}_0008"]
    assert sorted(p.name for p in bed.daq_view.iterdir()) == sorted(
        [*first, f"{day}_0005", f".{day}_0006.writing", *names]
    ), "no claim of this simulate-daq is left"
    assert all(list((bed.daq_view / n).glob("raw_*.bin")) for n in names)
    log = calls.read_text().splitlines()
    assert sum(" fa-simulate-daq list " in ln for ln in log) == 1, "the DAQ directory is listed once"
    assert len(log) == 1 + 3 * 2, "then per run: claim, rsync, rename into place"


def test_a_remote_daq_directory_that_cannot_be_made_is_one_line(bed, raw_collection, tmp_path):
    (bed.daq_view / "plain").write_text("a regular file where a directory should be\n")
    (tmp_path / "tmp").mkdir()
    cfg = bed.config(daq={"raw_dir": f"{bed.daq_dir}/plain/daq"})
    r = bed.fa(cfg, "simulate-daq", "--runs", "2", "--events", "50", env={"TMPDIR": str(tmp_path / "tmp")})
    line = assert_one_line(r, f"{today()}_0001")
    assert "on fa-daq" in line and "Not a directory" in line
    assert [p.name for p in bed.daq_view.iterdir()] == ["plain"]
    assert list((tmp_path / "tmp").iterdir()) == [], "nothing written here either"
    assert raw_collection.count_documents({}) == 0


def test_a_copy_cut_off_mid_way_leaves_nothing_on_the_daq(bed, raw_collection, tmp_path):
    (tmp_path / "tmp").mkdir()
    cfg, calls = recorded(bed, tmp_path, str(BIN / "cut-rsync"), "100000", transfer={"timeout_seconds": 30})
    r = bed.fa(cfg, "simulate-daq", "--runs", "2", "--events", "1000", env={"TMPDIR": str(tmp_path / "tmp")})
    line = assert_one_line(r, f"{today()}_0001")
    assert "rsync to " in line and "on fa-daq failed" in line
    assert list(bed.daq_view.iterdir()) == [], "the claim and its partial copy are removed"
    assert list((tmp_path / "tmp").iterdir()) == [], "and the copy written here"
    assert raw_collection.count_documents({}) == 0
    assert " fa-simulate-daq discard " in calls.read_text()
