"""Prometheus metrics of a tick: a textfile for node_exporter, optionally pushed to a Pushgateway.

Written by the end of every tick (:mod:`fulliautomatix.finish`); the file is
replaced by a rename, so the collector never reads half of it.  Every metric
is present in every file (a state with no run is 0), so alerts see zeros
rather than gaps.  ``fulliautomatix_last_success_timestamp_seconds`` is the
dead-man's switch: alert when ``time() - it`` exceeds a few cron intervals.
"""

from __future__ import annotations

from pathlib import Path

from . import attention, states

PENDING_STATES = [s for s in states.RAW_STATES if s != "archived"] + ["queued", "processing", "failed"]
STAGES = ("transfer", "compress", "archive")  # bytes moved: copied from the DAQ, written compressed, archived
ACTIONS = ("transferred", "submitted", "processed", "reprocessed", "compressed", "archived", "batches")
DAQ_LIVE = {"live": 1, "idle": 0}  # anything else (unreachable, not asked this tick): -1

NAMES = (
    "fulliautomatix_runs",
    "fulliautomatix_attention_runs",
    "fulliautomatix_oldest_run_age_seconds",
    "fulliautomatix_tick_bytes",
    "fulliautomatix_moved_bytes",
    "fulliautomatix_tick_runs",
    "fulliautomatix_tick_duration_seconds",
    "fulliautomatix_scheduler_jobs",
    "fulliautomatix_daq_live",
    "fulliautomatix_last_success_timestamp_seconds",
    "fulliautomatix_notify_outbox_messages",
)


def registry(facts: dict, counts: dict, kinds: dict, oldest: dict, totals: dict, outbox: int):
    """A CollectorRegistry with every metric of one tick.

    facts: what finish.tick_facts measured (runs per action, bytes per stage,
    seconds, jobs, daq, finished); counts: runs per (raw, processed) state;
    kinds: attention counts; oldest: seconds per pending state; totals: bytes
    moved per stage since the first tick (kept in state/last_tick.json).
    """
    import prometheus_client as pc

    pc.disable_created_metrics()
    reg = pc.CollectorRegistry()
    runs = pc.Gauge("fulliautomatix_runs", "Runs per state", ["raw_status", "processed_status"], registry=reg)
    for (raw, proc), n in counts.items():
        runs.labels(raw, proc).set(n)
    kind = pc.Gauge("fulliautomatix_attention_runs", "Runs needing attention, by kind", ["kind"], registry=reg)
    for k in attention.KINDS + tuple(k for k in attention.MORE_KINDS if kinds.get(k)):
        kind.labels(k).set(kinds.get(k, 0))
    age = pc.Gauge(
        "fulliautomatix_oldest_run_age_seconds",
        "Time the oldest run has spent in each pending state",
        ["state"],
        registry=reg,
    )
    for state in PENDING_STATES:
        age.labels(state).set(oldest.get(state, 0))
    tick_bytes = pc.Gauge(
        "fulliautomatix_tick_bytes", "Bytes moved by the last tick, by stage", ["stage"], registry=reg
    )
    moved = pc.Counter(
        "fulliautomatix_moved_bytes", "Bytes moved since the first tick, by stage", ["stage"], registry=reg
    )
    for stage in STAGES:
        tick_bytes.labels(stage).set(facts["bytes"].get(stage, 0))
        moved.labels(stage).inc(totals.get(stage, 0))
    done = pc.Gauge(
        "fulliautomatix_tick_runs",
        "What the last tick did: runs per action (batches: batches)",
        ["action"],
        registry=reg,
    )
    for action in ACTIONS:
        done.labels(action).set(facts["runs"].get(action, 0))
    pc.Gauge("fulliautomatix_tick_duration_seconds", "Duration of the last tick", registry=reg).set(facts["seconds"])
    pc.Gauge("fulliautomatix_scheduler_jobs", "Processing jobs in the batch scheduler", registry=reg).set(facts["jobs"])
    pc.Gauge(
        "fulliautomatix_daq_live", "1: the DAQ is live (no transfers), 0: not live, -1: unknown this tick", registry=reg
    ).set(DAQ_LIVE.get(facts["daq"], -1))
    pc.Gauge(
        "fulliautomatix_last_success_timestamp_seconds", "End of the last tick that reached its end", registry=reg
    ).set(facts["finished"])
    pc.Gauge("fulliautomatix_notify_outbox_messages", "Notifications waiting for a destination", registry=reg).set(
        outbox
    )
    return reg


def publish(config: dict, reg) -> list[str]:
    """Write the textfile (atomic rename) and push to the Pushgateway; one line per failure."""
    import prometheus_client as pc

    lines = []
    path = config["metrics"]["textfile"]
    if path:
        try:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            pc.write_to_textfile(path, reg)
        except OSError as exc:
            lines.append(f"metrics: {path} not written ({exc})")
    gateway = config["metrics"]["pushgateway"]
    if gateway:
        try:
            pc.push_to_gateway(
                gateway, job="fulliautomatix", registry=reg, grouping_key={"instance": config["work_dir"]}, timeout=10
            )
        except Exception as exc:  # noqa: BLE001 - the Pushgateway's failure must not fail the tick
            lines.append(f"metrics: push to {gateway.split('@')[-1]} failed ({type(exc).__name__})")
    return lines
