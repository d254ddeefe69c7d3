"""Walltime estimates, queue choice and the scheduler's listings: pure functions, no test bed."""

import pytest

from fulliautomatix import sync
from fulliautomatix.batch import collect, listings, walltime
from fulliautomatix import config as fa_config

SETTINGS = {
    "events_per_hour": {"default": 1_000_000, "LED": 3_600_000},
    "safety_factor": 1.2,
    "floor_minutes": 5,
    "ceiling_hours": 48,
    "timeout_growth": 2,
}
QUEUES = {"queues": [{"name": "standby", "max_walltime": "04:00:00"}, {"name": "physics", "max_walltime": "48:00:00"}]}


@pytest.mark.parametrize(
    "text, seconds", [("04:00:00", 14400), ("1:30", 90), ("2-00:00:00", 172800), ("00:05:00", 300), (600, 600)]
)
def test_parse(text, seconds):
    assert walltime.parse(text) == seconds


@pytest.mark.parametrize(
    "seconds, text", [(1, "00:01:00"), (60, "00:01:00"), (61, "00:02:00"), (14400, "04:00:00"), (172800, "48:00:00")]
)
def test_format_rounds_up_to_minutes(seconds, text):
    assert walltime.format(seconds) == text


def test_parse_refuses_garbage():
    with pytest.raises(ValueError):
        walltime.parse("four hours")


@pytest.mark.parametrize(
    "events, source, seconds",
    [
        (1_000_000, "physics", 4320),  # 1 h x 1.2
        (100, "physics", 300),  # the 5-minute floor
        (60_000 * 60, "LED", 4320),  # 6e4 events/minute for LED
        (10**9, "physics", 48 * 3600),  # the ceiling
    ],
)
def test_estimate_from_events_and_source(events, source, seconds):
    assert walltime.estimate(events, source, SETTINGS) == seconds


def test_queue_by_walltime_standby_up_to_its_limit_then_physics():
    assert walltime.plan("170101_0001", 3_300_000, "physics", SETTINGS, QUEUES) == {
        "walltime": "03:58:00",
        "seconds": 14280,
        "queue": "standby",
    }
    assert walltime.plan("170101_0001", 4_000_000, "physics", SETTINGS, QUEUES)["queue"] == "physics"


def test_each_walltime_kill_doubles_the_next_walltime_and_may_change_the_queue():
    first = walltime.plan("170101_0001", 3_000_000, "physics", SETTINGS, QUEUES)
    again = walltime.plan("170101_0001", 3_000_000, "physics", SETTINGS, QUEUES, timeouts=1)
    assert (first["walltime"], first["queue"]) == ("03:36:00", "standby")
    assert (again["walltime"], again["queue"]) == ("07:12:00", "physics")


def test_longer_than_every_queue_is_an_error_naming_the_run():
    with pytest.raises(walltime.WalltimeTooLong, match=r"run 170101_0001: needs a walltime of 96:00:00"):
        walltime.plan("170101_0001", 10**9, "physics", SETTINGS, QUEUES, timeouts=1)


def test_the_config_defaults_are_the_original_tool_s_numbers():
    c = fa_config.validate({})
    w = c["processing"]["walltime"]
    assert w["events_per_hour"] == {"default": 1_000_000, "LED": 3_600_000}
    assert (w["safety_factor"], w["floor_minutes"]) == (1.2, 5)
    assert [q["name"] for q in c["clusters"]["conte"]["queues"]] == ["standby", "physics"]
    assert {"conte", "halstead", "rice", "brown"} <= set(c["clusters"])


def test_listings_of_squeue_and_qstat():
    sq = "12|fa-170101_0001|RUNNING|(null)\n13|0b1c|PENDING|rule_process_run_wildcards_170101_0002\n14|x|TIMEOUT|\n"
    jobs = listings.parse_listing(sq, "squeue")
    assert {j: (v.state, collect.job_run(v, "fa")) for j, v in jobs.items()} == {
        "12": ("RUNNING", "170101_0001"),
        "13": ("PENDING", "170101_0002"),
        "14": ("TIMEOUT", None),
    }
    qstat = (
        "Job id              Name             Username        Time Use S Queue\n"
        "------------------- ---------------- --------------- -------- - ---------------\n"
        "7.login01           fa-170101_0003   asterix         00:00:00 C standby\n"
        "8                   fa-170101_0004   asterix         00:01:10 R physics\n"
    )
    jobs = listings.parse_listing(qstat, "qstat")
    assert {j: v.state for j, v in jobs.items()} == {"7": "C", "8": "R"}


def test_a_job_marker_replays_through_the_processing_state():
    assert sync._steps("processed_status", "queued", "processed", ["processing"]) == ["processing", "processed"]
    assert sync._steps("processed_status", "processing", "processed", ["processing"]) == ["processed"]
    assert sync._steps("processed_status", "queued", "processed", []) == ["processed"]


def test_stale_incomplete_records_of_finished_jobs_are_dropped(tmp_path):
    import base64

    inc = tmp_path / ".snakemake" / "incomplete"
    inc.mkdir(parents=True)
    for run in ("170101_0001", "170101_0002", "170101_0003"):
        (inc / base64.urlsafe_b64encode(f"state/processed/{run}.json".encode()).decode()).write_text("{}")
    (tmp_path / "state" / "processed").mkdir(parents=True)
    (tmp_path / "state" / "processed" / "170101_0001.json").write_text("{}")  # its job finished
    (tmp_path / "state" / "processed" / "170101_0003.json").write_text("{}")  # written, but a job still runs
    collect._clear_finished_incomplete(tmp_path, {"170101_0003"})
    left = sorted(base64.urlsafe_b64decode(p.name).decode() for p in inc.iterdir())
    assert left == ["state/processed/170101_0002.json", "state/processed/170101_0003.json"]
