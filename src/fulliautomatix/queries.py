"""The runs DB's queries for reports, status, audits and migrations (reads only), its indexes and errors.

:class:`RunsQueries` is a part of :class:`fulliautomatix.runsdb.RunsDB`
(its base class), kept apart so the module that writes the runs DB stays
small; every write is still in :mod:`fulliautomatix.runsdb`.  The queries
are simple and index-backed because they must be fast both on a real MongoDB
and on the embedded nx-27017 server (see :mod:`fulliautomatix.runsdb`).
"""

from __future__ import annotations

import re
from collections import Counter

import pymongo
import pymongo.errors

from . import dates, states

PENDING_RAW = tuple(states.PENDING_QUERY[states.RAW]["$in"])


# The fields queries select on; ensure_indexes creates one index on each.
INDEXES = (
    ("name", True),
    ("number", False),
    (states.RAW, False),
    (states.PROCESSED, False),
    ("archive.batch", False),
    ("reprocess.tag", False),
    ("transfer.daq_copy", False),
    ("archive.copy_ok", False),
    ("updated_day", False),
)


class RunsDBError(Exception):
    """The runs DB cannot be reached or refused an operation."""


class UnknownRun(RunsDBError):
    """A name or number that names no run, or several (:class:`AmbiguousRun`)."""


class AmbiguousRun(UnknownRun):
    """A run number that several documents hold: only the name says which run is meant."""


# BSON integers are 8 bytes: a larger number cannot be sent in a query (pymongo raises OverflowError).
LARGEST_NUMBER = 2**63 - 1
NAMES_LISTED = 10  # the names an ambiguous run number lists at most


class Conflict(RunsDBError):
    """Another writer changed the run first."""


# "scheme:" then anything up to the word's last "@": the credentials of a URI, even a malformed one
# ("mongodb://fa:p/w@host", "mongodb:/fa:pw@host"); over-masking a path with an "@" is harmless.
_CREDENTIALS = re.compile(r"\b([A-Za-z][A-Za-z0-9+.-]*:/*)[^\s'\"]*@")


def redact(text: str) -> str:
    """text with every URI's credentials masked: mongodb://***@host/..."""
    return _CREDENTIALS.sub(r"\1***@", str(text))


class RunsQueries:
    """Reads of the runs collection ``self.col`` (of ``self.client``, at ``self.uri``)."""

    col = client = uri = None

    # -- connection -----------------------------------------------------
    def ping(self) -> None:
        try:
            self.client.admin.command("ping")
        except pymongo.errors.PyMongoError as exc:
            raise self.unreachable(exc) from None

    def unreachable(self, exc: Exception) -> RunsDBError:
        """The one line for a runs DB that cannot be reached, naming it."""
        return RunsDBError(
            f"runs DB at {redact(self.uri)} is unreachable ({type(exc).__name__}); "
            "check runs_db.uri or FULLIAUTOMATIX_RUNS_DB"
        )

    def read_failed(self, exc: Exception) -> RunsDBError:
        """The one line for a failed read: the DB named when it cannot be reached (jobs do not ping first)."""
        if isinstance(exc, pymongo.errors.ConnectionFailure):
            return self.unreachable(exc)
        return RunsDBError(f"runs DB read failed ({type(exc).__name__}: {exc})")

    # -- runs by name, and the pending ones ------------------------------
    def get(self, name: str) -> dict:
        try:
            doc = self.col.find_one({"name": name})
        except pymongo.errors.PyMongoError as exc:
            raise self.read_failed(exc) from None
        if doc is None:
            raise UnknownRun(f"run {name}: not in the runs DB")
        return doc

    def resolve(self, ref: str) -> dict:
        """A run by name, or by number when ref is all digits (and no run has it as its name).

        Equality queries on the name and number indexes.  Run numbers
        restart (each DAQ day, or a new DAQ), so several runs may hold a
        number: then none is chosen, the names are listed.
        """
        try:
            doc = self.col.find_one({"name": ref}, {"history": 0})
            if doc is not None or not re.fullmatch(r"[0-9]+", ref):
                return self._found(ref, doc)
            if int(ref) > LARGEST_NUMBER:
                raise UnknownRun(
                    f"run {ref}: not a run name, and too large for a run number (at most {LARGEST_NUMBER}); "
                    "give a run name or number (`fulliautomatix status` lists them)"
                )
            docs = list(self.col.find({"number": int(ref)}, {"history": 0}).limit(NAMES_LISTED + 1))
        except pymongo.errors.PyMongoError as exc:
            raise self.read_failed(exc) from None
        if len(docs) > 1:
            names = ", ".join(sorted(str(d.get("name")) for d in docs)[:NAMES_LISTED])
            names += ", ..." if len(docs) > NAMES_LISTED else ""
            raise AmbiguousRun(f"run number {int(ref)} matches {names}: give the name")
        return self._found(ref, docs[0] if docs else None)

    @staticmethod
    def _found(ref: str, doc: dict | None) -> dict:
        if doc is None:
            raise UnknownRun(f"run {ref}: not in the runs DB (give a run name or number)")
        return doc

    def pending(self, history: bool = False, whole: bool = False) -> list[dict]:
        """Runs in non-final states (index-backed), without their history unless asked (the STUCK check);
        `whole`: every field (the snapshots a tick hands its jobs, :mod:`fulliautomatix.stage`)."""
        if whole:
            return self.by_status(states.RAW, PENDING_RAW, history=True)
        return self.by_status(states.RAW, PENDING_RAW, {"transfer.checksums": 0} if history else None)

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
        for value in self._group(states.RAW) if raw_values is None else raw_values:
            if value not in states.RAW_STATES:
                query = {states.RAW: None if value == "?" else value}
                docs += self.col.find(query, {"history": 0}).limit(limit)
        return sorted(docs, key=lambda d: str(d.get("name")))

    def last_number(self) -> int:
        """The highest run number in the DB (0 when empty)."""
        last = self.col.find_one({}, {"number": 1}, sort=[("number", -1)])
        return int(last["number"]) if last and isinstance(last.get("number"), int) else 0

    def after_number(self, number: int, limit: int, projection: dict | None = None) -> list[dict]:
        """Up to `limit` runs numbered above `number`, in number order (by default without their history).

        A bounded range: ``$gt`` on ``number`` sorted on ``number`` and
        limited, which MongoDB and nx-27017 both serve from the number
        index, so a page costs the same with any number of finished runs
        (1 ms on nx-27017 at 30,000 runs; the audit's round-robin walks the
        runs this way instead of an equality on ``raw_status: archived``,
        which reads every archived run: 1.8 s).
        """
        try:
            docs = self.col.find({"number": {"$gt": number}}, projection or {"history": 0})
            return list(docs.sort("number", 1).limit(int(limit)))
        except pymongo.errors.PyMongoError as exc:
            raise self.read_failed(exc) from None

    def has_run(self, name: str) -> bool:
        """Whether a run of this name is in the DB (index-backed)."""
        try:
            return self.col.find_one({"name": name}, {"_id": 1}) is not None
        except pymongo.errors.PyMongoError as exc:
            raise self.read_failed(exc) from None

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
            raise self.read_failed(exc) from None
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
        return [doc for _, doc in due[: int(limit)]]

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
            raise self.read_failed(exc) from None

    def by_ids(self, ids: list) -> list[dict]:
        """Whole documents by ``_id`` (one equality query each), those that exist."""
        found = (self.col.find_one({"_id": _id}) for _id in ids)
        return [doc for doc in found if doc is not None]

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
            {
                "$project": {
                    "k": {"$concat": [{"$ifNull": ["$raw_status", "?"]}, "|", {"$ifNull": ["$processed_status", "?"]}]}
                }
            },
            {"$group": {"_id": "$k", "n": {"$sum": 1}}},
        ]
        out: dict[tuple[str, str], int] = {}
        for row in self.col.aggregate(pipeline):
            raw, _, proc = str(row["_id"]).partition("|")
            out[(raw, proc)] = out.get((raw, proc), 0) + int(row["n"])
        return out


def _label(value) -> str:
    """A state as counts() shows it: "?" when missing."""
    return "?" if value is None else str(value)
