"""Ticks through the real CLI: concurrency, dry runs, stage flags, repair and crash recovery."""

import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from fa_testlib import FA, ROOT, digests, simulate
from fulliautomatix import config as fa_config


def all_docs(raw_collection):
    return sorted(raw_collection.find({}), key=lambda d: d["name"])


def steps(doc):
    return [(h["field"], h["from"], h["to"]) for h in doc["history"]]


def tick_env():
    env = dict(os.environ)
    env.pop(fa_config.DB_ENV, None)
    return env


def assert_no_duplicate_transitions(doc):
    s = steps(doc)
    assert len(s) == len(set(s)), f"run {doc['name']} was handled twice: {s}"


def test_two_ticks_started_at_once(fa, config_path, db):
    names = simulate(fa, config_path, 2)
    procs = [
        subprocess.Popen(
            [FA, "--config", str(config_path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=tick_env(),
            stdin=subprocess.DEVNULL,
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    busy = [err for _, err in outs if "another tick is running" in err]
    assert len(busy) == 1, outs
    assert "stages" not in busy[0] and len(busy[0].strip().splitlines()) == 1, "the second tick did nothing"
    for name in names:
        doc = db.get(name)
        assert doc["raw_status"] in ("compressed", "archived"), "the first tick did the work"
        assert_no_duplicate_transitions(doc)
        assert doc["transfer"]["attempts"] == 1 and doc["processing"]["attempts"] == 1


def test_dry_run_prints_the_commands_and_changes_nothing(fa, config_path, raw_collection, tmp_path):
    names = simulate(fa, config_path, 2)
    trees = ("daq", "cluster", "archive", "work/state")

    def snapshot():
        files = {t: digests(tmp_path / t, with_dirs=True) for t in trees}
        files["work/state"].pop("tick.lock", None)
        return all_docs(raw_collection), files

    before = snapshot()
    r = fa(config_path, "--dry_run")
    assert r.returncode == 0, r.stderr
    assert snapshot() == before
    out = r.stdout
    assert "nothing is changed" in out
    cmds = [ln.strip()[2:] for ln in out.splitlines() if ln.strip().startswith("$ ")]
    for name in names:
        rsync = [c for c in cmds if c.startswith("rsync") and name in c]
        assert len(rsync) == 1 and str(tmp_path / "daq" / name) in rsync[0]
        assert len([c for c in cmds if "fulliautomatix.processor" in c and name in c]) == 1
        assert len([c for c in cmds if c.startswith("tar") and "zstd" in c and name in c]) == 1
    assert not (tmp_path / "cluster").exists() and not (tmp_path / "archive").exists()
    # --dry-run is the same option
    r2 = fa(config_path, "--dry-run")
    assert r2.returncode == 0 and r2.stdout.splitlines()[1:] == out.splitlines()[1:]
    assert snapshot() == before


def test_transfer_only_moves_runs_to_ondeck(fa, config_path, db, tmp_path):
    names = simulate(fa, config_path, 2)
    r = fa(config_path, "--transfer")
    assert r.returncode == 0, r.stderr
    for name in names:
        doc = db.get(name)
        assert (doc["raw_status"], doc["processed_status"]) == ("ondeck", "none")
        assert steps(doc) == [("raw_status", "acquired", "transferring"), ("raw_status", "transferring", "ondeck")]
        assert doc["raw_location"].startswith("local/")
        assert len(doc["transfer"]["checksums"]) == 1
        assert (tmp_path / "cluster" / "raw" / name / "raw_000.bin").read_bytes() == (
            tmp_path / "daq" / name / "raw_000.bin"
        ).read_bytes()
        assert (tmp_path / "work" / "state" / "ondeck" / f"{name}.json").is_file()
    assert not (tmp_path / "cluster" / "processed").exists()
    assert not (tmp_path / "cluster" / "compressed").exists()
    assert not (tmp_path / "archive").exists() or not any((tmp_path / "archive").iterdir())
    for stage in ("processed", "compressed", "archived"):
        assert not list((tmp_path / "work" / "state").glob(f"{stage}/*.json"))


def test_run_by_number_handles_only_that_run(fa, config_path, db, raw_collection):
    names = simulate(fa, config_path, 2)
    other = raw_collection.find_one({"name": names[0]})
    number = db.get(names[1])["number"]
    r = fa(config_path, "--run", str(number))
    assert r.returncode == 0, r.stderr
    assert f"runs {names[1]}" in r.stderr
    assert db.get(names[1])["raw_status"] in ("compressed", "archived")
    assert raw_collection.find_one({"name": names[0]}) == other, "the other run is untouched"


def test_a_lost_db_write_is_repaired_from_the_marker(fa, config_path, db, raw_collection, tmp_path):
    names = simulate(fa, config_path, 2)
    assert fa(config_path, "--transfer").returncode == 0
    name = names[0]
    done = raw_collection.find_one({"name": name})
    assert done["raw_status"] == "ondeck"
    assert (tmp_path / "work" / "state" / "ondeck" / f"{name}.json").is_file()
    # The transfer's final write never reached the DB: back to how it was just before.
    raw_collection.update_one(
        {"_id": done["_id"]},
        {
            "$set": {
                "raw_status": "transferring",
                "raw_location": "zinc",
                "rev": done["rev"] - 1,
                "transfer": {"attempts": 1, "started": done["transfer"]["started"]},
                "history": done["history"][:-1],
            }
        },
    )
    # Only the sync_runs_db checkpoint works in an --archive tick (nothing is compressed).
    r = fa(config_path, "--archive")
    assert r.returncode == 0, r.stderr
    doc = db.get(name)
    assert doc["raw_status"] == "ondeck"
    assert doc["raw_location"] == done["raw_location"]
    assert doc["transfer"]["checksums"] == done["transfer"]["checksums"]
    last = doc["history"][-1]
    assert (last["field"], last["from"], last["to"]) == ("raw_status", "transferring", "ondeck")
    assert last["note"] == "repaired from marker"
    assert_no_duplicate_transitions(doc)
    other = db.get(names[1])
    assert other["raw_status"] == "ondeck" and "repaired" not in str(other["history"])


def wait_for_state(db, proc, names, field, state):
    """Poll the DB until a run's field is in state; the run's name, or None if the tick ended first."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        doc = db.col.find_one({"name": {"$in": names}, field: state}, {"name": 1})
        if doc:
            return doc["name"]
        time.sleep(0.01)
    return None


def process_table() -> dict[int, tuple[int, int]]:
    """{pid: (parent pid, process group)} of every live (not zombie) process."""
    ps = subprocess.run(["ps", "-eo", "pid=,ppid=,pgid=,stat="], capture_output=True, text=True).stdout
    return {
        int(pid): (int(ppid), int(pgid))
        for pid, ppid, pgid, stat in (ln.split()[:4] for ln in ps.splitlines())
        if not stat.startswith("Z")
    }


def live_processes() -> set[int]:
    return set(process_table())


def descendants(pid: int) -> dict[int, int]:
    """{pid: process group} of every live process started (directly or not) by pid."""
    procs, found, todo = process_table(), {}, [pid]
    while todo:
        parent = todo.pop()
        for child, (ppid, pgid) in procs.items():
            if ppid == parent and child not in found:
                found[child] = pgid
                todo.append(child)
    return found


def survivors(pids: set[int]) -> set[int]:
    """Those of pids still alive once SIGKILL has had time to land."""
    deadline = time.monotonic() + 30
    while True:
        alive = pids & live_processes()
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.1)


# (state the tick is killed in, stages run before it, what is killed)
KILLS = {
    "processing-group": (("processed_status", "processing"), [], "group"),
    "archiving-group": (("raw_status", "archiving"), ["--transfer", "--process", "--compress"], "group"),
    "transferring-wrapper": (("raw_status", "transferring"), [], "wrapper"),
}


def assert_recovered(db, tmp_path, names: list[str], daq_before) -> None:
    """Every run archived exactly once, the DAQ copies intact, nothing left on scratch, each stage done once."""
    assert [db.get(n)["raw_status"] for n in names] == ["archived"] * len(names)
    assert digests(tmp_path / "daq", with_dirs=True) == daq_before, "DAQ copies intact"
    members = []
    for t in sorted((tmp_path / "archive").glob("*.tar")):
        with tarfile.open(t) as tar:
            members += tar.getnames()
    assert sorted(members) == sorted(f"{n}.tar.zst" for n in names), "each run archived exactly once"
    scratch = tmp_path / "cluster"
    leftovers = [
        str(p.relative_to(scratch)) for p in scratch.rglob("*") if p.is_file() and not p.match("processed/*/*/*")
    ]
    assert leftovers == [], "no raw, staging, partial or compressed copies left on scratch"
    for n in names:
        out = scratch / "processed" / n
        assert [p.name for p in out.iterdir()] == ["ref-1"], "one processed output per run"
        assert len((out / "ref-1" / "events.tsv").read_text().splitlines()) == 1 + 200
        doc = db.get(n)
        completed = [s for s in steps(doc) if s[2] in ("ondeck", "processed", "compressed", "archived")]
        assert len(completed) == len(set(completed)) == 4, steps(doc)


@pytest.mark.parametrize("case", list(KILLS))
def test_a_killed_tick_is_recovered_by_the_next_one(fa, config_path, db, tmp_path, case):
    """kill -9 mid-tick (its whole process group, or only the wrapper), then plain ticks finish the job."""
    (field, state), before, what = KILLS[case]
    names = simulate(fa, config_path, 2)
    daq_before = digests(tmp_path / "daq", with_dirs=True)
    if before:
        assert fa(config_path, *before).returncode == 0
    proc = subprocess.Popen(
        [FA, "--config", str(config_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=tick_env(),
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    tick = set()
    try:
        caught = wait_for_state(db, proc, names, field, state)
        groups = descendants(proc.pid)
        tick = set(groups)
        # The tick is one process group: kill -9 of it (cron, timeout, an operator) stops all of it.
        assert set(groups.values()) <= {proc.pid}, "a process of the tick left its process group"
        if proc.poll() is None:
            if what == "group":
                os.killpg(proc.pid, signal.SIGKILL)
            else:
                proc.kill()
        proc.wait()
        assert caught is not None, f"the tick finished before any run was seen {state}"
        assert tick, "the tick had started Snakemake"
        if what == "group":
            assert survivors(tick) == set(), "kill -9 of the tick's process group stops all of it"

        # No --unlock, no cleanup: just the next ticks.  A tick started while the killed
        # wrapper's Snakemake still runs must leave the runs to it.
        for _ in range(30):
            orphans = tick & live_processes()
            r = fa(config_path)
            assert r.returncode == 0, r.stderr
            if orphans and orphans & live_processes():
                assert "another tick is running" in r.stderr, "a tick ran beside the killed tick's Snakemake"
            if "another tick is running" in r.stderr:
                time.sleep(0.5)
                continue
            if all(db.get(n)["raw_status"] == "archived" for n in names):
                break
    finally:
        for pid in tick:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    assert_recovered(db, tmp_path, names, daq_before)


def test_status_table_and_run_history(fa, config_path, db):
    names = simulate(fa, config_path, 3)
    db.transition(names[0], "raw_status", "transferring")
    db.transition(names[0], "raw_status", "ondeck", note="transfer verified")
    db.transition(names[0], "processed_status", "queued")
    db.transition(names[0], "processed_status", "processing")
    db.transition(
        names[0],
        "processed_status",
        "failed",
        note="exit 2",
        fields={"processing": {"attempts": 3, "exit_code": 2, "log_tail": "boom\n"}},
    )
    db.update(names[1], {"transfer.attempts": 1, "transfer.error": "rsync exited with 23"})
    r = fa(config_path, "status")
    assert r.returncode == 0, r.stderr
    rows = [ln.split() for ln in r.stdout.splitlines()]
    assert rows[0] == ["raw_status", "processed_status", "runs"]
    assert ["acquired", "none", "2"] in rows and ["ondeck", "failed", "1"] in rows and ["total", "3"] in rows
    assert any(ln.startswith("  HELD") and names[0] in ln and "retry" in ln for ln in r.stdout.splitlines())
    assert any(
        ln.startswith("  RETRY") and names[1] in ln and "rsync exited with 23" in ln for ln in r.stdout.splitlines()
    )
    assert fa(config_path, "status", "--check").returncode == 3

    number = db.get(names[0])["number"]
    r = fa(config_path, "status", str(number))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == f"run {names[0]}"
    assert '"raw_status": "ondeck"' in r.stdout and '"exit_code": 2' in r.stdout
    history = lines[lines.index("history:") + 1 :]
    assert len(history) == 5
    assert "raw_status" in history[1] and "transferring -> ondeck" in history[1] and "(transfer verified)" in history[1]
    assert "processing -> failed" in history[4] and "(exit 2)" in history[4]
    assert all(f"on {db.get(names[0])['history'][0]['host']}" in h for h in history)

    r = fa(config_path, "status", names[1], "170101_9999")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert f"run {names[1]}" in r.stdout and "170101_9999" in r.stderr


def test_snakemake_lint_finds_nothing(config_path, nx_server, tmp_path):
    """snakemake --lint on the default config (paths and runs DB of this test laid over it)."""
    env = {**os.environ, fa_config.DB_ENV: nx_server}
    r = subprocess.run(
        [
            str(Path(sys.executable).with_name("snakemake")),
            "--lint",
            "--snakefile",
            "workflow/Snakefile",
            "--configfile",
            str(config_path),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "Congratulations, your workflow is in a good condition!" in out, out
    assert not (tmp_path / "work" / "state").exists(), "--lint only reads: no lock, no plan, no state"
