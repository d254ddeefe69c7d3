"""Reading the times in run documents, whether stored as ISO strings or as BSON dates.

Fulliautomatix wrote ISO 8601 strings (``2026-11-27T10:00:00+00:00``) and
moves to BSON dates (``datetime``, UTC); until ``fulliautomatix db migrate``
has converted a runs DB both forms are found side by side, so every reader of
a stored time goes through :func:`parse`.

    >>> parse("2026-11-27T10:00:00+00:00") == parse(_dt.datetime(2026, 11, 27, 10))
    True
"""

from __future__ import annotations

import datetime as _dt

UTC = _dt.timezone.utc


def parse(value) -> _dt.datetime | None:
    """An aware UTC datetime from a stored time (ISO string or datetime); None if absent or unreadable.

    A naive datetime is UTC (pymongo returns BSON dates naive unless asked otherwise).
    """
    if isinstance(value, _dt.datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if not isinstance(value, str) or not value:
        return None
    try:
        t = _dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def now() -> _dt.datetime:
    return _dt.datetime.now(UTC)


def iso(t: _dt.datetime | None) -> str:
    """A time as the report and `--json` show it (UTC, seconds); "" for None."""
    return t.astimezone(UTC).isoformat(timespec="seconds") if t else ""


def day_number(t: _dt.datetime) -> int:
    """The UTC day of a time as an integer, 20261127: what ``updated_day`` holds (an equality key)."""
    t = t.astimezone(UTC)
    return t.year * 10000 + t.month * 100 + t.day


def human(seconds: float | None) -> str:
    """A duration for people: 45 s, 12 min, 3.5 h, 2.1 days."""
    if seconds is None:
        return "?"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"
