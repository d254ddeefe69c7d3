"""Issue 10, findings 2 and 4 to 7: faults that used to loop, lie or leak, through the real CLI.

Each test reproduces one finding against the real components (the nx-27017
runs DB through pymongo, Snakemake, rsync, tar, zstd; full disks are real
tmpfs mounts in a private mount namespace) and checks that the fault is now
refused in one line or recovered, with no byte of raw data lost: a run that
survives is restored from the archive and compared with the DAQ copy.
"""

from __future__ import annotations

import datetime as dt
import os
import shlex
import shutil
import signal
import subprocess
import tarfile
import time
from pathlib import Path
from types import SimpleNamespace

import psutil
import pymongo
import pytest
import yaml

from fa_testlib import FA, ROOT, digests, simulate
from fulliautomatix import config as fa_config
from fulliautomatix import embedded


def lines_naming(text: str, word: str) -> list[str]:
    return [ln for ln in text.splitlines() if word in ln and ": stages " not in ln]


def ticks_until(fa, config_path, done, most=8, args=()):
    """Plain ticks until done() holds; the last tick's result."""
    r = None
    for _ in range(most):
        r = fa(config_path, *args)
        assert "Traceback" not in r.stderr, r.stderr
        if done():
            return r
    raise AssertionError(f"not done after {most} ticks; last tick said:\n{r.stderr if r else ''}")


def assert_restores_identical(fa, config_path, tmp_path, run, daq_copy: dict[str, str]):
    """restore brings the run back byte for byte as the DAQ copy was (digests taken before any fault)."""
    to = tmp_path / f"restored-{run}"
    r = fa(config_path, "restore", run, "--to", str(to))
    assert r.returncode == 0, r.stderr
    assert digests(to / run) == daq_copy


def in_tmpfs(tmp_path: Path, mount: Path, size: str, *commands: list[str]) -> list[SimpleNamespace]:
    """Run commands with a tmpfs of `size` mounted at `mount`, in a private mount namespace (as root)."""
    mount.mkdir(parents=True, exist_ok=True)
    q = shlex.quote
    script = [f"mount -t tmpfs -o size={size} fa-test-full {q(str(mount))} || exit 99"]
    for i, argv in enumerate(commands):
        out = tmp_path / f".cmd{i}"
        script.append(f"{shlex.join(argv)} >{q(f'{out}.out')} 2>{q(f'{out}.err')}; echo $? >{q(f'{out}.rc')}")
    env = {k: v for k, v in os.environ.items() if k != fa_config.DB_ENV}
    try:
        r = subprocess.run(
            ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", "\n".join(script)],
            capture_output=True,
            text=True,
            timeout=600,
            stdin=subprocess.DEVNULL,
            env=env,
        )
    except FileNotFoundError:
        pytest.skip("unshare is not installed")
    if r.returncode == 99 or "unshare failed" in r.stderr:
        pytest.skip(f"no private tmpfs here: {r.stderr.strip()}")
    results = []
    for i in range(len(commands)):
        out = tmp_path / f".cmd{i}"
        results.append(
            SimpleNamespace(
                returncode=int(Path(f"{out}.rc").read_text()),
                stdout=Path(f"{out}.out").read_text(),
                stderr=Path(f"{out}.err").read_text(),
            )
        )
    return results


# -- 2. duplicate run names ----------------------------------------------------------------------


def test_duplicate_names_are_bad_while_every_other_run_goes_on(fa, make_config, raw_collection, tmp_path):
    """Two documents with one name, inserted before the unique index existed: no tick fails in
    ensure_indexes; the name is BAD in the tick and in status, with the command that fixes it;
    --run of another run works; once one document is deleted the run goes on too."""
    cfg = make_config(archive={"max_wait_days": 0})  # the runs around it are batched alone
    names = simulate(fa, cfg, 3)
    raw_collection.drop_indexes()
    twin = raw_collection.find_one({"name": names[1]}, {"_id": 0})
    twin_id = raw_collection.insert_one(twin).inserted_id
    before = sorted(map(str, raw_collection.find({"name": names[1]})))

    r = fa(cfg, "--run", names[0])
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert raw_collection.find_one({"name": names[0]})["raw_status"] == "archived" or raw_collection.find_one(
        {"name": names[0]}
    )["raw_status"] in ("compressed", "ondeck")
    r = fa(cfg)
    assert "Traceback" not in r.stderr and r.returncode == 1, r.stderr
    bad = lines_naming(r.stderr, names[1])
    assert len(bad) == 1 and "2 documents have this name" in bad[0] and "mongosh" in bad[0], r.stderr
    ids = [str(d["_id"]) for d in raw_collection.find({"name": names[1]})]
    assert any(f'deleteOne({{_id: ObjectId("{i}")}})' in bad[0] for i in ids), "the line names one to delete"
    st = fa(cfg, "status")
    assert st.returncode == 0, st.stderr
    assert [ln for ln in st.stdout.splitlines() if names[1] in ln and "BAD" in ln and "2 documents" in ln]
    assert sorted(map(str, raw_collection.find({"name": names[1]}))) == before, "duplicates are not touched"
    ticks_until(
        fa,
        cfg,
        lambda: all(raw_collection.find_one({"name": n})["raw_status"] == "archived" for n in (names[0], names[2])),
    )

    raw_collection.delete_one({"_id": twin_id})  # what the line says to do
    ticks_until(fa, cfg, lambda: raw_collection.find_one({"name": names[1]})["raw_status"] == "archived")
    st = fa(cfg, "status")
    assert "BAD" not in st.stdout and "attention" not in st.stdout, st.stdout


# -- 4. runs that can never succeed ---------------------------------------------------------------


def corrupt(path: Path) -> None:
    """Flip bytes in the middle of a file, keeping its size and modification time (silent corruption)."""
    st = path.stat()
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_a_scratch_copy_corrupted_after_transfer_is_transferred_and_processed_again(fa, make_config, db, tmp_path):
    cfg = make_config()
    names = simulate(fa, cfg, 2)
    daq = {n: digests(tmp_path / "daq" / n) for n in names}
    assert fa(cfg, "--transfer", "--process").returncode == 0
    corrupt(tmp_path / "cluster" / "raw" / names[0] / "raw_000.bin")

    r = fa(cfg)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    line = lines_naming(r.stderr, names[0])
    assert len(line) == 1, r.stderr
    assert "no longer matches the checksums of its transfer" in line[0], line
    assert "the DAQ copy still verifies" in line[0] and "transferred and processed again" in line[0], line
    assert "untouched" not in r.stderr
    doc = db.get(names[0])
    assert (doc["raw_status"], doc["processed_status"]) == ("acquired", "none"), "a fresh start, recorded"
    aside = Path(doc["processing"]["set_aside"]["to"])
    assert aside.is_dir() and aside.name.startswith("ref-1.untrusted-"), "the old output is set aside"

    ticks_until(fa, cfg, lambda: all(db.get(n)["raw_status"] == "archived" for n in names))
    assert (tmp_path / "cluster" / "processed" / names[0] / "ref-1" / "events.tsv").is_file(), "processed again"
    assert aside.is_dir(), "the untrusted output stays set aside, never used"
    for n in names:
        assert_restores_identical(fa, cfg, tmp_path, n, daq[n])


def test_a_corrupted_copy_whose_daq_copy_was_purged_is_lost_never_untouched(fa, make_config, db, tmp_path):
    """purge_after_verify: the corrupted copy on scratch was the last one. The run is LOST (held, with
    what to do), not retried forever, and no message says the raw copy is untouched. status says,
    before the corruption, which runs have only one verified copy."""
    cfg = make_config(transfer={"purge": "purge_after_verify"})
    names = simulate(fa, cfg, 2)
    assert fa(cfg, "--transfer", "--process").returncode == 0
    assert not (tmp_path / "daq" / names[0]).exists(), "purged after its copy verified"
    st = fa(cfg, "status").stdout
    for n in names:
        assert [ln for ln in st.splitlines() if "ONE-COPY" in ln and n in ln and "DAQ copy purged" in ln], st
    corrupt(tmp_path / "cluster" / "raw" / names[0] / "raw_000.bin")
    left = digests(tmp_path / "cluster" / "raw" / names[0])

    for _ in range(3):
        r = fa(cfg)
        assert "Traceback" not in r.stderr and "untouched" not in r.stderr, r.stderr
    lost = lines_naming(r.stderr, names[0])
    assert len(lost) == 1 and "LOST" in lost[0] and "purged" in lost[0], r.stderr
    assert f"fulliautomatix retry {names[0]}" in lost[0], "the line says what to do"
    assert r.returncode == 0, "a held run is a warning, not a failing tick"
    st = fa(cfg, "status").stdout
    assert [ln.strip() for ln in st.splitlines() if names[0] in ln][0].startswith("LOST"), st
    doc = db.get(names[0])
    assert doc["raw_status"] == "ondeck" and doc["compressed"]["attempts"] == 1, "tried once, then held"
    assert digests(tmp_path / "cluster" / "raw" / names[0]) == left, "what is left is kept"
    assert db.get(names[1])["raw_status"] in ("compressed", "archived"), "the other run goes on"


def test_a_compressed_copy_that_disappeared_is_made_again_from_the_daq_copy(fa, make_config, db, tmp_path):
    cfg = make_config(archive={"max_wait_days": 0})
    names = simulate(fa, cfg, 2)
    daq = {n: digests(tmp_path / "daq" / n) for n in names}
    assert fa(cfg, "--transfer", "--process", "--compress").returncode == 0
    (tmp_path / "cluster" / "compressed" / f"{names[0]}.tar.zst").unlink()

    r = fa(cfg)
    assert "Traceback" not in r.stderr, r.stderr
    line = lines_naming(r.stderr, names[0])
    assert any("is gone" in ln and "transferred and compressed again" in ln for ln in line), r.stderr
    assert db.get(names[1])["raw_status"] == "archived", "the rest of the batch is archived without it"
    ticks_until(fa, cfg, lambda: db.get(names[0])["raw_status"] == "archived")
    assert db.get(names[0])["recoveries"] == 1
    for n in names:
        assert_restores_identical(fa, cfg, tmp_path, n, daq[n])


def test_compression_attempts_are_bounded_and_say_which_copies_exist(fa, make_config, db, tmp_path):
    cfg = make_config(compression={"max_attempts": 2})
    [run] = simulate(fa, cfg, 1)
    assert fa(cfg, "--transfer", "--process").returncode == 0
    (tmp_path / "cluster" / "compressed").write_text("not a directory")  # every compression fails
    errors = []
    for _ in range(4):
        r = fa(cfg)
        assert "Traceback" not in r.stderr
        errors += [ln for ln in lines_naming(r.stderr, run) if "compress" in ln or "held" in ln.lower()]
    assert db.get(run)["compressed"]["attempts"] == 2, "never beyond compression.max_attempts"
    assert any("its copy on scratch is kept; the DAQ copy is kept" in ln for ln in errors), errors
    st = fa(cfg, "status").stdout
    held = [ln for ln in st.splitlines() if "HELD" in ln and run in ln]
    assert len(held) == 1 and f"fulliautomatix retry {run}" in held[0], st

    (tmp_path / "cluster" / "compressed").unlink()
    assert fa(cfg, "retry", run).returncode == 0
    ticks_until(fa, cfg, lambda: db.get(run)["raw_status"] in ("compressed", "archived"))


# -- 5. bad config ----------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["", "   "])
def test_an_empty_processing_command_is_refused_at_load(fa, make_config, tmp_path, command):
    cfg = make_config(processing={"command": command})
    for args in ([], ["status"]):
        r = fa(cfg, *args)
        assert r.returncode == 1 and "Traceback" not in r.stderr
        assert r.stderr.strip().splitlines() == [r.stderr.strip()], r.stderr
        assert "config key processing.command" in r.stderr
    assert not (tmp_path / "work").exists()


@pytest.mark.parametrize("command", ["false {raw}", "/nonexistent/processor {raw} {output}"])
def test_processing_attempts_never_exceed_max_attempts(fa, make_config, db, command):
    cfg = make_config(processing={"command": command, "max_attempts": 2})
    [run] = simulate(fa, cfg, 1)
    for _ in range(4):
        r = fa(cfg)
        assert "Traceback" not in r.stderr, r.stderr
    doc = db.get(run)
    assert doc["processed_status"] == "failed" and doc["processing"]["attempts"] == 2, doc["processing"]
    st = fa(cfg, "status").stdout
    assert [ln for ln in st.splitlines() if "HELD" in ln and run in ln], st


def test_a_live_check_that_does_not_exist_is_a_warning_naming_it(fa, make_config, db, tmp_path):
    cfg = make_config(daq={"live_check": ["no-such-live-check", "-x", "obelix"]})
    [run] = simulate(fa, cfg, 1)
    r = fa(cfg, "--transfer")
    lines = lines_naming(r.stderr, "no-such-live-check")
    assert len(lines) == 1 and "not found" in lines[0] and "exit 127" in lines[0], r.stderr
    day = dt.date.today().isoformat()
    logged = (tmp_path / "logs" / f"fulliautomatix-{day}.log").read_text()
    assert [ln for ln in logged.splitlines() if "WARNING" in ln and "no-such-live-check" in ln], logged
    assert db.get(run)["raw_status"] == "acquired", "no transfer while the DAQ cannot be asked"


# -- 6. wrong or missing words -------------------------------------------------------------------


def test_a_full_scratch_disk_says_no_space_left_naming_run_and_disk(fa, make_config, db, tmp_path):
    cfg = make_config()
    [run] = simulate(fa, cfg, 1, events=4000)  # about 2 MB
    [r] = in_tmpfs(tmp_path, tmp_path / "cluster", "1m", [FA, "--config", str(cfg), "--transfer"])
    assert "Traceback" not in r.stderr and "Broken pipe" not in r.stderr, r.stderr
    line = lines_naming(r.stderr, run)
    assert len(line) == 1 and "No space left on device" in line[0], r.stderr
    assert str(tmp_path / "cluster") in line[0], "the line names the disk"
    assert db.get(run)["raw_status"] == "acquired"


def test_a_full_archive_disk_says_no_space_left_naming_it(fa, make_config, db, tmp_path):
    cfg = make_config()
    names = simulate(fa, cfg, 2, events=2000)
    assert fa(cfg, "--transfer", "--process", "--compress").returncode == 0
    [r] = in_tmpfs(tmp_path, tmp_path / "archive", "64k", [FA, "--config", str(cfg), "--archive"])
    assert "Traceback" not in r.stderr and r.returncode == 1, r.stderr
    line = [ln for ln in r.stderr.splitlines() if "No space left on device" in ln]
    assert len(line) == 1 and str(tmp_path / "archive") in line[0] and names[0] in line[0], r.stderr
    assert [db.get(n)["raw_status"] for n in names] == ["compressed"] * 2


def test_a_run_without_a_daq_directory_says_so(fa, make_config, db, tmp_path):
    cfg = make_config()
    names = simulate(fa, cfg, 2)
    shutil.rmtree(tmp_path / "daq" / names[0])
    r = fa(cfg, "--transfer")
    assert "Traceback" not in r.stderr and "rsync exited" not in r.stderr, r.stderr
    line = lines_naming(r.stderr, names[0])
    assert len(line) == 1 and "has no directory" in line[0] and str(tmp_path / "daq" / names[0]) in line[0]
    assert db.get(names[1])["raw_status"] == "ondeck", "the other run goes on"
    held = [ln for ln in fa(cfg, "status").stdout.splitlines() if "HELD" in ln and names[0] in ln]
    assert len(held) == 1 and "no directory" in held[0]


def test_restore_of_a_path_is_refused_in_one_line(fa, config_path, db):
    simulate(fa, config_path, 1)
    r = fa(config_path, "restore", "../../etc", "--to", "/tmp/never")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == [r.stderr.strip()] and "not a run name" in r.stderr
    assert not Path("/tmp/never").exists()


@pytest.mark.parametrize(
    "uri",
    [
        "mongodb://fa:s3cret-pw@127.0.0.1:99999/",
        "mongodb://fa:s3cret-pw@host:x/y",
        "mongodb://fa:s3cret/pw@127.0.0.1:1/",
    ],
)
def test_a_bad_runs_db_uri_is_one_line_and_its_password_never_logged(fa, make_config, tmp_path, uri):
    cfg = make_config(runs_db={"uri": uri, "timeout_seconds": 0.5})
    for args in ([], ["status"]):
        r = fa(cfg, *args)
        assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert "runs_db.uri" in r.stderr and "s3cret" not in r.stderr
    logged = "".join(p.read_text() for p in (tmp_path / "logs").rglob("*.log"))
    assert "***@" in logged and "s3cret" not in logged


def test_a_tarball_failing_verification_on_restore_shows_in_status(fa, config_path, db, tmp_path):
    names = simulate(fa, config_path, 2)
    ticks_until(fa, config_path, lambda: all(db.get(n)["raw_status"] == "archived" for n in names))
    tarball = Path(db.get(names[0])["archive"]["tarball"])
    with tarfile.open(tarball) as tar:
        member = tar.getmember(f"{names[0]}.tar.zst")
    data = bytearray(tarball.read_bytes())
    data[member.offset_data + member.size // 2] ^= 0xFF
    tarball.write_bytes(bytes(data))

    r = fa(config_path, "restore", names[0], "--to", str(tmp_path / "restored"))
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "failed verification" in r.stderr, r.stderr
    st = fa(config_path, "status")
    lost = [ln for ln in st.stdout.splitlines() if "LOST-COPY" in ln and names[0] in ln]
    assert len(lost) == 1 and "the DAQ copy is kept" in lost[0], st.stdout
    assert not [ln for ln in st.stdout.splitlines() if f"run {names[1]}:" in ln], "the other run verifies"


@pytest.fixture
def own_runs_db(tmp_path):
    """An nx-27017 server of this test's own, to kill mid-tick; (state dir, uri, restart)."""
    state = tmp_path / "own-db"
    state.mkdir()
    servers = []

    def start() -> str:
        uri, proc = embedded.ensure(state)
        servers.append(proc)
        return uri

    yield state, start(), start
    for proc in servers:
        embedded.stop(state, proc)


def test_a_tick_whose_db_died_while_archiving_does_not_say_done(fa, make_config, tmp_path, own_runs_db):
    state, uri, restart = own_runs_db
    slow = ["sh", "-c", 'sleep 4; exec rsync -a --partial "$@"', "slow-rsync"]
    cfg = make_config(runs_db={"uri": uri, "timeout_seconds": 1}, archive={"rsync": {"command": slow}})
    names = simulate(fa, cfg, 2)
    assert fa(cfg, "--transfer", "--process", "--compress").returncode == 0
    col = pymongo.MongoClient(uri)[yaml.safe_load(cfg.read_text())["runs_db"]["database"]][
        yaml.safe_load(cfg.read_text())["runs_db"]["collection"]
    ]
    tick = subprocess.Popen(
        [FA, "--config", str(cfg)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={k: v for k, v in os.environ.items() if k != fa_config.DB_ENV},
    )
    deadline = time.monotonic() + 120
    while col.find_one({"name": names[0]})["raw_status"] != "archiving":
        assert tick.poll() is None and time.monotonic() < deadline, tick.communicate()
        time.sleep(0.1)
    psutil.Process(int(embedded.paths(state)["addr"].read_text().split()[1])).kill()  # the DB dies
    _, err = tick.communicate(timeout=300)
    assert "Traceback" not in err, err
    assert tick.returncode == 1 and "done" not in err, err
    assert [ln for ln in err.splitlines() if "runs DB did not record it" in ln and "next tick repairs" in ln], err

    new_uri = restart()  # the same data file, served again
    env = {fa_config.DB_ENV: new_uri}
    r = fa(cfg, env=env)
    assert r.returncode == 0 and "repaired" in r.stderr, r.stderr
    col = pymongo.MongoClient(new_uri)[col.database.name][col.name]
    assert [col.find_one({"name": n})["raw_status"] for n in names] == ["archived"] * 2


def test_an_unknown_raw_status_is_listed_as_bad(fa, config_path, db, raw_collection):
    names = simulate(fa, config_path, 2)
    raw_collection.update_one({"name": names[0]}, {"$set": {"raw_status": "teleported"}})
    r = fa(config_path)
    bad = lines_naming(r.stderr, names[0])
    assert len(bad) == 1 and "unknown raw_status 'teleported'" in bad[0], r.stderr
    st = fa(config_path, "status").stdout
    assert [ln for ln in st.splitlines() if "BAD" in ln and names[0] in ln and "teleported" in ln], st
    assert db.get(names[1])["raw_status"] in ("compressed", "archived"), "the other run goes on"


def test_a_file_name_with_a_newline_is_refused_in_one_line(fa, make_config, db, tmp_path):
    cfg = make_config()
    names = simulate(fa, cfg, 2)
    (tmp_path / "daq" / names[0] / "odd\nname.bin").write_bytes(b"x")
    r = fa(cfg, "--transfer")
    assert "Traceback" not in r.stderr and "not enough values" not in r.stderr, r.stderr
    line = lines_naming(r.stderr, names[0])
    assert len(line) == 1 and "line break in its name" in line[0] and "$'odd\\nname.bin'" in line[0], r.stderr
    assert db.get(names[0])["raw_status"] == "acquired" and db.get(names[1])["raw_status"] == "ondeck"
    assert [ln for ln in fa(cfg, "status").stdout.splitlines() if "HELD" in ln and names[0] in ln]


# -- 7. leftovers ---------------------------------------------------------------------------------


def test_a_killed_uploads_leftover_is_tidied_by_the_next_upload(fa, make_config, db, tmp_path):
    slow = ["rsync", "-a", "--partial", "--bwlimit=64"]
    cfg = make_config(archive={"rsync": {"command": slow}, "upload_timeout_seconds": 600})
    names = simulate(fa, cfg, 2, events=2000)
    assert fa(cfg, "--transfer", "--process", "--compress").returncode == 0
    incoming = tmp_path / "archive" / ".incoming"
    tick = subprocess.Popen(
        [FA, "--config", str(cfg), "--archive"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env={k: v for k, v in os.environ.items() if k != fa_config.DB_ENV},
    )
    deadline = time.monotonic() + 120
    while not list(incoming.glob(".*.tar.*")):
        assert tick.poll() is None and time.monotonic() < deadline, "the upload never started"
        time.sleep(0.05)
    os.killpg(tick.pid, signal.SIGKILL)  # the tick and its rsync die at once
    tick.wait()
    time.sleep(1)
    [partial] = list(incoming.glob(".*.tar.*"))
    foreign = incoming / ".notes.tar.abcdef.txt"
    foreign.write_text("not ours")
    old = time.time() - 3600
    for p in (partial, foreign):
        os.utime(p, (old, old))

    cfg = make_config(archive={"upload_timeout_seconds": 600})  # the same config, without the slow copy
    ticks_until(fa, cfg, lambda: all(db.get(n)["raw_status"] == "archived" for n in names))
    assert not partial.exists(), "the killed upload's leftover is deleted"
    assert foreign.exists(), "only our own pattern is deleted"


def test_compressed_and_archive_staging_get_the_transfer_dir_mode(fa, make_config, db, tmp_path):
    cfg = make_config(transfer={"dir_mode": "2750"})
    names = simulate(fa, cfg, 2)
    ticks_until(fa, cfg, lambda: all(db.get(n)["raw_status"] == "archived" for n in names))
    for d in ("raw", "compressed", "archive-staging"):
        mode = (tmp_path / "cluster" / d).stat().st_mode & 0o7777
        assert mode == 0o2750, f"{d}: {oct(mode)}"


def test_the_wrappers_snakemake_log_stays_in_the_work_dir(fa, config_path, db, tmp_path):
    logs = ROOT / ".snakemake" / "log"
    before = set(logs.iterdir()) if logs.is_dir() else set()
    simulate(fa, config_path, 1)
    assert fa(config_path).returncode == 0
    after = set(logs.iterdir()) if logs.is_dir() else set()
    assert after == before, "nothing written into the project's .snakemake/log"
    assert list((tmp_path / "work" / ".snakemake" / "log").glob("*.snakemake.log")), "it is in work_dir"
