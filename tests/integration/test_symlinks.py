"""Symbolic links and special files in or as a run directory, with a local DAQ (issue 10, point 1).

Nothing outside the configured directories is read as run data or deleted:
a run directory that is a symlink, or that holds a symlink, a fifo or any
other non-regular file, is refused by the DAQ's own commands (survey before
rsync, checksums after it) with one line naming the run, the path and what to
do, and the run is held; the purge re-checks all of it right before deleting.
Everything here is real: the CLI, Snakemake, rsync, find and the runs DB.
"""

from __future__ import annotations

import os
import shutil

import pytest

from fulliautomatix import config as fa_config
from fulliautomatix import hosts, purge
from fa_testlib import JobLog as Log
from fa_testlib import digests, simulate


def lines_naming(stderr: str, run: str) -> list[str]:
    """The tick's lines naming the run (but its first line, which lists the --run runs)."""
    return [ln for ln in stderr.splitlines() if run in ln and ": stages " not in ln]


def assert_held(fa, config_path, db, run: str, *words: str) -> str:
    """The run is held (not retried) with its reason in transfer.error, and status says HELD."""
    doc = db.get(run)
    assert doc["raw_status"] == "acquired", doc
    error = doc["transfer"]["error"]
    for w in (run, *words, f"fulliautomatix retry {run}"):
        assert w in error, error
    assert "\n" not in error
    st = fa(config_path, "status")
    held = [ln for ln in st.stdout.splitlines() if "HELD" in ln and run in ln]
    assert len(held) == 1, st.stdout
    return error


@pytest.fixture
def purging_config(db, make_config):
    """purge_after_verify (written after the db fixture's own config, which it would replace)."""
    return make_config(transfer={"purge": "purge_after_verify"})


def test_a_symlinked_run_directory_is_refused_held_and_its_target_untouched(fa, purging_config, db, tmp_path):
    good, linked = simulate(fa, purging_config, 2)
    daq = tmp_path / "daq"
    victim = tmp_path / "elsewhere" / "victim"
    victim.parent.mkdir()
    shutil.move(daq / linked, victim)
    (victim / "not_run_data.txt").write_text("someone else's file")
    (daq / linked).symlink_to(victim)
    before = digests(victim, skip_links=True)

    r = fa(purging_config, "--transfer")
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    named = lines_naming(r.stderr, linked)
    assert len(named) == 1, r.stderr
    assert str(daq / linked) in named[0] and "symbolic link" in named[0] and "retry" in named[0], named[0]
    assert digests(victim, skip_links=True) == before, "nothing outside the DAQ directory deleted"
    assert (daq / linked).is_symlink()
    assert not (tmp_path / "cluster" / "raw" / linked).exists()
    assert not (tmp_path / "cluster" / "raw" / ".incoming" / linked).exists(), "nothing outside was read"
    error = assert_held(fa, purging_config, db, linked, str(daq / linked), "symbolic link", str(victim))
    assert "daq_copy" not in db.get(linked)["transfer"]
    # The other run went through and was purged as usual.
    assert db.get(good)["raw_status"] == "ondeck" and db.get(good)["transfer"]["daq_copy"] == "purged"
    assert not (daq / good).exists()

    # Held: the next tick does not try it again.
    attempts = db.get(linked)["transfer"]["attempts"]
    r = fa(purging_config, "--transfer")
    assert db.get(linked)["transfer"]["attempts"] == attempts
    assert db.get(linked)["transfer"]["error"] == error
    assert digests(victim, skip_links=True) == before

    # The fix the message asks for: the real directory instead of the link, then retry.
    (daq / linked).unlink()
    (victim / "not_run_data.txt").unlink()
    shutil.move(victim, daq / linked)
    r = fa(purging_config, "retry", linked)
    assert r.returncode == 0, r.stderr
    r = fa(purging_config, "--transfer")
    assert r.returncode == 0, r.stderr
    assert db.get(linked)["raw_status"] == "ondeck" and db.get(linked)["transfer"]["daq_copy"] == "purged"


def test_a_file_symlink_inside_a_run_is_refused_and_nothing_purged(fa, purging_config, db, tmp_path):
    first, second = simulate(fa, purging_config, 2)
    daq = tmp_path / "daq"
    # Run 2 holds a link to a file of run 1 (as in the issue) and one to a file outside the DAQ.
    outside = tmp_path / "elsewhere" / "precious.bin"
    outside.parent.mkdir()
    outside.write_bytes(os.urandom(4096))
    (daq / second / "linked_000.bin").symlink_to(daq / first / "raw_000.bin")
    (daq / second / "sub").mkdir()
    (daq / second / "sub" / "outside.bin").symlink_to(outside)
    before_second, before_outside = digests(daq / second, skip_links=True), outside.read_bytes()

    r = fa(purging_config, "--transfer", "--run", second)
    assert r.returncode == 1
    named = lines_naming(r.stderr, second)
    assert len(named) == 1 and "symbolic link" in named[0], r.stderr
    assert_held(fa, purging_config, db, second, "symbolic link")
    assert digests(daq / second, skip_links=True) == before_second, "nothing purged"
    assert (daq / second / "linked_000.bin").is_symlink() and (daq / first / "raw_000.bin").is_file()
    assert outside.read_bytes() == before_outside
    assert not (tmp_path / "cluster" / "raw" / second).exists()
    assert db.get(first)["raw_status"] == "acquired", "the run it links to was not touched by this tick"


def test_a_fifo_inside_a_run_is_refused(fa, purging_config, db, tmp_path):
    (run,) = simulate(fa, purging_config, 1)
    daq = tmp_path / "daq"
    os.mkfifo(daq / run / "pipe")
    before = digests(daq / run, skip_links=True)

    r = fa(purging_config, "--transfer")
    assert r.returncode == 1
    named = lines_naming(r.stderr, run)
    assert len(named) == 1 and "fifo" in named[0] and str(daq / run / "pipe") in named[0], r.stderr
    assert_held(fa, purging_config, db, run, "fifo", str(daq / run / "pipe"))
    assert digests(daq / run, skip_links=True) == before and (daq / run / "pipe").exists()


@pytest.mark.parametrize("swap", ["link", "linked_files"])
def test_a_run_directory_replaced_after_transfer_is_not_purged(fa, make_config, db, tmp_path, swap):
    keep = make_config(transfer={"purge": "keep"})
    (run,) = simulate(fa, keep, 1)
    r = fa(keep, "--transfer")
    assert r.returncode == 0, r.stderr
    assert db.get(run)["transfer"]["daq_copy"] == "kept"
    daq = tmp_path / "daq"
    # After the transfer the run directory is moved away and replaced: by a symlink to it,
    # or by a directory of symlinks to its files. The data are identical: only the links are wrong.
    victim = tmp_path / "elsewhere" / run
    victim.parent.mkdir()
    shutil.move(daq / run, victim)
    if swap == "link":
        (daq / run).symlink_to(victim)
    else:
        (daq / run).mkdir()
        for f in victim.iterdir():
            (daq / run / f.name).symlink_to(f)
    before = digests(victim, skip_links=True)

    due = make_config(transfer={"purge": "purge_after_days", "purge_after_days": 0})
    r = fa(due, "--transfer")
    assert r.returncode == 0, r.stderr
    assert digests(victim, skip_links=True) == before, "the purge deleted nothing outside the DAQ directory"
    assert (daq / run).is_symlink() if swap == "link" else all(p.is_symlink() for p in (daq / run).iterdir())
    doc = db.get(run)
    assert doc["transfer"]["daq_copy"] == "kept"
    assert "symbolic link" in doc["transfer"]["daq_purge"]["error"], doc["transfer"]["daq_purge"]
    assert str(daq / run) in doc["transfer"]["daq_purge"]["error"]


# -- the purge's own re-checks, called directly against real directories -----------------------


@pytest.fixture
def transferred(fa, config_path, config, db, tmp_path):
    """One run transferred (DAQ copy kept): (run, its DAQ directory, verified files, snapshot, algorithm)."""
    (run,) = simulate(fa, config_path, 1)
    r = fa(config_path, "--transfer")
    assert r.returncode == 0, r.stderr
    tr = db.get(run)["transfer"]
    return run, tmp_path / "daq" / run, tr["checksums"], tr["daq_snapshot"], tr["checksum_algorithm"]


def test_purge_refuses_a_file_rewritten_with_its_old_size_and_mtime(config, transferred):
    run, where, verified, snapshot, algorithm = transferred
    victim = where / "raw_000.bin"
    st = victim.stat()
    victim.write_bytes(bytes(b ^ 0x5A for b in victim.read_bytes()))
    os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns))  # sizes and times say nothing changed
    with pytest.raises(purge.PurgeRefused, match="checksum of raw_000.bin differs"):
        purge.purge_daq_copy(config, run, verified, snapshot, Log(), algorithm=algorithm)
    assert victim.exists()


def test_purge_deletes_a_clean_run_and_reports_a_missing_one_absent(config, transferred):
    run, where, verified, snapshot, algorithm = transferred
    log = Log()
    assert purge.purge_daq_copy(config, run, verified, snapshot, log, algorithm=algorithm) == "purged"
    assert not where.exists()
    assert purge.purge_daq_copy(config, run, verified, snapshot, log, algorithm=algorithm) == "absent"


def test_purge_refuses_a_dangling_link_as_the_run(config, transferred, tmp_path):
    run, where, verified, snapshot, algorithm = transferred
    shutil.rmtree(where)
    where.symlink_to(tmp_path / "nowhere")
    with pytest.raises(purge.PurgeRefused, match="symbolic link"):
        purge.purge_daq_copy(config, run, verified, snapshot, Log(), algorithm=algorithm)
    assert where.is_symlink()


def test_a_symlinked_daq_directory_itself_is_followed(fa, make_config, db, tmp_path):
    """daq.raw_dir may itself be a link (a mount point elsewhere): its runs are inside it."""
    real = tmp_path / "disk" / "daq"
    real.mkdir(parents=True)
    (tmp_path / "daq").symlink_to(real)
    cfg = make_config(transfer={"purge": "purge_after_verify"})
    (run,) = simulate(fa, cfg, 1)
    r = fa(cfg, "--transfer")
    assert r.returncode == 0, r.stderr
    assert db.get(run)["transfer"]["daq_copy"] == "purged" and not (real / run).exists()


# -- deleting on scratch: the plain raw copy and compressed copies ------------------------------


def test_remove_tree_refuses_links_and_leaves_their_targets(tmp_path):
    root = tmp_path / "scratch" / "raw"
    root.mkdir(parents=True)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "keep.bin").write_bytes(b"outside")
    local = hosts.Host()
    (root / "111111_0001").symlink_to(outside)
    with pytest.raises(hosts.Unsafe, match="symbolic link"):
        hosts.remove_tree(local, str(root), "111111_0001")
    (root / "111111_0001").unlink()
    (root / "111111_0001").mkdir()
    (root / "111111_0001" / "a.bin").write_bytes(b"a")
    (root / "111111_0001" / "l").symlink_to(outside / "keep.bin")
    with pytest.raises(hosts.Unsafe, match="symbolic link"):
        hosts.remove_tree(local, str(root), "111111_0001")
    assert (root / "111111_0001" / "a.bin").exists()
    (root / "111111_0001" / "l").unlink()
    assert hosts.remove_tree(local, str(root), "111111_0001") is True
    assert not (root / "111111_0001").exists()
    assert hosts.remove_tree(local, str(root), "111111_0001") is False, "already gone"
    assert (outside / "keep.bin").read_bytes() == b"outside"


def test_remove_files_refuses_links(tmp_path):
    root = tmp_path / "scratch" / "compressed"
    root.mkdir(parents=True)
    outside = tmp_path / "elsewhere.tar.zst"
    outside.write_bytes(b"precious")
    (root / "a.tar.zst").write_bytes(b"a")
    (root / "b.tar.zst").symlink_to(outside)
    with pytest.raises(hosts.Unsafe, match="symbolic link"):
        hosts.remove_files(hosts.Host(), str(root), ["a.tar.zst", "b.tar.zst"])
    assert (root / "a.tar.zst").exists(), "nothing deleted when one is refused"
    assert outside.read_bytes() == b"precious"
    (root / "b.tar.zst").unlink()
    hosts.remove_files(hosts.Host(), str(root), ["a.tar.zst", "gone.tar.zst"])
    assert not (root / "a.tar.zst").exists()


def test_a_compressed_copy_that_is_a_link_is_neither_archived_nor_deleted(fa, db, make_config, tmp_path):
    from fulliautomatix import archive
    from fulliautomatix.archive import stage

    cfg = make_config(archive={"purge_compressed": False})
    runs = simulate(fa, cfg, 2)
    r = fa(cfg, "--transfer", "--process", "--compress")
    assert r.returncode == 0, r.stderr
    assert all(db.get(run)["raw_status"] == "compressed" for run in runs)
    compressed = tmp_path / "cluster" / "compressed"
    linked = compressed / f"{runs[0]}.tar.zst"
    outside = tmp_path / "elsewhere" / linked.name
    outside.parent.mkdir()
    shutil.move(linked, outside)
    linked.symlink_to(outside)  # identical bytes, but outside scratch
    before = outside.read_bytes()

    r = fa(cfg, "--archive")
    assert r.returncode == 1
    assert any("symbolic link" in ln and str(linked) in ln for ln in r.stderr.splitlines()), r.stderr
    assert all(db.get(run)["raw_status"] == "compressed" for run in runs)
    assert "symbolic link" in db.get(runs[0])["archive"]["error"]
    assert not list((tmp_path / "archive").glob("*.tar")), "nothing read through the link was archived"

    linked.unlink()
    shutil.copy(outside, linked)
    r = fa(cfg, "--archive")
    assert r.returncode == 0, r.stderr
    assert all(db.get(run)["raw_status"] == "archived" for run in runs)

    # Archived, compressed copies kept (purge_compressed off). A link put in place of one of them
    # makes the purge refuse them all; its target and the other copy stay.
    linked.unlink()
    linked.symlink_to(outside)
    config = fa_config.load(cfg)
    files = {archive.member_name(run): compressed / archive.member_name(run) for run in runs}
    log = Log()
    assert stage.purge_compressed(db, config, runs, files, hosts.Host(), log) == []
    assert "symbolic link" in log.text
    assert outside.read_bytes() == before and (compressed / f"{runs[1]}.tar.zst").is_file()
    linked.unlink()
    assert stage.purge_compressed(db, config, runs, files, hosts.Host(), log) == runs
    assert not list(compressed.glob("*.tar.zst")) and outside.read_bytes() == before
    assert all(db.get(run)["archive"]["purged"] for run in runs)
