"""status_query: qstat learns which `qstat -f` the server answers, one query per round once learned.

The qstat here is a scripted stand-in, not a PBS server: a shell script the
test writes, answering each query as a flavour does (tests/unit/qstat/ holds
the outputs: the test bed's captured, Torque's and OpenPBS's written from
their qstat.c; see its README).  tests/cluster/test_cluster_qstat.py asks
the test bed's real qstat.
"""

import os
import shlex
import stat
import time
from pathlib import Path

import pytest

from fulliautomatix import markers
from fulliautomatix.batch import SchedulerError, adapters, qstatquery

DATA = Path(__file__).parent / "qstat"
TORQUE_REFUSES_F = "qstat: invalid option -- 'F'\nusage: \n    qstat [-f [-1]] [-W site_specific] [-x] ...\n"

# flavour -> {query arguments: (exit status, stdout file, stderr file or text)}
FLAVOURS = {
    "slurm-wlm-torque": {
        "-f -F json": (2, None, "slurm-wlm-torque-F-json.stderr"),
        "-f -u root": (0, "slurm-wlm-torque-f-u-mixed.txt", None),
        "-f": (0, "slurm-wlm-torque-f-mixed.txt", None),
    },
    "torque": {
        "-f -F json": (2, None, TORQUE_REFUSES_F),
        "-f -u root": (0, "torque-f.txt", None),
        "-f": (0, "torque-f.txt", None),
    },
    "openpbs": {
        "-f -F json": (0, "openpbs-f-json.txt", None),
        "-f -u root": (0, "openpbs-u.txt", None),
        "-f": (0, "openpbs-f.txt", None),
    },
}


def fake_qstat(tmp_path: Path, answers: dict) -> Path:
    """A qstat answering each argument string as given; every call is logged to calls.log."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    lines = ["#!/bin/sh", f'echo "$*" >> {tmp_path}/calls.log', 'case "$*" in']
    for args, (rc, out, err) in answers.items():
        body = []
        if out:
            body.append(f"cat {shlex.quote(str(DATA / out))}")
        if err:
            source = DATA / err if (DATA / err).is_file() else None
            body.append(f"cat {shlex.quote(str(source))} >&2" if source else f"printf %s {shlex.quote(err)} >&2")
        body.append(f"exit {rc}")
        lines.append(f'  "{args}") {"; ".join(body)};;')
    lines += ['  *) echo "unexpected: $*" >&2; exit 99;;', "esac"]
    qstat = bin_dir / "qstat"
    qstat.write_text("\n".join(lines) + "\n")
    qstat.chmod(qstat.stat().st_mode | stat.S_IXUSR)
    return bin_dir


def commands(tmp_path: Path, answers: dict, user: str = "root") -> adapters.Scheduler:
    bin_dir = fake_qstat(tmp_path, answers)
    s = {
        "submit_host": "local",
        "scheduler": "pbs",
        "status_query": "qstat",
        "username": user,
        "job_name_prefix": "fa",
        "work_dir": str(tmp_path),
        "env": {"PATH": f"{bin_dir}:{os.environ['PATH']}"},
    }
    return adapters.adapter(s)


def calls(tmp_path: Path) -> list[str]:
    log = tmp_path / "calls.log"
    lines = log.read_text().splitlines() if log.exists() else []
    log.unlink(missing_ok=True)
    return lines


def test_the_slurm_wrapper_refuses_json_answers_f_u_with_a_table_so_f_it_is(tmp_path):
    cmds = commands(tmp_path, FLAVOURS["slurm-wlm-torque"])
    assert cmds.list_argv() == ["qstat", "-f", "-F", "json"]
    first = cmds.listing()  # learning: the table of -f -u is this round's answer
    assert calls(tmp_path) == ["-f -F json", "-f -u root"]
    assert first["6"].name == "fa-261201_0006-a-nam" and first["6"].partial
    assert markers.read(tmp_path / qstatquery.LEARNED)["query"] == "full"
    for _ in range(2):  # then one query a round, whole names
        jobs = cmds.listing()
        assert calls(tmp_path) == ["-f"]
    assert jobs["6"].name == "fa-261201_0006-a-name-longer-than-any-column" and not jobs["6"].partial
    assert sorted(jobs, key=int) == ["1", "2", "3", "5", "6", "7"]  # not nobody's 8, not calibration
    assert cmds.list_argv() == ["qstat", "-f"]


def test_torque_answers_f_u_in_the_full_format(tmp_path):
    cmds = commands(tmp_path, FLAVOURS["torque"])
    cmds.listing()
    assert calls(tmp_path) == ["-f -F json", "-f -u root"]
    assert qstatquery.learned(tmp_path) == ("full-user", True)
    cmds.listing()
    assert calls(tmp_path) == ["-f -u root"] and cmds.list_argv() == ["qstat", "-f", "-u", "root"]


def test_torque_s_listing_reads_exit_statuses(tmp_path):
    answers = dict(FLAVOURS["torque"])
    answers["-f -u asterix"] = answers.pop("-f -u root")
    jobs = commands(tmp_path, answers, user="asterix").listing()
    assert calls(tmp_path) == ["-f -F json", "-f -u asterix"]
    assert {k: (j.state, j.exit_status, j.timed_out) for k, j in jobs.items()} == {
        "4807": ("R", None, False),
        "4808": ("Q", None, False),
        "4809": ("C", -11, True),
        "4810": ("C", 3, False),
    }


def test_openpbs_answers_json_and_is_asked_nothing_else(tmp_path):
    answers = dict(FLAVOURS["openpbs"])
    cmds = commands(tmp_path, answers, user="asterix")
    for _ in range(2):
        jobs = cmds.listing()
        assert calls(tmp_path) == ["-f -F json"]
    assert jobs["4811"].name == "fa-261201_0007.calibration-sweep.with-a-run-name-longer-than-one-line"
    assert jobs["4809"].timed_out and "4812" not in jobs and "1000123" not in jobs


def test_json_that_does_not_parse_falls_back_to_f(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text('{"Jobs": {"4807.pbs01": {"Variable_List": {"MYVAR": "\\\'x"}}}}\n')
    answers = {
        "-f -F json": (0, str(broken), None),
        "-f -u asterix": (0, "openpbs-u.txt", None),
        "-f": (0, "openpbs-f.txt", None),
    }
    cmds = commands(tmp_path, answers, user="asterix")
    table = cmds.listing()
    assert calls(tmp_path) == ["-f -F json", "-f -u asterix"] and table["4807"].partial
    learned = markers.read(tmp_path / qstatquery.LEARNED)
    assert learned["query"] == "full" and "JSON that does not parse" in learned["passed_over"][0]
    assert cmds.listing()["4807"].name == "fa-261201_0001" and calls(tmp_path) == ["-f"]


def test_what_was_learned_is_tried_again_after_a_day(tmp_path):
    cmds = commands(tmp_path, FLAVOURS["openpbs"], user="asterix")
    markers.write(tmp_path / qstatquery.LEARNED, {"query": "full", "at": time.time() - 2 * 86400})
    cmds.listing()
    assert calls(tmp_path) == ["-f -F json"] and qstatquery.learned(tmp_path) == ("json", True)


def test_a_server_that_does_not_answer_is_an_error_naming_the_command_not_no_jobs(tmp_path):
    down = {"-f -F json": (1, None, "Connection refused\nqstat: cannot connect to server pbs01 (errno=111)\n")}
    cmds = commands(tmp_path, down)
    with pytest.raises(SchedulerError, match=r"^qstat -f -F json exited with 1: Connection refused"):
        cmds.listing()
    assert calls(tmp_path) == ["-f -F json"] and not (tmp_path / qstatquery.LEARNED).exists()
    refused_then_down = {**FLAVOURS["torque"], "-f -u root": (1, None, "pbs_iff: cannot connect to host\n")}
    with pytest.raises(
        SchedulerError,
        match=r"^qstat -f -u root exited with 1: pbs_iff: cannot connect "
        r"to host \(passed over: qstat -f -F json exited with 2: ",
    ):
        commands(tmp_path, refused_then_down).listing()
    garbled = {**FLAVOURS["torque"], "-f -u root": (0, "slurm-wlm-torque-F-json.stderr", None)}
    with pytest.raises(SchedulerError, match=r"^qstat -f -u root: qstat printed a job line before any"):
        commands(tmp_path, garbled).listing()


def test_no_job_at_all_on_the_slurm_wrapper_is_exit_153_and_nothing_printed(tmp_path):
    # Captured on the test bed: `qstat -f` of an empty cluster prints nothing and exits 153.
    empty = {
        "-f -F json": (2, None, "slurm-wlm-torque-F-json.stderr"),
        "-f -u root": (0, None, None),
        "-f": (153, None, None),
    }
    cmds = commands(tmp_path, empty)
    assert cmds.listing() == {} and qstatquery.learned(tmp_path) == ("full-user", True)
    markers.write(tmp_path / qstatquery.LEARNED, {"query": "full", "at": time.time()})
    assert cmds.listing() == {} and calls(tmp_path)[-1] == "-f"
    loud = {**empty, "-f": (153, None, "qstat: Unknown Job Id 17.pbs01\n")}
    with pytest.raises(SchedulerError, match="exited with 153: qstat: Unknown Job Id"):
        commands(tmp_path, loud).listing()


def test_a_json_query_answered_with_nothing_is_passed_over_not_no_jobs(tmp_path):
    silent = {"-f -F json": (0, None, None), "-f -u asterix": (0, "torque-f.txt", None)}
    jobs = commands(tmp_path, silent, user="asterix").listing()
    assert calls(tmp_path) == ["-f -F json", "-f -u asterix"] and jobs["4809"].timed_out
    assert markers.read(tmp_path / qstatquery.LEARNED)["passed_over"] == ["qstat -f -F json printed nothing"]
