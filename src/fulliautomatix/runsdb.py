"""The runs DB: the only module that reads or writes it.

Every state change goes through :meth:`RunsDB.transition`, which asks
:mod:`fulliautomatix.states` whether it is allowed and appends a history entry
``{at, field, from, to, host}``.  Writes use optimistic concurrency on a
``rev`` counter, so two writers never both apply a change to the same state.

Queries are kept simple and index-backed because they must be fast both on a
real MongoDB and on the embedded nx-27017 server (which, measured here, stores
``$push``-ed documents as strings, mis-groups compound ``$group`` keys and
flattens dotted projections; none of those are used).
"""

from __future__ import annotations

import logging
import re
from contextlib import contextmanager
from pathlib import Path

import pymongo
import pymongo.errors

from . import config as fa_config
from . import embedded, states

log = logging.getLogger(__name__)

# Fields the DAQ writes; a document without them is malformed.
REQUIRED_FIELDS = ("name", "number", "events", "source", "raw_status", "raw_location", "processed_status")


class RunsDBError(Exception):
    """The runs DB cannot be reached or refused an operation."""


class UnknownRun(RunsDBError):
    pass


class Conflict(RunsDBError):
    """Another writer changed the run first."""


def _nested_set(doc: dict, dotted: str, value) -> None:
    parts = dotted.split(".")
    for part in parts[:-1]:
        doc = doc.setdefault(part, {})
    doc[parts[-1]] = value


class RunsDB:
    """A connection to the runs collection."""

    def __init__(self, uri: str, database: str, collection: str, timeout: float = 10.0):
        self.uri = uri
        try:
            self.client = pymongo.MongoClient(
                uri, serverSelectionTimeoutMS=int(timeout * 1000), connectTimeoutMS=int(timeout * 1000)
            )
            self.col = self.client[database][collection]
        except pymongo.errors.ConfigurationError as exc:
            raise RunsDBError(f"runs DB URI {uri!r} is not usable: {exc}") from None

    # -- connection -----------------------------------------------------
    def ping(self) -> None:
        try:
            self.client.admin.command("ping")
        except pymongo.errors.PyMongoError as exc:
            raise RunsDBError(
                f"runs DB at {_redact(self.uri)} is unreachable ({type(exc).__name__}); "
                "check runs_db.uri or FULLIAUTOMATIX_RUNS_DB"
            ) from None

    def ensure_indexes(self) -> None:
        self.col.create_index("name", unique=True)
        self.col.create_index("number")
        self.col.create_index(states.RAW)
        self.col.create_index(states.PROCESSED)
        self.col.create_index("archive.batch")
        self.col.create_index("reprocess.tag")
        self.col.create_index("transfer.daq_copy")

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

    def pending(self) -> list[dict]:
        """Runs in non-final states, without their history (index-backed)."""
        return list(self.col.find(states.PENDING_QUERY, {"history": 0}).sort("name", 1))

    def by_status(self, field: str, values: list[str]) -> list[dict]:
        return list(self.col.find({field: {"$in": list(values)}}, {"history": 0}).sort("name", 1))

    def in_batch(self, batch: str) -> list[dict]:
        """Every run assigned to an archive batch, in any state, without history (index-backed)."""
        return list(self.col.find({"archive.batch": batch}, {"history": 0}).sort("name", 1))

    def daq_copies_due(self, verified_before: str, limit: int) -> list[dict]:
        """Runs whose DAQ copy is kept and whose transfer verified at or before a time.

        Index-backed on transfer.daq_copy, which only runs not yet purged
        carry as "kept", so the cost follows the DAQ copies still there.
        """
        query = {"transfer.daq_copy": "kept", "transfer.finished": {"$lte": verified_before}}
        return list(self.col.find(query, {"history": 0}).sort("transfer.finished", 1).limit(int(limit)))

    def reprocess_pending(self) -> list[dict]:
        """Runs with a reprocessing request not yet fulfilled, without history (index-backed)."""
        return list(self.col.find({"reprocess.tag": {"$exists": True}}, {"history": 0}).sort("name", 1))

    def counts(self) -> dict[tuple[str, str], int]:
        """Number of runs per (raw_status, processed_status): one aggregation."""
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
            self.col.insert_one({**doc, "history": [], "rev": 0})
        except pymongo.errors.DuplicateKeyError:
            raise RunsDBError(f"run {doc['name']}: already in the runs DB") from None

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
            res = self.col.insert_many([{"history": [], "rev": 0, **doc} for doc in docs], ordered=True)
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
        new_sets["updated_at"] = states.now()
        if entry is not None:
            # Whole-array $set: nx-27017 stores $push-ed documents as strings.
            new_sets["history"] = list(doc.get("history") or []) + [entry]
        try:
            res = self.col.update_one(filt, {"$set": new_sets})
        except pymongo.errors.PyMongoError as exc:
            raise RunsDBError(f"run {doc.get('name')}: runs DB write failed ({exc})") from None
        if res.matched_count != 1:
            return False
        for k, v in new_sets.items():
            _nested_set(doc, k, v)
        return True


def _redact(uri: str) -> str:
    return re.sub(r"//[^@/]*@", "//***@", uri)


@contextmanager
def connect(config: dict, *, start_embedded: bool = True):
    """Yield a RunsDB for a finalized config; start the embedded server if needed.

    An embedded server started here is stopped on exit; one that was already
    running (another tick's, or ``fulliautomatix db serve``) is left alone.
    """
    rdb_cfg = config["runs_db"]
    uri = rdb_cfg["uri"]
    proc = None
    state = fa_config.state_dir(config)
    if uri == "embedded":
        if not start_embedded:
            uri = embedded.running_uri(state)
            if uri is None:
                raise RunsDBError("the embedded runs DB is not running")
        else:
            try:
                uri, proc = embedded.ensure(state)
            except embedded.EmbeddedError as exc:
                raise RunsDBError(str(exc)) from None
    db = RunsDB(uri, rdb_cfg["database"], rdb_cfg["collection"], rdb_cfg["timeout_seconds"])
    try:
        db.ping()
        yield db
    finally:
        db.close()
        embedded.stop(state, proc)

