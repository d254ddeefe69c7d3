"""Issue 10's fault matrix: the faults no other test covered, each against the real components.

The README's "Reliability" section maps every fault F1-F12 to its test; the
ones here are those no other file showed, grouped so that one set of runs
goes through several faults in turn (a tick costs seconds).  Every test ends
the same way: the next ticks recover without a human, each run is archived
exactly once, and `restore` brings every run back byte for byte as the DAQ
wrote it (digests taken before any fault).
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from types import SimpleNamespace

import psutil
import pymongo
import pytest
import yaml

from fa_testlib import FA, digests, simulate
from fulliautomatix import config as fa_config
from fulliautomatix import embedded


def env(**more):
    return {**{k: v for k, v in os.environ.items() if k != fa_config.DB_ENV}, **more}


def steps(doc):
    return [(h["field"], h["from"], h["to"]) for h in doc["history"]]


def recovered(fa, cfg, tmp_path, daq: dict[str, dict], status, most=8, env_=None):
    """Plain ticks until every run is archived; then each run archived once and restored byte for byte."""
    for _ in range(most):
        r = fa(cfg, env=env_)
        assert "Traceback" not in r.stderr, r.stderr
        if all(status(n)["raw_status"] == "archived" for n in daq):
            break
    else:
        raise AssertionError(f"not archived after {most} ticks; the last said:\n{r.stderr}")
    members = []
    for t in sorted((tmp_path / "archive").glob("*.tar")):
        with tarfile.open(t) as tar:
            members += tar.getnames()
    assert sorted(members) == sorted(f"{n}.tar.zst" for n in daq), "each run archived exactly once"
    to = tmp_path / "restored"
    r = fa(cfg, "restore", *daq, "--to", str(to), env=env_)
    assert r.returncode == 0, r.stderr
    for run, files in daq.items():
        assert digests(to / run) == files, f"run {run}: restored copy differs from the DAQ's"


def script(path: Path, text: str) -> str:
    path.write_text("#!/bin/sh\n" + text)
    path.chmod(0o755)
    return str(path)


# -- F1, F2 and F10: the transfer's copy killed or corrupted; then ten ticks at once ------------------

FLIP = f"{shlex.quote(sys.executable)} -c " + shlex.quote(
    "import sys; p = sys.argv[1]; b = bytearray(open(p, 'rb').read()); b[len(b) // 2] ^= 255; open(p, 'wb').write(b)"
)


def faulty_transfer(tmp_path: Path) -> list[str]:
    """transfer.rsync: the real rsync, made to fail by the next line of `faults`: kill (rsync killed
    -9 half-way, its partial copy left) or corrupt (a byte of the copy flipped before verification)."""
    faults = tmp_path / "transfer-faults"
    return [
        script(
            tmp_path / "faulty-transfer",
            f"""
fault=$(head -n1 {faults} 2>/dev/null); sed -i 1d {faults} 2>/dev/null
for dest; do :; done
if [ "$fault" = kill ]; then
  rsync --bwlimit=100 "$@" & pid=$!
  while [ -z "$(find "$dest" -type f 2>/dev/null | head -n1)" ]; do sleep 0.05; done
  kill -9 $pid; wait $pid
  exit $?
fi
rsync "$@" || exit $?
[ "$fault" = corrupt ] && {FLIP} "$(find "$dest" -type f | sort | head -n1)"
exit 0
""",
        ),
        "-a",
        "--partial",
    ], faults


def test_f1_f2_f10_a_killed_and_a_corrupted_transfer_are_redone_then_ten_ticks_at_once(fa, make_config, db, tmp_path):
    rsync, faults = faulty_transfer(tmp_path)
    cfg = make_config(transfer={"rsync": rsync, "concurrency": 1}, archive={"max_wait_days": 0})
    names = simulate(fa, cfg, 3, events=600)
    daq = {n: digests(tmp_path / "daq" / n) for n in names}
    faults.write_text("kill\ncorrupt\n")  # the tick's first transfer is killed, its second corrupted
    r = fa(cfg, "--transfer")
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    failed = [n for n in names if db.get(n)["raw_status"] == "acquired"]
    assert len(failed) == 2 and len([n for n in names if db.get(n)["raw_status"] == "ondeck"]) == 1, r.stderr
    for n in failed:
        assert len([ln for ln in r.stderr.splitlines() if f"run {n}" in ln]) == 1, r.stderr
        assert not (tmp_path / "cluster" / "raw" / n).exists(), "a partial or corrupted copy is never trusted"

    # F10: ten ticks at once, then plain ticks: one works, nine say so and do nothing, each run once.
    ticks = [
        subprocess.Popen(
            [FA, "--config", str(cfg)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=env(),
            stdin=subprocess.DEVNULL,
        )
        for _ in range(10)
    ]
    errs = [t.communicate(timeout=600)[1] for t in ticks]
    assert [t.returncode for t in ticks] == [0] * 10, errs
    assert sum("another tick is running" in e for e in errs) == 9, errs
    for n in names:
        doc = db.get(n)
        done = [s for s in steps(doc) if s[2] in ("ondeck", "processed", "compressed")]
        assert len(done) == len(set(done)), f"run {n} was handled twice: {steps(doc)}"
    recovered(fa, cfg, tmp_path, daq, db.get)
    assert sorted(db.get(n)["transfer"]["attempts"] for n in names) == [1, 2, 2]


# -- F4 and F5: the runs DB down at the start, and killed mid-tick in each stage -----------------------


@pytest.fixture
def own_db(tmp_path):
    """An nx-27017 server of this test's own: SimpleNamespace(uri, kill(), start())."""
    state = tmp_path / "own-db"
    state.mkdir()
    servers = []

    def start() -> str:
        uri, proc = embedded.ensure(state)
        servers.append(proc)
        ns.uri = uri
        return uri

    def kill() -> None:
        psutil.Process(int(embedded.paths(state)["addr"].read_text().split()[1])).kill()
        (embedded.paths(state)["addr"]).unlink(missing_ok=True)

    ns = SimpleNamespace(uri=None, start=start, kill=kill)
    start()
    yield ns
    for proc in servers:
        embedded.stop(state, proc)


def wait_for(col, names, field, state, tick: subprocess.Popen, timeout=120) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and tick.poll() is None:
        if col.find_one({"name": {"$in": names}, field: state}, {"_id": 1}):
            return True
        time.sleep(0.01)
    return False


SLOW_STAGES = {  # a tick's stages made slow enough to catch a run in each state
    "transfer": {"rsync": ["sh", "-c", 'sleep 0.5; exec rsync -a --partial "$@"', "slow-rsync"]},
    "processing": {
        "command": 'sh -c \'sleep 0.5; exec "$0" -m fulliautomatix.processor --config "$1" '
        '--input "$2" --output "$3"\' {python} {pax_config} {raw} {output}'
    },
}


def test_f4_f5_the_runs_db_down_at_start_and_killed_in_each_stage(fa, make_config, tmp_path, own_db):
    cfg = make_config(runs_db={"uri": own_db.uri, "timeout_seconds": 2}, **SLOW_STAGES)
    names = simulate(fa, cfg, 2, events=800)
    daq = {n: digests(tmp_path / "daq" / n) for n in names}
    rdb = yaml.safe_load(cfg.read_text())["runs_db"]

    # F4: down when the tick starts: one line, exit 1, nothing moved on disk.
    own_db.kill()
    before = digests(tmp_path / "daq"), digests(tmp_path / "cluster") if (tmp_path / "cluster").exists() else {}
    r = fa(cfg)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert [ln for ln in r.stderr.splitlines() if "runs DB" in ln or "runs_db" in ln], r.stderr
    assert (
        digests(tmp_path / "daq"),
        digests(tmp_path / "cluster") if (tmp_path / "cluster").exists() else {},
    ) == before
    own_db.start()

    # F5: killed while a run is transferring, processing, compressing (archiving: test_reliability.py).
    for field, state in (
        ("raw_status", "transferring"),
        ("processed_status", "processing"),
        ("raw_status", "compressing"),
    ):
        col = pymongo.MongoClient(own_db.uri)[rdb["database"]][rdb["collection"]]
        tick = subprocess.Popen(
            [FA, "--config", str(cfg)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=env(**{fa_config.DB_ENV: own_db.uri}),
            stdin=subprocess.DEVNULL,
        )
        caught = wait_for(col, names, field, state, tick)
        if caught:
            own_db.kill()
        _, err = tick.communicate(timeout=300)
        assert caught, f"no run was seen {state}: {err}"
        assert "Traceback" not in err and tick.returncode == 1 and "done" not in err.splitlines()[-1], err
        own_db.start()
    col = pymongo.MongoClient(own_db.uri)[rdb["database"]][rdb["collection"]]
    recovered(fa, cfg, tmp_path, daq, lambda n: col.find_one({"name": n}), env_=env(**{fa_config.DB_ENV: own_db.uri}))
    for n in names:
        doc = col.find_one({"name": n})
        done = [s for s in steps(doc) if s[2] in ("ondeck", "processed", "compressed", "archived")]
        assert len(done) == len(set(done)) == 4, steps(doc)


# -- F6 and F9: the processor exits 1; kill -9 of the tick's process group while compressing -------------


def test_f6_f9_a_failing_processor_then_a_tick_killed_while_compressing(fa, make_config, db, tmp_path):
    switch = tmp_path / "fail-once"
    processor = script(
        tmp_path / "processor",
        f"""
if [ -e {switch} ]; then rm {switch}; echo "injected failure" >&2; exit 1; fi
exec "$@"
""",
    )
    cfg = make_config(
        processing={
            "command": f"{processor} {{python}} -m fulliautomatix.processor --config "
            "{pax_config} --input {raw} --output {output}"
        }
    )
    names = simulate(fa, cfg, 2, events=4000)
    daq = {n: digests(tmp_path / "daq" / n) for n in names}
    switch.touch()
    r = fa(cfg, "--transfer", "--process")
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    failed = [n for n in names if db.get(n)["processed_status"] == "failed"]
    assert len(failed) == 1 and [ln for ln in r.stderr.splitlines() if failed[0] in ln and "exited with 1" in ln]

    tick = subprocess.Popen(
        [FA, "--config", str(cfg)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env(),
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    caught = wait_for(db.col, names, "raw_status", "compressing", tick)
    if caught:
        os.killpg(tick.pid, signal.SIGKILL)
    tick.wait()
    assert caught, "the tick finished before any run was seen compressing"
    recovered(fa, cfg, tmp_path, daq, db.get)
    doc = db.get(failed[0])  # (a second attempt may have been the one the kill stopped: it counts too)
    assert ("processed_status", "processing", "failed") in steps(doc) and doc["processing"]["attempts"] >= 2


# -- F11: scratch and archive disks full (a small tmpfs), then freed ---------------------------------------


def in_tmpfs(tmp_path: Path, mount: Path, size: str, argv: list[str]) -> SimpleNamespace:
    """Run argv with a tmpfs of `size` at `mount`, in a private mount namespace (we are root here and in CI)."""
    mount.mkdir(parents=True, exist_ok=True)
    q = shlex.quote
    sh = (
        f"mount -t tmpfs -o size={size} fa-test-full {q(str(mount))} || exit 99\n"
        f"{shlex.join(argv)} 2>{q(str(tmp_path / '.err'))}; echo $? >{q(str(tmp_path / '.rc'))}"
    )
    try:
        r = subprocess.run(
            ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", sh],
            capture_output=True,
            text=True,
            timeout=600,
            stdin=subprocess.DEVNULL,
            env=env(),
        )
    except FileNotFoundError:
        pytest.skip("unshare is not installed: no private tmpfs for a full disk")
    if r.returncode == 99 or "unshare failed" in r.stderr:
        pytest.skip(f"mount of a tmpfs refused here (not root?): {r.stderr.strip()}")
    return SimpleNamespace(returncode=int((tmp_path / ".rc").read_text()), stderr=(tmp_path / ".err").read_text())


def test_f11_full_scratch_and_archive_disks_are_resumed_once_there_is_room(fa, make_config, db, tmp_path):
    cfg = make_config()
    names = simulate(fa, cfg, 2, events=4000)  # about 2 MB each
    daq = {n: digests(tmp_path / "daq" / n) for n in names}
    r = in_tmpfs(tmp_path, tmp_path / "cluster", "1m", [FA, "--config", str(cfg), "--transfer"])
    assert r.returncode == 1 and "No space left on device" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert "acquired" in {db.get(n)["raw_status"] for n in names}, "the disk was full"
    assert fa(cfg, "--transfer", "--process", "--compress").returncode == 0, "room again: the runs go on"
    assert [db.get(n)["raw_status"] for n in names] == ["compressed"] * 2
    r = in_tmpfs(tmp_path, tmp_path / "archive", "64k", [FA, "--config", str(cfg), "--archive"])
    assert r.returncode == 1 and "No space left on device" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert [db.get(n)["raw_status"] for n in names] == ["compressed"] * 2
    recovered(fa, cfg, tmp_path, daq, db.get)


# -- found while writing F11: a copy on scratch that vanished after its transfer verified ---------------


def test_a_copy_on_scratch_that_vanished_is_transferred_again(fa, make_config, db, tmp_path):
    cfg = make_config(processing={"max_attempts": 1})
    names = simulate(fa, cfg, 2)
    daq = {n: digests(tmp_path / "daq" / n) for n in names}
    assert fa(cfg, "--transfer").returncode == 0
    shutil.rmtree(tmp_path / "cluster" / "raw" / names[0])  # scratch purged by the cluster
    r = fa(cfg)  # never processed: the run is transferred again from its DAQ copy, and then processed
    assert r.returncode == 1 and f"run {names[0]}: its copy on scratch" in r.stderr, r.stderr
    assert "the DAQ copy still verifies" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert (db.get(names[0]).get("processing") or {}).get("exit_code") is None  # no processor read a partial copy
    recovered(fa, cfg, tmp_path, daq, db.get, most=2)
