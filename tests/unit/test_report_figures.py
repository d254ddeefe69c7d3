"""report.py's one pass over run documents, and the page, without a runs DB (times as strings and as dates)."""

from __future__ import annotations

import datetime as _dt
import sys
from pathlib import Path

import pytest

from fulliautomatix import dates, report, report_html, svgplot

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import report_data  # noqa: E402

UTC = _dt.timezone.utc
NOW = _dt.datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def test_times_are_read_in_both_forms():
    s = dates.as_utc("2026-11-27T12:00:00+00:00")
    assert s == dates.as_utc(_dt.datetime(2026, 11, 27, 12)) == dates.as_utc(NOW) == NOW
    assert dates.as_utc("2026-11-27T13:00:00+01:00") == NOW
    assert dates.as_utc(None) is None and dates.as_utc("yesterday") is None and dates.as_utc(5) is None
    assert dates.iso(dates.as_utc(_dt.datetime(2026, 11, 27, 12))) == "2026-11-27T12:00:00+00:00"


@pytest.mark.parametrize("as_date", [False, True])
def test_one_life_gives_every_figure(as_date):
    life = report_data.Life(1, NOW - _dt.timedelta(days=2), as_date=as_date)
    life.transfer(failures=1).process(queue_hours=3, run_hours=1).compress().archive(wait_hours=4)
    agg = report.Aggregator(NOW - _dt.timedelta(days=3), NOW, samples=72)  # one sample an hour
    agg.add(life.doc)
    fig = agg.figures()
    assert fig["daily"]["days"] == ["2026-11-24", "2026-11-25", "2026-11-26", "2026-11-27"]
    assert sum(fig["daily"]["transferred_bytes"]) == 4_000_000_000
    assert sum(fig["daily"]["archived_bytes"]) == sum(fig["daily"]["compressed_bytes"]) == 1_000_000_000
    d = fig["durations"]
    assert d["queue_wait"]["median"] == 3 * 3600 and d["processing"]["median"] == 3600
    assert d["compressed_to_archived"]["median"] == 4.5 * 3600 and d["walltime_used"]["median"] == 0.5
    assert d["daq_to_ondeck"]["median"] == 2.0 * 3600  # a failed attempt (0.5 h), then 1.5 h
    assert sum(fig["failures"]["stages"]["transfer"]) == 1
    series = fig["backlog"]["states"]
    assert series["queued"][24 + 3] == 1 and sum(series["queued"]) == 3, "queued 3 h: three hourly samples"
    assert all(s[-1] == 0 for s in series.values()), "archived now: no backlog"


def test_a_pending_run_not_written_in_the_window_counts_all_along():
    run = {
        "name": "261101_0001",
        "raw_status": "compressed",
        "processed_status": "processed",
        "start": "2026-11-01T00:00:00+00:00",
        "history": [
            {"at": "2026-11-01T05:00:00+00:00", "field": "raw_status", "from": "compressing", "to": "compressed"}
        ],
    }
    agg = report.Aggregator(NOW - _dt.timedelta(days=1), NOW, samples=24)
    agg.add(run)
    assert agg.figures()["backlog"]["states"]["compressed"] == [1] * 25


def test_summary_bins_and_percentiles():
    s = report.summary([5, 20, 3600, 3600, 90000], report.EDGES, report.EDGE_LABELS)
    assert (s["n"], s["median"], s["max"]) == (5, 3600, 90000)
    assert [b["count"] for b in s["bins"] if b["count"]] == [1, 1, 2, 1]
    assert report.summary([], report.EDGES, report.EDGE_LABELS)["median"] is None


def test_axes_are_round():
    assert svgplot.nice_max(5) == 8 and svgplot.nice_max(3) == 4 and svgplot.nice_max(8e9) == 8e9
    assert svgplot.nice_max(0) == 4 and svgplot.nice_max(0.3) == 0.4


def test_the_page_escapes_what_runs_carry():
    life = report_data.Life(1, NOW - _dt.timedelta(hours=3))
    life.step(0.5, "raw_status", "transferring").step(
        0.5, "raw_status", "acquired", "<b>failed</b>", transfer={"attempts": 1, "error": "<script>x</script>"}
    )
    agg = report.Aggregator(NOW - _dt.timedelta(days=1), NOW)
    agg.add(life.doc)
    fig = {
        "generated": "now",
        "window": {"from": "a", "to": "b", "days": 1.0},
        "counts": [],
        "total": 1,
        "runs_read": 1,
        **agg.figures(),
        "attention": [],
        "oldest_pending": [],
        "timelines": {life.name: report.timeline(life.doc, NOW)},
    }
    html = report_html.render(fig)
    assert "<script" not in html and "&lt;script&gt;" in html and "&lt;b&gt;failed" in html
    assert html.count('class="plot"') == 1 + 2 + 5 + 1 + 1  # backlog, bytes+rate, 5 histograms, failures, a run
