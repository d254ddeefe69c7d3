"""The scheduler adapters' pure parts, and the batch package's records: no Snakemake, no scheduler.

argv building for PBS and Slurm, the job id a submission printed, what a
listed state means for the status command, squeue read by field, and the
``processing`` sub-document every door builds the same way.  The two
submissions that run a command use a scripted ``sbatch`` stand-in (a shell
script written by the test), not a scheduler.
"""

import os
import stat

import pytest

from fulliautomatix.batch import SchedulerError, adapters, records
from fulliautomatix.batch.listings import Job, parse_listing

BASE = {"submit_host": "local", "env": {}, "username": "asterix", "job_name_prefix": "fa"}


def test_each_scheduler_builds_its_own_submit_and_cancel_commands(tmp_path):
    slurm = adapters.adapter({**BASE, "scheduler": "slurm", "status_query": "squeue", "work_dir": str(tmp_path)})
    pbs = adapters.adapter({**BASE, "scheduler": "pbs", "status_query": "qstat", "work_dir": str(tmp_path)})
    assert isinstance(slurm, adapters.Slurm) and isinstance(pbs, adapters.Pbs)
    assert slurm.submit_argv("standby", "00:05:00", "fa-170101_0001", "/w/jobs/1") == [
        "sbatch",
        "--parsable",
        "-p",
        "standby",
        "-t",
        "00:05:00",
        "-J",
        "fa-170101_0001",
        "-o",
        "/w/jobs/1/stdout",
        "-e",
        "/w/jobs/1/stderr",
        "/w/jobs/1/job.sh",
    ]
    assert pbs.submit_argv("physics", "07:12:00", "fa-170101_0001", "/w/jobs/1") == [
        "qsub",
        "-q",
        "physics",
        "-l",
        "walltime=07:12:00",
        "-N",
        "fa-170101_0001",
        "-o",
        "/w/jobs/1/stdout",
        "-e",
        "/w/jobs/1/stderr",
        "/w/jobs/1/job.sh",
    ]
    assert slurm.cancel_argv(["12", "13"]) == ["scancel", "12", "13"]
    assert pbs.cancel_argv(["12"]) == ["qdel", "12"]


def test_slurm_lists_with_squeue_whatever_status_query_says(tmp_path):
    for query in ("squeue", "qstat", "qstat-u"):
        slurm = adapters.adapter({**BASE, "scheduler": "slurm", "status_query": query, "work_dir": str(tmp_path)})
        assert slurm.list_argv() == ["squeue", "-h", "-t", "all", "-u", "asterix", "-o", "%i|%j|%T|%k"]


def test_commands_run_with_the_scheduler_env_on_the_submit_host():
    local = adapters.adapter(
        {**BASE, "scheduler": "slurm", "status_query": "squeue", "env": {"SLURM_CONF": "/etc/slurm/x.conf", "A": "1"}}
    )
    assert local.argv(["squeue"]) == ["env", "A=1", "SLURM_CONF=/etc/slurm/x.conf", "squeue"]
    remote = adapters.adapter(
        {
            **BASE,
            "scheduler": "pbs",
            "status_query": "qstat",
            "submit_host": "login01",
            "submit_ssh": {"ssh": ["ssh", "-o", "BatchMode=yes"], "user": "asterix", "port": 2222},
        }
    )
    argv = remote.argv(["qdel", "7"])
    assert argv[0] == "ssh" and argv[-2:] == ["login01", "qdel 7"] and "2222" in argv and "asterix" in argv


@pytest.mark.parametrize(
    "stdout, job_id",
    [
        ("4242\n", "4242"),
        ("4242;cluster2\n", "4242"),
        ("4807.pbs01.example.org\n", "4807"),
        ("sbatch: some warning\n4243\n", "4243"),
        ("", ""),
        ("\n", ""),
    ],
)
def test_the_job_id_a_submission_printed(stdout, job_id):
    assert adapters.submitted_id(stdout) == job_id


@pytest.mark.parametrize(
    "job, ours, word",
    [
        (None, True, "failed"),  # gone from the scheduler without an exit-code file
        (Job("1", "fa-1", "PENDING"), True, "running"),
        (Job("1", "fa-1", "R"), True, "running"),
        (Job("1", "fa-1", "Q"), False, "running"),
        (Job("1", "fa-1", "E", exit_status=-29), True, "running"),
        (Job("1", "fa-1", "COMPLETED"), True, "success"),
        (Job("1", "fa-1", "TIMEOUT"), True, "failed"),
        (Job("1", "fa-1", "FAILED"), False, "failed"),
        (Job("1", "fa-1", "C", exit_status=0), True, "failed"),  # ours: only the exit-code file says it succeeded
        (Job("1", "x", "C", exit_status=0), False, "success"),
        (Job("1", "x", "F", exit_status=3), False, "failed"),
        (Job("1", "x", "C"), False, "success"),  # not ours, no exit status: Snakemake checks the outputs
    ],
)
def test_what_a_listed_state_means_for_the_status_command(job, ours, word):
    assert adapters.status_word(job, ours) == word


def test_squeue_is_read_by_field():
    text = (
        "12|fa-170101_0001|RUNNING|(null)\n"
        "13|0b1c|PENDING|rule_process_run_wildcards_170101_0002\n"
        "14|fa-170101_0003|CANCELLED by 1000|\n"
        "15|fa-170101_0004|TIMEOUT|\n"
    )
    jobs = parse_listing(text, "squeue")
    assert {j.id: (j.name, j.state, j.timed_out) for j in jobs.values()} == {
        "12": ("fa-170101_0001", "RUNNING", False),
        "13": ("0b1c", "PENDING", False),
        "14": ("fa-170101_0003", "CANCELLED", False),
        "15": ("fa-170101_0004", "TIMEOUT", True),
    }
    assert jobs["13"].comment == "rule_process_run_wildcards_170101_0002"


def scripted_sbatch(tmp_path, body: str) -> dict:
    """Settings whose sbatch is a shell script running `body` (a stand-in, not a scheduler)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    sbatch = bin_dir / "sbatch"
    sbatch.write_text(f"#!/bin/sh\n{body}\n")
    sbatch.chmod(sbatch.stat().st_mode | stat.S_IXUSR)
    return {**BASE, "scheduler": "slurm", "status_query": "squeue", "env": {"PATH": f"{bin_dir}:{os.environ['PATH']}"}}


def test_a_refused_submission_and_one_without_a_job_id_are_told_apart(tmp_path):
    refused = adapters.adapter(scripted_sbatch(tmp_path, "echo 'sbatch: error: invalid partition' >&2; exit 1"))
    with pytest.raises(adapters.SubmissionRefused, match=r"^submission failed \(exit 1\): sbatch: error: invalid"):
        refused.submit("nowhere", "00:05:00", "fa-1", str(tmp_path))
    (tmp_path / "bin" / "sbatch").write_text("#!/bin/sh\necho 'queued, maybe' >&2\n")
    silent = adapters.adapter({**refused.settings})
    with pytest.raises(SchedulerError, match=r"^the scheduler printed no job id \(queued, maybe\)") as info:
        silent.submit("standby", "00:05:00", "fa-1", str(tmp_path))
    assert not isinstance(info.value, adapters.SubmissionRefused)


def test_job_context_inside_a_batch_job(monkeypatch):
    for name in ("SLURM_JOB_ID", "PBS_JOBID", "SLURM_JOB_PARTITION", "PBS_QUEUE"):
        monkeypatch.delenv(name, raising=False)
    assert adapters.job_context() is None
    monkeypatch.setenv("PBS_JOBID", "4807.pbs01")
    monkeypatch.setenv("PBS_QUEUE", "standby")
    context = adapters.job_context()
    assert (context["job_id"], context["queue"]) == ("4807", "standby") and context["node"]


def test_every_job_path_comes_from_one_place(tmp_path):
    assert records.record_path(tmp_path, "170101_0001") == tmp_path / "state/jobs/170101_0001.json"
    assert records.done_path(tmp_path, "170101_0001") == tmp_path / "state/jobs/done/170101_0001.json"
    assert records.id_index_path(tmp_path, "4807.pbs01") == tmp_path / "state/jobs/by-id/4807"
    assert records.request_path(tmp_path, "170101_0001") == tmp_path / "state/requests/170101_0001.json"
    assert records.started_path(tmp_path, "170101_0001") == tmp_path / "state/started/170101_0001.json"
    assert records.output_marker("process_run", "170101_0001") == "state/processed/170101_0001.json"
    assert records.output_marker("reprocess_run", "170101_0001", "v2-r1") == "state/reprocessed/170101_0001/v2-r1.json"
    assert records.OUTPUT_DIRS == ("state/processed/", "state/reprocessed/")


def test_a_record_with_a_job_id_is_indexed_and_retired_whole(tmp_path):
    record = {"run": "170101_0001", "job_id": None, "name": "fa-170101_0001"}
    records.write_record(tmp_path, record)
    assert not (tmp_path / "state/jobs/by-id").exists()  # no id yet: nothing to index
    records.write_record(tmp_path, {**record, "job_id": "12"})
    assert records.id_index_path(tmp_path, "12").read_text() == "170101_0001\n"
    assert [r["job_id"] for r in records.all_records(tmp_path)] == ["12"]
    records.retire(tmp_path, {**record, "job_id": "12", "collected": "success"})
    assert records.read_record(tmp_path, "170101_0001") is None and records.all_records(tmp_path) == []
    assert records.read_record(tmp_path, "170101_0001", done=True)["collected"] == "success"


def test_one_processing_document_for_every_door():
    request = {"version": "v2", "output": "/s/processed/170101_0001/v2", "tag": None, "timeouts": 1}
    batch = records.processing_doc(
        request, attempts=2, queue="physics", job_id="12", walltime="07:12:00", job_name="fa-170101_0001"
    )
    assert batch == {
        "job_id": "12",
        "queue": "physics",
        "walltime": "07:12:00",
        "attempts": 2,
        "exit_code": None,
        "processor_version": "v2",
        "output": "/s/processed/170101_0001/v2",
        "tag": None,
        "timeouts": 1,
        "timed_out": None,
        "log_tail": None,
        "error": None,
        "job_name": "fa-170101_0001",
    }
    local = records.processing_doc(request, attempts=1, queue="local", timeouts=0, command=["pax", "x"])
    assert (local["job_id"], local["walltime"], local["timeouts"], local["command"]) == (None, None, 0, ["pax", "x"])
    assert set(batch) - {"job_name"} == set(local) - {"command"}


def test_the_submit_lock_times_out_with_a_line_naming_its_file(tmp_path):
    with records.submit_lock(tmp_path):
        with pytest.raises(TimeoutError, match=r"submit.lock stayed locked for 0 s"):
            with records.submit_lock(tmp_path, timeout=0.1):
                pass
    with records.submit_lock(tmp_path, timeout=0.1):  # free again
        pass
