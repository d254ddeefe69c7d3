"""`fulliautomatix audit` on the hpss backend (htar/hsi stand-ins): strays and missing tarballs are listed
through `hsi ls`, and a member that rotted in HPSS is LOST-COPY (issue 10)."""

from __future__ import annotations

import tarfile

import pytest

from archive_beds import compress_runs


@pytest.mark.parametrize("bed", ["hpss"], indirect=True)
def test_audit_lists_hpss_strays_missing_tarballs_and_rot(fa, config_path, config, db, bed):
    names = compress_runs(db, config, 4, events=100)
    r = fa(config_path, "--archive")
    assert r.returncode == 0, r.stderr
    assert [db.get(n)["raw_status"] for n in names] == ["archived"] * 4
    first, second = f"{names[0]}_to_{names[1]}", f"{names[2]}_to_{names[3]}"

    r = fa(config_path, "audit")
    assert r.returncode == 0 and r.stdout.splitlines()[-1].startswith("audited 4 archived runs: 0 do not"), r.stdout

    (bed.visible / "261130_0001_to_261130_0002.tar").write_bytes(b"\0" * 1024)  # a tarball no run records
    bed.tarball(second).unlink()  # recorded, gone from HPSS
    with tarfile.open(bed.tarball(first)) as tar:
        member = tar.getmember(f"{names[0]}.tar.zst")
    data = bytearray(bed.tarball(first).read_bytes())
    data[member.offset_data + member.size // 2] ^= 0xFF  # bit rot on tape
    bed.tarball(first).write_bytes(bytes(data))

    r = fa(config_path, "audit")
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    out = r.stdout.splitlines()
    assert (
        "STRAY hpss:/fortress/asterix/batches/261130_0001_to_261130_0002.tar: no run document records this tarball"
    ) in out, out
    for run in names[2:]:
        assert (
            f"MISSING run {run}: its archived tarball hpss:/fortress/asterix/batches/{second}.tar is missing" in out
        ), out
    lost = [ln for ln in out if ln.startswith("LOST-COPY")]
    assert any(f"run {names[0]}:" in ln for ln in lost), out
    # (htar stops at the member whose CRC fails: its batch-mate cannot be read back either, and says so)


@pytest.mark.parametrize("bed", ["hpss"], indirect=True)
def test_an_archive_outage_is_not_a_lost_copy(fa, config_path, config, db, bed):
    """HPSS down during an audit says nothing about the copies: NOT-AUDITED, never LOST-COPY (a false alarm)."""
    names = compress_runs(db, config, 2, events=100)
    assert fa(config_path, "--archive").returncode == 0
    (bed.visible.parent.parent.parent / ".fail").write_text("htar\nhsi\n")  # every htar and hsi call fails

    r = fa(config_path, "audit")
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    out = r.stdout.splitlines()
    assert not [ln for ln in out if ln.startswith("LOST-COPY")], out
    assert any(ln.startswith("NOT-AUDITED ") and "the archive did not answer" in ln for ln in out), out
    for n in names:
        assert db.get(n)["archive"].get("copy_ok") is not False
