"""notify: which messages a tick sends, credentials kept out of lines, one send per problem under the lock."""

import datetime as _dt
import threading

import pytest

from fulliautomatix import attention, notify
from fulliautomatix import config as fa_config
from receivers import HookServer

NOW = _dt.datetime(2026, 12, 1, 12, 0, tzinfo=_dt.timezone.utc)


def problem(kind="HELD", run="261201_0001", stage=""):
    return attention.Problem(run, kind, f"run {run}: {kind.lower()}", f"fulliautomatix retry {run}", stage)


def test_new_open_and_resolved_problems():
    state = {}
    first = notify.events(state, [problem(), problem("STUCK", "261201_0002")], NOW, 24)
    assert [m["title"] for m in first] == [
        "[fulliautomatix] HELD run 261201_0001",
        "[fulliautomatix] STUCK run 261201_0002",
    ]
    assert [m["type"] for m in first] == ["failure", "warning"]
    assert notify.events(state, [problem(), problem("STUCK", "261201_0002")], NOW + _dt.timedelta(hours=1), 24) == []
    later = notify.events(state, [problem()], NOW + _dt.timedelta(hours=25), 24)
    assert [m["title"] for m in later] == [
        "[fulliautomatix] still open for 1 d 1 h: HELD run 261201_0001",
        "[fulliautomatix] resolved: STUCK run 261201_0002",
    ]
    assert later[1]["type"] == "success" and list(state["open"]) == ["HELD:261201_0001"]
    assert notify.events(state, [problem()], NOW + _dt.timedelta(days=30), 0) == [], "repeat_hours 0: never"


def test_only_held_bad_stuck_failed_archives_and_tick_failures_are_sent():
    assert notify.notifiable(problem("RETRY", stage="archive"))
    assert not notify.notifiable(problem("RETRY", stage="transfer"))
    assert all(notify.notifiable(problem(k)) for k in ("HELD", "BAD", "STUCK", "CRASH", "RUNSDB", "DAQ"))


def test_a_flood_is_capped_into_one_last_message():
    messages = [{"title": f"t{i}", "body": f"b{i}\nmore", "type": "warning"} for i in range(30)]
    capped = notify.capped(messages, 5)
    assert len(capped) == 5 and capped[-1]["title"] == "[fulliautomatix] 26 more events"
    assert "t29\nb29" in capped[-1]["body"] and "more" not in capped[-1]["body"].split("\n")[1]


def test_the_digest_goes_once_a_day_after_its_time():
    state = {"open": {"HELD:r": {"reason": "run r: held", "first": "2026-12-01T00:00:00+00:00"}}}
    morning = _dt.datetime(2026, 12, 1, 7, 59)
    assert notify.digest(state, {}, morning, "08:00") is None
    d = notify.digest(state, {("acquired", "none"): 3}, morning.replace(hour=9), "08:00")
    assert d["title"] == "[fulliautomatix] daily digest: 1 open problems" and "acquired/none 3" in d["body"]
    assert notify.digest(state, {}, morning.replace(hour=23), "08:00") is None
    assert notify.digest({}, {}, morning.replace(hour=9), "") is None


@pytest.mark.parametrize(
    "url, secrets",
    [
        ("mailtos://fa:Pa55w0rd@smtp.example.org?to=shift@example.org", ["Pa55w0rd"]),
        ("json://hooks.example.org/fa?token=T0k3nValue", ["T0k3nValue"]),
        ("slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ/#daq", ["T1JJ3T3L2", "TIiajkdnlazkcOXrIdevi7FQ"]),
        ("mmost://mattermost.example.org/3ccdd113474722377935511fc85d3dd4", ["3ccdd113474722377935511fc85d3dd4"]),
    ],
)
def test_credentials_are_scrubbed_from_lines(url, secrets):
    text = f"Failed to send to {url} ({url.split('://')[1]})"
    clean = notify.scrub(text, [url])
    assert not any(s in clean for s in secrets), clean
    assert notify.label([url], 0) == f"notify.urls[0] ({url.split(':')[0]})"


def test_tick_failures_open_after_enough_ticks():
    state = {"failures": {"DAQ": {"count": 2, "reason": "no DAQ"}, "CRASH": {"count": 1, "reason": "boom"}}}
    assert [p.kind for p in notify.failure_problems(state, 3)] == ["CRASH"]
    state["failures"]["DAQ"]["count"] = 3
    assert [p.key for p in notify.failure_problems(state, 3)] == ["CRASH:", "DAQ:"]


def test_two_ticks_at_once_send_each_problem_once(tmp_path):
    with HookServer() as hook:
        config = fa_config.validate({"work_dir": str(tmp_path), "notify": {"urls": [hook.url()]}})
        found = [problem(), problem("BAD", "261201_0009")]
        lines = []
        threads = [
            threading.Thread(target=lambda: lines.extend(notify.tick_end(config, found, {}, "idle"))) for _ in range(4)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert lines == []
        assert hook.titles() == ["[fulliautomatix] BAD run 261201_0009", "[fulliautomatix] HELD run 261201_0001"]
        notify.tick_end(config, found[:1], {}, "idle")
        assert len(hook.posts) == 3 and hook.posts[-1]["title"] == "[fulliautomatix] resolved: BAD run 261201_0009"


def test_the_daq_unreachable_for_n_ticks_is_one_message_then_resolved(tmp_path):
    with HookServer() as hook:
        config = fa_config.validate(
            {"work_dir": str(tmp_path), "notify": {"urls": [hook.url()], "after_failed_ticks": 2}}
        )
        notify.tick_end(config, [], {}, "unreachable")
        notify.tick_end(config, [], {}, "")  # not asked: the count stands
        assert hook.posts == []
        notify.tick_end(config, [], {}, "unreachable")
        notify.tick_end(config, [], {}, "unreachable")
        notify.tick_end(config, [], {}, "idle")
        assert [p["title"] for p in hook.posts] == [
            "[fulliautomatix] the DAQ is unreachable",
            "[fulliautomatix] resolved: the DAQ is unreachable",
        ]
