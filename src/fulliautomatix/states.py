"""Run states and the transitions allowed between them.

This module is the single authority on a run's life.  A run document carries
two state fields:

``raw_status`` -- where the raw data is::

    acquired -> transferring -> ondeck -> compressing -> compressed
             -> archiving -> archived

``processed_status`` -- what processing has done::

    none -> queued -> processing -> processed
                               \\-> failed -> queued (retry)

Every change of either field goes through :func:`check` and is recorded as a
history entry built by :func:`history_entry`.  A transition from a state other
than the one expected is refused with :class:`TransitionRefused`, never applied.
"""

from __future__ import annotations

import datetime as _dt
import socket
from dataclasses import dataclass

from . import dates

RAW = "raw_status"
PROCESSED = "processed_status"

RAW_STATES = ("acquired", "transferring", "ondeck", "compressing", "compressed", "archiving", "archived")
PROCESSED_STATES = ("none", "queued", "processing", "processed", "failed")

# field -> {from_state: allowed to_states}.  Self-loops on the "in progress"
# states let a tick resume work that a killed tick left half done.  Back to
# "acquired" (and processed back to "none"): a copy on scratch that stopped
# verifying, with the DAQ copy intact, is transferred (and processed) again
# (fulliautomatix.recovery).
TRANSITIONS: dict[str, dict[str, frozenset[str]]] = {
    RAW: {
        "acquired": frozenset({"transferring"}),
        "transferring": frozenset({"transferring", "ondeck", "acquired"}),
        "ondeck": frozenset({"compressing", "acquired"}),
        "compressing": frozenset({"compressing", "compressed", "ondeck", "acquired"}),
        "compressed": frozenset({"archiving", "acquired"}),
        "archiving": frozenset({"archiving", "archived", "compressed", "acquired"}),
        "archived": frozenset(),
    },
    PROCESSED: {
        "none": frozenset({"queued", "processing"}),
        "queued": frozenset({"queued", "processing", "processed", "failed"}),
        "processing": frozenset({"processing", "processed", "failed", "queued"}),
        "processed": frozenset({"queued", "none"}),  # reprocessing; its input copy went bad
        "failed": frozenset({"queued", "processing"}),
    },
}

# The recovery steps above: never taken when replaying a marker (sync.path_between).
RECOVERY = frozenset(
    {
        (RAW, "ondeck", "acquired"),
        (RAW, "compressing", "acquired"),
        (RAW, "compressed", "acquired"),
        (RAW, "archiving", "acquired"),
        (PROCESSED, "processed", "none"),
    }
)

# The four stages of a run's life, in order: the tick's flags (--transfer ...) and the report's columns.
STAGES = ("transfer", "process", "compress", "archive")


class TransitionRefused(Exception):
    """A state change that the state machine does not allow."""


@dataclass(frozen=True)
class Transition:
    field: str
    from_state: str
    to_state: str


def check(field: str, from_state: str | None, to_state: str) -> Transition:
    """Return the transition if it is allowed, else raise TransitionRefused."""
    table = TRANSITIONS.get(field)
    if table is None:
        raise TransitionRefused(f"unknown state field {field!r}")
    if to_state not in table:
        raise TransitionRefused(f"{field}: unknown state {to_state!r}")
    if from_state not in table:
        raise TransitionRefused(f"{field}: run is in unknown state {from_state!r}")
    if to_state not in table[from_state]:
        raise TransitionRefused(f"{field}: {from_state} -> {to_state} is not allowed")
    return Transition(field, from_state, to_state)


def now() -> _dt.datetime:
    """The time for history entries and documents: an aware UTC datetime (:func:`dates.now`)."""
    return dates.now()


def history_entry(t: Transition, note: str | None = None) -> dict:
    entry = {"at": now(), "field": t.field, "from": t.from_state, "to": t.to_state, "host": socket.gethostname()}
    if note:
        entry["note"] = note
    return entry


# The query that selects runs in non-final states.  It touches only indexed
# status fields so that its cost follows the pending work, not the history.
PENDING_QUERY = {RAW: {"$in": [s for s in RAW_STATES if s != "archived"]}}
