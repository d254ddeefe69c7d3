"""metrics.registry parses back with every metric; finish's summary line and log pruning."""

import datetime as _dt
import os
import time

from prometheus_client.parser import text_string_to_metric_families

from fulliautomatix import config as fa_config
from fulliautomatix import finish, metrics

FACTS = {
    "runs": {"transferred": 3, "submitted": 1, "processed": 2, "compressed": 2, "archived": 4, "batches": 1},
    "bytes": {"transfer": 3 * 2**30, "compress": 2**30, "archive": 2**31},
    "jobs": 5,
    "daq": "live",
    "seconds": 12.3,
    "finished": 1.8e9,
}


def test_the_textfile_carries_every_metric(tmp_path):
    config = fa_config.validate({"metrics": {"textfile": str(tmp_path / "m" / "fa.prom")}})
    reg = metrics.registry(
        FACTS,
        {("acquired", "none"): 2, ("archived", "processed"): 7},
        {"HELD": 1},
        {"acquired": 60.0},
        {"transfer": 10 * 2**30},
        2,
    )
    assert metrics.publish(config, reg) == []
    text = (tmp_path / "m" / "fa.prom").read_text()
    assert not [p for p in (tmp_path / "m").iterdir() if p.name != "fa.prom"], "no temporary file is left"
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }
    names = {name for name, _ in samples}
    assert {n if n != "fulliautomatix_moved_bytes" else n + "_total" for n in metrics.NAMES} <= names
    assert samples[("fulliautomatix_runs", (("processed_status", "processed"), ("raw_status", "archived")))] == 7
    assert samples[("fulliautomatix_attention_runs", (("kind", "STUCK"),))] == 0
    assert samples[("fulliautomatix_moved_bytes_total", (("stage", "transfer"),))] == 10 * 2**30
    assert samples[("fulliautomatix_tick_runs", (("action", "batches"),))] == 1
    assert samples[("fulliautomatix_daq_live", ())] == 1
    assert samples[("fulliautomatix_scheduler_jobs", ())] == 5


def test_a_failed_push_is_one_line():
    config = fa_config.validate({"metrics": {"textfile": "", "pushgateway": "http://user:pw@127.0.0.1:9/"}})
    lines = metrics.publish(config, metrics.registry(FACTS, {}, {}, {}, {}, 0))
    assert len(lines) == 1 and "pw" not in lines[0] and lines[0].startswith("metrics: push to 127.0.0.1:9/")


def test_the_summary_line():
    line = finish.summary_line("T1", FACTS, {"HELD": 2, "STUCK": 1})
    assert line == (
        "tick T1: transferred 3 (3.00 GiB), submitted 1, processed 2, compressed 2, "
        "archived 4 in 1 batches, held 2, stuck 1, took 12 s"
    )


def test_the_summary_line_of_a_reprocessing_tick_says_so():
    facts = {**FACTS, "runs": {**FACTS["runs"], "processed": 0, "reprocessed": 1}}
    line = finish.summary_line("T2", facts, {})
    assert "submitted 1, processed 0, reprocessed 1, compressed 2, " in line


def test_old_logs_of_ticks_are_pruned(tmp_path):
    config = fa_config.validate(
        {"work_dir": str(tmp_path / "work"), "log_dir": str(tmp_path / "logs"), "log_retention_days": 7}
    )
    old = time.time() - 8 * 86400
    paths = {
        "logs/fulliautomatix-2026-01-01.log": True,
        "logs/fulliautomatix-2026-12-01.log": False,
        "logs/snakemake/T0.log": True,
        "work/.snakemake/log/2026.snakemake.log": True,
        "work/logs/sync_runs_db/T0/1.log": True,
        "work/benchmarks/finish_tick/T0.tsv": True,
        "work/logs/transfer_run/261201_0001/1.log": False,  # a run's own logs stay
    }
    for rel, is_old in paths.items():
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("x")
        if is_old:
            os.utime(p, (old, old))
            os.utime(p.parent, (old, old))
    assert finish.prune_logs(config, _dt.datetime.now(_dt.timezone.utc)) == 5
    assert sorted(rel for rel in paths if (tmp_path / rel).exists()) == [
        "logs/fulliautomatix-2026-12-01.log",
        "work/logs/transfer_run/261201_0001/1.log",
    ]
