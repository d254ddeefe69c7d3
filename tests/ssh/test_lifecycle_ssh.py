"""The whole lifecycle with the cluster's scratch on fa-cluster: acquired -> ... -> archived, then restore.

Every tick is the real `fulliautomatix` (all stages).  The cluster's scratch
exists only on fa-cluster, so compression (tar | zstd, read back with
per-member checksums) and the batch tarball must be made there over ssh; the
archive (backend ``local``) is a directory on this host, and the tarball is
pulled into it from fa-cluster.

Processing: the ``local`` profile, with ``processing.command`` running the
reference processor on fa-cluster over ssh (the test bed's hosts share this
machine's /work, and the processor needs only the standard library).  The Slurm path of the
same config is what `make testbed-up` + config/testbed.yaml try by hand.
"""

from __future__ import annotations

import os
import shlex

import pytest
from fa_testlib import ROOT, digests

from fulliautomatix.standins import rawformat

RUNS = ("261127_0001", "261127_0002")


def add_run(bed, run: str, events: int = 300) -> dict[str, str]:
    """A run the reference processor can read, on the DAQ, and its document, as the DAQ writes them."""
    run_dir = bed.daq_view / run
    rawformat.write_run(run_dir, run, events)
    (run_dir / "meta").mkdir()
    (run_dir / "meta" / "run.json").write_text(f'{{"name": "{run}"}}\n')
    os.utime(run_dir, None)
    bed.db.insert_run(
        {
            "name": run,
            "number": int(run[-4:]),
            "events": events,
            "source": "physics",
            "raw_status": "acquired",
            "raw_location": "zinc",
            "processed_status": "none",
        }
    )
    return digests(run_dir)


@pytest.mark.parametrize("backend", ["local", "rsync"])
def test_runs_reach_archived_with_remote_scratch_and_restore_byte_identical(bed, tmp_path, backend):
    """local: the tarball is pulled from fa-cluster to this machine; rsync: the archive is a
    directory on fa-cluster itself, so the tarball is copied there without leaving it."""
    want = {run: add_run(bed, run) for run in RUNS}
    if backend == "local":
        archive_dir, archive_view = tmp_path / "archive", tmp_path / "archive"
        archive = {"backend": "local", "location": str(archive_dir), "batch_runs": 2}
        url = f"local:{archive_dir}"
    else:
        archive_dir = f"{bed.env['FA_TESTBED_DATA_PATH']}/{bed.tid}/archive"
        archive_view = bed.scratch_view.parent / "archive"
        archive = {
            "backend": "rsync",
            "location": archive_dir,
            "batch_runs": 2,
            "rsync": {"host": "fa-cluster", "ssh": bed.ssh()},
        }
        url = f"rsync:fa-cluster:{archive_dir}"
    # fa-cluster's /root is its own, so the venv's python (a pyenv link into /root) is not there:
    # the processor needs only the standard library and this checkout's src/.
    processor = (
        f"env PYTHONPATH={ROOT / 'src'} /usr/bin/python3 -m fulliautomatix.processor "
        "--config {pax_config} --input {raw} --output {output}"
    )
    cfg = bed.config(processing={"command": f"{shlex.join(bed.ssh())} fa-cluster {processor}"}, archive=archive)

    for _ in range(4):
        r = bed.fa(cfg, timeout=120)
        assert r.returncode == 0, r.stderr[-3000:]
        if all(bed.db.get(run)["raw_status"] == "archived" for run in RUNS):
            break
    for run in RUNS:
        doc = bed.db.get(run)
        assert (doc["raw_status"], doc["processed_status"]) == ("archived", "processed"), (run, doc.get("compressed"))
        c = doc["compressed"]
        assert c["path"] == f"{bed.scratch}/compressed/{run}.tar.zst" and c["host"] == "fa-cluster"
        assert c["members_verified"] == len(want[run]) and c["error"] is None
        a = doc["archive"]
        assert a["backend"] == backend and a["hash"] == c["hash"] and a["bytes"] == c["bytes"]
        assert doc["raw_location"] == f"{url}/{a['batch']}.tar#{run}.tar.zst"
        steps = [h["to"] for h in doc["history"] if h["field"] == "raw_status"]
        assert steps == ["transferring", "ondeck", "compressing", "compressed", "archiving", "archived"]
        # on fa-cluster: the plain copy went after compression, the compressed one after archiving
        assert not bed.copy_view(run).exists()
        assert not (bed.scratch_view / "compressed" / f"{run}.tar.zst").exists()
        assert (bed.scratch_view / "processed" / run).is_dir(), "processed on fa-cluster"
        # compression and the batch tarball were made on fa-cluster, through ssh
        log = (bed.tmp / "work" / "logs" / "compress_run" / f"{run}.log").read_text()
        assert "fa-cluster" in log and "fa-tarstream write" in log
    assert sorted(p.name for p in archive_view.glob("*.tar")) == [f"{RUNS[0]}_to_{RUNS[1]}.tar"]
    assert not list((bed.scratch_view / "archive-staging").glob("*.tar")), "staged tarball removed"
    batch_log = next((bed.tmp / "work" / "logs" / "archive_batch").glob("*.log")).read_text()
    assert "fa-check-sources" in batch_log
    copy = [ln for ln in batch_log.splitlines() if ln.startswith("$") and "rsync" in ln]
    if backend == "local":  # pulled here from fa-cluster
        assert len(copy) == 1 and copy[0].startswith("$ rsync") and "fa-cluster:" in copy[0], copy
    else:  # a plain copy on fa-cluster, which is also the archive host
        assert len(copy) == 1 and copy[0].startswith("$ ssh") and " -e " not in copy[0], copy

    restored = tmp_path / "restored"
    r = bed.fa(cfg, "restore", RUNS[0], "--to", str(restored), timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    assert digests(restored / RUNS[0]) == want[RUNS[0]] == digests(bed.daq_view / RUNS[0])
