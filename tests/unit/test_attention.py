"""attention.problems: BAD, HELD, STUCK and RETRY from pending run documents, each with its fixing command;
times as ISO strings or BSON dates."""

from __future__ import annotations

import datetime as _dt

import pytest
from bson import ObjectId

from fulliautomatix import attention, dates
from fulliautomatix import config as fa_config

UTC = _dt.timezone.utc
NOW = _dt.datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def config():
    return fa_config.validate({})


def ago(hours: float, iso: bool = True):
    t = NOW - _dt.timedelta(hours=hours)
    return t.isoformat(timespec="seconds") if iso else t.replace(tzinfo=None)  # a naive BSON date is UTC


def run(name="261201_0001", raw="acquired", proc="none", history=(), **extra):
    doc = {
        "name": name,
        "number": 1,
        "events": 10,
        "source": "physics",
        "raw_status": raw,
        "raw_location": "zinc",
        "processed_status": proc,
        "history": list(history),
    }
    return {**doc, **extra}


def entry(field, to, hours, iso=True, **extra):
    return {"at": ago(hours, iso), "field": field, "from": "x", "to": to, "host": "h", **extra}


def doc(raw="acquired", proc="none", hours_ago=0.0, as_date=False, **extra):
    """A run that entered its present state `hours_ago` hours before NOW (3.6 M events)."""
    field, to = ("processed_status", proc) if raw == "ondeck" and proc != "none" else ("raw_status", raw)
    history = [] if raw == "acquired" else [entry(field, to, hours_ago, not as_date, note="n")]
    return run(
        extra.pop("name", "261201_0001"),
        raw,
        proc,
        history,
        **{"events": 3_600_000, "start": ago(hours_ago, not as_date), **extra},
    )


# -- times ---------------------------------------------------------------------


def test_times_are_read_as_iso_strings_and_as_dates():
    assert dates.as_utc("2026-12-01T10:00:00+00:00") == NOW - _dt.timedelta(hours=2)
    assert dates.as_utc(_dt.datetime(2026, 12, 1, 10, 0)) == NOW - _dt.timedelta(hours=2)
    assert dates.as_utc("yesterday") is None and dates.as_utc(None) is None


# -- STUCK ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, proc, limit_hours",
    [
        ("acquired", "none", 1),
        ("transferring", "none", 6),
        ("ondeck", "queued", 48),
        ("compressing", "processed", 6),
        ("compressed", "processed", 72),
        ("archiving", "processed", 24),
    ],
)
@pytest.mark.parametrize("as_date", [False, True])
def test_each_state_is_stuck_past_its_limit(config, raw, proc, limit_hours, as_date):
    assert attention.stuck(doc(raw, proc, limit_hours * 0.9, as_date), config, NOW) is None
    item = attention.stuck(doc(raw, proc, limit_hours * 1.1, as_date), config, NOW)
    assert item.kind == "STUCK" and item.seconds == pytest.approx(limit_hours * 1.1 * 3600)
    assert item.state == (proc if raw == "ondeck" else raw)
    assert item.since == NOW - _dt.timedelta(hours=limit_hours * 1.1)
    assert item.command.startswith("fulliautomatix") and ("261201_0001" in item.command or "--archive" in item.command)
    if raw != "acquired":
        assert item.last["note"] == "n" and f"last: {item.since:%Y-%m-%d %H:%M} UTC" in item.reason
        assert "on h (n); check " in item.reason


@pytest.mark.parametrize("iso", [True, False], ids=["iso", "date"])
def test_a_transfer_over_its_limit_is_stuck(config, iso):
    late = run(raw="transferring", history=[entry("raw_status", "transferring", 7, iso)])
    fine = run(raw="transferring", history=[entry("raw_status", "transferring", 5, iso)])
    (p,) = attention.problems([late, fine], config, NOW)
    assert p.kind == "STUCK" and p.stage == "transfer" and p.key == "STUCK:261201_0001"
    assert "raw_status transferring for 7 h 0 min (limit 6 h 0 min); last: 2026-12-01 05:00 UTC" in p.reason
    assert "check logs/transfer_run/261201_0001.log" in p.reason
    assert p.command == "fulliautomatix --transfer --run 261201_0001"


def test_processing_is_stuck_after_its_walltime_times_the_factor(config):
    def job(hours):
        return run(
            raw="ondeck",
            proc="processing",
            processing={"walltime": "01:00:00"},
            history=[entry("processed_status", "processing", hours)],
        )

    assert attention.problems([job(1.4)], config, NOW) == []
    assert attention.problems([job(1.6)], config, NOW)[0].kind == "STUCK"
    batch = doc("ondeck", "processing", 2.9, processing={"walltime": "02:00:00"})
    assert attention.stuck(batch, config, NOW) is None
    batch = doc("ondeck", "processing", 3.1, processing={"walltime": "02:00:00"})
    assert "limit 3 h 0 min" in attention.stuck(batch, config, NOW).reason
    # Processed here, no walltime: the estimate (3.6 M events at 1 M/h x 1.2 = 4.32 h) x 1.5 = 6.48 h.
    assert attention.stuck(doc("ondeck", "processing", 6.4), config, NOW) is None
    assert attention.stuck(doc("ondeck", "processing", 6.6), config, NOW) is not None


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


def test_acquired_runs_wait_from_the_last_tick_that_found_the_daq_live(config):
    acquired = doc("acquired", hours_ago=5)
    assert attention.stuck(acquired, config, NOW, daq_live=NOW - _dt.timedelta(minutes=20)) is None
    assert attention.stuck(acquired, config, NOW, daq_live=NOW - _dt.timedelta(hours=2)) is not None
    assert "no history" in attention.stuck(acquired, config, NOW).reason


def test_config_changes_the_limits(config):
    config["alerts"]["stuck_after"].update(transferring=1, compressed=2)
    config["archive"]["max_wait_days"] = 0
    assert attention.stuck(doc("transferring", hours_ago=1.5), config, NOW) is not None
    assert attention.stuck(doc("compressed", "processed", 2.5), config, NOW) is not None
    assert attention.stuck(doc("compressed", "processed", 1.5), config, NOW) is None


def test_without_history_no_run_is_called_stuck(config):
    unread = run(raw="transferring")
    del unread["history"]  # as status and pending() read runs: without it
    assert attention.problems([unread], config, NOW) == []


# -- the list ------------------------------------------------------------------


def test_one_problem_per_run_most_urgent_first(config):
    held = run("261201_0002", start=ago(5), transfer={"attempts": 3, "error": "rsync exited 12"})
    bad = run("261201_0003", raw="lost")
    retry = run(
        "261201_0004",
        raw="compressed",
        proc="processed",
        archive={"error": "sha256 mismatch"},
        history=[entry("raw_status", "compressed", 1)],
    )
    found = attention.problems([retry, held, bad], config, NOW)
    assert [(p.kind, p.run) for p in found] == [
        ("BAD", "261201_0003"),
        ("HELD", "261201_0002"),
        ("RETRY", "261201_0004"),
    ]
    assert found[1].command == "fulliautomatix retry 261201_0002" and found[1].stage == "transfer"
    assert found[2].stage == "archive" and "sha256 mismatch" in found[2].reason
    assert found[2].command == "fulliautomatix --archive"
    assert attention.counts(found) == {"BAD": 1, "HELD": 1, "STUCK": 0, "RETRY": 1}


def test_one_item_per_run_most_urgent_kind_first(config):
    held = doc(hours_ago=9, name="261201_0002", transfer={"attempts": 3, "error": "rsync exited with 12"})
    retry = doc(hours_ago=0.1, name="261201_0003", transfer={"attempts": 1, "error": "rsync exited with 23"})
    stuck_retry = doc(hours_ago=3, name="261201_0004", transfer={"attempts": 1, "error": "rsync exited with 23"})
    bad = doc(name="261201_0005", events=-1)
    fine = doc("archived", "processed", 100, name="261201_0006")
    items = attention.problems([retry, fine, stuck_retry, held, bad], config, NOW)
    assert [(i.kind, i.run) for i in items] == [
        ("BAD", "261201_0005"),
        ("HELD", "261201_0002"),
        ("STUCK", "261201_0004"),
        ("RETRY", "261201_0003"),
    ]
    assert items[1].command == "fulliautomatix retry 261201_0002"
    assert items[3].command == "fulliautomatix --run 261201_0003" and "the next tick retries" in items[3].reason
    assert items[3].stage == "transfer"
    assert items[0].line().startswith("  BAD   run 261201_0005: events")
    assert "fix: fulliautomatix status 261201_0005" in items[0].line()
    as_dict = items[2].as_dict()
    assert as_dict["last"] == {} and as_dict["since"] == "2026-12-01T09:00:00+00:00"
    assert as_dict["state"] == "acquired" and as_dict["stage"] == "transfer"


def test_the_daq_live_note_is_kept_in_the_work_dir(tmp_path):
    config = fa_config.finalize(fa_config.validate({"work_dir": str(tmp_path / "work")}), tmp_path)
    assert attention.daq_live_at(config) is None
    attention.record_daq_live(config, "DAQ is live")
    assert (_dt.datetime.now(UTC) - attention.daq_live_at(config)).total_seconds() < 60


def test_oldest_run_per_pending_state():
    docs = [
        run(start=ago(3)),
        run(start=ago(1)),
        run(
            raw="ondeck",
            proc="queued",
            history=[entry("raw_status", "ondeck", 4), entry("processed_status", "queued", 2)],
        ),
    ]
    assert attention.oldest(docs, NOW) == {"acquired": 3 * 3600, "ondeck": 4 * 3600, "queued": 2 * 3600}


def test_lost_copies_duplicates_and_single_copies_are_in_the_one_list(config):
    """The kinds of the reliability work: LOST (held, no verified copy left), LOST-COPY (an archived copy
    failed its check), BAD for a name two documents hold or an unknown state, ONE-COPY (DAQ copy purged)."""
    lost = run(
        "261201_0002",
        raw="ondeck",
        lost={"reason": "scratch copy corrupt, DAQ copy purged"},
        compressed={"held": "run 261201_0002: LOST: no verified copy; `fulliautomatix retry 261201_0002`"},
    )
    single = run("261201_0003", raw="ondeck", transfer={"daq_copy": "purged", "destination": "/scratch/raw/x"})
    twin = run("261201_0004")
    archived = run(
        "261201_0005",
        raw="archived",
        proc="processed",
        archive={"copy_ok": False, "copy_error": "audit: the archived copy differs"},
    )
    odd = run("261201_0006", raw="weird")
    found = attention.problems(
        [lost, single, twin], config, NOW, duplicates={"261201_0004": ["a", "b"]}, unknown=[odd], lost_copies=[archived]
    )
    assert [(p.kind, p.run) for p in found] == [
        ("BAD", "261201_0004"),
        ("BAD", "261201_0006"),
        ("LOST", "261201_0002"),
        ("LOST-COPY", "261201_0005"),
        ("ONE-COPY", "261201_0003"),
    ]
    assert "2 documents have this name" in found[0].reason and found[0].command.startswith("mongosh")
    assert found[2].command == "fulliautomatix retry 261201_0002"
    assert found[3].line().startswith("  LOST-COPY run 261201_0005: audit:")
    assert "DAQ copy purged" in found[4].reason
    assert attention.counts(found) == {
        "BAD": 2,
        "LOST": 1,
        "LOST-COPY": 1,
        "HELD": 0,
        "STUCK": 0,
        "RETRY": 0,
        "ONE-COPY": 1,
    }


def test_retry_is_for_held_and_failed_runs_only(config):
    """`fulliautomatix retry` clears failure counts: a HELD, LOST or failed run is its business, any other is
    refused with its state (clearing an archived run's counts only rewrote its record)."""
    takes = [
        run(transfer={"attempts": 3, "error": "rsync exited 12"}),  # HELD
        run(raw="ondeck", lost={"reason": "no verified copy left"}),  # LOST
        run(raw="compressed", proc="processed", archive={"error": "sha256 mismatch"}),  # RETRY
        run(raw="archived", proc="failed", processing={"attempts": 3, "tag": "ref-1-r1"}),  # reprocessing gave up
        run(raw="ondeck", processing={"error": "needs a walltime of 99:00:00, longer than any queue allows"}),
    ]
    assert [attention.retry_refusal(d, config, NOW) for d in takes] == [None] * len(takes)
    archived = run("261202_0001", raw="archived", proc="processed", transfer={"attempts": 1, "error": None})
    assert attention.retry_refusal(archived, config, NOW) == (
        "run 261202_0001: raw_status archived, processed_status processed, neither held nor failed: "
        "nothing to retry, nothing changed (`fulliautomatix status 261202_0001`)"
    )
    lost_copy = run(raw="archived", proc="processed", archive={"copy_ok": False, "copy_error": "audit: differs"})
    line = attention.retry_refusal(lost_copy, config, NOW)
    assert "LOST-COPY, not held or failed (raw_status archived" in line
    assert line.endswith("`fulliautomatix audit 261201_0001`")
