"""`fulliautomatix audit` (issue 10): a corrupted archived tarball, a stray directory and a missing copy are found."""

import shutil
import tarfile
from pathlib import Path

from fa_testlib import simulate


def test_audit_finds_a_corrupted_tarball_strays_and_missing_copies(fa, config_path, db, tmp_path):
    names = simulate(fa, config_path, 2)
    for _ in range(4):
        assert fa(config_path).returncode == 0
        if all(db.get(n)["raw_status"] == "archived" for n in names):
            break
    assert [db.get(n)["raw_status"] for n in names] == ["archived"] * 2

    r = fa(config_path, "audit")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.splitlines() == ["audited 2 archived runs: 0 do not verify; 0 strays; 0 recorded copies missing"]
    assert db.get(names[0])["archive"]["audited"]["ok"] is True

    tarball = Path(db.get(names[0])["archive"]["tarball"])
    with tarfile.open(tarball) as tar:
        member = tar.getmember(f"{names[0]}.tar.zst")
    data = bytearray(tarball.read_bytes())
    data[member.offset_data + member.size // 2] ^= 0xFF  # bit rot in the archive
    tarball.write_bytes(bytes(data))
    (tmp_path / "daq" / "261130_0042").mkdir()  # a directory no run document claims
    shutil.rmtree(tmp_path / "daq" / names[1])  # a DAQ copy recorded as kept, gone

    r = fa(config_path, "audit")
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    out = r.stdout.splitlines()
    lost = [ln for ln in out if ln.startswith("LOST-COPY")]
    assert len(lost) == 1 and names[0] in lost[0] and "differs" in lost[0], out
    assert [ln for ln in out if ln.startswith("STRAY") and "261130_0042" in ln], out
    assert [ln for ln in out if ln.startswith("MISSING") and names[1] in ln and "DAQ copy" in ln], out
    doc = db.get(names[0])
    assert not doc["archive"]["audited"]["ok"] and doc["archive"]["copy_ok"] in (False,)
    st = fa(config_path, "status").stdout
    assert [ln for ln in st.splitlines() if "LOST-COPY" in ln and f"run {names[0]}:" in ln], st


def corrupt_member(tarball: Path, member_name: str) -> None:
    with tarfile.open(tarball) as tar:
        member = tar.getmember(member_name)
    data = bytearray(tarball.read_bytes())
    data[member.offset_data + member.size // 2] ^= 0xFF
    tarball.write_bytes(bytes(data))


def test_each_tick_audits_per_tick_runs_longest_unaudited_first(fa, make_config, db):
    """audit.per_tick (rule audit_archive): each archiving tick reads back that many archived runs, round-robin,
    and records archive.audited; a tarball corrupted since shows in `status` as LOST-COPY after a tick."""
    config_path = make_config(audit={"per_tick": 2}, archive={"batch_runs": 1})
    names = simulate(fa, config_path, 3)
    for _ in range(4):
        assert fa(config_path).returncode == 0
        if all(db.get(n)["raw_status"] == "archived" for n in names):
            break
    audited = {n: (db.get(n)["archive"].get("audited") or {}).get("at") for n in names}
    assert sum(1 for at in audited.values() if at) >= 2, audited  # the tick that archived them read two back

    corrupt_member(Path(db.get(names[0])["archive"]["tarball"]), f"{names[0]}.tar.zst")
    r = fa(config_path)  # the round-robin goes on: the run not yet audited, then round again to the first
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    if audited[names[0]] is None or db.get(names[0])["archive"]["audited"]["at"] == audited[names[0]]:
        r = fa(config_path)  # (a slow first tick archived them in two and had read the first back already)
    after = {n: db.get(n)["archive"]["audited"]["at"] for n in names}
    assert all(after.values()) and after[names[0]] != audited[names[0]], (audited, after)
    doc = db.get(names[0])
    assert doc["archive"]["audited"]["ok"] is False and doc["archive"]["copy_ok"] in (False,)
    assert [ln for ln in r.stderr.splitlines() if "LOST-COPY" in ln and f"run {names[0]}:" in ln], r.stderr
    st = fa(config_path, "status").stdout
    assert [ln for ln in st.splitlines() if "LOST-COPY" in ln and f"run {names[0]}:" in ln], st


def test_auditing_a_run_not_yet_archived_says_so_and_audits_nothing(fa, make_config, db):
    config_path = make_config(archive={"batch_runs": 2, "max_wait_days": 30})
    (name,) = simulate(fa, config_path, 1)
    assert fa(config_path).returncode == 0
    assert db.get(name)["raw_status"] == "compressed", "one run of a batch of two waits for the other"

    r = fa(config_path, "audit", name)
    assert r.returncode == 1 and r.stdout == "" and "Traceback" not in r.stderr, r.stdout + r.stderr
    assert r.stderr.strip().splitlines() == [
        f"fulliautomatix: run {name}: not archived (raw_status compressed), so it has no archived copy to read "
        f"back; nothing audited for it (`fulliautomatix status {name}` says where it is)"
    ]
    assert "audited" not in (db.get(name).get("archive") or {})
