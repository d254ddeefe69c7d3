"""F8 of the fault matrix (issue 10): the scheduler down when a tick submits.

qsub answers as a PBS server that is down would; the tick says so in one
line naming the run, submits nothing, and once the scheduler is back the
next ticks submit the run once, process, archive it, and `restore` brings it
back byte for byte as the DAQ wrote it.
"""

import os

from fa_testlib import digests, simulate
from slurmbed import jobs_named


def test_f8_the_scheduler_down_at_submit_then_back(fa, cluster_config, db, slurm, prefix, tmp_path):
    down = tmp_path / "scheduler-down"
    down.mkdir()
    (down / "qsub").write_text(
        "#!/bin/sh\necho 'qsub: cannot connect to server (errno=111) Connection refused' >&2\nexit 1\n"
    )
    (down / "qsub").chmod(0o755)
    scheduler_env = {"SLURM_CONF": slurm["SLURM_CONF"], "PATH": f"{down}:{os.environ['PATH']}"}
    cfg = cluster_config(clusters={"testbed": {"scheduler_env": scheduler_env}}, archive={"max_wait_days": 0})
    (run,) = simulate(fa, cfg, 1)
    daq = digests(tmp_path / "daq" / run)

    r = fa(cfg)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if f"run {run}" in ln and "submission failed" in ln]
    assert len(lines) == 1 and "cannot connect to server" in lines[0], r.stderr
    assert jobs_named(slurm, prefix) == [], "nothing reached the scheduler"
    assert db.get(run)["processed_status"] in ("none", "failed")

    cfg = cluster_config(archive={"max_wait_days": 0})  # the scheduler is back
    for _ in range(4):
        r = fa(cfg)
        assert "Traceback" not in r.stderr, r.stderr
        if db.get(run)["raw_status"] == "archived":
            break
    assert db.get(run)["raw_status"] == "archived", r.stderr
    assert len(jobs_named(slurm, prefix)) == 1, "submitted once"
    r = fa(cfg, "restore", run, "--to", str(tmp_path / "restored"))
    assert r.returncode == 0, r.stderr
    assert digests(tmp_path / "restored" / run) == daq
