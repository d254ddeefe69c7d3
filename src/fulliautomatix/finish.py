"""The end of a tick (rule finish_tick).

:func:`finish_tick` runs after every other job of a tick: it counts what the
tick did (from its plan and the stage markers it wrote), prints one summary
line, hands the attention list to :mod:`fulliautomatix.notify`, writes the
metrics (:mod:`fulliautomatix.metrics`), prunes old logs, and records the
tick in ``state/last_tick.json`` -- the time of the last successful tick that
:func:`fulliautomatix.healthcheck.check` and the metrics' dead-man's switch read.

Snakemake skips this job when another job of the tick failed; the next tick
that reaches its end sees that failure in the runs DB (RETRY, HELD) and the
wrapper reports a tick that crashed (README "Notifications").
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import shutil
import time
from pathlib import Path

from . import attention, dates, markers, metrics, notify, planning, report, runsdb
from .healthcheck import LAST_TICK, last_tick
from .batch.records import all_records
from . import config as fa_config

# Their logs are one per tick.
PER_TICK_RULES = ("sync_runs_db", "close_batches", "audit_archive", "finish_tick", "write_report")


def tick_start(tick: str, plan_file: str | Path) -> float:
    """When the tick started: the time in its id (YYYYmmddTHHMMSS-pid), else its plan's time."""
    try:
        return time.mktime(time.strptime(tick.split("-")[0], "%Y%m%dT%H%M%S"))
    except ValueError:
        return Path(plan_file).stat().st_mtime


def _fresh(path: Path, start: float) -> dict | None:
    """A marker this tick wrote (modified since it started), read; else None."""
    try:
        if path.stat().st_mtime >= start:
            return markers.read(path)
    except (OSError, json.JSONDecodeError):
        pass
    return None


def tick_facts(config: dict, plan: dict, batches: dict, start: float) -> dict:
    """Runs per action and bytes per stage this tick, from the markers it wrote, and jobs in the scheduler."""
    state = fa_config.state_dir(config)
    runs = {Path(t).stem for t in plan.get("targets", []) if t.count("/") == 2} | set(plan.get("compress_runs", []))
    done = dict.fromkeys(metrics.ACTIONS, 0)
    moved = dict.fromkeys(metrics.STAGES, 0)
    for run in sorted(runs):
        for stage, action in (("transfer", "transferred"), ("process", "processed"), ("compress", "compressed")):
            marker = _fresh(markers.path(state, stage, run), start)
            if marker:
                done[action] += 1
                if stage in moved:
                    moved[stage] += int((marker.get("measured") or {}).get("bytes") or 0)
    for target in plan.get("targets", []):  # reprocessing: state/reprocessed/RUN/TAG.json (README "Reprocessing")
        if target.startswith("state/reprocessed/") and _fresh(Path(config["work_dir"]) / target, start):
            done["reprocessed"] += 1
    for batch in batches.get("batches", {}):
        marker = _fresh(markers.batch_path(state, batch), start)
        if marker:
            members = list((marker.get("runs") or {}).values())
            done["batches"] += 1
            done["archived"] += len(members)
            moved["archive"] += int(((members or [{}])[0].get("archive") or {}).get("tarball_bytes") or 0)
    records = all_records(config["work_dir"])
    started = _dt.datetime.fromtimestamp(start, _dt.timezone.utc)
    done["submitted"] = sum(1 for r in records if (dates.as_utc(r.get("submitted")) or started) > started)
    jobs = sum(1 for r in records if r.get("job_id") and not r.get("collected"))
    return {"runs": done, "bytes": moved, "jobs": jobs, "daq": plan.get("daq", "")}


def summary_line(tick: str, facts: dict, kinds: dict) -> str:
    r = facts["runs"]
    lost = "".join(f"{k.lower()} {kinds[k]}, " for k in ("LOST", "LOST-COPY") if kinds.get(k))
    reprocessed = f"reprocessed {r['reprocessed']}, " if r.get("reprocessed") else ""
    return (
        f"tick {tick}: transferred {r['transferred']} ({facts['bytes']['transfer'] / 2**30:.2f} GiB), "
        f"submitted {r['submitted']}, processed {r['processed']}, {reprocessed}compressed {r['compressed']}, "
        f"archived {r['archived']} in {r['batches']} batches, held {kinds.get('HELD', 0)}, "
        f"stuck {kinds.get('STUCK', 0)}, {lost}took {facts['seconds']:.0f} s"
    )


def _outbox(config: dict) -> int:
    try:
        return len(json.loads(notify.state_path(config).read_text()).get("outbox", []))
    except (OSError, json.JSONDecodeError, AttributeError):
        return 0


def finish_tick(
    db: runsdb.RunsDB, config: dict, tick: str, plan_file: str, batches_file: str | None, out_path: str
) -> tuple[str, list[str]]:
    """Count, notify, publish metrics, prune logs, record the tick. Returns (summary line, warning lines)."""
    now = _dt.datetime.now(_dt.timezone.utc)
    plan = markers.read(plan_file)
    batches = markers.read(batches_file) if batches_file and Path(batches_file).exists() else {}
    start = tick_start(tick, plan_file)
    facts = tick_facts(config, plan, batches, start)
    previous = last_tick(config) or {}
    daq = facts["daq"] or previous.get("daq", "")  # not asked this tick: as the DAQ last said
    docs = db.pending(history=True)
    counts = db.counts()
    found = attention.gather(db, config, now, docs, raw_values={raw for raw, _ in counts})
    kinds = attention.counts(found)
    warnings = notify.tick_end(config, found, counts, facts["daq"], now)
    totals = {
        stage: int(previous.get("moved_bytes", {}).get(stage, 0)) + facts["bytes"][stage] for stage in metrics.STAGES
    }
    facts["finished"] = time.time()
    facts["seconds"] = facts["finished"] - start
    reg = metrics.registry(facts, counts, kinds, attention.oldest(docs, now), totals, _outbox(config))
    warnings += metrics.publish(config, reg)
    line = summary_line(tick, facts, kinds)
    record = {
        "tick": tick,
        "finished": now.isoformat(timespec="seconds"),
        "finished_ts": facts["finished"],
        "summary": line,
        "facts": facts,
        "attention": kinds,
        "moved_bytes": totals,
        "daq": daq,
        "pruned": prune_logs(config, now),
    }
    markers.write(fa_config.state_dir(config) / LAST_TICK, record)
    markers.write(out_path, record)
    return line, warnings


def after_snakemake(
    db: runsdb.RunsDB, config: dict, tick: str, returncode: int | None, detached: bool, errors: int, log_file: Path
) -> list[tuple[int, str]]:
    """What the wrapper does once its Snakemake has ended: (level, line) pairs to log.

    finish_tick ran: nothing (its summary came through the Snakemake log).
    The wrapper left batch jobs running (detached): it finishes the tick
    itself, with the same function.  Snakemake failed with no job's own
    error line (a parse error, a traceback, a kill): a crashed tick, notified.
    """
    plan_file = Path(config["work_dir"]) / planning.plan_path(tick)
    record = plan_file.with_name("finish.json")
    if record.exists():
        return []
    if detached and plan_file.exists():
        line, warnings = finish_tick(
            db, config, tick, str(plan_file), str(Path(config["work_dir"]) / planning.batches_path(tick)), str(record)
        )
        warnings += _tick_report(db, config, tick)
        return [(logging.WARNING, w) for w in warnings] + [(logging.INFO, line)]
    if not returncode or errors:
        return []  # a busy tick, or jobs that failed with their own line: the next tick sees them in the runs DB
    reason = (
        f"tick {tick} crashed: Snakemake exited with status {returncode} before the tick's end and no job "
        f"said why ({_last_error(log_file)})"
    )
    lines = notify.report_failure(config, "CRASH", reason, f"less {log_file}")
    return [(logging.ERROR, f"{reason}; see {log_file}")] + [(logging.WARNING, w) for w in lines]


def _tick_report(db: runsdb.RunsDB, config: dict, tick: str) -> list[str]:
    """A tick the wrapper finishes itself writes its report too (report.every_tick), as write_report would."""
    if not config["report"]["every_tick"]:
        return []
    marker = Path(config["work_dir"]) / planning.report_path(tick)
    log_path = Path(config["work_dir"]) / "logs" / "write_report" / f"{tick}.log"
    try:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "a") as log:
            report.write_tick_report(db, config, str(marker), log)
    except (OSError, runsdb.RunsDBError, report.ReportError) as exc:
        return [f"tick {tick}: the report was not written ({exc})"]
    return []


def _last_error(log_file: Path) -> str:
    try:
        lines = [line.strip() for line in Path(log_file).read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "no Snakemake log"
    errors = [line for line in lines if "Error" in line or "Exception" in line or "Killed" in line]
    return ((errors or lines or ["empty Snakemake log"])[-1])[:300]


def _old(path: Path, cutoff: float) -> bool:
    try:
        return path.lstat().st_mtime < cutoff
    except OSError:
        return False


def prune_logs(config: dict, now: _dt.datetime) -> int:
    """Delete the logs of ticks older than log_retention_days; returns how many entries went."""
    cutoff = now.timestamp() - config["log_retention_days"] * 86400
    log_dir, work = Path(config["log_dir"]), Path(config["work_dir"])
    candidates = list(log_dir.glob("fulliautomatix-*.log")) + list((log_dir / "snakemake").glob("*.log"))
    candidates += list((work / ".snakemake" / "log").glob("*.snakemake.log"))
    for rule in PER_TICK_RULES:
        candidates += list((work / "logs" / rule).iterdir()) if (work / "logs" / rule).is_dir() else []
        candidates += list((work / "benchmarks" / rule).glob("*.tsv"))
    pruned = 0
    for path in candidates:
        if not _old(path, cutoff):
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        pruned += 1
    return pruned
