"""Issue 5 through the real CLI, for each backend (local, rsync to fa-cluster, hpss stand-in).

Runs are made `compressed` by calling the stages directly (the whole chain
through the CLI is tests/integration/test_lifecycle.py); then archive ticks
run through the CLI:

* a batch archived, verified, its runs `archived` with their tarball
  location, the compressed copies purged only after verification, and
  `restore` bringing runs back byte for byte (a never-archived run: an error);
* in one tick, one batch's upload cut half-way and the other batch's tarball
  corrupted on the archive: both detected, runs kept `compressed` with their
  copies; the next tick replaces the bad tarball, finishes the upload, and
  archives both.
"""

from __future__ import annotations

import json
from pathlib import Path

from archive_beds import compress_runs, sha256


def compressed_runs(config, db, n: int) -> list[str]:
    """n simulated runs, `compressed` (the stages called directly: a Snakemake tick costs seconds)."""
    names = compress_runs(db, config, n, events=100)
    assert [db.get(name)["raw_status"] for name in names] == ["compressed"] * n
    return names


def compressed_copy(tmp_path, run) -> Path:
    return tmp_path / "cluster" / "compressed" / f"{run}.tar.zst"


def job_log(tmp_path, batch) -> str:
    return (tmp_path / "work" / "logs" / "archive_batch" / f"{batch}.log").read_text()


def assert_kept_compressed(db, tmp_path, runs, bed, batch):
    """A failed attempt: runs compressed with one error, copies intact, no batch marker."""
    errors = set()
    for name in runs:
        doc = db.get(name)
        assert doc["raw_status"] == "compressed", doc
        assert doc["archive"]["batch"] == batch and doc["archive"]["error"]
        errors.add(doc["archive"]["error"])
        assert sha256(compressed_copy(tmp_path, name)) == doc["compressed"]["hash"], "compressed copy kept intact"
        assert not doc["raw_location"].startswith(f"{bed.backend}:")
    assert not (tmp_path / "work" / "state" / "archived" / f"{batch}.json").exists()
    (error,) = errors
    return error


def assert_archived(db, tmp_path, runs, bed, batch):
    # read independently of the backend: the tarball holds exactly the runs' compressed copies
    assert bed.members(batch) == {f"{n}.tar.zst": db.get(n)["compressed"]["hash"] for n in runs}
    for name in runs:
        doc = db.get(name)
        a = doc["archive"]
        assert doc["raw_status"] == "archived", doc
        assert a["batch"] == batch and a["member"] == f"{name}.tar.zst" and a["error"] is None
        assert doc["raw_location"].startswith(f"{bed.backend}:")
        assert doc["raw_location"].endswith(f"{bed.settings['location']}/{batch}.tar#{name}.tar.zst")
        assert a["checks"], "the checks that passed are recorded"
        # purged, and only after verification
        assert not compressed_copy(tmp_path, name).exists()
        assert a["purged"] >= a["verified"]
        steps = [(h["from"], h["to"]) for h in doc["history"] if h["field"] == "raw_status"]
        assert steps[-2:] == [("compressed", "archiving"), ("archiving", "archived")]
    log = job_log(tmp_path, batch)
    assert log.rindex("verified ") < log.rindex(f"purged {len(runs)} compressed copies")


def test_a_batch_is_archived_verified_purged_and_restored(fa, config_path, config, db, tmp_path, bed):
    names = compressed_runs(config, db, 2)
    batch = f"{names[0]}_to_{names[1]}"
    r = fa(config_path, "--archive")
    assert r.returncode == 0, r.stderr
    assert_archived(db, tmp_path, names, bed, batch)
    marker = json.loads((tmp_path / "work" / "state" / "archived" / f"{batch}.json").read_text())
    assert sorted(marker["runs"]) == names
    if bed.backend == "hpss":
        log = job_log(tmp_path, batch)
        assert "-Hverify=1" in log and "hsi -q ls -l" in log and "htar -tvf" in log and "htar -xf" in log

    r = fa(config_path, "restore", *names, "--to", str(tmp_path / "restored"))
    assert r.returncode == 0, r.stderr
    for name in names:
        assert f"{name}: restored to {tmp_path / 'restored' / name}" in r.stdout
        originals = sorted((tmp_path / "daq" / name).iterdir())
        assert originals
        assert sorted(p.name for p in (tmp_path / "restored" / name).iterdir()) == [p.name for p in originals]
        for f in originals:
            assert (tmp_path / "restored" / name / f.name).read_bytes() == f.read_bytes()

    # a run that was never archived is a clear error
    r = fa(config_path, "simulate-daq", "--runs", "1")
    assert r.returncode == 0, r.stderr
    fresh = sorted(p.name for p in (tmp_path / "daq").iterdir())[-1]
    r = fa(config_path, "restore", fresh, "--to", str(tmp_path / "restored"))
    assert r.returncode == 1
    assert f"run {fresh}: never archived (raw_status acquired" in r.stderr
    assert not (tmp_path / "restored" / fresh).exists()


def test_a_half_way_upload_and_a_corrupted_tarball_are_retried_next_tick(fa, config_path, config, db, tmp_path, bed):
    names = compressed_runs(config, db, 4)
    batches = {f"{names[0]}_to_{names[1]}": names[:2], f"{names[2]}_to_{names[3]}": names[2:]}
    # the first upload of this tick is cut half-way, the second arrives corrupted
    bed.fault("halfway")
    bed.fault("corrupt")
    r = fa(config_path, "--archive")
    assert r.returncode == 1
    failed = {}
    for batch, runs in batches.items():
        assert f"batch {batch}" in r.stderr
        error = assert_kept_compressed(db, tmp_path, runs, bed, batch)
        assert (
            f"{error}; the runs stay compressed, their compressed copies are kept, and the next tick retries"
            in r.stderr
        )
        kinds = [k for k, sign in bed.signs.items() if sign in error]
        assert len(kinds) == 1, f"batch {batch} failed for neither injected fault: {error}"
        (kind,) = kinds
        failed[kind] = batch
    assert sorted(failed) == ["corrupt", "halfway"]
    assert not bed.tarball(failed["corrupt"]).exists(), "a tarball that failed verification is never trusted"
    assert not bed.tarball(failed["halfway"]).exists()
    if bed.backend != "hpss":  # (htar writes the final name; what a failed htar left is deleted at once)
        partial = bed.visible / ".incoming" / f"{failed['halfway']}.tar"
        assert partial.stat().st_size > 0, "the partial copy stays for rsync to resume"

    r = fa(config_path, "--archive")
    assert r.returncode == 0, r.stderr
    for batch, runs in batches.items():
        assert_archived(db, tmp_path, runs, bed, batch)
        assert all(db.get(n)["archive"]["attempts"] == 2 for n in runs)
