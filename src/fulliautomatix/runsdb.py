"""The runs DB: the only module that reads or writes it.

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
import re
from collections import Counter
from contextlib import contextmanager

import pymongo
import pymongo.errors

from . import config as fa_config
from . import dates, embedded, states

log = logging.getLogger(__name__)

# Fields the DAQ writes; a document without them is malformed.
REQUIRED_FIELDS = ("name", "number", "events", "source", "raw_status", "raw_location", "processed_status")

# The fields queries select on; ensure_indexes creates one index on each.
INDEXES = (("name", True), ("number", False), (states.RAW, False), (states.PROCESSED, False),
           ("archive.batch", False), ("reprocess.tag", False), ("transfer.daq_copy", False),
           ("archive.copy_ok", False), ("updated_day", False))
PENDING_RAW = tuple(states.PENDING_QUERY[states.RAW]["$in"])


class RunsDBError(Exception):
    """The runs DB cannot be reached or refused an operation."""


class UnknownRun(RunsDBError):
    pass


class Conflict(RunsDBError):
    """Another writer changed the run first."""


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
                _nested_set(sub, key[len(top) + 1:], value)
        out[top] = sub
    return out


class RunsDB:
    """A connection to the runs collection."""

    def __init__(self, uri: str, database: str, collection: str, timeout: float = 10.0):
        self.uri = uri
        try:
            self.client = pymongo.MongoClient(
                uri, serverSelectionTimeoutMS=int(timeout * 1000), connectTimeoutMS=int(timeout * 1000),
                tz_aware=True,  # dates come back as aware UTC datetimes
            )
            self.col = self.client[database][collection]
        except (pymongo.errors.PyMongoError, ValueError, TypeError) as exc:
            # pymongo raises ValueError for a port out of range or unescaped characters in a password
            raise RunsDBError(f"runs DB URI {redact(uri)!r} is not usable: {redact(str(exc))}; "
                              "fix runs_db.uri or FULLIAUTOMATIX_RUNS_DB") from None

    # -- connection -----------------------------------------------------
    def ping(self) -> None:
        try:
            self.client.admin.command("ping")
        except pymongo.errors.PyMongoError as exc:
            raise RunsDBError(
                f"runs DB at {_redact(self.uri)} is unreachable ({type(exc).__name__}); "
                "check runs_db.uri or FULLIAUTOMATIX_RUNS_DB"
            ) from None

    def ensure_indexes(self) -> dict[str, list[str]]:
        """Create the indexes of INDEXES (one round trip; existing ones are left alone).

        Returns the run names that more than one document holds (see
        :meth:`duplicate_names`): while there are any, the unique index on
        ``name`` cannot be built, the other indexes are, and each tick
        tries again.  (nx-27017 makes a later unique index a silent no-op
        beside a plain one on the same field, so none is made instead.)
        """
        try:
            self.col.create_indexes([pymongo.IndexModel(key, unique=unique) for key, unique in INDEXES])
            return {}
        except pymongo.errors.OperationFailure as exc:
            failure = exc
        except pymongo.errors.PyMongoError as exc:
            raise RunsDBError(f"runs DB: cannot create indexes ({type(exc).__name__}: {exc})") from None
        try:
            self.col.create_indexes([pymongo.IndexModel(key) for key, unique in INDEXES if not unique])
            duplicates = self.duplicate_names()
        except pymongo.errors.PyMongoError as exc:
            raise RunsDBError(f"runs DB: cannot create indexes ({type(exc).__name__}: {exc})") from None
        if not duplicates:
            raise RunsDBError(f"runs DB: cannot create indexes ({failure})")
        return duplicates

    def duplicate_names(self) -> dict[str, list[str]]:
        """{run name: the _ids of its documents} for names more than one document holds.

        Free when the unique index on ``name`` exists (then there are none);
        otherwise one ``$group`` on name over every document (0.5 s with
        100,000 runs on nx-27017) and one query per name found.
        """
        info = self.col.index_information()
        if any(list(v.get("key") or []) == [("name", 1)] and v.get("unique") for v in info.values()):
            return {}
        rows = self.col.aggregate([{"$group": {"_id": "$name", "n": {"$sum": 1}}}, {"$match": {"n": {"$gt": 1}}}])
        names = sorted(str(row["_id"]) for row in rows if row["_id"] is not None)
        return {name: sorted(str(d["_id"]) for d in self.col.find({"name": name}, {"_id": 1})) for name in names}

    def copies(self) -> list[dict]:
        """Every run with where its copies are recorded (for `fulliautomatix audit`; reads every document)."""
        # whole sub-documents: nx-27017 flattens dotted projections
        return list(self.col.find({}, {"name": 1, "raw_status": 1, "transfer": 1, "compressed": 1, "archive": 1}))

    def copy_problems(self) -> list[dict]:
        """Runs whose archived copy failed its last check (``archive.copy_ok`` false; index-backed)."""
        return list(self.col.find({"archive.copy_ok": False}, {"history": 0}).sort("name", 1))

    def unknown_states(self, limit: int = 20, raw_values=None) -> list[dict]:
        """Runs whose raw_status is missing or not a state (never pending, so never in :meth:`pending`).

        One one-field ``$group`` (cheap on nx-27017; `raw_values`, the
        raw_status values :meth:`counts` found, spares it), then one
        equality query per unknown value, at most `limit` runs each.
        """
        docs = []
        for value in (self._group(states.RAW) if raw_values is None else raw_values):
            if value not in states.RAW_STATES:
                query = {states.RAW: None if value == "?" else value}
                docs += self.col.find(query, {"history": 0}).limit(limit)
        return sorted(docs, key=lambda d: str(d.get("name")))

    def close(self) -> None:
        self.client.close()

    # -- reads ----------------------------------------------------------
    def get(self, name: str) -> dict:
        doc = self.col.find_one({"name": name})
        if doc is None:
            raise UnknownRun(f"run {name}: not in the runs DB")
        return doc

    def resolve(self, ref: str) -> dict:
        """A run by name, or by number when ref is all digits."""
        doc = self.col.find_one({"name": ref}, {"history": 0})
        if doc is None and re.fullmatch(r"[0-9]+", ref):
            doc = self.col.find_one({"number": int(ref)}, {"history": 0})
        if doc is None:
            raise UnknownRun(f"run {ref}: not in the runs DB (give a run name or number)")
        return doc

    def last_number(self) -> int:
        """The highest run number in the DB (0 when empty)."""
        last = self.col.find_one({}, {"number": 1}, sort=[("number", -1)])
        return int(last["number"]) if last and isinstance(last.get("number"), int) else 0

    def has_run(self, name: str) -> bool:
        """Whether a run of this name is in the DB (index-backed)."""
        try:
            return self.col.find_one({"name": name}, {"_id": 1}) is not None
        except pymongo.errors.PyMongoError as exc:
            raise RunsDBError(f"runs DB read failed ({type(exc).__name__}: {exc})") from None

    def pending(self, history: bool = False) -> list[dict]:
        """Runs in non-final states (index-backed), without their history unless asked (the STUCK check)."""
        return self.by_status(states.RAW, PENDING_RAW, {"transfer.checksums": 0} if history else None)

    def written_on(self, days: list[int]) -> list[dict]:
        """Runs last written on one of `days` (``updated_day``, YYYYMMDD), with history, in no order.

        One equality query per day on the updated_day index.  Every write
        sets updated_day beside updated_at; a range on updated_at would not
        do on nx-27017, which reads a string that looks like a date (or a
        date) in any query as a date and then reads every document
        (measured: 0.5 s with 100,000 runs even when nothing matches,
        against 1 ms for an equality on an integer).
        """
        docs = []
        try:
            for day in days:
                docs += self.col.find({"updated_day": int(day)}, {"transfer.checksums": 0})
        except pymongo.errors.PyMongoError as exc:
            raise RunsDBError(f"runs DB read failed ({type(exc).__name__}: {exc})") from None
        return docs

    def by_status(self, field: str, values, projection: dict | None = None, history: bool = False) -> list[dict]:
        """Runs whose `field` is one of `values`, by name, without their history.

        One equality query per value, each served by the field's index on
        MongoDB and on nx-27017 alike.  nx-27017 evaluates ``$in`` on any
        field but ``_id`` by reading every document (measured: 300 ms with
        100,000 archived runs, against 0.5 ms per equality query), which
        would make a tick's cost follow the whole history.
        """
        docs = []
        for value in values:
            docs += self.col.find({field: value}, None if history else projection or {"history": 0})
        return sorted(docs, key=lambda d: str(d.get("name")))

    def in_batch(self, batch: str) -> list[dict]:
        """Every run assigned to an archive batch, in any state, without history (index-backed)."""
        return list(self.col.find({"archive.batch": batch}, {"history": 0}).sort("name", 1))

    def daq_copies_due(self, verified_before, limit: int) -> list[dict]:
        """Runs whose DAQ copy is kept and whose transfer verified at or before a time, oldest first.

        One equality query on the transfer.daq_copy index; only runs whose
        DAQ copy is still there carry "kept", so the cost follows them, not
        the history.  The time is compared here: nx-27017 answers a range
        combined with it, or sorted, by reading every document (measured:
        0.47 s against 0.02 s with 20,000 runs).  Dates and ISO strings
        (documents not yet migrated) compare alike.
        """
        cutoff = dates.as_utc(verified_before)
        due = []
        for doc in self.col.find({"transfer.daq_copy": "kept"}, {"history": 0}):
            verified = dates.as_utc((doc.get("transfer") or {}).get("finished"))
            if verified is not None and verified <= cutoff:
                due.append((verified, doc))
        due.sort(key=lambda pair: pair[0])
        return [doc for _, doc in due[:int(limit)]]

    def reprocess_pending(self) -> list[dict]:
        """Runs with a reprocessing request not yet fulfilled, without history (index-backed).

        A request's tag is a non-empty string, so ``$gt: ""`` finds exactly
        the runs that have one, as a range on the index; nx-27017 answers
        ``$exists``, or a range sorted on another field, by reading every
        document, so the few runs found are sorted here.
        """
        docs = self.col.find({"reprocess.tag": {"$gt": ""}}, {"history": 0})
        return sorted(docs, key=lambda d: str(d.get("name")))

    def page_by_id(self, position: int = 0, limit: int = 1000) -> list[dict]:
        """Up to `limit` whole documents in ``_id`` order, from the `position`-th on.

        ``sort`` on ``_id`` with ``skip`` and ``limit``: MongoDB walks its
        ``_id`` index, nx-27017 its ``_id`` key, so a page costs about the
        same wherever it is (nx-27017, 100,000 runs: 0.16 s at position 0,
        0.25 s at 99,000).  A range on an ObjectId ``_id`` would not do on
        nx-27017: it compares ObjectIds in Python after reading every document
        (9.5 s per page).  Runs are never deleted, so positions stay put; a
        run inserted meanwhile sorts after the others (its ObjectId is newer).
        """
        try:
            return list(self.col.find({}).sort("_id", 1).skip(int(position)).limit(int(limit)))
        except pymongo.errors.PyMongoError as exc:
            raise RunsDBError(f"runs DB read failed ({type(exc).__name__}: {exc})") from None

    def by_ids(self, ids: list) -> list[dict]:
        """Whole documents by ``_id`` (one equality query each), those that exist."""
        found = (self.col.find_one({"_id": _id}) for _id in ids)
        return [doc for doc in found if doc is not None]

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

    def counts(self) -> dict[tuple[str, str], int]:
        """Number of runs per (raw_status, processed_status).

        Two one-field ``$group`` aggregations (runs per raw_status, runs per
        processed_status) and the pending runs' own pairs; the final runs'
        pairs are what is left.  nx-27017 runs a one-field ``$group`` in SQL
        but groups on a compound or computed key document by document in
        Python (100,000 runs: 12 ms against 0.9 to 12 s).  When runs in
        unknown raw states make the split ambiguous, or the runs moved
        between the queries, the exact (slow) aggregation answers instead.
        """
        raw = self._group(states.RAW)
        proc = self._group(states.PROCESSED)
        out: Counter = Counter()
        for doc in self.by_status(states.RAW, PENDING_RAW, {"_id": 0, states.RAW: 1, states.PROCESSED: 1}):
            out[(doc[states.RAW], _label(doc.get(states.PROCESSED)))] += 1
        rest = {r: n for r, n in raw.items() if r not in PENDING_RAW}
        left = proc - Counter(p for (_, p) in out.elements())
        pending_total = sum(n for r, n in raw.items() if r in PENDING_RAW)
        if len(rest) <= 1 and pending_total == sum(out.values()) and sum(left.values()) == sum(rest.values()):
            for r in rest:
                out.update({(r, p): n for p, n in left.items() if n > 0})
            return dict(out)
        return self._counts_exact()

    def _group(self, field: str) -> Counter:
        rows = self.col.aggregate([{"$group": {"_id": f"${field}", "n": {"$sum": 1}}}])
        return Counter({_label(row["_id"]): int(row["n"]) for row in rows})

    def _counts_exact(self) -> dict[tuple[str, str], int]:
        """counts() in one aggregation over every document (slow on nx-27017)."""
        pipeline = [
            {"$project": {"k": {"$concat": [
                {"$ifNull": ["$raw_status", "?"]}, "|", {"$ifNull": ["$processed_status", "?"]},
            ]}}},
            {"$group": {"_id": "$k", "n": {"$sum": 1}}},
        ]
        out: dict[tuple[str, str], int] = {}
        for row in self.col.aggregate(pipeline):
            raw, _, proc = str(row["_id"]).partition("|")
            out[(raw, proc)] = out.get((raw, proc), 0) + int(row["n"])
        return out

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
            res = self.col.insert_many([dates.for_db(_with_day({"history": [], "rev": 0, **doc})) for doc in docs],
                                       ordered=True)
        except pymongo.errors.BulkWriteError as exc:
            first = (exc.details.get("writeErrors") or [{}])[0]
            raise RunsDBError(f"bulk insert stopped after {exc.details.get('nInserted', 0)} runs: "
                              f"{first.get('errmsg', exc)}") from None
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
    ) -> dict:
        """Move run `name`'s `field` to `to`, setting `fields` with it.

        `expect` limits the states the change may start from (beyond what
        the state machine allows).  `doc` is a snapshot the caller already
        holds (saves a round trip); on a conflict the run is re-read once.
        Returns the updated snapshot.  Raises TransitionRefused or Conflict.
        """
        for attempt in range(3):
            if doc is None or attempt or "history" not in doc:
                doc = self.get(name)  # a snapshot without history cannot be appended to
            current = doc.get(field)
            if expect is not None and current not in expect:
                raise states.TransitionRefused(
                    f"run {name}: {field} is {current!r}, expected one of {', '.join(expect)}"
                )
            entry = states.history_entry(states.check(field, current, to), note)
            if self._write(doc, {field: to, **(fields or {})}, entry):
                return doc
        raise Conflict(f"run {name}: changed by another writer while moving {field} to {to}")

    def update(self, name: str, fields: dict, *, doc: dict | None = None) -> dict:
        """Set non-state fields (measurements, errors) of a run.

        Keys may be dotted ("transfer.error") to set part of a sub-document.
        """
        for attempt in range(3):
            if doc is None or attempt:
                doc = self.get(name)
            if self._write(doc, dict(fields), None):
                return doc
        raise Conflict(f"run {name}: changed by another writer while updating it")

    def _write(self, doc: dict, sets: dict, entry: dict | None) -> bool:
        rev = doc.get("rev")
        filt = {"_id": doc["_id"], "rev": rev} if rev is not None else {"_id": doc["_id"], "rev": {"$exists": False}}
        new_sets = dict(sets)
        new_sets["rev"] = (rev or 0) + 1
        new_sets["updated_day"] = dates.day_number(dates.now())  # beside updated_at: what report.py queries
        if entry is not None:
            # Whole-array $set: nx-27017 stores $push-ed documents as strings.
            new_sets["history"] = list(doc.get("history") or []) + [entry]
        # Times as dates, whatever strings a replayed marker or an older document brings.
        stored = dates.for_db(_dates_in_documents(doc, dates.for_db(new_sets)))
        try:
            res = self.col.update_one(filt, {"$set": stored, "$currentDate": {"updated_at": True}})
        except pymongo.errors.PyMongoError as exc:
            raise RunsDBError(f"run {doc.get('name')}: runs DB write failed ({exc})") from None
        if res.matched_count != 1:
            return False
        for k, v in stored.items():
            _nested_set(doc, k, v)
        doc["updated_at"] = dates.now()  # the DB's clock set the stored one
        return True


def _with_day(doc: dict) -> dict:
    """A document to insert with its ``updated_day``: the day of its ``updated_at``, else today's (the insert)."""
    if doc.get("updated_day") is None:
        doc["updated_day"] = dates.day_number(doc.get("updated_at")) or dates.day_number(dates.now())
    return doc


def _label(value) -> str:
    """A state as counts() shows it: "?" when missing."""
    return "?" if value is None else str(value)


# "scheme:" then anything up to the word's last "@": the credentials of a URI, even a malformed one
# ("mongodb://fa:p/w@host", "mongodb:/fa:pw@host"); over-masking a path with an "@" is harmless.
_CREDENTIALS = re.compile(r"\b([A-Za-z][A-Za-z0-9+.-]*:/*)[^\s'\"]*@")


def redact(text: str) -> str:
    """text with every URI's credentials masked: mongodb://***@host/..."""
    return _CREDENTIALS.sub(r"\1***@", str(text))


_redact = redact


@contextmanager
def connect(config: dict, *, start_embedded: bool = True):
    """Yield a RunsDB for a finalized config; start the embedded server if needed.

    An embedded server started here is stopped on exit; one that was already
    running (another tick's, or ``fulliautomatix db serve``) is left alone.
    """
    rdb_cfg = config["runs_db"]
    uri = rdb_cfg["uri"]
    proc = users = None
    state = fa_config.state_dir(config)
    try:
        if uri == "embedded":
            users = embedded.using(state)  # the server's watcher waits for this process to be done
            uri, proc = _embedded_uri(state, start_embedded)
        with _opened(uri, rdb_cfg) as db:
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
def _opened(uri: str, rdb_cfg: dict):
    db = RunsDB(uri, rdb_cfg["database"], rdb_cfg["collection"], rdb_cfg["timeout_seconds"])
    try:
        db.ping()
        yield db
    finally:
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
            raise RunsDBError(f"no runs DB yet in {fa_config.state_dir(config)} (the DAQ, or simulate-daq, "
                              "inserts the runs)")
        with _opened(read_uri, rdb_cfg) as db:
            yield db

