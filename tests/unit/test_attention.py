"""attention.py: BAD, HELD, STUCK and RETRY from pending run documents, and each run's fixing command."""

from __future__ import annotations

import datetime as _dt

import pytest

from fulliautomatix import attention
from fulliautomatix import config as fa_config

UTC = _dt.timezone.utc
NOW = _dt.datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


@pytest.fixture
def config():
    return fa_config.validate({})


def doc(raw="acquired", proc="none", hours_ago=0.0, as_date=False, **extra):
    """A run that entered its present state `hours_ago` hours before NOW."""
    at = NOW - _dt.timedelta(hours=hours_ago)
    stamp = at.replace(tzinfo=None) if as_date else at.isoformat()
    field, frm = ("processed_status", "none") if raw == "ondeck" and proc != "none" else ("raw_status", "acquired")
    history = [] if raw == "acquired" else [{"at": stamp, "field": field, "from": frm, "to": proc if
                                              field == "processed_status" else raw, "host": "h", "note": "n"}]
    return {"name": "261127_0001", "number": 1, "events": 3_600_000, "source": "physics", "raw_status": raw,
            "raw_location": "zinc", "processed_status": proc, "start": stamp, "history": history, **extra}


@pytest.mark.parametrize("raw, proc, limit_hours", [
    ("acquired", "none", 1), ("transferring", "none", 6), ("ondeck", "queued", 48), ("compressing", "processed", 6),
    ("compressed", "processed", 72), ("archiving", "processed", 24)])
@pytest.mark.parametrize("as_date", [False, True])
def test_each_state_is_stuck_past_its_limit(config, raw, proc, limit_hours, as_date):
    assert attention.stuck(doc(raw, proc, limit_hours * 0.9, as_date), config, NOW) is None
    item = attention.stuck(doc(raw, proc, limit_hours * 1.1, as_date), config, NOW)
    assert item.kind == "STUCK" and item.seconds == pytest.approx(limit_hours * 1.1 * 3600)
    assert item.state == (proc if raw == "ondeck" else raw)
    assert item.command.startswith("fulliautomatix") and ("261127_0001" in item.command or "--archive" in item.command)
    if raw != "acquired":
        assert item.last["note"] == "n" and "last change 2026-11-2" in item.reason


def test_processing_may_last_its_walltime_times_the_factor(config):
    batch = doc("ondeck", "processing", 2.9, processing={"walltime": "02:00:00"})
    assert attention.stuck(batch, config, NOW) is None
    batch = doc("ondeck", "processing", 3.1, processing={"walltime": "02:00:00"})
    assert "limit 3.0 h" in attention.stuck(batch, config, NOW).reason
    # Processed here, no walltime: the estimate (3.6 M events at 1 M/h x 1.2 = 4.32 h) x 1.5 = 6.48 h.
    assert attention.stuck(doc("ondeck", "processing", 6.4), config, NOW) is None
    assert attention.stuck(doc("ondeck", "processing", 6.6), config, NOW) is not None


def test_acquired_runs_wait_while_the_daq_is_live(config):
    run = doc("acquired", hours_ago=5)
    assert attention.stuck(run, config, NOW, daq_live=NOW - _dt.timedelta(minutes=20)) is None
    assert attention.stuck(run, config, NOW, daq_live=NOW - _dt.timedelta(hours=2)) is not None
    assert "no history yet" in attention.stuck(run, config, NOW).reason


def test_config_changes_the_limits(config):
    config["alerts"]["stuck_after"].update(transferring_hours=1, compressed_hours=2)
    assert attention.stuck(doc("transferring", hours_ago=1.5), config, NOW) is not None
    assert attention.stuck(doc("compressed", "processed", 2.5), config, NOW) is not None


def test_one_item_per_run_most_urgent_kind_first(config):
    held = doc(hours_ago=9, name="261127_0002", transfer={"attempts": 3, "error": "rsync exited with 12"})
    retry = doc(hours_ago=0.1, name="261127_0003", transfer={"attempts": 1, "error": "rsync exited with 23"})
    stuck_retry = doc(hours_ago=3, name="261127_0004", transfer={"attempts": 1, "error": "rsync exited with 23"})
    bad = doc(name="261127_0005", events=-1)
    fine = doc("archived", "processed", 100, name="261127_0006")
    items = attention.find([retry, fine, stuck_retry, held, bad], config, NOW)
    assert [(i.kind, i.run) for i in items] == [("BAD", "261127_0005"), ("HELD", "261127_0002"),
                                                ("STUCK", "261127_0004"), ("RETRY", "261127_0003")]
    assert items[1].command == "fulliautomatix retry 261127_0002"
    assert items[3].command == "fulliautomatix --run 261127_0003" and "the next tick retries" in items[3].reason
    assert items[0].line().startswith("  BAD   run 261127_0005: events")
    assert "fix: fulliautomatix status 261127_0005" in items[0].line()
    assert items[2].as_dict()["last"] == {}


def test_the_daq_live_note_is_kept_in_the_work_dir(tmp_path):
    config = fa_config.finalize(fa_config.validate({"work_dir": str(tmp_path)}), tmp_path)
    assert attention.daq_live_at(config) is None
    attention.record_daq_live(config, "DAQ is live")
    assert (_dt.datetime.now(UTC) - attention.daq_live_at(config)).total_seconds() < 60
