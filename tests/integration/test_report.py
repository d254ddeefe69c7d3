"""`fulliautomatix report` and `status --json` on a real nx-27017 runs DB, and the page in a real Chromium.

The runs DB holds runs in every state with lives over the last days
(tests/report_data.py): archived ones after failed attempts, and one HELD,
STUCK, RETRY and BAD run each.  The page is opened in Debian's headless
Chromium, driven over the DevTools protocol (tests/chromium_cdp.py).
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import subprocess
from pathlib import Path

import pytest
import report_data
from chromium_cdp import Chromium, binary
from fa_testlib import ROOT, skip_or_fail

from fulliautomatix import finish, markers, planning, report

UTC = _dt.timezone.utc
PLOTS = {
    "backlog",
    "bytes",
    "rate",
    "daq_to_ondeck",
    "queue_wait",
    "processing",
    "compressed_to_archived",
    "walltime_used",
    "failures",
}


@pytest.fixture
def site_runs(db):
    runs = report_data.site(_dt.datetime.now(UTC))
    db.insert_runs(list(runs.values()))
    return {role: doc["name"] for role, doc in runs.items()}


@pytest.fixture(scope="session")
def chromium():
    """Debian's chromium, installed with apt when missing (as root; CI runs as root)."""
    if binary() is None:
        proc = subprocess.run(
            ["bash", str(ROOT / "scripts" / "system-deps.sh"), "chromium"],
            capture_output=True,
            text=True,
            timeout=1200,
            stdin=subprocess.DEVNULL,
        )
        if proc.returncode != 0 or binary() is None:
            skip_or_fail(f"chromium is not installed: {proc.stderr.strip()[-500:]}")
    return binary()


def report_json(fa, config_path, *args) -> dict:
    r = fa(config_path, "report", "--json", *args)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_report_figures_from_the_run_histories(fa, config_path, site_runs):
    fig = report_json(fa, config_path)
    by_run = {i["run"]: i for i in fig["attention"]}
    assert by_run[site_runs["held"]]["kind"] == "HELD" and "retry" in by_run[site_runs["held"]]["command"]
    assert by_run[site_runs["stuck"]]["kind"] == "STUCK"
    assert by_run[site_runs["retry"]]["kind"] == "RETRY"
    assert by_run[site_runs["bad"]]["kind"] == "BAD"
    assert {site_runs[r] for r in ("acquired", "queued", "compressed")}.isdisjoint(by_run)
    # The backlog's last sample is now: the pending runs per state.
    last = {state: series[-1] for state, series in fig["backlog"]["states"].items() if series[-1]}
    assert last == {"acquired": 4, "transferring": 1, "queued": 1, "compressed": 1}, last
    assert max(fig["backlog"]["states"]["archiving"]) >= 1, "an archived run's past states are rebuilt"
    daily = fig["daily"]
    assert sum(daily["transferred_bytes"]) == 10 * 4_000_000_000
    assert sum(daily["compressed_bytes"]) == 9 * 1_000_000_000
    assert sum(daily["archived_bytes"]) == 8 * 1_000_000_000
    assert [r for r in daily["transfer_mb_per_s"] if r] and all(r > 100 for r in daily["transfer_mb_per_s"] if r)
    d = fig["durations"]
    assert d["queue_wait"]["n"] == 9 and d["compressed_to_archived"]["n"] == 8 and d["daq_to_ondeck"]["n"] == 10
    assert d["processing"]["n"] == 9 and d["walltime_used"]["n"] == 9
    assert d["queue_wait"]["max"] == 8 * 3600, "queued at the 8th run for 8 h"
    assert sum(b["count"] for b in d["walltime_used"]["bins"][-3:]) == 2, "two ran past their walltime"
    failures = fig["failures"]
    assert sum(failures["stages"]["transfer"]) == 9 + 3 + 1 and sum(failures["stages"]["process"]) == 0
    top = failures["top_errors"]
    assert {"stage": "transfer", "message": "rsync exited with 23", "count": 1, "example": site_runs["retry"]} in top
    assert fig["oldest_pending"][0]["run"] == site_runs["compressed"]
    for run in by_run:
        assert run in fig["timelines"], "every listed run has its history"
    assert fig["total"] == 15 and fig["runs_read"] == 15


def test_the_window_and_the_page(fa, config_path, site_runs, config, tmp_path):
    recent = report_json(fa, config_path, "--days", "2")
    assert len(recent["daily"]["days"]) == 3 and recent["runs_read"] < 15
    assert sum(recent["daily"]["archived_bytes"]) < 8 * 1_000_000_000
    r = fa(config_path, "report")
    assert r.returncode == 0, r.stderr
    page = config["report"]["path"]
    assert r.stdout.strip() == f"report written to {page}"
    html = open(page, encoding="utf-8").read()
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "") and "https://" not in html
    assert "<script" not in html and "Content-Security-Policy" in html
    for role in ("held", "stuck", "retry", "bad"):
        assert f'href="#run-{site_runs[role]}"' in html and f'id="run-{site_runs[role]}"' in html
    assert "fulliautomatix retry " + site_runs["held"] in html
    out = tmp_path / "elsewhere" / "r.html"
    r = fa(config_path, "report", "--out", str(out), "--days", "30")
    assert r.returncode == 0 and out.is_file(), r.stderr
    assert fa(config_path, "report", "--days", "0").returncode == 1


def test_status_json_and_a_stuck_run(fa, config_path, site_runs):
    r = fa(config_path, "status", "--json")
    assert r.returncode == 0, r.stderr
    st = json.loads(r.stdout)
    assert st["total"] == 15
    assert {"raw_status": "archived", "processed_status": "processed", "runs": 8} in st["counts"]
    stuck = [i for i in st["attention"] if i["kind"] == "STUCK"]
    assert [i["run"] for i in stuck] == [site_runs["stuck"]]
    assert stuck[0]["state"] == "transferring" and 11 * 3600 < stuck[0]["seconds"] < 12 * 3600
    assert stuck[0]["last"]["to"] == "transferring" and stuck[0]["last"]["at"].endswith("+00:00")
    assert stuck[0]["stage"] == "transfer" and stuck[0]["since"] == stuck[0]["last"]["at"]
    text = fa(config_path, "status").stdout
    line = next(ln for ln in text.splitlines() if ln.startswith("  STUCK"))
    assert site_runs["stuck"] in line and "transferring for 11 h " in line and "limit 6 h 0 min" in line
    assert "last: " in line and "acquired -> transferring on testhost" in line
    assert "fix: fulliautomatix --transfer --run " + site_runs["stuck"] in line


def test_the_page_in_a_real_chromium(fa, config_path, site_runs, config, chromium, tmp_path):
    assert fa(config_path, "report").returncode == 0
    page = config["report"]["path"]
    with Chromium(tmp_path / "profile") as browser:
        browser.open(f"file://{page}")
        plots = browser.evaluate("""[...document.querySelectorAll('svg.plot')].map(s => {
            const r = s.getBoundingClientRect();
            return {name: s.dataset.plot, width: r.width, height: r.height,
                    marks: s.querySelectorAll('.mark').length}; })""")
        shot = browser.screenshot(tmp_path / "report.png")
        stuck = site_runs["stuck"]
        browser.evaluate(f"location.hash = '#run-{stuck}'")
        target = browser.evaluate("document.querySelector(':target') && document.querySelector(':target').id")
        requests, errors = browser.requests(), browser.errors()
    named = {p["name"]: p for p in plots}
    assert PLOTS <= set(named), sorted(named)
    for p in plots:
        assert p["width"] > 300 and p["height"] > 40 and p["marks"] > 0, p
    assert target == f"run-{stuck}"
    assert requests == [f"file://{page}"], requests
    assert errors == []
    assert shot.stat().st_size > 20_000
    print(f"screenshot: {shot}")


def test_the_browser_harness_sees_requests_and_errors(chromium, tmp_path):
    """The control: a page that asks the network and logs an error is caught (its host resolves to nothing)."""
    bad = tmp_path / "bad.html"
    bad.write_text(
        '<html><body><img src="http://report-test.invalid/x.png"><script>console.error("boom")</script></body></html>'
    )
    with Chromium(tmp_path / "profile") as browser:
        browser.open(f"file://{bad}")
        requests, errors = browser.requests(), browser.errors()
    assert "http://report-test.invalid/x.png" in requests
    assert any("boom" in e for e in errors), errors


def test_a_tick_writes_the_report_after_its_work(fa, make_config, tmp_path):
    config_path = make_config()
    assert fa(config_path, "simulate-daq", "--runs", "2").returncode == 0
    r = fa(config_path)
    assert r.returncode == 0, r.stderr
    page = tmp_path / "logs" / "report.html"
    assert page.is_file()
    markers = list((tmp_path / "work" / "state" / "ticks").glob("*/report.json"))
    assert len(markers) == 1
    marker = json.loads(markers[0].read_text())
    assert marker["path"] == str(page) and marker["attention"] == {}
    fig = report_json(fa, config_path)
    assert {"raw_status": "archived", "processed_status": "processed", "runs": 2} in fig["counts"]
    assert sum(fig["daily"]["archived_bytes"]) > 0 and fig["durations"]["daq_to_ondeck"]["n"] == 2
    off = make_config(report={"every_tick": False})
    assert fa(off, "simulate-daq", "--runs", "1").returncode == 0
    page.unlink()
    assert fa(off).returncode == 0 and not page.exists()


def test_a_tick_the_wrapper_finishes_itself_writes_its_report_too(db, config, site_runs, tmp_path):
    """Batch jobs left running (detached): the wrapper ends the tick with finish_tick and the report."""
    tick = "20261201T120000-4242"
    work = Path(config["work_dir"])
    markers.write(work / planning.plan_path(tick), planning.TickPlan(tick=tick, stages=[]).as_dict())
    lines = finish.after_snakemake(db, config, tick, 0, True, 0, tmp_path / "snakemake.log")
    assert [text for level, text in lines if level > logging.INFO] == [] and f"tick {tick}:" in lines[-1][1]
    assert (work / "state" / "ticks" / tick / "finish.json").is_file()
    marker = json.loads((work / planning.report_path(tick)).read_text())
    assert marker["path"] == str(report.default_path(config)) and Path(marker["path"]).is_file()
    assert marker["attention"] == {"BAD": 1, "HELD": 1, "RETRY": 1, "STUCK": 1}


def leftovers(directory: Path) -> list[str]:
    """Temporary files of an interrupted page write (.NAME.PID.tmp) in a directory."""
    return sorted(p.name for p in directory.iterdir() if p.name.startswith(".") and p.name.endswith(".tmp"))


def test_a_page_that_cannot_be_written_is_one_line_and_leaves_nothing(fa, make_config, tmp_path):
    """--out a directory, --out where no file can be made, report.path a directory in a tick: one line
    naming the path, why and what to do; no traceback, no temporary file left beside it."""
    out_dir = tmp_path / "pages"
    out_dir.mkdir()
    config_path = make_config(report={"path": str(out_dir)})
    r = fa(config_path, "report", "--out", str(out_dir))
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.strip().splitlines() == [
        f"fulliautomatix: report: {out_dir} is a directory, not a file; nothing written: give --out a file you "
        f"can write (e.g. {out_dir / 'report.html'})"
    ]
    r = fa(config_path, "report", "--out", "/proc/fa-report.html")  # no file can be created in /proc
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith("fulliautomatix: report: cannot write /proc/fa-report.html: ") and "--out" in line, line
    # a file that is not a report is never replaced (as root, `--out /etc/passwd` once replaced it)
    other = tmp_path / "passwd"
    other.write_text("root:x:0:0:root:/root:/bin/bash\n")
    r = fa(config_path, "report", "--out", str(other))
    assert r.returncode == 1 and r.stderr.strip().splitlines() == [
        f"fulliautomatix: report: {other} exists and is not a Fulliautomatix report; it is never replaced: give "
        "--out a file you can write"
    ], r.stderr
    assert other.read_text() == "root:x:0:0:root:/root:/bin/bash\n"
    page = tmp_path / "page.html"
    for _ in range(2):  # an earlier report is replaced
        assert fa(config_path, "report", "--out", str(page)).returncode == 0 and page.stat().st_size > 1000

    assert fa(config_path, "simulate-daq", "--runs", "1").returncode == 0
    r = fa(config_path)  # the tick's write_report job, with report.path a directory
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    said = [ln for ln in r.stderr.splitlines() if "is a directory" in ln]
    assert said == [
        f"fulliautomatix: report: {out_dir} is a directory, not a file; nothing written: set report.path in "
        f'the config to a file you can write ("": <log_dir>/report.html) (e.g. {out_dir / "report.html"})'
    ], r.stderr
    assert leftovers(tmp_path) == [] and leftovers(out_dir) == []
