"""Times: one clock, both stored forms read alike, known date fields made dates on write."""

import datetime as dt
import json

import pytest

from fulliautomatix import dates, markers

UTC = dt.timezone.utc
T = dt.datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def test_now_is_aware_utc_to_the_second():
    t = dates.now()
    assert t.tzinfo is not None and t.utcoffset() == dt.timedelta(0)
    assert t.microsecond == 0


@pytest.mark.parametrize(
    "value",
    [
        T,
        "2024-05-01T12:00:00+00:00",  # what Fulliautomatix wrote before dates
        "2024-05-01T12:00:00Z",
        "2024-05-01T14:00:00+02:00",
        "2024-05-01T12:00:00",  # no zone: UTC
        "2024-05-01 12:00:00",  # how nx-27017 stringifies a datetime
        T.replace(tzinfo=None),  # pymongo without tz_aware
        T.astimezone(dt.timezone(dt.timedelta(hours=-5))),
    ],
)
def test_as_utc_reads_both_forms(value):
    t = dates.as_utc(value)
    assert t == T and t.utcoffset() == dt.timedelta(0)


@pytest.mark.parametrize("value", [None, "", "yesterday", 12, {"$date": 1}])
def test_as_utc_is_none_for_what_is_not_a_time(value):
    assert dates.as_utc(value) is None


def test_iso_is_what_markers_and_messages_show():
    assert dates.iso(T) == "2024-05-01T12:00:00+00:00"
    assert dates.iso("2024-05-01T14:00:00+02:00") == "2024-05-01T12:00:00+00:00"
    assert dates.iso(None) is None


def test_for_db_makes_every_known_date_a_datetime_and_leaves_the_rest():
    s = "2024-05-01T12:00:00+00:00"
    sets = {
        "transfer": {
            "started": s,
            "finished": s,
            "bytes": 3,
            "daq_purge": {"at": s, "error": None},
            "verified_by": f"copy x, verified {s}",
        },
        "processing.finished": s,
        "history": [{"at": s, "to": "ondeck"}, {"at": T, "to": "x"}, "not a document"],
        "processed_outputs": [{"finished": s, "output": "/o"}, {"finished": None}],
        "archive": {"verified": s, "batch": "b"},
        "reprocess": None,
        "note": s,
    }
    out = dates.for_db(sets)
    assert out["transfer"]["started"] == T and out["transfer"]["daq_purge"]["at"] == T
    assert out["transfer"]["verified_by"] == sets["transfer"]["verified_by"], "text stays text"
    assert out["processing.finished"] == T
    assert [h.get("at") if isinstance(h, dict) else h for h in out["history"]] == [T, T, "not a document"]
    assert out["processed_outputs"] == [{"finished": T, "output": "/o"}, {"finished": None}]
    assert out["archive"] == {"verified": T, "batch": "b"} and out["reprocess"] is None
    assert out["note"] == s, "only known date fields"
    assert sets["transfer"]["started"] == s and sets["history"][0]["at"] == s, "the argument is not changed"


def test_for_db_leaves_a_converted_document_equal():
    doc = {"start": T, "history": [{"at": T}], "compressed": {"at": T}, "updated_at": T}
    assert dates.for_db(doc) == doc


def test_markers_store_times_as_iso_strings(tmp_path):
    p = tmp_path / "m.json"
    markers.write(p, {"run": "r", "set": {"transfer": {"finished": T}}})
    assert json.loads(p.read_text())["set"]["transfer"]["finished"] == "2024-05-01T12:00:00+00:00"
    replayed = dates.for_db(markers.read(p)["set"])
    assert replayed["transfer"]["finished"] == T


def test_day_number_is_the_utc_day_of_a_time_in_either_form():
    assert dates.day_number(T) == dates.day_number("2024-05-01T12:00:00+00:00") == 20240501
    assert dates.day_number("2024-05-02T01:00:00+02:00") == 20240501, "the UTC day"
    assert dates.day_number(None) is None and dates.day_number("yesterday") is None


def test_migrated_adds_updated_day_from_updated_at_and_converts_the_dates():
    old = {"start": "2024-05-01T12:00:00+00:00", "updated_at": "2024-05-01T23:59:59+00:00", "history": []}
    new = dates.migrated(old)
    assert new["start"] == T and new["updated_day"] == 20240501
    assert "updated_day" not in old, "the argument is not changed"
    assert dates.migrated(new) == new, "a migrated document stays as it is"
    assert dates.migrated({"start": T, "updated_at": T, "updated_day": 20991231})["updated_day"] == 20991231
    assert "updated_day" not in dates.migrated({"start": T}), "never written since the DAQ: nothing to take it from"


@pytest.mark.parametrize(
    "seconds, shown",
    [
        (12, "12 s"),
        (7 * 60 + 5, "7 min"),
        (5 * 3600 + 12 * 60, "5 h 12 min"),
        (3 * 86400 + 4 * 3600 + 59, "3 d 4 h"),
        (-3, "0 s"),
        (None, "?"),
    ],
)
def test_duration_for_people(seconds, shown):
    assert dates.duration(seconds) == shown
