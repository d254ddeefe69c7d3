"""The state machine: which transitions are allowed, and what history records."""

import datetime as dt
import socket

import pytest

from fulliautomatix import states
from fulliautomatix.states import PROCESSED, RAW, TransitionRefused

RAW_PATH = ["acquired", "transferring", "ondeck", "compressing", "compressed", "archiving", "archived"]


@pytest.mark.parametrize("a, b", list(zip(RAW_PATH, RAW_PATH[1:])))
def test_the_raw_life_goes_forward_one_step_at_a_time(a, b):
    t = states.check(RAW, a, b)
    assert (t.field, t.from_state, t.to_state) == (RAW, a, b)


@pytest.mark.parametrize(
    "a, b",
    [
        ("none", "queued"),
        ("queued", "processing"),
        ("processing", "processed"),
        ("processing", "failed"),
        ("failed", "queued"),
        ("processed", "queued"),
    ],
)
def test_the_processing_life(a, b):
    assert states.check(PROCESSED, a, b).to_state == b


@pytest.mark.parametrize("state", ["transferring", "compressing", "archiving"])
def test_in_progress_states_may_resume_or_fall_back(state):
    """A killed tick leaves a run in progress; the next one resumes or undoes it."""
    states.check(RAW, state, state)
    before = RAW_PATH[RAW_PATH.index(state) - 1]
    states.check(RAW, state, before)


@pytest.mark.parametrize(
    "a, b",
    [
        ("acquired", "ondeck"),  # skipping the verified transfer
        ("acquired", "archived"),
        ("ondeck", "compressed"),  # skipping compression's verification
        ("compressed", "archived"),  # skipping the archive verification
        ("compressed", "ondeck"),
        ("archived", "acquired"),
        ("archived", "archiving"),
        ("archived", "archived"),
        ("acquired", "acquired"),
    ],
)
def test_refused_raw_transitions(a, b):
    with pytest.raises(TransitionRefused, match=f"{a} -> {b} is not allowed"):
        states.check(RAW, a, b)


@pytest.mark.parametrize(
    "a, b",
    [
        ("none", "processed"),
        ("none", "failed"),
        ("processed", "failed"),
        ("processed", "processing"),
        ("failed", "processed"),
        ("queued", "none"),
    ],
)
def test_refused_processing_transitions(a, b):
    with pytest.raises(TransitionRefused):
        states.check(PROCESSED, a, b)


def test_every_state_has_an_entry_and_only_known_targets():
    for field, known in ((RAW, states.RAW_STATES), (PROCESSED, states.PROCESSED_STATES)):
        table = states.TRANSITIONS[field]
        assert set(table) == set(known)
        for targets in table.values():
            assert targets <= set(known)
    assert states.TRANSITIONS[RAW]["archived"] == frozenset(), "archived is final"


@pytest.mark.parametrize(
    "field, a, b, words",
    [
        ("colour", "acquired", "ondeck", "unknown state field"),
        (RAW, "acquired", "lost", "unknown state 'lost'"),
        (RAW, "misplaced", "ondeck", "unknown state 'misplaced'"),
        (RAW, None, "transferring", "unknown state None"),
        (PROCESSED, "acquired", "queued", "unknown state 'acquired'"),  # raw state in the wrong field
    ],
)
def test_unknown_fields_and_states_are_refused(field, a, b, words):
    with pytest.raises(TransitionRefused, match=words):
        states.check(field, a, b)


def test_history_entry_records_when_what_and_where():
    entry = states.history_entry(states.check(RAW, "acquired", "transferring"))
    assert set(entry) == {"at", "field", "from", "to", "host"}
    assert (entry["field"], entry["from"], entry["to"]) == (RAW, "acquired", "transferring")
    assert entry["host"] == socket.gethostname()
    at = entry["at"]
    assert isinstance(at, dt.datetime), "a datetime, stored as a BSON date"
    assert at.utcoffset() == dt.timedelta(0), "timestamps are UTC"
    assert abs(dt.datetime.now(dt.timezone.utc) - at) < dt.timedelta(minutes=1)


def test_history_entry_keeps_a_note():
    entry = states.history_entry(states.check(PROCESSED, "processing", "failed"), note="exit 2")
    assert entry["note"] == "exit 2"


def test_pending_query_lists_every_state_but_archived():
    assert set(states.PENDING_QUERY[RAW]["$in"]) == set(states.RAW_STATES) - {"archived"}


def test_a_verified_copy_goes_back_only_as_a_recorded_recovery():
    """ondeck -> acquired: the copy on scratch vanished before processing (recovery.start_over); never a replay."""
    assert states.check(RAW, "ondeck", "acquired") == states.Transition(RAW, "ondeck", "acquired")
    assert (RAW, "ondeck", "acquired") in states.RECOVERY
