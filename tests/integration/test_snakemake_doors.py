"""Snakemake's own commands, used as a Snakemake user would (issue 9).

Real `snakemake` and `fulliautomatix` processes against nx-27017: profiles
choose their cluster, read-only verbs change nothing anywhere, forced
rebuilds never pretend, a busy tick is one line, batches follow name order.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml

from fa_testlib import FA, ROOT, simulate

SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def smk(*args: str, config_path: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the real snakemake from the project root, as the README shows."""
    argv = SNAKEMAKE + list(args) + (["--configfile", str(config_path)] if config_path else [])
    env = {k: v for k, v in os.environ.items() if not k.startswith("FULLIAUTOMATIX_")}
    return subprocess.run(
        argv, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env, stdin=subprocess.DEVNULL
    )


def tree(root: Path) -> dict[str, str]:
    """Every file under root (but Snakemake's own .snakemake bookkeeping): path -> sha256 and mode."""
    out = {}
    if not root.exists():
        return out
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if rel.startswith(".snakemake"):
            continue
        if p.is_symlink():
            out[rel] = "-> " + os.readlink(p)
        elif p.is_file():
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest() + f" {p.stat().st_mode:o}"
        else:
            out[rel] = f"dir {p.stat().st_mode:o}"
    return out


def our_processes(marker: str) -> set[int]:
    """Processes whose command line mentions marker (a work dir): servers, guards, jobs."""
    found = set()
    for proc in psutil.process_iter(["pid", "cmdline"]):
        try:
            if any(marker in word for word in proc.info["cmdline"] or []):
                found.add(proc.pid)
        except psutil.Error:
            continue
    return found


# -- 1. profiles choose their cluster ------------------------------------------------------


@pytest.mark.parametrize("profile", ["conte", "halstead", "rice", "brown", "slurm", "testbed"])
def test_a_cluster_profile_plans_on_its_cluster(fa, make_config, tmp_path, profile):
    """-n with the default config (no cluster: key says it) shows that cluster's queue and walltime;
    the test bed's cluster is defined in config/testbed.yaml, given first, as the README shows."""
    config_path = make_config()
    simulate(fa, config_path, 1, events=1000)
    site = tmp_path / "site.yaml"
    site.write_text(yaml.safe_dump({**yaml.safe_load(config_path.read_text()), "cluster": "local"}))
    configs = ["config/testbed.yaml", str(site)] if profile == "testbed" else [str(site)]
    proc = smk("--profile", f"profiles/{profile}", "-n", "--configfile", *configs)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout + proc.stderr
    assert "rule process_run:" in out
    # 1000 events at 1e6 events/hour, x1.2, floored at 5 minutes: standby, 00:05:00.
    assert "queue=standby" in out and "walltime=00:05:00" in out, out[-3000:]
    if profile == "slurm":
        assert "slurm_partition=standby" in out and "runtime=5" in out


def test_the_pbs_profiles_differ_only_in_their_cluster():
    texts = {}
    for name in ("conte", "halstead", "rice", "brown"):
        data = yaml.safe_load((ROOT / "profiles" / name / "config.yaml").read_text())
        assert data.pop("config") == {"profile_cluster": name}
        texts[name] = data
    assert len({yaml.safe_dump(t, sort_keys=True) for t in texts.values()}) == 1
    testbed = yaml.safe_load((ROOT / "profiles" / "testbed" / "config.yaml").read_text())
    testbed.pop("config")
    assert testbed == texts["conte"]
    base = yaml.safe_load((ROOT / "workflow" / "profiles" / "default" / "config.yaml").read_text())
    assert not set(base) & set(texts["conte"]), "a key in both would be decided by the shared base"


def test_the_wrapper_cluster_flag_wins_over_the_profile(make_config):
    from fulliautomatix import config as fa_config

    config = fa_config.load(make_config(), {"profile_cluster": "conte"})
    assert config["tick"]["cluster"] == "conte"
    config = fa_config.load(make_config(), {"profile_cluster": "conte", "tick": {"cluster": "local"}})
    assert config["tick"]["cluster"] == "local"
    with pytest.raises(fa_config.ConfigError, match="named by the profile"):
        fa_config.load(make_config(), {"profile_cluster": "nowhere"})


# -- 2. read-only verbs read only -----------------------------------------------------------

READ_ONLY_VERBS = [
    ["-n"],
    ["--lint"],
    ["--summary"],
    ["--detailed-summary"],
    ["--list-rules"],
    ["--dag"],
    ["--rulegraph"],
]


@pytest.fixture(scope="module")
def runs_in_every_state(tmp_path_factory):
    """An embedded runs DB (no server left running) with runs in every state, and a remote DAQ
    whose ssh would record any call.  Made once: every verb must leave it as it is."""

    def fa(config_path, *args):
        env = {k: v for k, v in os.environ.items() if not k.startswith("FULLIAUTOMATIX_")}
        return subprocess.run(
            [FA, "--config", str(config_path), *args],
            capture_output=True,
            text=True,
            env=env,
            stdin=subprocess.DEVNULL,
            timeout=300,
        )

    tmp_path = tmp_path_factory.mktemp("every-state")
    calls = tmp_path / "ssh-calls"
    fake_ssh = tmp_path / "record-ssh"
    fake_ssh.write_text(f'#!/bin/sh\necho "$@" >> {calls}\nexit 255\n')
    fake_ssh.chmod(0o755)
    config_path = tmp_path / "config.yaml"
    config_path.write_text(
        yaml.safe_dump(
            {
                "runs_db": {"uri": "embedded"},
                "work_dir": str(tmp_path / "work"),
                "log_dir": str(tmp_path / "logs"),
                "daq": {"raw_dir": str(tmp_path / "daq")},
                "clusters": {"local": {"scratch": str(tmp_path / "cluster")}},
                "archive": {"location": str(tmp_path / "archive"), "batch_runs": 2, "max_wait_days": 0},
            }
        )
    )
    names = simulate(fa, config_path, 8, events=1000)
    # archived, compressed, processed, ondeck, acquired
    for args in (
        ["--run", *names[:4]],
        ["--transfer", "--process", "--compress", "--run", names[4]],
        ["--transfer", "--process", "--run", names[5]],
        ["--transfer", "--run", names[6]],
    ):
        proc = fa(config_path, *args)
        assert proc.returncode == 0, proc.stderr
    from fulliautomatix import config as fa_config
    from fulliautomatix import runsdb

    with runsdb.connect(fa_config.load(config_path)) as db:
        db.insert_run(
            {
                "name": "261130_0001",
                "number": 1,
                "events": 10,
                "source": "LED",
                "raw_status": "acquired",
                "raw_location": "zinc",
                "processed_status": "none",
            }
        )
    cfg = yaml.safe_load(config_path.read_text())
    cfg["daq"].update(host="fa-daq", ssh=[str(fake_ssh)])
    config_path.write_text(yaml.safe_dump(cfg))
    return config_path, calls


def snapshot(config_path: Path) -> dict:
    cfg = yaml.safe_load(config_path.read_text())
    return {
        name: tree(Path(cfg[key]) if key != "daq" else Path(cfg["daq"]["raw_dir"]))
        for name, key in (("work", "work_dir"), ("logs", "log_dir"), ("daq", "daq"))
    } | {"scratch": tree(Path(cfg["clusters"]["local"]["scratch"])), "archive": tree(Path(cfg["archive"]["location"]))}


@pytest.mark.parametrize("verb", READ_ONLY_VERBS, ids=lambda v: v[0])
def test_read_only_verbs_change_nothing(runs_in_every_state, verb):
    config_path, calls = runs_in_every_state
    work = yaml.safe_load(config_path.read_text())["work_dir"]
    before = snapshot(config_path)
    db_file = Path(work) / "state" / "runsdb.sqlite"
    assert db_file.exists() and not our_processes(work)
    proc = smk("--profile", "profiles/local", *verb, config_path=config_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert snapshot(config_path) == before  # the embedded DB file is in work/state: byte for byte
    assert not calls.exists(), f"ssh was started: {calls.read_text()}"
    assert not our_processes(work), "a process was left running"


def test_dry_run_beside_a_running_tick(fa, make_config, tmp_path):
    """-n while a tick runs (its server up) reads through that server and disturbs nothing."""
    slow = tmp_path / "slow-processor"
    slow.write_text('#!/bin/sh\nsleep 4\nmkdir -p "$2" && echo done > "$2/out"\n')
    slow.chmod(0o755)
    config_path = make_config(runs_db={"uri": "embedded"}, processing={"command": f"{slow} {{raw}} {{output}}"})
    names = simulate(fa, config_path, 2, events=1000)
    work = Path(yaml.safe_load(config_path.read_text())["work_dir"])
    tick = subprocess.Popen(
        [sys.executable, "-m", "fulliautomatix.cli", "--config", str(config_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not list((work / "state" / "ondeck").glob("*.json")) and time.monotonic() < deadline:
        time.sleep(0.2)
    dry = smk("--profile", "profiles/local", "-n", config_path=config_path)
    assert dry.returncode == 0, dry.stderr[-2000:]
    _, err = tick.communicate(timeout=120)
    assert tick.returncode == 0, err
    status = fa(config_path, "status", *names)
    assert status.stdout.count('"processed_status": "processed"') == len(names), status.stdout


# -- 3. targeted rebuilds -----------------------------------------------------------------


def test_a_target_builds_one_run_up_to_its_stage(fa, config_path, db):
    names = simulate(fa, config_path, 2, events=1000)
    proc = smk("--profile", "profiles/local", f"state/ondeck/{names[0]}.json", config_path=config_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert db.get(names[0])["raw_status"] == "ondeck"
    assert db.get(names[1])["raw_status"] == "acquired"


def test_forcing_a_finished_run_refuses_and_keeps_its_marker_and_log(fa, config_path, db):
    names = simulate(fa, config_path, 1, events=1000)
    run = names[0]
    proc = smk("--profile", "profiles/local", f"state/processed/{run}.json", config_path=config_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    work = Path(yaml.safe_load(config_path.read_text())["work_dir"])
    marker = work / "state" / "processed" / f"{run}.json"
    log = work / "logs" / "process_run" / f"{run}.log"
    marker_before, log_before = marker.read_bytes(), log.resolve().read_bytes()
    assert log_before
    doc_before = db.get(run)
    for force in (["-f"], ["--forcerun", "process_run"]):
        proc = smk("--profile", "profiles/local", *force, f"state/processed/{run}.json", config_path=config_path)
        assert proc.returncode != 0
        lines = [line for line in proc.stderr.splitlines() if line.startswith("fulliautomatix:")]
        assert len(lines) == 1 and f"`fulliautomatix --reprocess {run}`" in lines[0], lines
        assert "1 of 1 steps (100%) done" not in proc.stderr
        assert marker.read_bytes() == marker_before
    attempts = sorted((work / "logs" / "process_run" / run).glob("*.log"))
    assert len(attempts) == 3 and log_before in [a.read_bytes() for a in attempts]
    assert db.get(run)["history"] == doc_before["history"]


def test_a_target_leaves_a_held_run_alone_until_retry(fa, make_config, db):
    """A run's marker named as the target must not try a held run again behind the operator's back."""
    cfg = make_config()
    [run] = simulate(fa, cfg, 1, events=1000)
    shutil.rmtree(Path(yaml.safe_load(cfg.read_text())["daq"]["raw_dir"]) / run)
    fa(cfg)
    held = db.get(run)
    assert held["raw_status"] == "acquired" and held["transfer"]["missing"], held["transfer"]
    proc = smk("--profile", "profiles/local", f"state/ondeck/{run}.json", config_path=cfg)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("fulliautomatix:")]
    assert len(lines) == 1 and f"`fulliautomatix retry {run}`" in lines[0] and "held" in lines[0], lines
    assert db.get(run)["history"] == held["history"] and db.get(run)["transfer"] == held["transfer"]


def test_reprocess_alone_does_only_the_reprocessing(fa, config_path, db):
    names = simulate(fa, config_path, 2, events=1000)
    assert fa(config_path, "--run", names[0]).returncode == 0
    assert db.get(names[0])["raw_status"] == "archived" or db.get(names[0])["raw_status"] == "compressed"
    proc = fa(config_path, "--reprocess", names[0])
    assert proc.returncode == 0, proc.stderr
    assert db.get(names[1])["raw_status"] == "acquired", "--reprocess moved another run"
    outputs = db.get(names[0])["processed_outputs"]
    assert [o["tag"] for o in outputs] == [None, "ref-1-r1"]
    said = [ln.split(": ", 2)[2] for ln in proc.stderr.splitlines() if ln.startswith("fulliautomatix: tick ")]
    assert said[0] == f"stages none; reprocess {names[0]}", proc.stderr  # the tick names what it does
    assert said[-1].startswith("transferred 0 (0.00 GiB), submitted 0, processed 0, reprocessed 1, compressed 0,")


# -- 4. a busy tick is one line ------------------------------------------------------------


def test_a_busy_tick_is_one_line_through_either_door(fa, config_path, db):
    names = simulate(fa, config_path, 1, events=1000)
    work = Path(yaml.safe_load(config_path.read_text())["work_dir"])
    (work / "state").mkdir(parents=True, exist_ok=True)
    with open(work / "state" / "tick.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # what a running tick holds
        lock.write(f"{os.getpid()}\n")
        lock.flush()
        wrapper = fa(config_path)
        direct = smk("--profile", "profiles/local", config_path=config_path)
    assert wrapper.returncode == 0 and direct.returncode == 0, direct.stderr[-2000:]
    expected = f"another tick is running (pid {os.getpid()}); this one does nothing"
    assert wrapper.stderr.strip() == f"fulliautomatix: {expected}"
    ours = [line for line in direct.stderr.splitlines() if line.startswith("fulliautomatix")]
    assert ours == [f"fulliautomatix info: {expected}"] and "Traceback" not in direct.stderr
    assert db.get(names[0])["raw_status"] == "acquired"


# -- 5. batches in name order, archived by the tick that compressed them -------------------


def test_one_tick_archives_batches_in_name_order(fa, make_config, db, tmp_path):
    config_path = make_config(archive={"batch_runs": 4})
    names = simulate(fa, config_path, 8, events=1000)
    proc = smk("--profile", "profiles/local", config_path=config_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert {db.get(n)["raw_status"] for n in names} == {"archived"}
    batches = {db.get(n)["archive"]["batch"] for n in names}
    assert batches == {f"{names[0]}_to_{names[3]}", f"{names[4]}_to_{names[7]}"}
    for n in names:
        first, last = db.get(n)["archive"]["batch"].split("_to_")
        assert first <= n <= last
    # The tick's end, through this door too: finish_tick's record and the report, after the archive.
    state = Path(yaml.safe_load(config_path.read_text())["work_dir"]) / "state"
    (tick,) = [d for d in (state / "ticks").iterdir() if d.is_dir()]
    assert (tick / "finish.json").is_file() and (tick / "report.json").is_file()
    archived = max(p.stat().st_mtime for p in (state / "archived").glob("*.json"))
    assert (tick / "report.json").stat().st_mtime >= archived
    assert Path(json.loads((tick / "report.json").read_text())["path"]).is_file()
