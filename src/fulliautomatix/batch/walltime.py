"""How long a processing job may run, and which queue takes it.

The estimate follows the run's size and kind: ``events`` divided by the
configured rate of its ``source`` (events per hour), times a safety factor,
kept between a floor and a ceiling.  Each earlier walltime kill of the run
multiplies it by ``timeout_growth``, so a retry asks for more time (and may
move to a longer queue).  The first queue of the cluster whose limit holds the
walltime takes the job; a walltime longer than every queue allows is an error
naming the run -- the scheduler would accept it and never start it.

    >>> q = [Queue("standby", 4 * 3600), Queue("physics", 48 * 3600)]
    >>> choose_queue("170101_0001", 5 * 3600, q).name
    'physics'
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass


class WalltimeTooLong(ValueError):
    """No queue of the cluster allows the walltime a run needs."""


@dataclass(frozen=True)
class Queue:
    name: str
    max_walltime: int  # seconds


def parse(value: str | int | float) -> int:
    """Seconds from "HH:MM:SS", "MM:SS", "D-HH:MM:SS" or a number of seconds."""
    if isinstance(value, (int, float)):
        return int(value)
    m = re.fullmatch(r"(?:(\d+)-)?(?:(\d+):)?(\d+):(\d+)", value.strip())
    if not m:
        raise ValueError(f"not a walltime: {value!r} (use HH:MM:SS)")
    days, hours, minutes, seconds = (int(g) if g else 0 for g in m.groups())
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds


def format(seconds: int) -> str:
    """ "HH:MM:SS", rounded up to whole minutes (schedulers count minutes)."""
    minutes = max(1, math.ceil(seconds / 60))
    return f"{minutes // 60:02d}:{minutes % 60:02d}:00"


def queues(cluster: dict) -> list[Queue]:
    """The cluster's queues from config, in the order they are tried."""
    return [Queue(q["name"], parse(q["max_walltime"])) for q in cluster["queues"]]


def estimate(events: int, source: str, settings: dict) -> int:
    """Seconds a first attempt needs: events / rate x safety, within floor and ceiling."""
    rates = settings["events_per_hour"]
    rate = float(rates.get(source, rates["default"]))
    seconds = events / rate * 3600 * settings["safety_factor"]
    floor = settings["floor_minutes"] * 60
    ceiling = settings["ceiling_hours"] * 3600
    return int(math.ceil(min(max(seconds, floor), ceiling)))


def for_attempt(events: int, source: str, settings: dict, timeouts: int) -> int:
    """Seconds for the next attempt after `timeouts` walltime kills."""
    return int(math.ceil(estimate(events, source, settings) * settings["timeout_growth"] ** max(0, timeouts)))


def choose_queue(run: str, seconds: int, available: list[Queue]) -> Queue:
    """The first queue whose limit holds `seconds`; WalltimeTooLong if none does."""
    rounded = parse(format(seconds))
    for q in available:
        if rounded <= q.max_walltime:
            return q
    longest = max(available, key=lambda q: q.max_walltime)
    raise WalltimeTooLong(
        f"run {run}: needs a walltime of {format(seconds)}, longer than any queue allows "
        f"(longest: {longest.name}, {format(longest.max_walltime)}); not submitted. Raise the "
        f"queue limits or processing.walltime in the config, then `fulliautomatix retry {run}`"
    )


def plan(run: str, events: int, source: str, settings: dict, cluster: dict, timeouts: int = 0) -> dict:
    """{"walltime": "HH:MM:SS", "seconds": n, "queue": name} for the run's next job."""
    seconds = for_attempt(events, source, settings, timeouts)
    q = choose_queue(run, seconds, queues(cluster))
    return {"walltime": format(seconds), "seconds": parse(format(seconds)), "queue": q.name}
