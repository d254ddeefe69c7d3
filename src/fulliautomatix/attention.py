"""The attention list: which runs need a human, why, and the command that fixes each.

One function, :func:`problems`, turns the pending run documents (with their
``history``) into :class:`Problem` rows; a run is listed once, under the
first kind that applies, most urgent first:

* ``BAD``   -- a malformed document, a name several documents hold, or a raw
  state that is not one: no stage touches it until it is fixed;
* ``LOST``  -- no verified copy of its raw data is left (held, with what to do);
* ``LOST-COPY`` -- an archived run whose archived copy failed its last check
  (restore or ``fulliautomatix audit``);
* ``HELD``  -- a stage failed too often (or refused the run, or the DAQ has no
  directory for it): waits for a human;
* ``STUCK`` -- in one state longer than ``alerts.stuck_after`` allows, counted
  from the history entry that put it there (with how long, the limit and the
  run's last history entry);
* ``RETRY`` -- the last attempt of a stage failed; the next tick tries again;
* ``ONE-COPY`` -- not yet archived and its DAQ copy is gone: one verified copy left.

``status`` (and ``status --json``), the report, ``check``, the notifications
and the metrics all read this one list (:func:`gather` reads what it needs
from the runs DB: the pending runs, duplicate names, unknown states and
archived copies that stopped verifying).  Pure functions of the documents, the
config and the time; the only file read is ``state/daq_live.json``, where a
tick that found the DAQ live (or could not ask it) notes when: an acquired run
is not stuck while the DAQ takes data.  Times in documents may be ISO strings
or BSON dates (:func:`fulliautomatix.dates.as_utc` reads both).
"""

from __future__ import annotations

import datetime as _dt
import re
import shlex
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import config as fa_config
from . import dates, markers, overdue, selection, states
from .runsdb import redact

KINDS = ("BAD", "HELD", "STUCK", "RETRY")  # counted always (metrics, check's performance data)
MORE_KINDS = ("LOST", "LOST-COPY", "ONE-COPY")  # counted when present
ORDER = ("BAD", "LOST", "LOST-COPY", "HELD", "STUCK", "RETRY", "ONE-COPY")  # most urgent first

# (sub-document, field) holding a stage's last error, and the stage's name.
ERROR_FIELDS = (
    ("transfer", "error", "transfer"),
    ("processing", "log_tail", "process"),
    ("compressed", "error", "compress"),
    ("archive", "error", "archive"),
)

# The state a STUCK run is in -> (its stage, what to look at, the command that moves it on).
STUCK_HINTS = {
    "acquired": (
        "transfer",
        "the DAQ machine and logs/transfer_run/{run}.log",
        "fulliautomatix --transfer --run {run}",
    ),
    "transferring": (
        "transfer",
        "logs/transfer_run/{run}.log (a killed copy resumes)",
        "fulliautomatix --transfer --run {run}",
    ),
    "queued": ("process", "its job in the scheduler (qstat, squeue)", "fulliautomatix status {run}"),
    "processing": ("process", "its job and logs/process_run/{run}.log", "fulliautomatix status {run}"),
    "compressing": ("compress", "logs/compress_run/{run}.log", "fulliautomatix --compress --run {run}"),
    "compressed": (
        "archive",
        "its batch: a neighbouring run not yet compressed keeps it open",
        "fulliautomatix --archive",
    ),
    "archiving": ("archive", "logs/archive_batch/ of its batch", "fulliautomatix --archive"),
}


@dataclass(frozen=True)
class Problem:
    """One run needing attention (or, from notify, one failing tick: run "")."""

    run: str  # the run's name
    kind: str  # one of ORDER (notify adds CRASH, RUNSDB, DAQ)
    reason: str  # one line: what is wrong
    command: str  # what an operator runs to fix it, move it on or inspect it
    stage: str = ""  # transfer, process, compress or archive: where it went wrong ("" unknown)
    since: _dt.datetime | None = None  # STUCK: when the run entered its state
    state: str = ""  # STUCK: the state it is stuck in
    seconds: float | None = None  # STUCK: how long it has been in that state
    last: dict = field(default_factory=dict, compare=False, hash=False)  # STUCK: its last history entry

    @property
    def key(self) -> str:
        """Identifies the problem across ticks (notifications: once per key)."""
        return f"{self.kind}:{self.run}"

    def line(self) -> str:
        """The problem as `status` prints it."""
        return f"  {self.kind + ' ':<6}{self.reason}; fix: {self.command}"

    def as_dict(self) -> dict:
        """The problem as `status --json` and the report's figures hold it (times as ISO strings)."""
        out = asdict(self)
        out["since"] = dates.iso(self.since)
        out["last"] = {k: dates.iso(v) if k == "at" else v for k, v in self.last.items()}
        return out


# -- the DAQ's live note -------------------------------------------------------


def daq_live_path(config: dict) -> Path:
    return fa_config.state_dir(config) / "daq_live.json"


def record_daq_live(config: dict, reason: str) -> None:
    """A tick found the DAQ live (or could not ask it): transfers wait, acquired runs are not stuck."""
    markers.write(daq_live_path(config), {"at": dates.iso(dates.now()), "reason": reason})


def daq_live_at(config: dict) -> _dt.datetime | None:
    """When a tick last found the DAQ live (or could not ask it), if ever: the `daq_live` of :func:`problems`."""
    try:
        return dates.as_utc(markers.read(daq_live_path(config)).get("at"))
    except (OSError, ValueError, AttributeError):
        return None


# -- STUCK ---------------------------------------------------------------------


def stuck(doc: dict, config: dict, now: _dt.datetime, daq_live=None) -> Problem | None:
    """A STUCK problem when the run has stayed in a state too long (:mod:`.overdue` measures it).

    `daq_live`: when a tick last found the DAQ live (True: it is now); an
    acquired run's time counts from then at the earliest.
    """
    worst = overdue.most_overdue(doc, config, now, daq_live)
    if worst is None:
        return None
    field_, state, since, age, limit = worst
    name = doc["name"]
    stage, look, command = STUCK_HINTS[state]
    last = last_entry(doc)
    reason = (
        f"run {name}: {field_} {state} for {dates.duration(age)} (limit {dates.duration(limit)}); "
        f"last: {describe(last)}; check {look.format(run=name)}"
    )
    return Problem(
        name,
        "STUCK",
        reason,
        command.format(run=name),
        stage=stage,
        since=since,
        state=state,
        seconds=round(age, 1),
        last=last,
    )


def last_entry(doc: dict) -> dict:
    """The run's last history entry ({} without one)."""
    history = [h for h in doc.get("history") or [] if isinstance(h, dict)]
    return dict(history[-1]) if history else {}


def describe(entry: dict) -> str:
    """A history entry as one phrase."""
    if not entry:
        return "no history (inserted by the DAQ)"
    at = dates.as_utc(entry.get("at"))
    when = at.strftime("%Y-%m-%d %H:%M UTC") if at else str(entry.get("at"))
    note = f" ({entry['note']})" if entry.get("note") else ""
    return f"{when} {entry.get('field')} {entry.get('from')} -> {entry.get('to')} on {entry.get('host')}{note}"


# -- the list ------------------------------------------------------------------


def _command_in(reason: str, default: str) -> str:
    found = re.findall(r"`([^`]+)`", reason)
    return found[-1] if found else default


def _bad(doc: dict, problem: str) -> Problem:
    name = doc.get("name")
    fix = "" if "fix the document" in problem else "; fix the document in the runs DB (no tick takes it until then)"
    return Problem(str(name), "BAD", problem + fix, f"fulliautomatix status {name}" if isinstance(name, str) else "")


def _retry(doc: dict) -> Problem | None:
    name = doc["name"]
    for sub, key, stage in ERROR_FIELDS:
        err = (doc.get(sub) or {}).get(key)
        if err and not (sub == "processing" and doc.get(states.PROCESSED) != "failed"):
            first = str(err).strip().splitlines()[-1] if sub == "processing" else str(err)
            command = "fulliautomatix --archive" if stage == "archive" else f"fulliautomatix --run {name}"
            return Problem(
                name,
                "RETRY",
                f"run {name}: last {sub} attempt failed: {first}; the next tick retries",
                command,
                stage=stage,
            )
    return None


def run_problem(doc: dict, config: dict, now: _dt.datetime, daq_live=None) -> Problem | None:
    """The most urgent problem of one run, or None when it is fine."""
    bad = selection.check_doc(doc, config["run_name_pattern"])
    if bad:
        return _bad(doc, bad)
    if doc.get(states.RAW) == "archived":
        return None
    name = doc["name"]
    _, held = selection.start_stage(doc, selection.limits(config))
    if held:
        stage = _STAGE_OF.get(doc.get(states.RAW), "transfer")
        kind = "LOST" if selection.lost(doc) else "HELD"
        return Problem(name, kind, held, _command_in(held, f"fulliautomatix retry {name}"), stage=stage)
    if doc.get("history") is not None:  # read without history (status's counts): no STUCK
        found = stuck(doc, config, now, daq_live)
        if found:
            return found
    return _retry(doc) or _one_copy(doc)


_STAGE_OF = {"ondeck": "process", "compressing": "compress", "compressed": "archive", "archiving": "archive"}


def one_copy(doc: dict) -> str | None:
    """The only verified copy of a run not yet archived whose DAQ copy is gone, or None (two or more)."""
    if (doc.get("transfer") or {}).get("daq_copy") not in ("purged", "absent") or selection.lost(doc):
        return None
    raw = doc.get(states.RAW)
    if raw in ("ondeck", "compressing"):
        return f"its copy on scratch {(doc.get('transfer') or {}).get('destination') or ''}".rstrip()
    if raw in ("compressed", "archiving"):
        return f"its compressed copy {(doc.get('compressed') or {}).get('path') or ''}".rstrip()
    return None


def _one_copy(doc: dict) -> Problem | None:
    only = one_copy(doc)
    if not only:
        return None
    name = doc["name"]
    return Problem(
        name,
        "ONE-COPY",
        f"run {name}: only {only} (DAQ copy {doc['transfer']['daq_copy']}, not yet archived)",
        f"fulliautomatix --run {name}",
        stage=_STAGE_OF.get(doc.get(states.RAW), ""),
    )


def _lost_copy(doc: dict) -> Problem:
    name = doc.get("name")
    return Problem(
        str(name),
        "LOST-COPY",
        f"run {name}: {(doc.get('archive') or {}).get('copy_error')}",
        f"fulliautomatix audit {name}",
        stage="archive",
    )


def duplicate_line(config: dict, name: str, ids: list[str]) -> str:
    """The one line for a run name that several documents hold, with the command that fixes it."""
    rdb = config["runs_db"]
    uri = redact(rdb["uri"]) if rdb["uri"] != "embedded" else "mongodb://127.0.0.1:27017/"
    serve = "`fulliautomatix db serve --port 27017`, then " if rdb["uri"] == "embedded" else ""
    delete = f'db.getSiblingDB("{rdb["database"]}").{rdb["collection"]}.deleteOne({{_id: ObjectId("{ids[-1]}")}})'
    return (
        f"run {name}: {len(ids)} documents have this name (_id {', '.join(ids)}); no tick touches it until "
        f"one is left: keep the right one and delete the other, e.g. {serve}`mongosh {shlex.quote(uri)} "
        f"--eval {shlex.quote(delete)}`"
    )


def _duplicate(config: dict, name: str, ids: list[str]) -> Problem:
    line = duplicate_line(config, name, ids)
    return Problem(name, "BAD", line, _command_in(line, f"fulliautomatix status {name}"))


def problems(
    docs: list[dict],
    config: dict,
    now: _dt.datetime | None = None,
    daq_live=None,
    *,
    duplicates: dict[str, list[str]] | None = None,
    unknown: list[dict] = (),
    lost_copies: list[dict] = (),
) -> list[Problem]:
    """The attention list of the pending runs: one problem per run at most, most urgent kind first, then by run.

    `daq_live`: when a tick last found the DAQ live (:func:`daq_live_at`),
    True when it is live now, None when not known to be.  What the pending
    runs cannot show (see :func:`gather`): `duplicates` ({name: _ids} of names
    several documents hold: one BAD each, their documents are not listed
    again), `unknown` (documents whose raw state is not one: BAD) and
    `lost_copies` (archived runs whose copy failed its last check: LOST-COPY).
    """
    now = now or dates.now()
    duplicates = duplicates or {}
    found = [_duplicate(config, name, ids) for name, ids in duplicates.items()]
    found += [
        _bad(
            d,
            selection.check_doc(d, config["run_name_pattern"])
            or f"run {d.get('name')}: unknown raw_status {d.get(states.RAW)!r}",
        )
        for d in unknown
    ]
    found += [_lost_copy(d) for d in lost_copies if d.get("name") not in duplicates]
    found += [p for p in (run_problem(d, config, now, daq_live) for d in docs if d.get("name") not in duplicates) if p]
    return sorted(found, key=lambda p: (ORDER.index(p.kind), p.run))


def gather(
    db, config: dict, now: _dt.datetime | None = None, pending: list[dict] | None = None, raw_values=None
) -> list[Problem]:
    """:func:`problems` of the runs DB: its pending runs (with history, unless `pending` is given),
    duplicate names, unknown states (`raw_values`: the raw states db.counts() found, spares a query)
    and archived copies that stopped verifying."""
    pending = db.pending(history=True) if pending is None else pending
    return problems(
        pending,
        config,
        now,
        daq_live_at(config),
        duplicates=db.duplicate_names(),
        unknown=db.unknown_states(raw_values=raw_values),
        lost_copies=db.copy_problems(),
    )


def counts(found: list[Problem]) -> dict[str, int]:
    """Problems per kind: every one of KINDS, and those of MORE_KINDS that are present."""
    every = {kind: sum(p.kind == kind for p in found) for kind in ORDER}
    return {kind: n for kind, n in every.items() if kind in KINDS or n}


def oldest(docs: list[dict], now: _dt.datetime | None = None) -> dict[str, float]:
    """Seconds the oldest run has spent in each pending state (a state with no run is absent)."""
    now = now or dates.now()
    ages: dict[str, float] = {}
    for doc in docs:
        for field_, state in ((states.RAW, doc.get(states.RAW)), (states.PROCESSED, doc.get(states.PROCESSED))):
            if state in ("archived", "processed", "none", None):
                continue
            since = overdue.entered(doc, field_, state)
            if since is not None:
                ages[state] = max(ages.get(state, 0.0), (now - since).total_seconds())
    return ages


def retry_refusal(doc: dict, config: dict, now: _dt.datetime | None = None) -> str | None:
    """Why `fulliautomatix retry` must leave this run alone, or None when it is what retry is for.

    Retry is for a run that waits for a human's fix -- HELD or LOST (attempts
    used up, refused or missing on the DAQ, compression held) -- or whose
    last attempt at a stage failed (RETRY, a failed processing or
    reprocessing, a walltime no queue allows: ``processing.error``).  On any
    other run, clearing its counts and errors would only rewrite its record.
    """
    problem = run_problem(doc, config, now or dates.now())
    if problem and problem.kind in ("HELD", "LOST", "RETRY"):
        return None
    if doc.get(states.PROCESSED) == "failed" or (doc.get("processing") or {}).get("error"):
        return None
    name = doc.get("name")
    state = f"raw_status {doc.get(states.RAW)}, processed_status {doc.get(states.PROCESSED)}"
    if problem is None and (doc.get("archive") or {}).get("copy_ok") in (False,):
        problem = _lost_copy(doc)
    if problem:  # BAD, STUCK, ONE-COPY, LOST-COPY: another command moves it on
        return f"run {name}: {problem.kind}, not held or failed ({state}); not retried: `{problem.command}`"
    return (
        f"run {name}: {state}, neither held nor failed: nothing to retry, nothing changed "
        f"(`fulliautomatix status {name}`)"
    )
