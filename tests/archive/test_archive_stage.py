"""The archive stage called directly: failure cases that need no Snakemake tick.

Runs are taken to `compressed` by calling the stages' functions (a second
each), then `archive.archive_batch` and `archive.restore` are called as the
rule and the CLI call them, against a real nx-27017 server, real tar, rsync
and zstd, and the htar/hsi STAND-INs for hpss.
"""

from __future__ import annotations

import shutil
import tarfile
from pathlib import Path

import pytest

from archive_beds import compress_runs, sha256
from fulliautomatix import archive, markers, sync
from fulliautomatix import config as fa_config


def one_backend(name):
    return pytest.mark.parametrize("bed", [name], indirect=True)


def run_batch(db, config, runs, log):
    state = fa_config.state_dir(config)
    batch = f"{runs[0]}_to_{runs[-1]}"
    compressed = [str(markers.path(state, "compress", r)) for r in runs]
    return batch, archive.archive_batch(db, config, batch, runs, compressed, str(markers.batch_path(state, batch)), log)


def flip_byte(path, offset):
    with open(path, "r+b") as fh:
        fh.seek(offset)
        b = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([b[0] ^ 0xFF]))


@one_backend("hpss")
def test_hpss_corruption_while_writing_is_caught_by_htar_verify(config, db, bed, job_log):
    runs = compress_runs(db, config, 2)
    bed.arm["corrupt"] = (bed.arm["corrupt"][0], "after-write*1")  # before htar's own verification pass
    bed.fault("corrupt")
    with pytest.raises(archive.ArchiveError) as err:
        run_batch(db, config, runs, job_log)
    assert "CRC mismatch" in str(err.value) and "the runs stay compressed" in str(err.value)
    assert "-Hverify=1" in job_log.text
    for run in runs:
        doc = db.get(run)
        assert doc["raw_status"] == "compressed" and "CRC mismatch" in doc["archive"]["error"]
        assert sha256(doc["compressed"]["path"]) == doc["compressed"]["hash"]
    assert not list(bed.visible.glob("*.tar*")), "the bad tarball and its index were deleted"


@one_backend("hpss")
def test_hpss_unreachable_keeps_runs_compressed(config, db, bed, job_log):
    runs = compress_runs(db, config, 2)
    (bed.visible.parents[2] / ".fail").write_text("hsi\n")  # every hsi call: connection refused
    with pytest.raises(archive.ArchiveError) as err:
        run_batch(db, config, runs, job_log)
    assert "hsi cannot list" in str(err.value) and "HPSS_ECONN" in str(err.value)
    assert [db.get(r)["raw_status"] for r in runs] == ["compressed", "compressed"]
    (bed.visible.parents[2] / ".fail").write_text("")
    batch, marker = run_batch(db, config, runs, job_log)
    assert [db.get(r)["raw_status"] for r in runs] == ["archived", "archived"]


@one_backend("hpss")
def test_hpss_without_read_back_relies_on_htar_crcs(config, db, bed, job_log):
    config["archive"]["hpss"]["read_back"] = False
    runs = compress_runs(db, config, 4)
    bed.fault("corrupt")  # bit rot after htar's own -Hverify pass
    with pytest.raises(archive.ArchiveError) as err:
        run_batch(db, config, runs[:2], job_log)
    assert "CRC mismatch" in str(err.value) and "htar -K" not in str(err.value)
    run_batch(db, config, runs[2:], job_log)
    checks = db.get(runs[2])["archive"]["checks"]
    assert "htar -K: archived data against the index CRCs" in checks
    assert any("not read back" in c for c in checks)
    assert "htar -xf" not in job_log.text.split("-Kvf")[-1]


@one_backend("local")
def test_a_verified_tarball_from_an_earlier_attempt_is_used_as_it_is(config, db, bed, job_log):
    runs = compress_runs(db, config, 2)
    batch = f"{runs[0]}_to_{runs[1]}"
    # an earlier attempt uploaded and renamed the tarball, then died before its DB writes
    be = archive.make(config)
    files = [Path(db.get(r)["compressed"]["path"]) for r in runs]
    be.promote(be.upload(batch, files, job_log), batch, job_log)
    before = bed.tarball(batch).stat().st_mtime_ns
    job_log.text = ""
    run_batch(db, config, runs, job_log)
    assert "verifies: using it" in job_log.text and "rsync" not in job_log.text
    assert bed.tarball(batch).stat().st_mtime_ns == before
    assert [db.get(r)["raw_status"] for r in runs] == ["archived", "archived"]


def test_a_tarball_left_by_a_failed_attempt_is_replaced(config, db, bed, job_log):
    runs = compress_runs(db, config, 2)
    batch = f"{runs[0]}_to_{runs[1]}"
    bed.visible.mkdir(parents=True, exist_ok=True)
    bed.tarball(batch).write_bytes(b"half a tarball" * 100)
    run_batch(db, config, runs, job_log)
    assert "not trusted, replacing it" in job_log.text
    assert bed.members(batch) == {f"{r}.tar.zst": db.get(r)["compressed"]["hash"] for r in runs}
    assert [db.get(r)["raw_status"] for r in runs] == ["archived", "archived"]


@one_backend("local")
def test_a_tarball_holding_archived_runs_is_never_replaced(config, db, bed, job_log):
    runs = compress_runs(db, config, 3)
    batch, _ = run_batch(db, config, runs[:2], job_log)
    before = sha256(bed.tarball(batch))
    # a third run claims the same batch (e.g. a DB edited by hand)
    db.update(runs[2], {"archive.batch": batch})
    with pytest.raises(archive.ArchiveError) as err:
        archive.archive_batch(db, config, batch, [runs[2]], [], "/nonexistent/marker.json", job_log)
    assert "left untouched for a human" in str(err.value)
    assert sha256(bed.tarball(batch)) == before
    assert db.get(runs[2])["raw_status"] == "compressed"
    assert [db.get(r)["raw_status"] for r in runs[:2]] == ["archived", "archived"]


@one_backend("local")
def test_a_batch_is_archived_whole_or_not_at_all(config, db, bed, job_log):
    runs = compress_runs(db, config, 2)
    for r in runs:
        db.update(r, {"archive.batch": "B1"})
    with pytest.raises(archive.ArchiveError) as err:
        archive.archive_batch(db, config, "B1", runs[:1], [], "/nonexistent/marker.json", job_log)
    assert f"runs {runs[1]} belong to it but are not in this tick's plan" in str(err.value)
    assert not bed.visible.exists() or not list(bed.visible.iterdir())
    # and the tick's plan keeps the whole batch when --run names only one of its runs
    plan = sync.close_batches(
        db,
        {**config, "tick": {**config["tick"], "runs": [runs[0]]}},
        "t1",
        fa_config.state_dir(config) / "ticks" / "t1" / "batches.json",
        job_log,
    )
    assert plan["batches"] == {"B1": runs}


@one_backend("local")
def test_a_corrupted_compressed_copy_is_never_uploaded(config, db, bed, job_log):
    """It leaves the batch and is made again from its DAQ copy (issue 10, finding 4); the rest is archived."""
    runs = compress_runs(db, config, 2)
    path = db.get(runs[1])["compressed"]["path"]
    flip_byte(path, 100)
    run_batch(db, config, runs, job_log)
    assert f"compressed copy {path} differs from its recorded sha256" in job_log.text
    [tarball] = list(bed.visible.rglob("*.tar"))
    with tarfile.open(tarball) as tar:
        assert tar.getnames() == [f"{runs[0]}.tar.zst"], "the corrupted copy is never uploaded"
    assert [db.get(r)["raw_status"] for r in runs] == ["archived", "acquired"]
    assert not Path(path).exists(), "the corrupted copy is deleted; the DAQ copy verified"

    with pytest.raises(archive.ArchiveError) as err:  # a batch of only bad copies: nothing at all
        runs = compress_runs(db, config, 1)
        path = db.get(runs[0])["compressed"]["path"]
        Path(path).unlink()
        shutil.rmtree(Path(config["daq"]["raw_dir"]) / runs[0])
        run_batch(db, config, runs, job_log)
    assert "LOST" in str(err.value) and "is gone" in str(err.value)


def test_restore_detects_a_damaged_archive_copy(config, db, bed, job_log, tmp_path):
    runs = compress_runs(db, config, 2)
    batch, _ = run_batch(db, config, runs, job_log)
    a = db.get(runs[0])["archive"]
    with open(bed.tarball(batch), "rb") as fh:
        data = fh.read()
    # flip a byte inside the first run's member data (bit rot on the archive)
    flip_byte(bed.tarball(batch), data.index(b"\x28\xb5\x2f\xfd") + 200)  # zstd magic of the first member
    dest = tmp_path / "restored"
    with pytest.raises(archive.ArchiveError) as err:
        archive.restore(db, config, runs[0], dest, job_log)
    assert f"run {runs[0]}" in str(err.value)
    assert "differs from its recorded sha256" in str(err.value) or "CRC mismatch" in str(err.value)
    assert not (dest / runs[0]).exists()
    assert a["member"] == f"{runs[0]}.tar.zst"


# -- parsing the tools' output ---------------------------------------------------


def test_htar_listing_and_hsi_ls_are_parsed():
    from fulliautomatix.archive import hpss

    listing = """HTAR: -rw-r--r--  u/g              70000 2024-01-02 10:11  170101_0001.tar.zst
HTAR: -rw-r--r--  u/g                123 2024-01-02 10:11  170101_0002.tar.zst
HTAR: -rw-------  u/g                 76 2024-01-02 10:11  /tmp/HTAR_CF_CHK_12602_1795784317
HTAR: Listing complete for /f/b.tar, 3 files 3 total objects
HTAR: HTAR SUCCESSFUL
"""
    assert hpss.parse_listing(listing) == {"170101_0001.tar.zst": 70000, "170101_0002.tar.zst": 123}
    ls = """/fortress/batches:
-rw-r--r--    1 user     group           10240 Nov 27 12:58 b1.tar
-rw-r--r--    1 user     group            1409 Nov 27 12:58 b1.tar.idx
"""
    assert hpss.parse_ls(ls) == {"b1.tar": 10240, "b1.tar.idx": 1409}


def test_read_back_output_is_parsed_and_compared():
    from fulliautomatix import tarsums
    from fulliautomatix.archive import Member, compare

    sums = tarsums.parse("B 20480\nF abc\nM 10 h1 a.tar.zst\nM 20 h2 b.tar.zst\n")
    members = {name: Member(size, digest) for name, (size, digest) in sums.members.items()}
    assert {"tarball_bytes": sums.bytes, "tarball_sha256": sums.sha256} == {
        "tarball_bytes": 20480,
        "tarball_sha256": "abc",
    }
    assert members == {"a.tar.zst": Member(10, "h1"), "b.tar.zst": Member(20, "h2")}
    expected = {"a.tar.zst": Member(10, "h1"), "c.tar.zst": Member(5, "h3")}
    assert compare(expected, members) == ["member c.tar.zst is missing", "unexpected member b.tar.zst"]
    assert compare({"a.tar.zst": Member(10, "hX")}, {"a.tar.zst": Member(10, "h1")}) == [
        "member a.tar.zst differs from its recorded sha256"
    ]
    assert compare({"a.tar.zst": Member(10, "h1")}, {"a.tar.zst": Member(10, None)}) == []
    with pytest.raises(tarsums.ReadBackError):
        tarsums.parse("M 1 h x\n")
