"""The attention list: which runs need a human, why, and the command that fixes it.

One function, :func:`problems`, turns run documents into :class:`Problem`
rows of four kinds, most urgent first:

* ``BAD``   -- a malformed document: no stage touches it until it is fixed;
* ``HELD``  -- a stage failed too often (or refused the run): waits for a human;
* ``STUCK`` -- a run has stayed in one state longer than ``alerts.stuck_after``
  allows (it needs documents with their ``history``);
* ``RETRY`` -- the last attempt of a stage failed; the next tick tries again.

``status``, ``check``, the notifications and the metrics all read this list.
Times in documents may be ISO strings or BSON dates: :func:`as_datetime`
reads both.
"""

from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass

from . import selection, states, walltime

KINDS = ("BAD", "HELD", "STUCK", "RETRY")

# (sub-document, field) holding a stage's last error, and the stage's name.
ERROR_FIELDS = (("transfer", "error", "transfer"), ("processing", "log_tail", "process"),
                ("compressed", "error", "compress"), ("archive", "error", "archive"))

# States a run passes through on its way, with the state field they belong to.
TIMED_STATES = ((states.RAW, "acquired"), (states.RAW, "transferring"), (states.PROCESSED, "queued"),
                (states.PROCESSED, "processing"), (states.RAW, "compressing"), (states.RAW, "compressed"),
                (states.RAW, "archiving"))


@dataclass(frozen=True)
class Problem:
    run: str  # the run's name
    kind: str  # one of KINDS
    reason: str  # one line: what is wrong
    command: str  # what an operator runs to fix or inspect it
    stage: str = ""  # transfer, process, compress or archive: where it went wrong ("" unknown)
    since: _dt.datetime | None = None  # STUCK: when the run entered its state

    @property
    def key(self) -> str:
        """Identifies the problem across ticks (notifications: once per key)."""
        return f"{self.kind}:{self.run}"


def as_datetime(value) -> _dt.datetime | None:
    """A time as written in a run document (ISO string or BSON date), in UTC; None if unreadable."""
    if isinstance(value, _dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=_dt.timezone.utc)
    if not isinstance(value, str) or not value:
        return None
    try:
        t = _dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=_dt.timezone.utc)


def entered(doc: dict, field: str, state: str) -> _dt.datetime | None:
    """When the run entered `state` of `field`: its last history entry to it.

    An acquired run has no such entry (the DAQ inserted it): the DAQ's
    ``start`` (or ``end``) time, else the creation time in its ObjectId.
    """
    for entry in reversed(doc.get("history") or []):
        if isinstance(entry, dict) and entry.get("field") == field and entry.get("to") == state:
            return as_datetime(entry.get("at"))
    if state != "acquired":
        return None
    for key in ("start", "end"):
        if as_datetime(doc.get(key)):
            return as_datetime(doc.get(key))
    created = getattr(doc.get("_id"), "generation_time", None)
    return created if isinstance(created, _dt.datetime) else None


def stuck_limit(doc: dict, state: str, config: dict) -> float:
    """Seconds a run may stay in `state` (alerts.stuck_after)."""
    after = config["alerts"]["stuck_after"]
    if state == "processing":
        try:
            wall = walltime.parse((doc.get("processing") or {}).get("walltime") or "")
        except ValueError:
            wall = config["processing"]["walltime"]["ceiling_hours"] * 3600
        return after["processing"] * wall
    if state == "compressed":
        return config["archive"]["max_wait_days"] * 86400 + after["compressed"] * 3600
    return after[state] * 3600


def stuck(doc: dict, config: dict, now: _dt.datetime, daq_live: bool | None = None) -> Problem | None:
    """A STUCK problem when the run has stayed in a state too long (acquired: only while the DAQ is not live)."""
    worst = None
    for field, state in TIMED_STATES:
        if doc.get(field) != state or (state == "acquired" and daq_live):
            continue
        since = entered(doc, field, state)
        if since is None:
            continue
        over = (now - since).total_seconds() - stuck_limit(doc, state, config)
        if over > 0 and (worst is None or over > worst[0]):
            worst = (over, field, state, since)
    if worst is None:
        return None
    _, field, state, since = worst
    limit = stuck_limit(doc, state, config)
    reason = (f"run {doc['name']}: {field} {state} for {duration((now - since).total_seconds())} "
              f"(limit {duration(limit)}); last: {last_entry(doc)}")
    return Problem(doc["name"], "STUCK", reason, f"fulliautomatix status {doc['name']}",
                   stage=_STAGE_OF.get(state, ""), since=since)


_STAGE_OF = {"acquired": "transfer", "transferring": "transfer", "queued": "process", "processing": "process",
             "compressing": "compress", "compressed": "archive", "archiving": "archive"}


def last_entry(doc: dict) -> str:
    """The run's last history entry, as one phrase."""
    history = [h for h in doc.get("history") or [] if isinstance(h, dict)]
    if not history:
        return "no history (inserted by the DAQ)"
    h = history[-1]
    at = as_datetime(h.get("at"))
    when = at.strftime("%Y-%m-%d %H:%M UTC") if at else str(h.get("at"))
    return f"{when} {h.get('field')} {h.get('from')} -> {h.get('to')} on {h.get('host')}"


def duration(seconds: float) -> str:
    """'3 d 4 h', '5 h 12 min', '7 min', '12 s'."""
    s = int(max(0, seconds))
    if s >= 86400:
        return f"{s // 86400} d {s % 86400 // 3600} h"
    if s >= 3600:
        return f"{s // 3600} h {s % 3600 // 60} min"
    return f"{s // 60} min" if s >= 60 else f"{s} s"


def _command_in(reason: str, default: str) -> str:
    found = re.findall(r"`([^`]+)`", reason)
    return found[-1] if found else default


def run_problem(doc: dict, config: dict, now: _dt.datetime, daq_live: bool | None = None) -> Problem | None:
    """The most urgent problem of one run, or None."""
    name = doc.get("name")
    bad = selection.check_doc(doc, config["run_name_pattern"])
    if bad:
        return Problem(str(name), "BAD", bad, f"fulliautomatix status {name}" if isinstance(name, str) else "")
    limits = {"transfer_attempts": config["transfer"]["max_attempts"],
              "process_attempts": config["processing"]["max_attempts"]}
    _, held = selection.start_stage(doc, limits)
    if held:
        stage = "process" if doc.get(states.RAW) == "ondeck" else "transfer"
        return Problem(name, "HELD", held, _command_in(held, f"fulliautomatix retry {name}"), stage=stage)
    if doc.get("history") is not None:
        found = stuck(doc, config, now, daq_live)
        if found:
            return found
    for sub, key, stage in ERROR_FIELDS:
        err = (doc.get(sub) or {}).get(key)
        if err and not (sub == "processing" and doc.get(states.PROCESSED) != "failed"):
            first = str(err).strip().splitlines()[-1] if sub == "processing" else str(err)
            return Problem(name, "RETRY", f"run {name}: last {sub} attempt failed: {first}",
                           f"fulliautomatix status {name}", stage=stage)
    return None


def problems(docs: list[dict], config: dict, now: _dt.datetime | None = None,
             daq_live: bool | None = None) -> list[Problem]:
    """The attention list of the pending runs: one problem per run at most, most urgent kind first."""
    now = now or _dt.datetime.now(_dt.timezone.utc)
    found = [p for p in (run_problem(d, config, now, daq_live) for d in docs) if p]
    return sorted(found, key=lambda p: (KINDS.index(p.kind), p.run))


def counts(found: list[Problem]) -> dict[str, int]:
    """Problems per kind, every kind present."""
    return {kind: sum(p.kind == kind for p in found) for kind in KINDS}


def oldest(docs: list[dict], now: _dt.datetime | None = None) -> dict[str, float]:
    """Seconds the oldest run has spent in each pending state (a state with no run is absent)."""
    now = now or _dt.datetime.now(_dt.timezone.utc)
    ages: dict[str, float] = {}
    for doc in docs:
        for field, state in ((states.RAW, doc.get(states.RAW)), (states.PROCESSED, doc.get(states.PROCESSED))):
            if state in ("archived", "processed", "none", None):
                continue
            since = entered(doc, field, state)
            if since is not None:
                ages[state] = max(ages.get(state, 0.0), (now - since).total_seconds())
    return ages
