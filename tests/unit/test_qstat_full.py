"""qstat -f and qstat -f -F json read by field, and walltime kills of every scheduler.

The outputs are in tests/unit/qstat/ (its README says where each came from):
the test bed's qstat -f captured as it printed, Torque's and OpenPBS's written
from the printing code of their qstat.c.
"""

from pathlib import Path

import pytest

from fulliautomatix.batch import collect, listings, requests, status
from fulliautomatix.batch.listings import Job

DATA = Path(__file__).parent / "qstat"


def read(name: str, user: str = "", prefix: str = "") -> dict[str, Job]:
    jobs = listings.parse_listing((DATA / name).read_text(), "qstat", user, prefix)
    assert all(job.id == key for key, job in jobs.items())
    return jobs


def fields(jobs: dict[str, Job], *names: str) -> dict[str, tuple]:
    return {key: tuple(getattr(job, n) for n in names) for key, job in jobs.items()}


def test_the_test_bed_s_qstat_f_whole_names_of_running_queued_and_ended_jobs():
    # Captured: 1 exited 0, 2 exited 3, 3 killed at its walltime, 4 cancelled, 5 and 6 running,
    # 7 queued, 8 queued by another user, 9 queued with a name without our prefix.
    jobs = read("slurm-wlm-torque-f-mixed.txt")
    assert fields(jobs, "name", "state", "owner", "queue", "walltime") == {
        "1": ("fa-261201_0001", "C", "root", "standby", "00:05:00"),
        "2": ("fa-261201_0002", "C", "root", "standby", "00:05:00"),
        "3": ("fa-261201_0003", "C", "root", "standby", "00:01:00"),
        "4": ("experiment-processing-261201_0004-a-long-job-name", "C", "root", "physics", "00:15:00"),
        "5": ("fa-261201_0005", "R", "root", "standby", "00:15:00"),
        "6": ("fa-261201_0006-a-name-longer-than-any-column", "R", "root", "physics", "00:15:00"),
        "7": ("fa-261201_0007", "Q", "root", "standby", "00:10:00"),
        "8": ("fa-261201_0008", "Q", "nobody", "standby", "00:20:00"),
        "9": ("calibration", "Q", "root", "physics", "00:20:00"),
    }
    # the wrapper prints no exit status and no time used: C is all it says of an ended job
    assert {j.exit_status for j in jobs.values()} == {None} and not any(j.timed_out for j in jobs.values())
    assert not any(j.partial for j in jobs.values())


def test_only_our_user_s_jobs_named_with_our_prefix_are_kept():
    assert sorted(read("slurm-wlm-torque-f-mixed.txt", "root", "fa"), key=int) == ["1", "2", "3", "5", "6", "7"]
    assert sorted(read("slurm-wlm-torque-f-mixed.txt", "nobody", "fa")) == ["8"]
    assert sorted(read("slurm-wlm-torque-f-mixed.txt", "root", "experiment")) == ["4"]


def test_the_same_moment_s_qstat_f_u_is_the_table_with_cut_names():
    """The Slurm wrapper answers `qstat -f -u USER` in the alternative format (print_job_select)."""
    table = read("slurm-wlm-torque-f-u-mixed.txt", "root", "fa")
    assert table["6"].name == "fa-261201_0006-a-nam" and table["6"].partial
    assert "8" not in table  # -u: root's jobs only
    assert fields(table, "state") == fields(read("slurm-wlm-torque-f-mixed.txt", "root"), "state")


def test_the_earlier_capture_of_the_test_bed_s_qstat_f():
    jobs = read("slurm-wlm-torque-f.txt", "root", "tqstat")
    assert fields(jobs, "name", "state") == {"2": ("tqstat-170101_0002-long-name", "C")}
    assert read("slurm-wlm-torque-f.txt")["7"].name == "experiment-processing-261201_0011"


def test_torque_qstat_f_continuation_lines_exit_status_and_walltime_kill():
    jobs = read("torque-f.txt", "asterix", "fa")
    assert fields(jobs, "name", "state", "exit_status", "walltime", "walltime_used", "timed_out") == {
        "4807": ("fa-261201_0001", "R", None, "04:00:00", "00:10:03", False),
        "4808": ("fa-261201_0002", "Q", None, "04:00:00", "", False),
        "4809": ("fa-261201_0003", "C", -11, "04:00:00", "04:00:07", True),  # JOB_EXEC_OVERLIMIT_WT
        "4810": ("fa-261201_0004", "C", 3, "07:12:00", "00:02:11", False),
    }
    everyone = read("torque-f.txt")
    assert everyone["4812"].owner == "obelix" and everyone["4811"].name == "asterix-calibration"


def test_a_value_broken_over_lines_is_joined_whole():
    text = (DATA / "torque-f.txt").read_text()
    assert "/1-\n\t20261201T154003/stderr" in text and ",\n\tPBS_O_LOGNAME=asterix," in text  # as Torque prints it
    attrs = dict(listings.full_attributes(text))["4807.pbs01.example.org"]
    assert attrs["Error_Path"] == "login01.example.org:/scratch/asterix/work/jobs/261201_0001/1-20261201T154003/stderr"
    assert attrs["Variable_List"].split(",")[:3] == [
        "PBS_O_QUEUE=standby",
        "PBS_O_HOME=/home/asterix",
        "PBS_O_LOGNAME=asterix",
    ]
    assert attrs["submit_args"].endswith(" /scratch/asterix/work/jobs/261201_0001/1-20261201T154003/job.sh")
    assert (attrs["ctime"], attrs["Walltime.Remaining"]) == ("Tue Dec  1 15:40:03 2026", "13792")


def test_openpbs_qstat_f_and_its_json_say_the_same():
    full, js = read("openpbs-f.txt", "asterix", "fa"), read("openpbs-f-json.txt", "asterix", "fa")
    assert fields(full, *vars(Job("", "", "")).keys()) == fields(js, *vars(Job("", "", "")).keys())
    assert fields(full, "name", "state", "exit_status", "timed_out") == {
        "4807": ("fa-261201_0001", "R", None, False),
        "4808": ("fa-261201_0002", "Q", None, False),
        "4809": ("fa-261201_0003", "E", -29, True),  # JOB_EXEC_KILL_WALLTIME
        "4810": ("fa-261201_0004", "E", 3, False),
        # a name longer than a line is broken in the middle of a word, and read whole
        "4811": ("fa-261201_0007.calibration-sweep.with-a-run-name-longer-than-one-line", "R", None, False),
    }
    assert set(read("openpbs-f-json.txt")) == {"4807", "4808", "4809", "4810", "4811", "4812", "1000123"}


def test_exit_status_minus_11_is_a_walltime_kill_on_torque_only():
    # PBS Pro's -11 is JOB_EXEC_RERUN; its attribute is Exit_status, Torque's exit_status.
    torque = "Job Id: 1.s\n    Job_Name = fa-1\n    job_state = C\n    exit_status = -11\n"
    pbspro = "Job Id: 1.s\n    Job_Name = fa-1\n    job_state = F\n    Exit_status = -11\n"
    assert listings.parse_full(torque)["1"].timed_out and not listings.parse_full(pbspro)["1"].timed_out
    assert listings.parse_full(pbspro.replace("-11", "-29"))["1"].timed_out
    assert not listings.parse_full(torque.replace("-11", "-29"))["1"].timed_out


def test_full_output_that_does_not_read_is_refused():
    with pytest.raises(listings.ListingError, match="before any 'Job Id:' line"):
        listings.parse_listing("qstat: something\nJob Id: 1\n    job_state = R\n", "qstat")
    with pytest.raises(listings.ListingError, match="no job attribute"):
        listings.parse_full("Job Id: 1\n    job_state = R\nnot an attribute\n")
    with pytest.raises(listings.ListingError, match="JSON that does not parse"):
        listings.parse_listing('{"Jobs": {"1.s": {"Variable_List": {"MYVAR": "\\\'x"}}}}', "qstat")
    with pytest.raises(listings.ListingError, match="without a Jobs object"):
        listings.parse_listing('{"Jobs": []}', "qstat")
    assert listings.parse_listing('{"timestamp": 1, "pbs_version": "23.06.06", "pbs_server": "s"}', "qstat") == {}


def test_walltime_kills_of_every_scheduler_from_the_job_s_stderr():
    for name in ("slurm-walltime-kill.stderr", "torque-walltime-kill.stderr", "openpbs-walltime-kill.stderr"):
        assert listings.walltime_killed(None, stderr=(DATA / name).read_text()), name
    assert listings.walltime_killed(None, stderr="PBS: job killed: walltime 14402 exceeded limit 14400\n")
    assert not listings.walltime_killed(None, stderr="=>> PBS: job killed: mem 5000kb exceeded limit 4000kb\n")
    assert not listings.walltime_killed(None, stderr="processor: walltime was fine\n")
    assert listings.walltime_killed(Job("1", "x", "TIMEOUT"))
    assert listings.walltime_killed(listings.parse_squeue("14|x|TIMEOUT|\n")["14"])


class FakeDB:
    def __init__(self, doc):
        self.doc = doc

    def get(self, run):
        return {**self.doc, "processing": dict(self.doc.get("processing") or {})}

    def transition(self, run, field, to, doc=None, note="", fields=None):
        self.doc[field] = to
        return self.update(run, fields or {})

    def update(self, run, fields, doc=None):
        for key, value in fields.items():
            if key.startswith("processing."):
                self.doc.setdefault("processing", {})[key.split(".", 1)[1]] = value
            else:
                self.doc[key] = value
        return self.get(run)


@pytest.mark.parametrize(
    "stderr, listed",
    [
        ("torque-walltime-kill.stderr", None),
        ("openpbs-walltime-kill.stderr", None),
        ("slurm-walltime-kill.stderr", None),
        (None, Job("4809", "fa-261201_0003", "C", exit_status=-11, timed_out=True)),  # Torque's listing, no stderr line
    ],
)
def test_a_pbs_walltime_kill_gives_the_next_attempt_more_walltime(tmp_path, stderr, listed):
    from fulliautomatix import config as fa_config

    config = fa_config.finalize(
        {
            "cluster": "conte",
            "work_dir": str(tmp_path / "work"),
            "clusters": {"conte": {"scratch": str(tmp_path / "s"), "scheduler": "pbs"}},
        },
        tmp_path,
    )
    job_dir = tmp_path / "work" / "jobs" / "261201_0003" / "1-20261201T113855"
    job_dir.mkdir(parents=True)
    (job_dir / "stderr").write_text((DATA / stderr).read_text() if stderr else "processor: 1624000 events\n")
    record = {
        "run": "261201_0003",
        "rule": "process_run",
        "tag": None,
        "name": "fa-261201_0003",
        "attempt": 1,
        "dir": str(job_dir),
        "job_id": "4809",
        "queue": "standby",
        "walltime": "03:36:00",
    }
    doc = {
        "name": "261201_0003",
        "source": "physics",
        "events": 3_000_000,
        "processed_status": "processing",
        "processing": {"job_id": "4809", "attempts": 1, "timeouts": 0, "walltime": "03:36:00"},
    }
    first = requests.make_request(config, doc)
    db, out = FakeDB(doc), collect.Collected(held={}, finished=[], failed=[])
    collect._finish(db, config, record, listed, out)  # no exit-code file: the kill came first
    p = db.doc["processing"]
    assert db.doc["processed_status"] == "failed" and out.failed == ["261201_0003"]
    assert (p["timed_out"], p["timeouts"], p["error"]) == (True, 1, "job 4809 killed at its walltime")
    again = requests.make_request(config, db.doc)
    assert (first["walltime"], first["queue"]) == ("03:36:00", "standby")
    assert (again["walltime"], again["queue"], again["timeouts"]) == ("07:12:00", "physics", 1)  # timeout_growth 2


def test_the_status_of_a_job_without_a_record_follows_its_listed_exit_status(tmp_path):
    import time

    from fulliautomatix import markers

    listed = [
        Job("17", "x", "C", exit_status=3),
        Job("18", "y", "C", exit_status=0),
        Job("19", "z", "C"),
        Job("20", "w", "E", exit_status=-29),
    ]
    markers.write(tmp_path / status.CACHE, {"at": time.time(), "jobs": {j.id: vars(j) for j in listed}})
    s = {"work_dir": str(tmp_path), "cache_seconds": 60}
    assert [status.status(s, j) for j in ("17", "18", "19", "20")] == ["failed", "success", "success", "running"]
