"""--reprocess and the Slurm profile against the real scheduler."""

import shlex
from pathlib import Path

from fa_testlib import simulate
from slurmbed import job_info, steps, wait_for


def test_reprocess_keeps_the_old_output_until_the_new_one_succeeds(fa, cluster_config, db, slurm, tmp_path):
    cfg = cluster_config()
    (run,) = simulate(fa, cfg, 1)
    r = fa(cfg)
    assert r.returncode == 0, r.stderr
    doc = db.get(run)
    assert (doc["raw_status"], doc["processed_status"]) == ("compressed", "processed")
    old = Path(doc["processing"]["output"])
    old_table = (old / "events.tsv").read_bytes()
    assert not (tmp_path / "cluster" / "raw" / run).exists(), "compression removed the plain raw copy"

    # the reprocessing tick stages the raw data back from the compressed copy and submits, then leaves
    slow = 'sleep 15; exec "$@"'  # long enough to look at the run while its job runs
    cfg = cluster_config(
        processing={
            "tick_wait_seconds": 0,
            "command": (
                f"bash -c {shlex.quote(slow)} slow "
                "{python} -m fulliautomatix.processor --config {pax_config} --input {raw} --output {output}"
            ),
        }
    )
    r = fa(cfg, "--reprocess", run)
    assert r.returncode == 0, r.stderr
    doc = db.get(run)
    new = tmp_path / "cluster" / "processed" / run / "ref-1-r1"
    assert doc["processed_status"] in ("queued", "processing")
    assert doc["reprocess"]["tag"] == "ref-1-r1" and doc["processing"]["output"] == str(new)
    assert doc["processed_outputs"] == [
        {"version": "ref-1", "output": str(old), "tag": None, "finished": doc["processed_outputs"][0]["finished"]}
    ]
    assert (old / "events.tsv").read_bytes() == old_table, "the old output stays while the new one is made"
    assert doc["raw_status"] == "compressed", "the compressed copy stays the copy of record"

    wait_for(lambda: job_info(slurm, doc["processing"]["job_id"])["state"] == "COMPLETED", 90, "the job")
    r = fa(cfg)
    assert r.returncode == 0, r.stderr
    doc = db.get(run)
    assert doc["processed_status"] == "processed" and not doc.get("reprocess")
    assert [o["output"] for o in doc["processed_outputs"]] == [str(old), str(new)]
    assert doc["processing"]["output"] == str(new) and doc["processing"]["processor_version"] == "ref-1"
    assert (new / "events.tsv").read_bytes() == old_table and (old / "events.tsv").is_file()
    assert steps(doc)[-3:] == [("processed", "queued"), ("queued", "processing"), ("processing", "processed")]
    assert not (tmp_path / "cluster" / "reprocess" / run).exists(), "the staged raw copy is dropped after success"

    r = fa(cfg, "--reprocess", "170101_9999")
    assert r.returncode == 1 and "run 170101_9999: not in the runs DB" in r.stderr


def test_slurm_profile_processes_a_run(fa, cluster_config, db, slurm, tmp_path):
    cfg = cluster_config(
        clusters={"testbed": {"profile": "profiles/slurm", "scheduler": "slurm"}}, processing={"tick_wait_seconds": 90}
    )
    (run,) = simulate(fa, cfg, 1)
    r = fa(cfg)
    assert r.returncode == 0, r.stderr
    doc = db.get(run)
    p = doc["processing"]
    assert doc["processed_status"] == "processed", p
    assert steps(doc)[:2] == [("none", "queued"), ("queued", "processing")]
    assert p["queue"] == "standby" and p["walltime"] == "00:05:00" and p["exit_code"] == 0
    info = job_info(slurm, p["job_id"])
    assert info["partition"] == "standby" and info["limit"] == "5:00"
