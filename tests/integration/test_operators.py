"""Notifications, metrics and `check` through real ticks (issue 11, points 4-6).

A real SMTP server (aiosmtpd) and a real web hook (http.server) on loopback;
the real `fulliautomatix` command, Snakemake and nx-27017.  A run made HELD
and another STUCK give exactly one mail and one JSON post each; a second tick
sends nothing; `fulliautomatix retry` and a tick send one "resolved".
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from fa_testlib import ROOT, simulate
from fulliautomatix import metrics
from receivers import HookServer, SilentServer, SmtpServer, free_port


@pytest.fixture
def smtp():
    with SmtpServer() as server:
        yield server


@pytest.fixture
def hook():
    with HookServer() as server:
        yield server


def tick(fa, config_path, *args):
    r = fa(config_path, *args)
    assert r.returncode == 0, r.stderr
    return r


def every_log(tmp_path: Path) -> str:
    """Everything written under the logs and the work dir's logs, and the tick records."""
    text = []
    for root in (tmp_path / "logs", tmp_path / "work" / "logs", tmp_path / "work" / ".snakemake" / "log"):
        for p in root.rglob("*"):
            if p.is_file():
                text.append(p.read_text(errors="replace"))
    return "\n".join(text)


def held_and_stuck(raw_collection, names):
    """names[0] HELD (its transfer failed 3 times), names[1] STUCK (acquired 3 h ago, DAQ not live)."""
    raw_collection.update_one(
        {"name": names[0]}, {"$set": {"transfer": {"attempts": 3, "error": "rsync exited 12 (protocol data stream)"}}}
    )
    three_hours_ago = _dt.datetime.now(_dt.timezone.utc) - _dt.timedelta(hours=3)
    raw_collection.update_one({"name": names[1]}, {"$set": {"start": three_hours_ago}})  # a BSON date


def test_held_and_stuck_runs_mail_and_post_once_then_resolve(fa, make_config, raw_collection, smtp, hook, tmp_path):
    prom = tmp_path / "metrics" / "fa.prom"
    config_path = make_config(
        notify={"urls": [smtp.url(), hook.url()]}, metrics={"textfile": str(prom)}, daq={"settle_seconds": 10**9}
    )  # no run is transferred: both stay acquired
    names = simulate(fa, config_path, 2)
    held_and_stuck(raw_collection, names)

    first = tick(fa, config_path)
    expected = sorted([f"[fulliautomatix] HELD run {names[0]}", f"[fulliautomatix] STUCK run {names[1]}"])
    assert smtp.inbox.subjects() == expected
    assert hook.titles() == expected
    assert {p["type"] for p in hook.posts} == {"failure", "warning"}
    held_post = next(p for p in hook.posts if "HELD" in p["title"])
    assert f"fulliautomatix retry {names[0]}" in held_post["message"]
    summary = [line for line in first.stderr.splitlines() if "transferred 0 (" in line]
    assert len(summary) == 1 and "held 1, stuck 1, took" in summary[0], first.stderr
    assert summary[0].split("fulliautomatix: ", 1)[1] in every_log(tmp_path), "the summary is in the dated log"
    check = fa(config_path, "check")
    assert check.returncode == 2 and check.stdout.startswith("FULLIAUTOMATIX CRITICAL - 1 held"), check.stdout
    assert len(check.stdout.strip().splitlines()) == 1

    families = {f.name: f for f in text_string_to_metric_families(prom.read_text())}
    assert set(metrics.NAMES) <= set(families), set(metrics.NAMES) - set(families)
    kinds = {s.labels["kind"]: s.value for s in families["fulliautomatix_attention_runs"].samples}
    assert kinds == {"BAD": 0, "HELD": 1, "STUCK": 1, "RETRY": 0}
    oldest = {s.labels["state"]: s.value for s in families["fulliautomatix_oldest_run_age_seconds"].samples}
    assert oldest["acquired"] >= 3 * 3600 - 60
    assert [s.value for s in families["fulliautomatix_daq_live"].samples] == [0]
    last = families["fulliautomatix_last_success_timestamp_seconds"].samples[0].value
    assert abs(time.time() - last) < 120

    tick(fa, config_path)
    assert len(smtp.inbox.mails) == 2 and len(hook.posts) == 2, "a second tick sends nothing new"

    assert fa(config_path, "retry", names[0]).returncode == 0
    tick(fa, config_path)
    resolved = f"[fulliautomatix] resolved: HELD run {names[0]}"
    assert smtp.inbox.subjects() == sorted(expected + [resolved])
    assert hook.titles() == sorted(expected + [resolved])
    assert hook.posts[-1]["type"] == "success"
    check = fa(config_path, "check")
    assert check.returncode == 1 and "WARNING - 0 held, 0 bad, 1 stuck" in check.stdout, check.stdout


def test_failing_destinations_never_fail_a_tick_nor_show_credentials(fa, make_config, raw_collection, tmp_path):
    secret = "s3cr3t-Pa55"
    with SilentServer() as silent:
        urls = [
            f"mailtos://fa:{secret}@127.0.0.1:{free_port()}?to=shift@example.org&from=fa@example.org",
            f"json://fa:{secret}@127.0.0.1:{silent.port}/hook?token={secret}",
        ]
        config_path = make_config(
            notify={"urls": urls, "timeout_seconds": 3},
            metrics={"textfile": str(tmp_path / "fa.prom")},
            daq={"settle_seconds": 10**9},
        )
        names = simulate(fa, config_path, 2)
        held_and_stuck(raw_collection, names)
        t0 = time.monotonic()
        first = tick(fa, config_path)
        took = time.monotonic() - t0
    assert "notify.urls[0] (mailtos) failed: " in first.stderr, first.stderr  # refused: nothing listens
    assert "notify.urls[1] (json) failed: no answer within 3 s" in first.stderr, first.stderr
    assert took < 60
    logs = every_log(tmp_path) + first.stderr
    assert secret not in logs and secret not in (tmp_path / "fa.prom").read_text()
    assert "messages wait for the next tick" in first.stderr
    assert not list((tmp_path / "work" / "state" / "ticks").glob("*.yaml")), "tick files are removed"
    outbox = json.loads((tmp_path / "work" / "state" / "notify.json").read_text())["outbox"]
    assert len(outbox) == 2, "both messages wait for both destinations"


def test_a_crashed_tick_and_an_unreachable_runs_db_are_notified(fa, make_config, hook, tmp_path):
    home = tmp_path / "home"
    for tree in ("workflow", "profiles", "config"):
        shutil.copytree(ROOT / tree, home / tree, ignore=shutil.ignore_patterns(".snakemake", "__pycache__"))
    with open(home / "workflow" / "rules" / "finish.smk", "a") as fh:
        fh.write("\nthis is not Snakemake\n")
    config_path = make_config(
        notify={"urls": [hook.url()], "after_failed_ticks": 2}, metrics={"textfile": str(tmp_path / "fa.prom")}
    )
    simulate(fa, config_path, 1)
    crashed = fa(config_path, env={"FULLIAUTOMATIX_HOME": str(home), "PYTHONPATH": str(ROOT / "src")})
    assert crashed.returncode == 1 and "crashed" in crashed.stderr, crashed.stderr
    assert [p["title"] for p in hook.posts] == ["[fulliautomatix] a tick crashed"]
    tick(fa, config_path)
    assert hook.posts[-1]["title"] == "[fulliautomatix] resolved: a tick crashed"

    cfg = yaml.safe_load(config_path.read_text())
    cfg["runs_db"] = {"uri": f"mongodb://127.0.0.1:{free_port()}/", "timeout_seconds": 0.5}
    config_path.write_text(yaml.safe_dump(cfg))
    for n in (1, 2):
        r = fa(config_path)
        assert r.returncode == 1 and "unreachable" in r.stderr
        assert len(hook.posts) == 2 + (n == 2), f"after {n} failed ticks"
    assert hook.posts[-1]["title"] == "[fulliautomatix] the runs DB is unreachable"
    check = fa(config_path, "check")
    assert check.returncode == 3 and check.stdout.startswith("FULLIAUTOMATIX UNKNOWN"), check.stdout


def test_check_says_ok_then_critical_when_ticks_are_overdue(fa, make_config, tmp_path):
    config_path = make_config(metrics={"textfile": str(tmp_path / "fa.prom")})
    assert fa(config_path, "check").returncode == 2, "no tick has reached its end yet"
    simulate(fa, config_path, 2)
    quiet = tick(fa, config_path, "--log", "warning")  # the cron line
    assert quiet.stderr == "", "a quiet tick prints nothing for cron to mail"
    dated = "".join(p.read_text() for p in (tmp_path / "logs").glob("fulliautomatix-*.log"))
    assert "transferred 2 (0.00 GiB), submitted 0, processed 2, compressed 2, archived 2 in 1 batches" in dated
    ok = fa(config_path, "check")
    assert ok.returncode == 0 and ok.stdout.startswith("FULLIAUTOMATIX OK - 0 held"), ok.stdout
    record = tmp_path / "work" / "state" / "last_tick.json"
    data = json.loads(record.read_text())
    data["finished_ts"] -= 2 * 3600
    record.write_text(json.dumps(data))
    late = fa(config_path, "check")
    assert late.returncode == 2 and "(overdue)" in late.stdout, late.stdout
    assert os.stat(tmp_path / "fa.prom").st_size > 0


def test_snakemake_run_directly_ends_its_tick_the_same_way(fa, make_config, raw_collection, hook, tmp_path):
    """The other door: `snakemake --profile` reaches finish_tick itself (summary, notification, metrics)."""
    prom = tmp_path / "fa.prom"
    config_path = make_config(notify={"urls": [hook.url()]}, metrics={"textfile": str(prom)})
    names = simulate(fa, config_path, 2)
    raw_collection.update_one({"name": names[0]}, {"$set": {"transfer": {"attempts": 3, "error": "rsync exited 12"}}})
    env = {k: v for k, v in os.environ.items() if not k.startswith("FULLIAUTOMATIX_")}
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "--profile", "profiles/local", "--configfile", str(config_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = [line for line in proc.stderr.splitlines() if line.startswith("fulliautomatix info: tick ")]
    assert len(summary) == 1 and "transferred 1 (" in summary[0] and "held 1, stuck 0" in summary[0], summary
    assert hook.titles() == [f"[fulliautomatix] HELD run {names[0]}"]
    assert "fulliautomatix_tick_runs" in prom.read_text()
    assert fa(config_path, "check").returncode == 2


def one_error_line(r) -> str:
    """The one line a refused command prints (exit status not 0, no traceback)."""
    lines = r.stderr.strip().splitlines()
    assert r.returncode != 0 and len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    return lines[0]


def test_a_run_number_too_large_or_several_runs_hold_is_refused_in_one_line(fa, config_path, raw_collection):
    """Run numbers restart (a new DAQ day or DAQ): a number two runs hold names neither; one over BSON's int64
    is not sent to the runs DB at all."""
    names = simulate(fa, config_path, 2)
    big = "99999999999999999999"
    for args in (["--run", big], ["status", big], ["retry", big], ["restore", big], ["audit", big]):
        line = one_error_line(fa(config_path, *args))
        assert f"run {big}: not a run name, and too large for a run number" in line, (args, line)

    number = raw_collection.find_one({"name": names[0]})["number"]
    raw_collection.update_one({"name": names[1]}, {"$set": {"number": number}})
    held_and_stuck(raw_collection, names)  # names[0] held: what `retry` clears
    before = {n: raw_collection.find_one({"name": n}) for n in names}
    for args in (["retry", str(number)], ["status", str(number)], ["--run", str(number)]):
        line = one_error_line(fa(config_path, *args))
        assert f"run number {number} matches {names[0]}, {names[1]}: give the name" in line, (args, line)
    assert {n: raw_collection.find_one({"name": n}) for n in names} == before, "nothing was written"


def test_retry_refuses_a_run_that_is_neither_held_nor_failed(fa, make_config, raw_collection):
    config_path = make_config(archive={"batch_runs": 1})
    (name,) = simulate(fa, config_path, 1)
    tick(fa, config_path)
    before = raw_collection.find_one({"name": name})
    assert before["raw_status"] == "archived" and before["transfer"]["attempts"] == 1

    line = one_error_line(fa(config_path, "retry", name))
    assert line == (
        f"fulliautomatix: run {name}: raw_status archived, processed_status processed, neither held nor failed: "
        f"nothing to retry, nothing changed (`fulliautomatix status {name}`)"
    )
    assert raw_collection.find_one({"name": name}) == before, "nothing was written"
