"""Three machines over real ssh: this host only issues commands; fa-daq pushes runs to fa-cluster.

Every tick is the real `fulliautomatix --transfer` (Snakemake, ssh, rsync,
xxh128sum/sha256sum on the hosts).  Each test has its own directories on both
hosts and its own runs collection.
"""

from __future__ import annotations

import grp
import hashlib
import os
import re
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fa_testlib import digests
from sshbed import BIN, xxh128

RUN, RUN2, RUN3 = "261127_0001", "261127_0002", "261127_0003"


def lines_with(text: str, word: str) -> list[str]:
    return [ln for ln in text.splitlines() if word in ln]


def test_a_run_goes_from_the_daq_to_the_cluster_without_touching_this_host(bed):
    group = bed.env["FA_TESTBED_GROUP"]
    cfg = bed.config(transfer={"group": group, "dir_mode": "2775", "file_mode": "0664", "concurrency": 2})
    sums = {RUN: bed.add_run(RUN), RUN2: bed.add_run(RUN2, sizes=(1_000_000, 0, 5))}
    assert not Path(bed.daq_dir).exists(), "the DAQ directory exists only on fa-daq"

    r = bed.tick(cfg)
    assert r.returncode == 0, r.stderr

    for run in (RUN, RUN2):
        doc = bed.db.get(run)
        assert doc["raw_status"] == "ondeck" and doc["raw_location"] == "bed/asterix"
        t = doc["transfer"]
        daq_files = [p for p in sorted((bed.daq_view / run).rglob("*")) if p.is_file()]
        assert t["files"] == len(daq_files) == len(t["checksums"])
        assert t["bytes"] == sum(p.stat().st_size for p in daq_files)
        assert t["seconds"] > 0 and t["checksum_algorithm"] == "xxh128"
        # the recorded checksums are those of the DAQ's files, computed independently here
        assert {c["path"]: c["hash"] for c in t["checksums"]} == {
            str(p.relative_to(bed.daq_view / run)): xxh128(p) for p in daq_files
        }
        assert t["destination"] == f"{bed.scratch}/raw/{run}" and t["daq_copy"] == "kept"
        # the copy is on fa-cluster, byte for byte; the DAQ copy is kept (purge: keep)
        assert digests(bed.copy_view(run)) == sums[run] == digests(bed.daq_view / run)
        assert not bed.staging_view(run).exists()
        steps = [(h["from"], h["to"]) for h in doc["history"] if h["field"] == "raw_status"]
        assert steps == [("acquired", "transferring"), ("transferring", "ondeck")]

        # rsync ran on fa-daq and pushed to fa-cluster; progress went to the job log
        log = bed.job_log(run)
        rsync = [ln for ln in lines_with(log, "rsync ") if ln.startswith("$ ")]
        assert len(rsync) == 1 and " -- fa-daq " in rsync[0]
        assert f"fa-cluster:{bed.scratch}/raw/.incoming/{run}/" in rsync[0]
        assert lines_with(log, "progress: ") and "100%" in lines_with(log, "progress: ")[-1]

    # nothing of the data ever landed on this host
    assert not Path(bed.scratch).exists() and not Path(bed.daq_dir).exists()
    data = {h for s in sums.values() for h in s.values()}
    for p in bed.tmp.rglob("*"):
        if p.is_file() and p.stat().st_size:  # an empty file (a lock) carries no data, whatever it matches
            assert p.stat().st_size < 100_000 and hashlib.sha256(p.read_bytes()).hexdigest() not in data, p

    # group and modes: setgid group-shared directories, files 0664, nothing world-writable
    gid = grp.getgrnam(group).gr_gid
    for p in [
        bed.scratch_view,
        bed.scratch_view / "raw",
        bed.scratch_view / "raw" / ".incoming",
        *[q for run in (RUN, RUN2) for q in [bed.copy_view(run), *bed.copy_view(run).rglob("*")]],
    ]:
        st = p.stat()
        assert st.st_gid == gid, p
        want = 0o2775 if p.is_dir() else 0o664
        assert stat.S_IMODE(st.st_mode) == want, (p, oct(st.st_mode))
        assert not st.st_mode & stat.S_IWOTH


def test_the_daq_live_check_holds_transfers_back_and_releases_them(bed, tmp_path):
    obelix = tmp_path / "obelix"  # a process named obelix, as the original's check looked for
    obelix.symlink_to(os.path.realpath("/bin/sleep"))
    cfg = bed.config(daq={"live_check": ["pgrep", "-x", "obelix"]})
    bed.add_run(RUN)
    daq = subprocess.Popen([str(obelix), "300"])
    try:
        time.sleep(0.2)
        r = bed.tick(cfg)
        assert r.returncode == 0, r.stderr
        live = lines_with(r.stderr, "DAQ is live")
        assert len(live) == 1 and "pgrep -x obelix" in live[0] and "no transfers this tick" in live[0], r.stderr
        assert bed.db.get(RUN)["raw_status"] == "acquired"
        assert not bed.scratch_view.exists(), "nothing was started on the cluster"
    finally:
        daq.kill()
        daq.wait()
    r = bed.tick(cfg)
    assert r.returncode == 0, r.stderr
    assert not lines_with(r.stderr, "DAQ is live")
    assert bed.db.get(RUN)["raw_status"] == "ondeck"


def test_a_live_check_that_cannot_run_stops_transfers_too(bed):
    cfg = bed.config(daq={"live_check": ["no-such-daq-check"]})
    bed.add_run(RUN)
    r = bed.tick(cfg)
    assert r.returncode == 0, r.stderr
    line = lines_with(r.stderr, "(exit 127): fix daq.live_check; no transfers this tick")
    assert len(line) == 1 and "`no-such-daq-check` was not found on" in line[0], r.stderr
    assert bed.db.get(RUN)["raw_status"] == "acquired"


def test_a_run_still_being_written_is_not_transferred_until_it_settles(bed):
    cfg = bed.config(daq={"settle_seconds": 120})
    bed.add_run(RUN)
    r = bed.tick(cfg)  # the DAQ wrote to the run seconds ago
    assert r.returncode == 0, r.stderr
    held = lines_with(r.stderr, f"run {RUN}: the DAQ wrote to it")
    assert len(held) == 1 and "settle time 120 s" in held[0] and "not transferred this tick" in held[0], r.stderr
    assert bed.db.get(RUN)["raw_status"] == "acquired" and not bed.scratch_view.exists()
    # Two minutes pass without a write (the run's mtimes are moved back, as the DAQ's clock sees them).
    past = time.time() - 150
    for p in [bed.daq_view / RUN, *(bed.daq_view / RUN).rglob("*")]:
        os.utime(p, (past, past))
    r = bed.tick(cfg)
    assert r.returncode == 0, r.stderr
    assert not lines_with(r.stderr, "the DAQ wrote to it")
    assert bed.db.get(RUN)["raw_status"] == "ondeck"


def test_a_run_written_to_while_it_is_copied_fails_verification(bed):
    # touch-then-rsync (test only) modifies a DAQ file after the copy started, as a DAQ still writing would.
    cfg = bed.config(transfer={"rsync": [str(BIN / "touch-then-rsync"), "-a"]})
    sums = bed.add_run(RUN)
    r = bed.tick(cfg)
    assert r.returncode == 1
    assert len(lines_with(r.stderr, "still being written")) == 1, r.stderr
    doc = bed.db.get(RUN)
    assert doc["raw_status"] == "acquired" and "while it was copied" in doc["transfer"]["error"]
    assert not bed.copy_view(RUN).exists() and digests(bed.daq_view / RUN) == sums


def test_a_corrupted_copy_is_caught_retried_and_finally_held_for_a_human(bed, tmp_path):
    flags = tmp_path / "corrupt"
    flags.mkdir()
    (flags / RUN).write_text("once")  # RUN's copy is corrupted on its first transfer only
    (flags / RUN2).write_text("always")  # RUN2's copy on every transfer
    rsync = ["rsync", "-a", f"--rsync-path={BIN / 'corrupt-after-rsync'} {flags} rsync"]
    cfg = bed.config(transfer={"rsync": rsync, "max_attempts": 2, "purge": "purge_after_verify"})
    sums = {RUN: bed.add_run(RUN), RUN2: bed.add_run(RUN2)}

    r = bed.tick(cfg)  # both copies corrupted after rsync, before verification
    assert r.returncode == 1
    for run in (RUN, RUN2):
        doc = bed.db.get(run)
        assert doc["raw_status"] == "acquired", "a copy that does not verify is not ondeck"
        bad = re.search(r"checksum of (\S+) differs", doc["transfer"]["error"])
        assert bad and doc["transfer"]["attempts"] == 1, doc["transfer"]
        assert len(lines_with(r.stderr, f"run {run}: transfer failed")) == 1, r.stderr
        assert not bed.copy_view(run).exists()
        assert not (bed.staging_view(run) / bad[1]).exists(), "the bad file was removed from staging"
        assert (bed.staging_view(run) / "raw_000.bin").exists(), "the good files stay for the retry"
        assert digests(bed.daq_view / run) == sums[run], "the DAQ copy is untouched (no purge without a verified copy)"

    r = bed.tick(cfg)  # RUN verifies now; RUN2 fails its last attempt
    assert bed.db.get(RUN)["raw_status"] == "ondeck" and bed.db.get(RUN)["transfer"]["attempts"] == 2
    assert digests(bed.copy_view(RUN)) == sums[RUN]
    assert not (bed.daq_view / RUN).exists(), "purge_after_verify: purged once the copy verified"
    assert bed.db.get(RUN)["transfer"]["daq_copy"] == "purged"
    assert bed.db.get(RUN2)["transfer"]["attempts"] == 2 and "no attempts left" in r.stderr

    before = bed.db.get(RUN2)
    r = bed.tick(cfg)  # RUN2 is held for a human: not tried again
    held = lines_with(r.stderr, f"run {RUN2}: transfer failed 2 times")
    assert len(held) == 1 and "fulliautomatix retry" in held[0], r.stderr
    after = bed.db.get(RUN2)
    assert after["transfer"]["attempts"] == 2 and after["history"] == before["history"], "not tried again"
    assert digests(bed.daq_view / RUN2) == sums[RUN2]

    (flags / RUN2).unlink()  # the human fixed the cause
    assert bed.fa(cfg, "retry", RUN2).returncode == 0
    r = bed.tick(cfg)
    assert r.returncode == 0, r.stderr
    assert bed.db.get(RUN2)["raw_status"] == "ondeck"
    assert digests(bed.copy_view(RUN2)) == sums[RUN2]


def rsync_processes(pattern: str) -> list[str]:
    out = subprocess.run(["pgrep", "-af", pattern], capture_output=True, text=True).stdout
    return [ln for ln in out.splitlines() if "rsync" in ln and "pgrep" not in ln]


def test_a_transfer_killed_half_way_is_completed_by_the_next_tick(bed, tmp_path):
    sums = bed.add_run(RUN, sizes=(24_000_000, 100_000))
    slow = bed.config(transfer={"rsync": ["rsync", "-a", "--bwlimit=4000"]})  # ~6 s for the run
    staging, copy = bed.staging_view(RUN), bed.copy_view(RUN)
    tick = subprocess.Popen(
        [str(Path(sys.executable).with_name("fulliautomatix")), "--config", str(slow), "--transfer"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            got = sum(p.stat().st_size for p in staging.rglob("*") if p.is_file()) if staging.exists() else 0
            if got > 6_000_000:
                break
            time.sleep(0.1)
        else:
            pytest.fail("the transfer never got going")
    finally:
        os.killpg(tick.pid, signal.SIGKILL)  # the whole tick: wrapper, Snakemake, job, ssh client
        tick.wait()
    # The hang-up guard stops rsync on fa-daq (and so on fa-cluster) once its ssh client is gone.
    deadline = time.monotonic() + 15
    while rsync_processes(f"{bed.tid}/") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert rsync_processes(f"{bed.tid}/") == [], "rsync left running after the tick was killed"
    assert bed.db.get(RUN)["raw_status"] == "transferring"
    assert not copy.exists(), "a half-copied run never looks complete"
    partial = sum(p.stat().st_size for p in staging.rglob("*") if p.is_file())
    assert 0 < partial < 24_100_000, "the partial copy is kept for resuming"
    assert digests(bed.daq_view / RUN) == sums

    r = bed.tick(bed.config())
    assert r.returncode == 0, r.stderr
    doc = bed.db.get(RUN)
    assert doc["raw_status"] == "ondeck" and doc["transfer"]["attempts"] == 2
    assert digests(copy) == sums == digests(bed.daq_view / RUN), "completed, and the DAQ copy intact throughout"
    assert not staging.exists()


def test_simulate_daq_writes_to_the_remote_daq_machine(bed):
    cfg = bed.config()
    r = bed.fa(cfg, "simulate-daq", "--runs", "2", "--events", "50")
    assert r.returncode == 0, r.stderr
    names = sorted(p.name for p in bed.daq_view.iterdir())
    assert len(names) == 2 and all(bed.db.get(n)["raw_status"] == "acquired" for n in names)
    assert all(list((bed.daq_view / n).glob("raw_*.bin")) for n in names)
    assert not Path(bed.daq_dir).exists(), "written on fa-daq, not here"
