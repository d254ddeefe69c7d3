"""How long a run has been in its state, and how long it may stay there (alerts.stuck_after).

The measuring half of ``STUCK`` in :mod:`fulliautomatix.attention`, which
turns the most overdue state into a problem row with what to look at.  Pure
functions of the document, the config and the time.
"""

from __future__ import annotations

import datetime as _dt

from . import dates, states
from .batch import walltime

# States a run passes through on its way, with the state field they belong to.
TIMED_STATES = (
    (states.RAW, "acquired"),
    (states.RAW, "transferring"),
    (states.PROCESSED, "queued"),
    (states.PROCESSED, "processing"),
    (states.RAW, "compressing"),
    (states.RAW, "compressed"),
    (states.RAW, "archiving"),
)


def entered(doc: dict, field_: str, state: str) -> _dt.datetime | None:
    """When the run entered `state` of `field_`: its last history entry to it.

    An acquired run has no such entry (the DAQ inserted it): the DAQ's
    ``start`` (or ``end``) time, else the creation time in its ObjectId.
    """
    for entry in reversed(doc.get("history") or []):
        if isinstance(entry, dict) and entry.get("field") == field_ and entry.get("to") == state:
            return dates.as_utc(entry.get("at"))
    if state != "acquired":
        return None
    for key in ("start", "end"):
        if dates.as_utc(doc.get(key)):
            return dates.as_utc(doc.get(key))
    created = getattr(doc.get("_id"), "generation_time", None)
    return created if isinstance(created, _dt.datetime) else None


def stuck_limit(doc: dict, state: str, config: dict) -> float:
    """Seconds a run may stay in `state` (alerts.stuck_after).

    processing: the factor times the job's walltime; a run processed here
    (no batch job, no walltime) gets the walltime a job would have asked for.
    """
    after = config["alerts"]["stuck_after"]
    if state == "processing":
        try:
            wall = walltime.parse((doc.get("processing") or {}).get("walltime") or "")
        except (ValueError, AttributeError):
            events = doc.get("events") if isinstance(doc.get("events"), int) else 0
            wall = walltime.estimate(events, str(doc.get("source")), config["processing"]["walltime"])
        return after["processing"] * wall
    if state == "compressed":
        return config["archive"]["max_wait_days"] * 86400 + after["compressed"] * 3600
    return after[state] * 3600


def _daq_live_time(daq_live, now: _dt.datetime) -> _dt.datetime | None:
    """daq_live as a time: True is now (the DAQ is live), False and None never."""
    if daq_live is True:
        return now
    return daq_live if isinstance(daq_live, _dt.datetime) else None


def most_overdue(doc: dict, config: dict, now: _dt.datetime, daq_live=None) -> tuple | None:
    """The run's state furthest past its limit: (field, state, since, seconds in it, limit); None when none is.

    `daq_live`: when a tick last found the DAQ live (True: it is now); an
    acquired run's time counts from then at the earliest.
    """
    live = _daq_live_time(daq_live, now)
    worst = None
    for field_, state in TIMED_STATES:
        if doc.get(field_) != state:
            continue
        since = entered(doc, field_, state)
        if since is None:
            continue
        if state == "acquired" and live is not None and live > since:
            since = live  # waiting while the DAQ takes data is expected
        age, limit = (now - since).total_seconds(), stuck_limit(doc, state, config)
        if age > limit and (worst is None or age - limit > worst[0]):
            worst = (age - limit, field_, state, since, age, limit)
    return None if worst is None else worst[1:]
