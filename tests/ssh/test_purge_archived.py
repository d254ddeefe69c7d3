"""purge_after_days for runs already archived: the archive copy is read back first.

By the time a DAQ copy is N days old its run is usually archived (the copy on
scratch is gone), so the archived tarball is what must verify.  This runs on
this machine alone (local DAQ, cluster and archive): the purge decision is the
same code as over ssh.
"""

from __future__ import annotations

import json


def test_archived_runs_lose_their_daq_copy_only_if_the_archive_reads_back(fa, make_config, tmp_path, raw_collection):
    cfg = make_config(
        archive={"batch_runs": 1, "max_wait_days": 0}, transfer={"purge": "purge_after_days", "purge_after_days": 1}
    )
    r = fa(cfg, "simulate-daq", "--runs", "2", "--events", "100")
    assert r.returncode == 0, r.stderr
    runs = sorted(p.name for p in (tmp_path / "daq").iterdir())
    for _ in range(4):
        assert fa(cfg).returncode == 0
        if all(raw_collection.find_one({"name": n})["raw_status"] == "archived" for n in runs):
            break
    docs = {n: raw_collection.find_one({"name": n}) for n in runs}
    assert all(d["raw_status"] == "archived" for d in docs.values()), [d["raw_status"] for d in docs.values()]
    assert all((tmp_path / "daq" / n).is_dir() for n in runs), "not due yet"

    # Two days later; meanwhile the second run's tarball rotted in the archive.
    raw_collection.update_many({}, {"$set": {"transfer.finished": "2000-01-01T00:00:00+00:00"}})
    rotten = docs[runs[1]]["archive"]["tarball"]
    with open(rotten, "r+b") as fh:
        fh.seek(1024 + 600)  # inside the first member's data
        byte = fh.read(1)
        fh.seek(-1, 1)
        fh.write(bytes([byte[0] ^ 0xFF]))

    r = fa(cfg, "--transfer")
    assert r.returncode == 0, r.stderr
    report = json.loads(sorted((tmp_path / "work" / "state" / "purges").glob("*.json"))[-1].read_text())
    assert report["purged"] == [runs[0]]
    assert not (tmp_path / "daq" / runs[0]).exists()
    purge = raw_collection.find_one({"name": runs[0]})["transfer"]
    assert purge["daq_copy"] == "purged" and "archive copy" in purge["daq_purge"]["verified_by"]
    assert (tmp_path / "daq" / runs[1]).is_dir(), "kept: its archive copy does not read back"
    assert runs[1] in report["kept"]
    assert raw_collection.find_one({"name": runs[1]})["transfer"]["daq_copy"] == "kept"
