"""The runs DB: the only module that writes it (its report and status queries: :mod:`fulliautomatix.queries`).

Every state change goes through :meth:`RunsDB.transition`, which asks
:mod:`fulliautomatix.states` whether it is allowed and appends a history entry
``{at, field, from, to, host}``.  Writes use optimistic concurrency on a
``rev`` counter, so two writers never both apply a change to the same state.

Queries are kept simple and index-backed because they must be fast both on a
real MongoDB and on the embedded nx-27017 server (which, measured here, stores
``$push``-ed documents as strings, mis-groups compound ``$group`` keys and
flattens dotted projections; none of those are used).

Times are BSON dates (:mod:`fulliautomatix.dates`): every write passes through
:func:`dates.for_db`, and reads come back as aware UTC datetimes
(``tz_aware``).  nx-27017 0.8.1 stores a datetime that is itself the value of
a ``$set`` key as a string (``"2024-05-01 12:00:00"``), but one inside a
sub-document or an array as a date; so :meth:`RunsDB._write` sets such a field
as part of its whole sub-document (:func:`_dates_in_documents`) and
``updated_at`` with ``$currentDate``.
"""

from __future__ import annotations

import copy
import datetime as _dt
import logging
from contextlib import contextmanager

import pymongo
import pymongo.errors

from . import config as fa_config
from . import dates, embedded, states
from .queries import INDEXES, PENDING_RAW, Conflict, RunsDBError, RunsQueries, UnknownRun, redact  # noqa: F401

log = logging.getLogger(__name__)

# Fields the DAQ writes; a document without them is malformed.
REQUIRED_FIELDS = ("name", "number", "events", "source", "raw_status", "raw_location", "processed_status")


def _nested_set(doc: dict, dotted: str, value) -> None:
    parts = dotted.split(".")
    for part in parts[:-1]:
        if not isinstance(doc.get(part), dict):
            doc[part] = {}
        doc = doc[part]
    doc[parts[-1]] = value


def _dates_in_documents(doc: dict, sets: dict) -> dict:
    """`sets` with each dotted key that holds a bare datetime folded into its whole top-level sub-document.

    nx-27017 0.8.1 stores ``{"$set": {"archive.purged": <datetime>}}`` as a
    string, but ``{"$set": {"archive": {..., "purged": <datetime>}}}`` as a
    date.  The sub-document is the snapshot's: the write is conditional on
    the snapshot's ``rev``, so it is exactly what the DB holds.
    """
    tops = {k.split(".", 1)[0] for k, v in sets.items() if "." in k and isinstance(v, _dt.datetime)}
    if not tops:
        return sets
    out = {k: v for k, v in sets.items() if k.split(".", 1)[0] not in tops}
    for top in tops:
        sub = copy.deepcopy(sets.get(top, doc.get(top)))
        sub = sub if isinstance(sub, dict) else {}
        for key, value in sets.items():
            if key.startswith(top + "."):
                _nested_set(sub, key[len(top) + 1 :], value)
        out[top] = sub
    return out


HEARTBEAT_PATIENCE = 120.0  # seconds a single command may keep the server busy (see RunsDB)


class RunsDB(RunsQueries):
    """A connection to the runs collection (its reads for reports and status: :class:`queries.RunsQueries`)."""

    def __init__(self, uri: str, database: str, collection: str, timeout: float = 10.0):
        self.uri = uri
        try:
            self.client = pymongo.MongoClient(
                uri,
                serverSelectionTimeoutMS=int(timeout * 1000),
                # pymongo's monitor uses connectTimeoutMS as its heartbeat's socket timeout, and a failed
                # heartbeat cancels the commands in flight: nx-27017 answers one command at a time, so a
                # long read (a report over 100,000 runs) would fail itself.  A DB that is down still shows
                # within serverSelectionTimeoutMS (a refused connection at once).
                connectTimeoutMS=int(max(timeout, HEARTBEAT_PATIENCE) * 1000),
                tz_aware=True,  # dates come back as aware UTC datetimes
            )
            self.col = self.client[database][collection]
        except (pymongo.errors.PyMongoError, ValueError, TypeError) as exc:
            # pymongo raises ValueError for a port out of range or unescaped characters in a password
            raise RunsDBError(
                f"runs DB URI {redact(uri)!r} is not usable: {redact(str(exc))}; "
                "fix runs_db.uri or FULLIAUTOMATIX_RUNS_DB"
            ) from None

    def close(self) -> None:
        self.client.close()

    def replace_unchanged(self, docs: list[dict]) -> int:
        """Write back whole documents, each only if its ``rev`` is still the one read; how many were.

        For conversions that change no meaning (``db migrate``): the stored
        ``rev`` goes up by one, so a writer holding the old snapshot re-reads
        it, and ``updated_at`` is left as it was.  One bulk command.  Whole
        documents, because nx-27017 stores a datetime that ``$set`` puts on a
        top-level field (``start``, ``updated_at``) as a string.
        """
        if not docs:
            return 0
        ops = []
        for doc in docs:
            rev = doc.get("rev")
            filt = {"_id": doc["_id"], "rev": rev if rev is not None else {"$exists": False}}
            ops.append(pymongo.ReplaceOne(filt, {**doc, "rev": (rev or 0) + 1}))
        try:
            return self.col.bulk_write(ops, ordered=False).matched_count
        except pymongo.errors.PyMongoError as exc:
            raise RunsDBError(f"runs DB write failed ({type(exc).__name__}: {exc})") from None

    # -- writes ---------------------------------------------------------
    def insert_run(self, doc: dict) -> None:
        """Insert a new run document, as the DAQ does."""
        missing = [f for f in REQUIRED_FIELDS if f not in doc]
        if missing:
            raise RunsDBError(f"run {doc.get('name')}: missing fields {', '.join(missing)}")
        try:
            self.col.insert_one(dates.for_db(_with_day({**doc, "history": [], "rev": 0})))
        except pymongo.errors.DuplicateKeyError:
            raise RunsDBError(f"run {doc['name']}: already in the runs DB") from None
        except pymongo.errors.PyMongoError as exc:
            raise RunsDBError(f"run {doc['name']}: runs DB insert failed ({type(exc).__name__}: {exc})") from None

    def insert_runs(self, docs: list[dict]) -> int:
        """Insert many run documents in bulk (imports, benchmarks); return how many.

        Unlike :meth:`insert_run` a document may bring its own history and
        rev (a run imported with its past); the default is a new run's.
        """
        for doc in docs:
            missing = [f for f in REQUIRED_FIELDS if f not in doc]
            if missing:
                raise RunsDBError(f"run {doc.get('name')}: missing fields {', '.join(missing)}")
        if not docs:
            return 0
        try:
            res = self.col.insert_many(
                [dates.for_db(_with_day({"history": [], "rev": 0, **doc})) for doc in docs], ordered=True
            )
        except pymongo.errors.BulkWriteError as exc:
            first = (exc.details.get("writeErrors") or [{}])[0]
            raise RunsDBError(
                f"bulk insert stopped after {exc.details.get('nInserted', 0)} runs: {first.get('errmsg', exc)}"
            ) from None
        return len(res.inserted_ids)

    def transition(
        self,
        name: str,
        field: str,
        to: str,
        *,
        expect: tuple[str, ...] | None = None,
        fields: dict | None = None,
        note: str | None = None,
        doc: dict | None = None,
        via: tuple[str, ...] = (),
    ) -> dict:
        """Move run `name`'s `field` to `to` (through the states `via`, one write), setting `fields` with it.

        `expect` limits the states the change may start from (beyond what
        the state machine allows).  `doc` is a snapshot the caller already
        holds (saves a round trip); on a conflict the run is re-read once.
        `via`: states passed on the way, each with its history entry (a
        local processing job's ``none -> queued -> processing``).
        Returns the updated snapshot.  Raises TransitionRefused or Conflict.
        """
        for attempt in range(3):
            if doc is None or attempt or "history" not in doc:
                doc = self.get(name)  # a snapshot without history cannot be appended to
            if self._write(doc, {field: to, **(fields or {})}, self._entries(doc, field, to, expect, note, via)):
                return doc
        raise Conflict(f"run {name}: changed by another writer while moving {field} to {to}")

    @staticmethod
    def _entries(doc: dict, field: str, to: str, expect, note, via) -> list[dict]:
        """The history entries of moving doc's `field` to `to` through `via` (TransitionRefused if not allowed)."""
        current = doc.get(field)
        if expect is not None and current not in expect:
            raise states.TransitionRefused(
                f"run {doc.get('name')}: {field} is {current!r}, expected one of {', '.join(expect)}"
            )
        entries = []
        for step in [s for s in via if s != current] + [to]:
            entries.append(states.history_entry(states.check(field, current, step), note))
            current = step
        return entries

    def transition_many(
        self,
        docs: dict[str, dict],
        field: str,
        to: str,
        fields: dict[str, dict],
        *,
        expect: tuple[str, ...] | None = None,
        note: str | None = None,
    ) -> dict[str, dict]:
        """:meth:`transition` for several runs (an archive batch's) in one bulk write; {run: updated snapshot}.

        Each run's write is conditional on its snapshot's ``rev``; a run that
        changed meanwhile is moved by :meth:`transition` on its own (re-read).
        """
        planned = {}
        for name, doc in docs.items():
            if "history" not in doc:
                doc = docs[name] = self.get(name)
            entries = self._entries(doc, field, to, expect, note, ())
            planned[name] = self._update_of(doc, {field: to, **(fields.get(name) or {})}, entries)
        try:
            res = self.col.bulk_write([pymongo.UpdateOne(f, u) for f, u, _ in planned.values()], ordered=False)
        except pymongo.errors.PyMongoError as exc:
            raise RunsDBError(f"runs {', '.join(docs)}: runs DB write failed ({exc})") from None
        if res.matched_count == len(planned):
            for name, (_, _, stored) in planned.items():
                self._applied(docs[name], stored)
            return docs
        out = {}
        for name in docs:  # which ones matched is not said: each is re-read
            fresh = self.get(name)
            if fresh.get("rev") == planned[name][2]["rev"] and fresh.get(field) == to:
                out[name] = fresh  # this write's
            else:
                out[name] = self.transition(
                    name, field, to, expect=expect, note=note, fields=fields.get(name), doc=fresh
                )
        return out

    def update(self, name: str, fields: dict, *, doc: dict | None = None) -> dict:
        """Set non-state fields (measurements, errors) of a run.

        Keys may be dotted ("transfer.error") to set part of a sub-document.
        """
        for attempt in range(3):
            if doc is None or attempt:
                doc = self.get(name)
            if self._write(doc, dict(fields), []):
                return doc
        raise Conflict(f"run {name}: changed by another writer while updating it")

    def update_many(self, docs: dict[str, dict], fields: dict) -> None:
        """Set the same non-state fields of several runs in one bulk write (each conditional on its ``rev``);
        a run that changed meanwhile is updated on its own."""
        planned = {name: self._update_of(doc, dict(fields), []) for name, doc in docs.items()}
        try:
            res = self.col.bulk_write([pymongo.UpdateOne(f, u) for f, u, _ in planned.values()], ordered=False)
        except pymongo.errors.PyMongoError as exc:
            raise RunsDBError(f"runs {', '.join(docs)}: runs DB write failed ({exc})") from None
        if res.matched_count != len(planned):
            for name in docs:
                self.update(name, fields)
            return
        for name, (_, _, stored) in planned.items():
            self._applied(docs[name], stored)

    def _update_of(self, doc: dict, sets: dict, entries: list[dict]) -> tuple[dict, dict, dict]:
        """(filter, update, what it stores) of a write conditional on doc's ``rev``."""
        rev = doc.get("rev")
        filt = {"_id": doc["_id"], "rev": rev} if rev is not None else {"_id": doc["_id"], "rev": {"$exists": False}}
        new_sets = dict(sets)
        new_sets["rev"] = (rev or 0) + 1
        new_sets["updated_day"] = dates.day_number(dates.now())  # beside updated_at: what report.py queries
        if entries:
            # Whole-array $set: nx-27017 stores $push-ed documents as strings.
            new_sets["history"] = list(doc.get("history") or []) + entries
        # Times as dates, whatever strings a replayed marker, a snapshot or an older document brings.
        stored = dates.for_db(_dates_in_documents(doc, dates.for_db(new_sets)))
        return filt, {"$set": stored, "$currentDate": {"updated_at": True}}, stored

    @staticmethod
    def _applied(doc: dict, stored: dict) -> None:
        for k, v in stored.items():
            _nested_set(doc, k, v)
        doc["updated_at"] = dates.now()  # the DB's clock set the stored one

    def _write(self, doc: dict, sets: dict, entries: list[dict]) -> bool:
        filt, update, stored = self._update_of(doc, sets, entries)
        try:
            res = self.col.update_one(filt, update)
        except pymongo.errors.ConnectionFailure as exc:
            raise self.unreachable(exc) from None
        except pymongo.errors.PyMongoError as exc:
            raise RunsDBError(f"run {doc.get('name')}: runs DB write failed ({exc})") from None
        if res.matched_count != 1:
            return False
        self._applied(doc, stored)
        return True


def _with_day(doc: dict) -> dict:
    """A document to insert with its ``updated_day``: the day of its ``updated_at``, else of its last
    history entry (a run imported with its past was last written then), else today's (the insert).

    The report reads every run of the days in its window: an import of old runs
    stamped today would make it read the whole import on every tick.
    """
    if doc.get("updated_day") is None:
        history = [e for e in doc.get("history") or [] if isinstance(e, dict)]
        last_change = max((t for t in (dates.as_utc(e.get("at")) for e in history) if t), default=None)
        doc["updated_day"] = (
            dates.day_number(doc.get("updated_at")) or dates.day_number(last_change) or dates.day_number(dates.now())
        )
    return doc


@contextmanager
def connect(config: dict, *, start_embedded: bool = True, job: bool = False):
    """Yield a RunsDB for a finalized config; start the embedded server if needed.

    An embedded server started here is stopped on exit; one that was already
    running (another tick's, or ``fulliautomatix db serve``) is left alone.
    job: a stage job's connection (:mod:`fulliautomatix.jobs`): no ``ping``
    first (its first real command names an unreachable DB in one line,
    :meth:`RunsDB.unreachable`), and the client is not closed, since the job's
    process ends at once with ``os._exit``: closing would only send
    ``endSessions`` for the implicit sessions, which the server expires by
    itself (logicalSessionTimeoutMinutes).
    """
    rdb_cfg = config["runs_db"]
    uri = rdb_cfg["uri"]
    proc = users = None
    state = fa_config.state_dir(config)
    try:
        if uri == "embedded":
            users = embedded.using(state)  # the server's watcher waits for this process to be done
            uri, proc = _embedded_uri(state, start_embedded)
        elif embedded.serves(state, uri):  # a tick's job, handed the server's address (config.DB_ENV): the same
            users = embedded.using(state)
        with _opened(uri, rdb_cfg, check=not job, close=not job) as db:
            yield db
    finally:
        if users is not None:
            embedded.done_using(users)
        embedded.release(state, proc)


def _embedded_uri(state, start: bool):
    """(uri, process started here or None) of the work dir's embedded server; this process owns a new one."""
    import os

    if not start:
        uri = embedded.running_uri(state)
        if uri is None:
            raise RunsDBError("the embedded runs DB is not running")
        return uri, None
    try:
        return embedded.ensure(state, owner=os.getpid())
    except embedded.EmbeddedError as exc:
        raise RunsDBError(str(exc)) from None


@contextmanager
def _opened(uri: str, rdb_cfg: dict, check: bool = True, close: bool = True):
    db = RunsDB(uri, rdb_cfg["database"], rdb_cfg["collection"], rdb_cfg["timeout_seconds"])
    try:
        if check:
            db.ping()
        yield db
    finally:
        if close:
            db.close()


@contextmanager
def reading(config: dict, uri: str | None = None, missing_ok: bool = False):
    """Yield a RunsDB to read from, changing nothing: the embedded DB of a work dir where no
    server runs is read from a copy (:func:`embedded.snapshot_uri`), so no file appears there.
    With missing_ok, a work dir that has no runs DB yet yields None."""
    rdb_cfg = config["runs_db"]
    uri = uri or rdb_cfg["uri"]
    if uri != "embedded":
        with _opened(uri, rdb_cfg) as db:
            yield db
        return
    with embedded.snapshot_uri(fa_config.state_dir(config)) as read_uri:
        if read_uri is None:
            if missing_ok:
                yield None
                return
            raise RunsDBError(
                f"no runs DB yet in {fa_config.state_dir(config)} (the DAQ, or simulate-daq, inserts the runs)"
            )
        with _opened(read_uri, rdb_cfg) as db:
            yield db
