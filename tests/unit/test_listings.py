"""qstat listings of every PBS flavour, read by column name, and listed jobs matched to runs.

The outputs are in tests/unit/qstat/ (its README says where each came from):
the Slurm test bed's qstat captured as it printed, Torque's and PBS Pro's
written from the printf formats of their qstat.c.
"""

import os
import stat
from pathlib import Path

import pytest

from fulliautomatix.batch import SchedulerError, adapters, collect, listings
from fulliautomatix.batch.listings import Job

DATA = Path(__file__).parent / "qstat"


def listed(name: str) -> dict[str, tuple]:
    jobs = listings.parse_listing((DATA / name).read_text(), "qstat")
    assert all(job.id == key for key, job in jobs.items())
    return {key: (job.name, job.state, job.partial) for key, job in jobs.items()}


def test_the_test_bed_s_qstat_u_captured_as_it_printed():
    # Two header lines and a rule, "Time Use" overflowing its column, names cut to 20 characters.
    assert listed("slurm-wlm-torque-u.txt") == {
        "1": ("fa-261201_0001", "C", False),
        "2": ("tqstat-170101_0002-l", "C", True),
        "3": ("fa-170101_0003", "C", False),
        "4": ("fa-170101_0004", "C", False),
        "5": ("fa-261201_0009", "C", False),
        "6": ("fa-261201_0010", "R", False),
        "7": ("experiment-processin", "R", True),
        "8": ("fa-261201_0012", "Q", False),
    }


def test_the_test_bed_s_brief_qstat():
    jobs = listed("slurm-wlm-torque-brief.txt")
    assert {k: v[1] for k, v in jobs.items()} == {
        "1": "C",
        "2": "C",
        "3": "C",
        "4": "C",
        "5": "C",
        "6": "R",
        "7": "R",
        "8": "Q",
    }
    assert jobs["2"] == ("tqstat-170101_00", "C", True) and jobs["6"] == ("fa-261201_0010", "R", False)


def test_pbs_pro_cuts_names_to_10_characters_and_ids_to_15_with_a_star():
    assert listed("openpbs-u.txt") == {
        "4807": ("fa-261201", "R", True),
        "4808": ("fa-261201", "Q", True),
        "4811": ("calib", "R", False),
        "4812": ("fa-261201", "H", True),
        "1000123": ("fa-261201", "Q", True),
    }
    assert listed("openpbs-brief.txt") == {
        "4807": ("fa-261201_0001", "R", False),
        "4808": ("fa-261201_0002", "Q", False),
        "4811": ("asterix-calibra", "R", True),
    }


def test_torque_alternative_and_brief_formats():
    assert listed("torque-u.txt") == {
        "4807": ("fa-261201_0001", "R", False),
        "4808": ("fa-261201_0002", "Q", False),
        "4809": ("fa-261201_0003", "C", False),
        "4811": ("asterix-calibrat", "R", True),
        "4813[]": ("fa-sweep", "Q", False),
    }
    brief = listed("torque-brief.txt")
    assert brief["4810"] == ("...g-261201_0006", "R", True)
    assert brief["4807"] == ("fa-261201_0001", "R", False) and brief["4808"][1] == "Q"


def test_cut_names_fit_only_the_names_they_are_part_of():
    head, tail = Job("1", "fa-261201", "R", partial=True), Job("2", "...g-261201_0006", "R", partial=True)
    assert listings.name_fits(head, "fa-261201_0001") and listings.name_fits(head, "fa-261201_0002")
    assert not listings.name_fits(head, "fb-261201_0001")
    assert listings.name_fits(tail, "asterix-processing-261201_0006") and not listings.name_fits(tail, "x-0007")
    assert listings.name_fits(Job("3", "fa-1", "R"), "fa-1") and not listings.name_fits(Job("3", "fa-1", "R"), "fa-12")
    assert collect.job_run(Job("4", "fa-261201_0001", "R"), "fa") == "261201_0001"
    assert collect.job_run(Job("4", "fa-261201_0001", "R", partial=True), "fa") is None


def test_server_blocks_and_node_lines():
    # qstat -a -n of two servers: each block has its header; a job's node line is indented.
    one = (DATA / "openpbs-u.txt").read_text()
    two = one.replace("pbs01", "pbs02").replace("4807.pbs02", "5807.pbs02").replace("4808.pbs02", "5808.pbs02")
    two = two.replace("R 00:12\n", "R 00:12\n   node17/0*2\n")
    jobs = listings.parse_qstat(one + two)
    assert {"4807", "4808", "5807", "5808"} <= set(jobs) and jobs["5807"].state == "R"


def test_output_that_is_no_table_is_refused_never_read_as_no_jobs():
    assert listings.parse_qstat("") == {} and listings.parse_qstat("\n") == {}
    with pytest.raises(listings.ListingError, match="job line before any column header"):
        listings.parse_qstat((DATA / "slurm-wlm-torque-f.txt").read_text())
    with pytest.raises(listings.ListingError, match="without a job id and a state column"):
        listings.parse_qstat("Queue  Max\n-----  ---\nstandby 4\n")


def records(*items):
    return [{"run": run, "name": f"fa-{run}", "job_id": jid} for run, jid in items]


def test_jobs_are_matched_to_runs_by_the_ids_recorded_at_submission():
    jobs = listings.parse_qstat((DATA / "openpbs-u.txt").read_text())
    recs = records(
        ("261201_0001", "4807"),
        ("261201_0002", "4808"),
        ("261201_0004", "4812"),
        ("261201_0003", "4790"),
        ("261201_0005", None),
    )
    active, adopted = collect.active_runs(jobs, recs, "fa")
    # 0003's job is no longer listed: it ended; 0005's id was lost: the one unclaimed job its name fits
    assert {run: job.id for run, job in active.items()} == {
        "261201_0001": "4807",
        "261201_0002": "4808",
        "261201_0004": "4812",
        "261201_0005": "1000123",
    }
    assert adopted == [{"run": "261201_0005", "name": "fa-261201_0005", "job_id": "1000123"}]


def test_a_lost_id_with_several_fitting_jobs_holds_the_run(caplog):
    jobs = listings.parse_qstat((DATA / "openpbs-u.txt").read_text())
    active, adopted = collect.active_runs(jobs, records(("261201_0001", "4807"), ("261201_0009", None)), "fa")
    assert active["261201_0009"] is None and adopted == []
    assert "run 261201_0009: its job id was never recorded and jobs 4808, 4812, 1000123 could be its job" in caplog.text


def test_the_test_bed_s_listing_finds_our_running_jobs():
    """The bug of issue 13: the second column of `qstat -u` is the user, so no job was ours."""
    jobs = listings.parse_qstat((DATA / "slurm-wlm-torque-u.txt").read_text())
    active, _ = collect.active_runs(jobs, records(("261201_0009", "5"), ("261201_0010", "6")), "fa")
    assert {run: job.id for run, job in active.items()} == {"261201_0010": "6", "261201_0012": "8"}


def test_the_listing_command_of_each_setting(tmp_path):
    base = {"submit_host": "local", "env": {}, "username": "asterix", "work_dir": str(tmp_path)}
    assert adapters.adapter({**base, "scheduler": "pbs", "status_query": "qstat-u"}).list_argv() == [
        "qstat",
        "-u",
        "asterix",
    ]
    # qstat: the full format, JSON first (tests/unit/test_qstatquery.py: what a server answers is learned)
    assert adapters.adapter({**base, "scheduler": "pbs", "status_query": "qstat"}).list_argv() == [
        "qstat",
        "-f",
        "-F",
        "json",
    ]
    assert adapters.adapter({**base, "scheduler": "pbs", "status_query": "squeue"}).list_argv()[0] == "squeue"
    # a qstat printing something else is one line naming the command, not "no jobs"
    fake = tmp_path / "qstat"
    fake.write_text("#!/bin/sh\necho '17.pbs01  fa-1  asterix  00:00:00 R standby'\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    cmds = adapters.adapter(
        {**base, "scheduler": "pbs", "status_query": "qstat-u", "env": {"PATH": f"{tmp_path}:{os.environ['PATH']}"}}
    )
    with pytest.raises(SchedulerError, match=r"^qstat -u asterix: qstat printed a job line before any"):
        cmds.listing()
