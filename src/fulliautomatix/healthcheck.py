"""`fulliautomatix check`: one line and a Nagios exit status for monitoring.

Apart from the tick's modules on purpose: a monitoring system runs this
every few minutes, and it needs only the runs DB, the attention list and
``state/last_tick.json`` (written by :func:`fulliautomatix.finish.finish_tick`).
"""

from __future__ import annotations

import datetime as _dt
import json
import time

from . import attention, dates, markers, runsdb
from . import config as fa_config

LAST_TICK = "last_tick.json"
NAGIOS = ("OK", "WARNING", "CRITICAL", "UNKNOWN")
CRITICAL_KINDS = ("HELD", "BAD", "LOST", "LOST-COPY")
WARNING_KINDS = ("STUCK", "RETRY")


def last_tick(config: dict) -> dict | None:
    """The record of the last tick that reached its end, or None."""
    try:
        return markers.read(fa_config.state_dir(config) / LAST_TICK)
    except (OSError, json.JSONDecodeError):
        return None


def nagios(config: dict) -> tuple[int, str]:
    """`fulliautomatix check`: :func:`check`, and UNKNOWN for any error (a Nagios plugin never shows a traceback)."""
    try:
        return check(config)
    except Exception as exc:
        return 3, f"FULLIAUTOMATIX UNKNOWN - {type(exc).__name__}: {exc}"


def check(config: dict, now: float | None = None) -> tuple[int, str]:
    """(Nagios exit status, one line): OK, WARNING (stuck or retrying runs), CRITICAL (held, bad or lost
    runs, lost archived copies, or no tick reached its end within alerts.tick_overdue), UNKNOWN (runs DB
    unreachable)."""
    now = time.time() if now is None else now
    try:
        with runsdb.connect(config) as db:
            docs = db.pending(history=True)
            found = attention.gather(db, config, _dt.datetime.fromtimestamp(now, _dt.timezone.utc), docs)
    except runsdb.RunsDBError as exc:
        return 3, f"FULLIAUTOMATIX UNKNOWN - {exc}"
    last = last_tick(config)
    kinds = attention.counts(found)
    age = now - float(last["finished_ts"]) if last and last.get("finished_ts") else None
    overdue = age is None or age > config["alerts"]["tick_overdue"] * 60
    code = (
        2
        if overdue or any(kinds.get(k) for k in CRITICAL_KINDS)
        else (1 if any(kinds.get(k) for k in WARNING_KINDS) else 0)
    )
    parts = [
        f"{kinds.get(k, 0)} {word}"
        for k, word in (("HELD", "held"), ("BAD", "bad"), ("STUCK", "stuck"), ("RETRY", "retrying"))
    ]
    parts += [f"{kinds[k]} {k.lower()}" for k in attention.MORE_KINDS if kinds.get(k)]
    ticked = (
        "no tick has reached its end yet"
        if age is None
        else f"last tick ended {dates.duration(age)} ago" + (" (overdue)" if overdue else "")
    )
    perf = " ".join(f"{k.lower()}={n}" for k, n in kinds.items())
    perf += f" pending={len(docs)}" + (f" last_tick_age={age:.0f}s" if age is not None else "")
    return code, f"FULLIAUTOMATIX {NAGIOS[code]} - {', '.join(parts)}; {ticked} | {perf}"
