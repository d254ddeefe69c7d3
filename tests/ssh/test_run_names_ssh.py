"""A run name with shell syntax is refused before any command runs, on any host."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from fulliautomatix import config as fa_config
from fulliautomatix import daq, hosts, purge, transfer
from sshbed import BIN

GOOD = "261127_0001"


def bad_name(tmp_path: Path) -> str:
    return f"261127_0002;touch {tmp_path}/pwned-1;$(touch {tmp_path}/pwned-2)"


def recorded_config(bed, tmp_path):
    """Every ssh of all three hops (host->DAQ, host->cluster, DAQ->cluster) appends its argv to calls.log."""
    calls = tmp_path / "calls.log"
    calls.touch()
    rec = [str(BIN / "ssh-recorder"), str(calls)]
    cfg = bed.config(
        daq={"ssh": [*rec, "ssh", "-F", bed.env["FA_SSH_CONFIG"]]},
        clusters={"bed": {"ssh": [*rec, "ssh", "-F", bed.env["FA_SSH_CONFIG"]], "from_daq": {"ssh": [*rec, "ssh"]}}},
    )
    return cfg, calls


def test_a_tick_refuses_the_name_and_transfers_the_other_run(bed, raw_collection, tmp_path):
    cfg, calls = recorded_config(bed, tmp_path)
    bed.add_run(GOOD)
    bad = bad_name(tmp_path)
    (bed.daq_view / bad.replace("/", "_")).mkdir()  # whatever the DAQ wrote, it is never reached by name
    raw_collection.insert_one(
        {
            "name": bad,
            "number": 2,
            "events": 10,
            "source": "physics",
            "raw_status": "acquired",
            "raw_location": "zinc",
            "processed_status": "none",
            "history": [],
            "rev": 0,
        }
    )
    r = bed.tick(cfg)
    assert r.returncode == 1, "a malformed run document is an error of the tick"
    named = [ln for ln in r.stderr.splitlines() if "does not match the run name pattern" in ln]
    assert len(named) == 1 and "261127_0002;touch" in named[0], r.stderr
    assert bed.db.get(GOOD)["raw_status"] == "ondeck", "the other run goes on"
    assert raw_collection.find_one({"name": bad})["raw_status"] == "acquired"
    log = calls.read_text()
    assert "fa-daq" in log and "fa-cluster" in log, "the recorder saw the commands of the good run"
    assert "261127_0002" not in log, "no command on any host carried the bad name"
    assert not list(tmp_path.glob("pwned-*"))


def test_the_stage_functions_refuse_it_before_running_anything(bed, tmp_path, db_name):
    cfg, calls = recorded_config(bed, tmp_path)
    config = fa_config.load(cfg)
    bad = bad_name(tmp_path)
    log = io.StringIO()
    with pytest.raises(hosts.BadRunName):
        transfer.transfer_run(bed.db, config, bad, str(tmp_path / "marker.json"), log)
    with pytest.raises(hosts.BadRunName):
        purge.purge_daq_copy(config, bad, [{"path": "a", "size": 1, "hash": "x"}], 1.0, log, algorithm="sha256")
    # the DAQ survey takes names on stdin, and even so drops any that do not match
    survey = daq.survey_daq(config, [bad, GOOD])
    assert survey.live is False and set(survey.ages) == {GOOD}
    assert "261127_0002" not in calls.read_text() and log.getvalue() == ""
    assert not list(tmp_path.glob("pwned-*"))
