"""attention.problems: BAD, HELD, STUCK and RETRY from run documents; times as ISO strings or BSON dates."""

import datetime as _dt

import pytest
from bson import ObjectId

from fulliautomatix import attention
from fulliautomatix import config as fa_config

NOW = _dt.datetime(2026, 12, 1, 12, 0, tzinfo=_dt.timezone.utc)


@pytest.fixture
def config():
    return fa_config.validate({})


def ago(hours: float, iso: bool = True):
    t = NOW - _dt.timedelta(hours=hours)
    return t.isoformat(timespec="seconds") if iso else t.replace(tzinfo=None)  # a naive BSON date is UTC


def run(name="261201_0001", raw="acquired", proc="none", history=(), **extra):
    doc = {"name": name, "number": 1, "events": 10, "source": "physics", "raw_status": raw,
           "raw_location": "zinc", "processed_status": proc, "history": list(history)}
    return {**doc, **extra}


def entry(field, to, hours, iso=True):
    return {"at": ago(hours, iso), "field": field, "from": "x", "to": to, "host": "h"}


def test_times_are_read_as_iso_strings_and_as_dates():
    assert attention.as_datetime("2026-12-01T10:00:00+00:00") == NOW - _dt.timedelta(hours=2)
    assert attention.as_datetime(_dt.datetime(2026, 12, 1, 10, 0)) == NOW - _dt.timedelta(hours=2)
    assert attention.as_datetime("yesterday") is None and attention.as_datetime(None) is None


@pytest.mark.parametrize("iso", [True, False], ids=["iso", "date"])
def test_a_transfer_over_its_limit_is_stuck(config, iso):
    late = run(raw="transferring", history=[entry("raw_status", "transferring", 7, iso)])
    fine = run(raw="transferring", history=[entry("raw_status", "transferring", 5, iso)])
    (p,) = attention.problems([late, fine], config, NOW)
    assert p.kind == "STUCK" and p.stage == "transfer" and p.key == "STUCK:261201_0001"
    assert "raw_status transferring for 7 h 0 min (limit 6 h 0 min); last: 2026-12-01 05:00 UTC" in p.reason
    assert p.command == "fulliautomatix status 261201_0001"


def test_processing_is_stuck_after_its_walltime_times_the_factor(config):
    def job(hours):
        return run(raw="ondeck", proc="processing", processing={"walltime": "01:00:00"},
                   history=[entry("processed_status", "processing", hours)])
    assert attention.problems([job(1.4)], config, NOW) == []
    assert attention.problems([job(1.6)], config, NOW)[0].kind == "STUCK"


def test_a_compressed_run_waits_max_wait_days_and_a_day(config):
    def waiting(hours):
        return run(raw="compressed", proc="processed", history=[entry("raw_status", "compressed", hours)])
    assert attention.problems([waiting(2 * 24 + 23)], config, NOW) == []
    assert attention.problems([waiting(3 * 24 + 1)], config, NOW)[0].stage == "archive"


def test_an_acquired_run_is_stuck_only_while_the_daq_is_not_live(config):
    old = run(start=ago(2))
    assert attention.problems([old], config, NOW, daq_live=True) == []
    assert attention.problems([old], config, NOW, daq_live=False)[0].kind == "STUCK"
    by_id = run(_id=ObjectId.from_datetime(NOW - _dt.timedelta(hours=2)))
    assert attention.problems([by_id], config, NOW)[0].kind == "STUCK", "no start: the ObjectId's time"


def test_one_problem_per_run_most_urgent_first(config):
    held = run("261201_0002", start=ago(5), transfer={"attempts": 3, "error": "rsync exited 12"})
    bad = run("261201_0003", raw="lost")
    retry = run("261201_0004", raw="compressed", proc="processed", archive={"error": "sha256 mismatch"},
                history=[entry("raw_status", "compressed", 1)])
    found = attention.problems([retry, held, bad], config, NOW)
    assert [(p.kind, p.run) for p in found] == [("BAD", "261201_0003"), ("HELD", "261201_0002"),
                                               ("RETRY", "261201_0004")]
    assert found[1].command == "fulliautomatix retry 261201_0002" and found[1].stage == "transfer"
    assert found[2].stage == "archive" and "sha256 mismatch" in found[2].reason
    assert attention.counts(found) == {"BAD": 1, "HELD": 1, "STUCK": 0, "RETRY": 1}


def test_without_history_no_run_is_called_stuck(config):
    doc = run(raw="transferring")
    del doc["history"]  # as status and pending() read runs: without it
    assert attention.problems([doc], config, NOW) == []


def test_oldest_run_per_pending_state():
    docs = [run(start=ago(3)), run(start=ago(1)),
            run(raw="ondeck", proc="queued", history=[entry("raw_status", "ondeck", 4),
                                                       entry("processed_status", "queued", 2)])]
    assert attention.oldest(docs, NOW) == {"acquired": 3 * 3600, "ondeck": 4 * 3600, "queued": 2 * 3600}
