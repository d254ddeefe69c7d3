"""The DAQ copy's purge policy over real ssh: keep, purge_after_verify, purge_after_days.

A DAQ copy is deleted only when a checksum-verified copy exists *and* it
verifies again just before, and only if the DAQ copy is still exactly the
files that were verified.
"""

from __future__ import annotations

import datetime as _dt
import json

from fa_testlib import digests

RUN, RUN2, RUN3, RUN4 = "261127_0001", "261127_0002", "261127_0003", "261127_0004"


def purge_reports(bed) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((bed.tmp / "work" / "state" / "purges").glob("*.json"))]


def test_keep_never_deletes_the_daq_copy(bed):
    cfg = bed.config(transfer={"purge": "keep"})
    sums = bed.add_run(RUN)
    r = bed.tick(cfg)
    assert r.returncode == 0, r.stderr
    doc = bed.db.get(RUN)
    assert doc["raw_status"] == "ondeck" and doc["transfer"]["daq_copy"] == "kept"
    assert digests(bed.daq_view / RUN) == sums == digests(bed.copy_view(RUN))
    assert purge_reports(bed) == [], "no purge step under keep"


def test_purge_after_verify_deletes_the_daq_copy_once_the_copy_verified(bed):
    cfg = bed.config(transfer={"purge": "purge_after_verify"})
    sums = bed.add_run(RUN)
    r = bed.tick(cfg)
    assert r.returncode == 0, r.stderr
    doc = bed.db.get(RUN)
    assert doc["raw_status"] == "ondeck" and digests(bed.copy_view(RUN)) == sums
    assert not (bed.daq_view / RUN).exists()
    assert doc["transfer"]["daq_copy"] == "purged"
    assert "verified" in doc["transfer"]["daq_purge"]["verified_by"] and doc["transfer"]["daq_purge"]["error"] is None
    assert "purged DAQ copy" in bed.job_log(RUN)


def test_purge_after_days_purges_only_what_still_verifies(bed, raw_collection):
    cfg = bed.config(transfer={"purge": "purge_after_days", "purge_after_days": 2})
    sums = {run: bed.add_run(run) for run in (RUN, RUN2, RUN3, RUN4)}
    r = bed.tick(cfg)
    assert r.returncode == 0, r.stderr
    for run in (RUN, RUN2, RUN3, RUN4):
        assert bed.db.get(run)["raw_status"] == "ondeck"
        assert digests(bed.daq_view / run) == sums[run], "not due yet: verified less than 2 days ago"
    assert purge_reports(bed)[-1]["purged"] == []

    # Three days pass (the runs' verification time is moved back) ...
    three_days_ago = (_dt.datetime.now(_dt.timezone.utc) - _dt.timedelta(days=3)).isoformat(timespec="seconds")
    raw_collection.update_many({}, {"$set": {"transfer.finished": three_days_ago}})
    # ... in which RUN2's copy on the cluster rotted, the DAQ added a file to RUN3 and rewrote one of RUN4.
    victim = bed.copy_view(RUN2) / "raw_000.bin"
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    (bed.daq_view / RUN3 / "late.bin").write_bytes(b"written after the transfer")
    rewritten = bytes(b ^ 0x55 for b in (bed.daq_view / RUN4 / "raw_001.bin").read_bytes())
    (bed.daq_view / RUN4 / "raw_001.bin").write_bytes(rewritten)  # same name and size, new data

    r = bed.tick(cfg)
    assert r.returncode == 0, r.stderr
    report = purge_reports(bed)[-1]
    assert report["purged"] == [RUN]
    assert not (bed.daq_view / RUN).exists() and digests(bed.copy_view(RUN)) == sums[RUN]
    assert bed.db.get(RUN)["transfer"]["daq_copy"] == "purged"

    assert digests(bed.daq_view / RUN2) == sums[RUN2], "no purge while the only other copy does not verify"
    assert "does not verify" in report["kept"][RUN2]
    assert bed.db.get(RUN2)["transfer"]["daq_copy"] == "kept"
    assert "does not verify" in bed.db.get(RUN2)["transfer"]["daq_purge"]["error"]

    assert (bed.daq_view / RUN3 / "late.bin").exists() and all((bed.daq_view / RUN3 / p).exists() for p in sums[RUN3])
    assert "differ from the verified ones" in report["kept"][RUN3]
    assert bed.db.get(RUN3)["transfer"]["daq_copy"] == "kept"

    assert (bed.daq_view / RUN4 / "raw_001.bin").read_bytes() == rewritten
    assert all((bed.daq_view / RUN4 / p).exists() for p in sums[RUN4])
    assert "modified after it was verified: raw_001.bin" in report["kept"][RUN4]
