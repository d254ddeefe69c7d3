"""Replaying a marker walks only allowed transitions: sync.path_between."""

import itertools

import pytest

from fulliautomatix import states, sync
from fulliautomatix.states import PROCESSED, RAW


@pytest.mark.parametrize(
    "start, goal, path",
    [
        ("acquired", "transferring", ["transferring"]),
        ("acquired", "ondeck", ["transferring", "ondeck"]),
        ("transferring", "ondeck", ["ondeck"]),
        ("ondeck", "compressed", ["compressing", "compressed"]),
        ("compressed", "archived", ["archiving", "archived"]),
        ("acquired", "archived", ["transferring", "ondeck", "compressing", "compressed", "archiving", "archived"]),
        ("archived", "archived", []),
    ],
)
def test_raw_paths(start, goal, path):
    assert sync.path_between(RAW, start, goal) == path


@pytest.mark.parametrize(
    "start, goal, path",
    [
        ("none", "processed", ["processing", "processed"]),
        ("queued", "processed", ["processed"]),
        ("failed", "processed", ["processing", "processed"]),
        ("processed", "processed", []),
    ],
)
def test_processing_paths(start, goal, path):
    assert sync.path_between(PROCESSED, start, goal) == path


@pytest.mark.parametrize(
    "field, start, goal",
    [
        (RAW, "archived", "acquired"),
        (RAW, "archived", "ondeck"),
        (RAW, "compressed", "ondeck"),
        (RAW, "ondeck", "acquired"),
        (RAW, "acquired", "nowhere"),
    ],
)
def test_no_way_back_is_refused(field, start, goal):
    with pytest.raises(states.TransitionRefused, match=f"no way from {start} to {goal}"):
        sync.path_between(field, start, goal)


@pytest.mark.parametrize("field, known", [(RAW, states.RAW_STATES), (PROCESSED, states.PROCESSED_STATES)])
def test_every_path_is_made_of_allowed_steps(field, known):
    table = states.TRANSITIONS[field]
    for start, goal in itertools.product(known, repeat=2):
        try:
            path = sync.path_between(field, start, goal)
        except states.TransitionRefused:
            # then no sequence of allowed steps reaches goal (a replay never takes a recovery step)
            reach, todo = {start}, [start]
            while todo:
                cur = todo.pop()
                for nxt in table[cur]:
                    if nxt not in reach and (field, cur, nxt) not in states.RECOVERY:
                        reach.add(nxt)
                        todo.append(nxt)
            assert goal not in reach, (start, goal)
            continue
        cur = start
        for step in path:
            states.check(field, cur, step)
            cur = step
        assert cur == goal
        assert len(path) == len(set(path)), "no state visited twice"
        if start != goal:
            assert start not in path


@pytest.mark.parametrize("field, start, goal", sorted(states.RECOVERY))
def test_recovery_steps_are_allowed_but_never_replayed(field, start, goal):
    """Back to acquired (processed back to none) is for a copy that went bad, never a marker's replay."""
    states.check(field, start, goal)
    with pytest.raises(states.TransitionRefused):
        sync.path_between(field, start, goal)
