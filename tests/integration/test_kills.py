"""Issue 10, finding 3 (F9): the wrapper and its Snakemake killed by pid (not their process group), while
a run is transferred, processed or compressed.

Their jobs run on.  The next tick must not start work on a run while any
process of the killed tick still works on it (per-run claims,
fulliautomatix.claims), the killed job's log is kept whole, and once the
orphans are done no nx-27017 server of the work dir is left running (the
embedded server's watcher, fulliautomatix.embedded).  Everything is real:
the embedded runs DB, the wrapper, Snakemake, rsync and the processor.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from fa_testlib import FA, digests
from fulliautomatix import config as fa_config


def env():
    return {k: v for k, v in os.environ.items() if k != fa_config.DB_ENV}


def run_doc(fa, cfg, run) -> dict:
    """The run's document as `fulliautomatix status RUN` prints it."""
    r = fa(cfg, "status", run)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    return json.loads("\n".join(lines[1 : lines.index("history:")]))


def servers(state: Path) -> list[psutil.Process]:
    """The nx-27017 servers serving this work dir's runs DB file."""
    found = []
    for p in psutil.process_iter(["cmdline"]):
        cmd = p.info["cmdline"] or []
        if any("nx_27017" in c for c in cmd) and str(state / "runsdb.sqlite") in cmd:
            found.append(p)
    return found


def wait(what, timeout=120, step=0.1):
    deadline = time.monotonic() + timeout
    while not what():
        assert time.monotonic() < deadline, f"timed out waiting for {what.__doc__ or what}"
        time.sleep(step)


def kill_wrapper_and_snakemake(tick: subprocess.Popen) -> list[psutil.Process]:
    """SIGKILL to the wrapper and its Snakemake, by pid; the processes they leave running."""
    wrapper = psutil.Process(tick.pid)
    snakemake = [c for c in wrapper.children() if any("snakemake" in w for w in c.cmdline())]
    assert len(snakemake) == 1, wrapper.children()
    orphans = snakemake[0].children(recursive=True)
    snakemake[0].kill()
    wrapper.kill()
    tick.wait()
    return [p for p in orphans if p.is_running()]


def slow_processor(records: Path) -> str:
    """processing.command: the reference processor after 10 s, recording each start and end per run."""
    script = (
        f'echo "start $(date +%s.%N)" >> {records}/"$1"; sleep 10; '
        '"$0" -m fulliautomatix.processor --config "$2" --input "$3" --output "$4"; rc=$?; '
        f'echo "end $(date +%s.%N)" >> {records}/"$1"; exit $rc'
    )
    return f"sh -c {shlex.quote(script)} {{python}} {{run}} {{pax_config}} {{raw}} {{output}}"


CASES = {
    # stage killed in, config, events, when the job is at work
    "processing": ({}, 200, lambda tmp, run: (tmp / "records" / run).is_file()),
    "transferring": (
        {"transfer": {"rsync": ["rsync", "-a", "--partial", "--bwlimit=250"]}},
        4000,
        lambda tmp, run: any((tmp / "cluster" / "raw" / ".incoming").glob(f"{run}/*")),
    ),
    "compressing": (  # zstd -19: seconds for the run, long enough to kill the tick while it writes
        {"compression": {"level": 19, "threads": 1}},
        40000,
        lambda tmp, run: any((tmp / "cluster" / "compressed").glob(f".{run}*.partial")),
    ),
}
RULES = {"processing": "process_run", "transferring": "transfer_run", "compressing": "compress_run"}


@pytest.mark.parametrize("case", list(CASES))
def test_no_tick_works_on_a_run_an_orphaned_job_still_works_on(fa, make_config, tmp_path, case):
    overrides, events, at_work = CASES[case]
    (tmp_path / "records").mkdir()
    cfg = make_config(
        runs_db={"uri": "embedded"},
        processing={"command": slow_processor(tmp_path / "records")},
        archive={"max_wait_days": 0},
        **overrides,
    )
    state = tmp_path / "work" / "state"
    r = fa(cfg, "simulate-daq", "--runs", "1", "--events", str(events))
    assert r.returncode == 0, r.stderr
    run = r.stderr.strip().rsplit(": ", 1)[1]
    daq = digests(tmp_path / "daq" / run)

    tick = subprocess.Popen(
        [FA, "--config", str(cfg)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        env=env(),
        start_new_session=True,
    )
    try:
        wait(lambda: at_work(tmp_path, run) or tick.poll() is not None)
        assert tick.poll() is None, "the tick ended before its job was at work"
        orphans = kill_wrapper_and_snakemake(tick)
        assert orphans, "the killed tick's job runs on"
        rule = RULES[case]
        [killed_log] = list((tmp_path / "work" / "logs" / rule / run).glob("*.log"))

        r = fa(cfg)  # while the orphan still works
        assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
        line = [ln for ln in r.stderr.splitlines() if run in ln and "still works on it" in ln]
        assert len(line) == 1 and rule in line[0], r.stderr
        assert list((tmp_path / "work" / "logs" / rule / run).glob("*.log")) == [killed_log], (
            "no job of the new tick started on the run"
        )

        wait(lambda: not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in orphans), timeout=300)
        for _ in range(8):
            assert fa(cfg).returncode == 0
            if run_doc(fa, cfg, run)["raw_status"] == "archived":
                break
    finally:
        try:
            os.killpg(tick.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    doc = run_doc(fa, cfg, run)
    assert doc["raw_status"] == "archived", doc
    assert doc["transfer"]["attempts"] == 1 and doc["processing"]["attempts"] == 1, "each stage ran once"
    starts = (tmp_path / "records" / run).read_text().split()
    assert starts[0::2] == ["start", "end"], "the processor ran once, never beside itself"
    text = killed_log.read_text()
    assert ("fulliautomatix.processor" in text) if case == "processing" else ("verified" in text), (
        "the killed job's own log is kept whole"
    )
    r = fa(cfg, "restore", run, "--to", str(tmp_path / "restored"))
    assert r.returncode == 0, r.stderr
    assert digests(tmp_path / "restored" / run) == daq
    wait(lambda: not servers(state), timeout=30)  # its watcher stops the killed wrapper's server


def test_a_wrapper_killed_alone_leaves_no_runs_db_server(fa, make_config, tmp_path):
    """kill -9 of the wrapper in any tick (its Snakemake finishes alone): the server it started stops."""
    cfg = make_config(runs_db={"uri": "embedded"})
    state = tmp_path / "work" / "state"
    assert fa(cfg, "simulate-daq", "--runs", "2", "--events", "200").returncode == 0
    tick = subprocess.Popen(
        [FA, "--config", str(cfg)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        env=env(),
        start_new_session=True,
    )
    try:
        wait(lambda: servers(state) or tick.poll() is not None)
        wait(lambda: any("snakemake" in " ".join(c.cmdline()) for c in psutil.Process(tick.pid).children()))
        tick.kill()
        tick.wait()
        wait(lambda: not servers(state), timeout=300)  # once its Snakemake and jobs are done
    finally:
        try:
            os.killpg(tick.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    r = fa(cfg, "status")
    assert r.returncode == 0, r.stderr
    assert not servers(state), "status stops the server it started, too"
