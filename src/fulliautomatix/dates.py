"""Times in the runs DB: timezone-aware UTC datetimes, stored as BSON dates.

Fulliautomatix makes every timestamp with :func:`now`, writes it to the runs
DB as a BSON date (so ``{"history.at": {"$gt": ISODate(...)}}`` and
``$dateToString`` work in mongosh; what nx-27017 answers: docs/run-document.md)
and to marker files as an ISO 8601 string
(:func:`json_default`).  :func:`for_db` turns the known date fields of a write
into datetimes, whichever form they came in: a marker replayed into the DB
brings strings, a stage's own write brings datetimes.  Documents written before
dates were dates hold ISO strings until ``fulliautomatix db migrate``; every
reader goes through :func:`as_utc`, which takes both.
"""

from __future__ import annotations

import datetime as _dt

UTC = _dt.timezone.utc

# Every date field of a run document, as dotted paths; a path through an
# array (history, processed_outputs) means the field of each element.
# docs/run-document.md says who writes each one.
DATE_FIELDS = (
    "start",
    "updated_at",  # beside it the integer updated_day (day_number), not a date
    "history.at",
    "transfer.started",
    "transfer.finished",
    "transfer.daq_purge.at",
    "processing.submitted",
    "processing.started",
    "processing.finished",
    "processed_outputs.finished",
    "compressed.at",
    "archive.verified",
    "archive.purged",
    "reprocess.requested",
)


def now() -> _dt.datetime:
    """The current time, UTC, to the second: the one clock of every timestamp Fulliautomatix writes."""
    return _dt.datetime.now(UTC).replace(microsecond=0)


def as_utc(value) -> _dt.datetime | None:
    """A stored time as an aware UTC datetime: a datetime, or an ISO 8601 string; None for anything else.

    A time without a zone (pymongo without ``tz_aware``, or a string such as
    ``2024-05-01 12:00:00``) is taken as UTC, which is what Fulliautomatix
    always wrote.
    """
    if isinstance(value, _dt.datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, str) and value:
        try:
            return as_utc(_dt.datetime.fromisoformat(value.strip()))
        except ValueError:
            return None
    return None


def iso(value) -> str | None:
    """A time as an ISO 8601 string (``2024-05-01T12:00:00+00:00``), for markers, logs and messages."""
    t = as_utc(value)
    if t is None:
        return None if value is None else str(value)
    return t.isoformat(timespec="seconds" if not t.microsecond else "milliseconds")


def day_number(value) -> int | None:
    """The UTC day of a time as an integer, 20261127: what ``updated_day`` holds (an indexed equality key).

    The report finds the runs written within its window by one equality query
    per day: nx-27017 reads a date-like value in any query as a date and then
    scans every document, so a range on ``updated_at`` would read them all.
    """
    t = as_utc(value)
    return None if t is None else t.year * 10000 + t.month * 100 + t.day


def duration(seconds: float | None) -> str:
    """A duration for people: '3 d 4 h', '5 h 12 min', '7 min', '12 s' ('?' when unknown)."""
    if seconds is None:
        return "?"
    s = int(max(0, seconds))
    if s >= 86400:
        return f"{s // 86400} d {s % 86400 // 3600} h"
    if s >= 3600:
        return f"{s // 3600} h {s % 3600 // 60} min"
    return f"{s // 60} min" if s >= 60 else f"{s} s"


def json_default(value):
    """``json.dump(..., default=json_default)``: datetimes as ISO strings (markers are JSON)."""
    if isinstance(value, _dt.datetime):
        return iso(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _convert(value, parts: list[str]):
    """value with the date at the dotted path `parts` made a datetime (a copy where it changed)."""
    if not parts:
        t = as_utc(value)
        return value if t is None else t
    if isinstance(value, list):
        return [_convert(item, parts) for item in value]
    if isinstance(value, dict) and parts[0] in value:
        new = _convert(value[parts[0]], parts[1:])
        if new is not value[parts[0]]:
            return {**value, parts[0]: new}
    return value


def for_db(sets: dict) -> dict:
    """A ``$set`` (keys may be dotted) or a whole document with every known date field a datetime.

    Used on every write (:mod:`fulliautomatix.runsdb`), so a marker replayed
    into the DB stores dates, whatever strings it brings, and ``db migrate``
    converts whole documents.  It never changes its argument.  Values that
    are not times (None, an unreadable string) are left as they are.
    """
    out = dict(sets)
    for key in sets:
        prefix = key.split(".")
        for path in DATE_FIELDS:
            parts = path.split(".")
            if parts[: len(prefix)] == prefix:
                out[key] = _convert(out[key], parts[len(prefix) :])
    return out


def migrated(doc: dict) -> dict:
    """A whole run document as ``db migrate`` leaves it: :func:`for_db`, and an ``updated_day`` if it lacks one.

    ``updated_day`` comes from ``updated_at``; a document never written
    since the DAQ inserted it has neither (it is pending: the report reads it
    anyway).  Never changes its argument.
    """
    out = for_db(doc)
    day = day_number(out.get("updated_at"))
    if out.get("updated_day") is None and day is not None:
        out["updated_day"] = day
    return out
