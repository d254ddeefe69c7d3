"""Which runs need attention, why, and the command that fixes each: one list for status, the report and alerts.

Kinds, most urgent first (a run is listed once, under the first that applies):

* ``BAD``: a malformed run document; no tick handles it until it is fixed.
* ``HELD``: waiting for a human (failed ``max_attempts`` times, or refused).
* ``STUCK``: in one state longer than ``alerts.stuck_after`` allows.
* ``RETRY``: its last attempt failed; the next tick tries again by itself.

Pure functions of the pending run documents (with their history), the
config and the time; the only file read is ``state/daq_live.json``, where a
tick that found the DAQ live notes when (an acquired run is not stuck while
the DAQ takes data).
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import config as fa_config
from . import markers, selection, states, walltime
from .timestamps import human, iso, parse

KINDS = ("BAD", "HELD", "STUCK", "RETRY")
ERROR_FIELDS = (("transfer", "error"), ("processing", "log_tail"), ("compressed", "error"), ("archive", "error"))

# The state a STUCK run is in -> (what to look at, the command that moves it on).
STUCK_HINTS = {
    "acquired": ("the DAQ machine and logs/transfer_run/{run}.log", "fulliautomatix --transfer --run {run}"),
    "transferring": ("logs/transfer_run/{run}.log (a killed copy resumes)", "fulliautomatix --transfer --run {run}"),
    "queued": ("its job in the scheduler (qstat, squeue)", "fulliautomatix status {run}"),
    "processing": ("its job and logs/process_run/{run}.log", "fulliautomatix status {run}"),
    "compressing": ("logs/compress_run/{run}.log", "fulliautomatix --compress --run {run}"),
    "compressed": ("its batch: a neighbouring run not yet compressed keeps it open", "fulliautomatix --archive"),
    "archiving": ("logs/archive_batch/ of its batch", "fulliautomatix --archive"),
}


@dataclass
class Item:
    """One run needing attention."""

    run: str
    kind: str  # one of KINDS
    reason: str
    command: str  # what fixes it, or moves it on
    state: str = ""  # STUCK: the state it is stuck in
    seconds: float | None = None  # STUCK: how long it has been in that state
    last: dict = field(default_factory=dict)  # STUCK: its last history entry

    def line(self) -> str:
        return f"  {self.kind:<6}{self.reason}; fix: {self.command}"

    def as_dict(self) -> dict:
        out = asdict(self)
        out["last"] = {k: iso(parse(v)) if k == "at" else v for k, v in self.last.items()}
        return out


def daq_live_path(config: dict) -> Path:
    return fa_config.state_dir(config) / "daq_live.json"


def record_daq_live(config: dict, reason: str) -> None:
    """A tick found the DAQ live (or could not ask it): transfers wait, acquired runs are not stuck."""
    markers.write(daq_live_path(config), {"at": states.now(), "reason": reason})


def daq_live_at(config: dict) -> _dt.datetime | None:
    """When a tick last found the DAQ live, if ever."""
    try:
        return parse(markers.read(daq_live_path(config)).get("at"))
    except (OSError, ValueError):
        return None


def limits(config: dict) -> dict:
    return {"transfer_attempts": config["transfer"]["max_attempts"],
            "process_attempts": config["processing"]["max_attempts"]}


def find(docs: list[dict], config: dict, now: _dt.datetime, daq_live: _dt.datetime | None = None) -> list[Item]:
    """The runs among `docs` (pending ones, with history) that need attention, by kind then name."""
    items = []
    for doc in docs:
        item = examine(doc, config, now, daq_live)
        if item is not None:
            items.append(item)
    return sorted(items, key=lambda i: (KINDS.index(i.kind), i.run))


def examine(doc: dict, config: dict, now: _dt.datetime, daq_live: _dt.datetime | None = None) -> Item | None:
    """The one Item for a run (its most urgent kind), or None when it is fine."""
    problem = selection.check_doc(doc, config["run_name_pattern"])
    name = str(doc.get("name"))
    if problem:
        fix = "" if "fix the document" in problem else "; fix the document in the runs DB (no tick takes it until then)"
        return Item(name, "BAD", problem + fix, f"fulliautomatix status {name}")
    if doc.get(states.RAW) == "archived":
        return None
    _, held = selection.start_stage(doc, limits(config))
    if held:
        return Item(name, "HELD", held, f"fulliautomatix retry {name}")
    item = stuck(doc, config, now, daq_live)
    if item is not None:
        return item
    for sub, key in ERROR_FIELDS:
        err = (doc.get(sub) or {}).get(key)
        if err and not (sub == "processing" and doc.get(states.PROCESSED) != "failed"):
            first = str(err).strip().splitlines()[-1] if sub == "processing" else str(err)
            return Item(name, "RETRY", f"run {name}: last {sub} attempt failed: {first}; the next tick retries",
                        f"fulliautomatix --run {name}")
    return None


def current_state(doc: dict) -> tuple[str, str] | None:
    """(field, state) whose duration counts for STUCK, or None in a state that may last."""
    raw, proc = doc.get(states.RAW), doc.get(states.PROCESSED)
    if raw == "ondeck" and proc in ("queued", "processing"):
        return states.PROCESSED, proc
    if raw in STUCK_HINTS:
        return states.RAW, raw
    return None


def entered(doc: dict, field_: str, state: str) -> tuple[_dt.datetime | None, dict]:
    """When the run entered `state` of `field_` (its last such history entry), and its last entry."""
    history = doc.get("history") or []
    last = history[-1] if history else {}
    for entry in reversed(history):
        if entry.get("field") == field_ and entry.get("to") == state:
            return parse(entry.get("at")), last
    return parse(doc.get("start")), last  # acquired since the DAQ wrote it


def limit_seconds(state: str, doc: dict, config: dict) -> float:
    """How long a run may stay in `state` (alerts.stuck_after)."""
    after = config["alerts"]["stuck_after"]
    if state == "processing":
        requested = (doc.get("processing") or {}).get("walltime")
        try:
            seconds = walltime.parse(requested) if requested else None
        except ValueError:
            seconds = None
        if not seconds:  # processed here (no batch job): the walltime it would have asked for
            seconds = walltime.estimate(int(doc.get("events") or 0), str(doc.get("source")),
                                        config["processing"]["walltime"])
        return seconds * after["processing_walltime_factor"]
    if state == "compressed" and after["compressed_hours"] is None:
        return (config["archive"]["max_wait_days"] + 1) * 86400.0
    return float(after[f"{state}_hours"]) * 3600


def stuck(doc: dict, config: dict, now: _dt.datetime, daq_live: _dt.datetime | None = None) -> Item | None:
    """A STUCK item when the run has been in its state longer than allowed."""
    where = current_state(doc)
    if where is None:
        return None
    field_, state = where
    since, last = entered(doc, field_, state)
    if since is None:
        return None
    if state == "acquired" and daq_live is not None and daq_live > since:
        since = daq_live  # waiting while the DAQ takes data is expected
    age, limit = (now - since).total_seconds(), limit_seconds(state, doc, config)
    if age <= limit:
        return None
    name = doc["name"]
    look, command = (s.format(run=name) for s in STUCK_HINTS[state])
    if last:
        note = f" ({last['note']})" if last.get("note") else ""
        seen = (f"last change {iso(parse(last.get('at')))}: {last.get('field')} {last.get('from')} -> "
                f"{last.get('to')} on {last.get('host')}{note}")
    else:
        seen = "no history yet (written by the DAQ)"
    reason = f"run {name}: {state} for {human(age)} (limit {human(limit)}); {seen}; check {look}"
    return Item(name, "STUCK", reason, command, state=state, seconds=round(age, 1), last=dict(last))
