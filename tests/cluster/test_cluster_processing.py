"""Processing through a real scheduler (testbed/slurm, PBS commands): queues, the DB lifecycle, failures."""

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

from fa_testlib import ROOT, simulate
from slurmbed import job_info, jobs_named, steps

from fulliautomatix import config as fa_config
from fulliautomatix.batch import records
from fulliautomatix.batch import settings as batch_settings
from fulliautomatix.batch import status as batch_status


def test_queue_by_walltime_and_the_lifecycle_in_the_db(fa, cluster_config, db, slurm, prefix, tmp_path):
    cfg = cluster_config(
        processing={"walltime": {"events_per_hour": {"default": 1000000, "slow": 100, "huge": 1}}},
        clusters={
            "testbed": {
                "queues": [
                    {"name": "standby", "max_walltime": "04:00:00"},
                    {"name": "physics", "max_walltime": "24:00:00"},
                ]
            }
        },
    )
    (short,) = simulate(fa, cfg, 1, events=300)
    (long,) = simulate(fa, cfg, 1, events=500, source="slow")  # 5 h x 1.2: longer than standby allows
    (huge,) = simulate(fa, cfg, 1, events=50, source="huge")  # 50 h, kept to the 48 h ceiling: no queue takes it
    r = fa(cfg)
    assert f"run {huge}: needs a walltime of 48:00:00, longer than any queue allows" in r.stderr, r.stderr

    jobs = {j["name"]: j for j in jobs_named(slurm, prefix)}
    assert set(jobs) == {f"{prefix}-{short}", f"{prefix}-{long}"}, "the run too long for every queue is never submitted"
    s, lng, h = db.get(short), db.get(long), db.get(huge)
    assert (s["processing"]["queue"], s["processing"]["walltime"]) == ("standby", "00:05:00")  # the 5-minute floor
    assert (lng["processing"]["queue"], lng["processing"]["walltime"]) == ("physics", "06:00:00")
    # ... and the scheduler really ran them there
    assert job_info(slurm, s["processing"]["job_id"])["partition"] == "standby"
    assert job_info(slurm, lng["processing"]["job_id"]) == {
        "state": "COMPLETED",
        "partition": "physics",
        "limit": "6:00:00",
    }
    assert h["processed_status"] == "none" and "needs a walltime" in h["processing"]["error"]

    for doc in (s, lng):
        assert doc["processed_status"] == "processed", doc.get("processing")
        assert steps(doc) == [("none", "queued"), ("queued", "processing"), ("processing", "processed")]
        p = doc["processing"]
        assert p["job_id"] == jobs[f"{prefix}-{doc['name']}"]["id"]
        assert (p["attempts"], p["exit_code"], p["processor_version"]) == (1, 0, "ref-1")
        assert Path(p["output"]) == tmp_path / "cluster" / "processed" / doc["name"] / "ref-1"
        assert (Path(p["output"]) / "events.tsv").is_file()
        # the same tick went on to compress it, and to archive it once its batch closed
        assert doc["raw_status"] in ("compressed", "archived"), doc["raw_status"]
    queued = next(e for e in s["history"] if e["to"] == "queued")
    assert queued["note"] == f"job {s['processing']['job_id']}"


def test_failed_job_records_exit_code_and_log_tail_then_is_retried(fa, cluster_config, db, slurm, prefix):
    """Compute nodes without the runs DB: jobs run cut off from the network and only write markers."""
    fail_once = (
        'out=$1; if [ ! -e "$out.tried" ]; then mkdir -p "$(dirname "$out")"; touch "$out.tried"; '
        'echo "processor: corrupt event block in $2" >&2; exit 1; fi; shift 2; exec "$@"'
    )
    command = (
        f"bash -c {shlex.quote(fail_once)} fail-once {{output}} {{raw}} "
        "{python} -m fulliautomatix.processor --config {pax_config} --input {raw} --output {output}"
    )
    cfg = cluster_config(
        processing={"command": command, "job_db_access": "markers"},
        clusters={"testbed": {"job_prefix": ["unshare", "--net"]}},
    )
    (run,) = simulate(fa, cfg, 1)

    r = fa(cfg)
    assert r.returncode == 1
    doc = db.get(run)
    p = doc["processing"]
    assert doc["processed_status"] == "failed", p
    assert p["exit_code"] == 1 and p["attempts"] == 1 and not p["timed_out"]
    assert "processor: corrupt event block in" in p["log_tail"]
    assert steps(doc) == [("none", "queued"), ("queued", "processing"), ("processing", "failed")]
    assert f"run {run}: job {p['job_id']} exit 1; the next tick retries" in r.stderr

    r = fa(cfg)
    assert r.returncode == 0, r.stderr
    doc = db.get(run)
    assert doc["processed_status"] == "processed"
    assert doc["processing"]["attempts"] == 2 and doc["processing"]["exit_code"] == 0
    assert steps(doc)[3:] == [("failed", "queued"), ("queued", "processing"), ("processing", "processed")]
    assert len(jobs_named(slurm, prefix)) == 2
    # the job's Snakemake parsed the Snakefile without the runs DB (no network at all): no query there
    job_log = Path(p["job_dir"]) / "stderr"
    assert "runs DB" not in job_log.read_text()


def test_status_command_prints_one_word_and_exits_0(cluster_config, slurm, prefix, tmp_path):
    cfg = fa_config.load(cluster_config())
    batch_settings.write_settings(cfg)
    work = Path(cfg["work_dir"])
    env = {**os.environ, "SLURM_CONF": slurm["SLURM_CONF"]}

    def status(job_id):
        r = subprocess.run(
            [sys.executable, "-m", "fulliautomatix.scheduler", "status", job_id],
            cwd=work,
            capture_output=True,
            text=True,
            env=env,
        )
        assert r.returncode == 0
        return r.stdout

    # a job of ours that wrote its exit code: answered from the file, the scheduler is not asked
    job_dir = tmp_path / "job"
    job_dir.mkdir()
    (job_dir / "exit_code").write_text("3\n")
    records.record_path(work, "170101_0001").parent.mkdir(parents=True, exist_ok=True)
    records.record_path(work, "170101_0001").write_text(
        json.dumps({"run": "170101_0001", "job_id": "999999", "dir": str(job_dir), "name": f"{prefix}-170101_0001"})
    )
    records.id_index_path(work, "999999").parent.mkdir(parents=True, exist_ok=True)
    records.id_index_path(work, "999999").write_text("170101_0001\n")
    assert status("999999") == "failed\n"
    assert not (work / batch_status.CACHE).exists()

    # real jobs: one listing serves a poll round
    script = tmp_path / "sleep.sh"
    script.write_text("#!/bin/sh\nsleep 30\n")
    ids = [
        subprocess.run(
            ["qsub", "-N", f"{prefix}-x", "-o", "/dev/null", "-e", "/dev/null", str(script)],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
        ).stdout.strip()
        for _ in range(2)
    ]
    assert status(ids[0]) == "running\n"
    listed_at = json.loads((work / batch_status.CACHE).read_text())["at"]
    assert status(ids[1]) == "running\n"
    assert json.loads((work / batch_status.CACHE).read_text())["at"] == listed_at, "second answer from the same listing"
    subprocess.run(["qdel", *ids], env=env, capture_output=True)

    # the scheduler unreachable: still one word, exit 0; Snakemake asks again next round
    (work / batch_status.CACHE).unlink()
    settings = json.loads((work / batch_settings.SETTINGS).read_text())
    (work / batch_settings.SETTINGS).write_text(json.dumps({**settings, "env": {"PATH": "/nowhere"}}))
    assert status("424242") == "running\n"
    (work / batch_settings.SETTINGS).write_text(json.dumps(settings))
    # a job the scheduler never knew: it ended without writing an exit code
    assert status("424242") == "failed\n"


def test_profiles_comment_every_value():
    for path in [
        ROOT / "profiles" / name / "config.yaml"
        for name in ("conte", "halstead", "rice", "brown", "testbed", "slurm", "local")
    ] + [ROOT / "workflow" / "profiles" / "default" / "config.yaml"]:
        name = path.parent.name
        lines = path.read_text().splitlines()
        values = [i for i, ln in enumerate(lines) if ln.strip() and not ln.startswith("#")]
        # the reason on the line, or in the comment right above it
        assert values and all("#" in lines[i] or lines[i - 1].startswith("#") for i in values), (
            f"profiles/{name}: a value without its reason"
        )
    conte = (ROOT / "profiles" / "conte" / "config.yaml").read_text()
    testbed = (ROOT / "profiles" / "testbed" / "config.yaml").read_text()
    assert conte[conte.index("executor:") :].replace("conte", "testbed") == testbed[testbed.index("executor:") :]
