"""The runs DB module against a real nx-27017 server, through pymongo."""

import socket
import threading

import pytest

from fulliautomatix import runsdb, sync
from fulliautomatix.states import PROCESSED, RAW, TransitionRefused


def new_run(name="170101_0001", number=1, **extra):
    return {
        "name": name,
        "number": number,
        "events": 200,
        "source": "physics",
        "raw_status": "acquired",
        "raw_location": "zinc",
        "processed_status": "none",
        **extra,
    }


def handle(config):
    r = config["runs_db"]
    return runsdb.RunsDB(r["uri"], r["database"], r["collection"], r["timeout_seconds"])


def test_insert_and_read_back(db):
    db.insert_run(new_run())
    doc = db.get("170101_0001")
    assert doc["raw_status"] == "acquired" and doc["history"] == [] and doc["rev"] == 0
    assert doc["events"] == 200 and doc["source"] == "physics"


def test_a_duplicate_name_is_refused_and_the_first_kept(db):
    db.insert_run(new_run(events=200))
    with pytest.raises(runsdb.RunsDBError, match="170101_0001: already in the runs DB"):
        db.insert_run(new_run(events=999, number=2))
    assert db.get("170101_0001")["events"] == 200
    assert db.col.count_documents({}) == 1


def test_a_document_missing_fields_is_refused(db):
    doc = new_run()
    del doc["source"], doc["events"]
    with pytest.raises(runsdb.RunsDBError, match="missing fields events, source"):
        db.insert_run(doc)
    assert db.col.find_one({}) is None


def test_an_unknown_run(db):
    with pytest.raises(runsdb.UnknownRun, match="170101_0009"):
        db.get("170101_0009")


def test_a_transition_appends_one_history_entry(db):
    db.insert_run(new_run())
    db.transition("170101_0001", RAW, "transferring", fields={"transfer.attempts": 1})
    db.transition("170101_0001", RAW, "ondeck", fields={"transfer.bytes": 42}, note="verified")
    db.transition("170101_0001", PROCESSED, "queued")
    doc = db.get("170101_0001")
    assert (doc["raw_status"], doc["processed_status"]) == ("ondeck", "queued")
    assert doc["transfer"] == {"attempts": 1, "bytes": 42}, "dotted fields set parts of a sub-document"
    assert doc["rev"] == 3
    assert [(h["field"], h["from"], h["to"]) for h in doc["history"]] == [
        (RAW, "acquired", "transferring"),
        (RAW, "transferring", "ondeck"),
        (PROCESSED, "none", "queued"),
    ]
    for h in doc["history"]:
        assert {"at", "field", "from", "to", "host"} <= set(h)
        assert h["host"] == socket.gethostname()
        assert isinstance(h, dict), "stored as documents, not strings"
    assert doc["history"][1]["note"] == "verified"
    assert doc["history"][0]["at"] <= doc["history"][1]["at"] <= doc["history"][2]["at"]


@pytest.mark.parametrize(
    "to, expect",
    [
        ("ondeck", None),  # acquired -> ondeck skips the verified transfer
        ("archived", None),
        ("transferring", ("ondeck",)),  # allowed by the machine, not from where the caller expects
    ],
)
def test_a_transition_from_the_wrong_state_is_refused_and_nothing_written(db, to, expect):
    db.insert_run(new_run())
    before = db.get("170101_0001")
    with pytest.raises(TransitionRefused):
        db.transition("170101_0001", RAW, to, expect=expect, fields={"raw_location": "elsewhere"})
    assert db.get("170101_0001") == before


def test_a_stale_snapshot_is_re_read_not_written_over(db):
    db.insert_run(new_run())
    stale = db.get("170101_0001")
    db.transition("170101_0001", RAW, "transferring")
    db.transition("170101_0001", RAW, "ondeck")
    # From the stale snapshot, acquired -> transferring looked fine; the run has moved on.
    with pytest.raises(TransitionRefused, match="ondeck"):
        db.transition("170101_0001", RAW, "transferring", doc=stale)
    doc = db.get("170101_0001")
    assert doc["raw_status"] == "ondeck" and len(doc["history"]) == 2


@pytest.mark.parametrize("round_", range(5))
def test_two_writers_racing_on_one_run_exactly_one_wins(config, db, round_):
    db.insert_run(new_run())
    a, b = handle(config), handle(config)
    try:
        snaps = [h.get("170101_0001") for h in (a, b)]
        barrier = threading.Barrier(2)
        results = [None, None]

        def move(i, h):
            barrier.wait()
            try:
                h.transition(
                    "170101_0001",
                    RAW,
                    "transferring",
                    expect=("acquired",),
                    fields={"transfer.tick": f"tick-{i}"},
                    doc=snaps[i],
                )
                results[i] = "won"
            except TransitionRefused:
                results[i] = "refused"

        threads = [threading.Thread(target=move, args=(i, h)) for i, h in enumerate((a, b))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        a.close()
        b.close()
    assert sorted(results) == ["refused", "won"]
    doc = db.get("170101_0001")
    winner = results.index("won")
    assert doc["transfer"]["tick"] == f"tick-{winner}"
    assert [(h["from"], h["to"]) for h in doc["history"]] == [("acquired", "transferring")]
    assert doc["rev"] == 1


@pytest.mark.parametrize("writers", [3, 5])
def test_concurrent_updates_are_never_lost_silently(config, db, writers):
    """Each writer's update lands or raises Conflict; with up to 3 writers all land.

    A writer loses a round only to another writer that then is done, so with
    3 attempts any 3 concurrent writers all succeed.
    """
    db.insert_run(new_run())
    handles = [handle(config) for _ in range(writers)]
    outcome = {}
    try:
        snap = handles[0].get("170101_0001")
        barrier = threading.Barrier(len(handles))

        def update(i, h):
            barrier.wait()
            try:
                h.update("170101_0001", {f"measured.k{i}": i}, doc=dict(snap))
                outcome[i] = "landed"
            except runsdb.Conflict:
                outcome[i] = "conflict"

        threads = [threading.Thread(target=update, args=(i, h)) for i, h in enumerate(handles)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        for h in handles:
            h.close()
    landed = sorted(i for i, o in outcome.items() if o == "landed")
    doc = db.get("170101_0001")
    assert len(outcome) == writers
    assert doc["measured"] == {f"k{i}": i for i in landed}
    assert doc["rev"] == len(landed)
    assert len(landed) >= 3


def put(db, name, number, raw, proc):
    db.insert_run(new_run(name, number))
    for step in sync.path_between(RAW, "acquired", raw):
        db.transition(name, RAW, step)
    for step in sync.path_between(PROCESSED, "none", proc):
        db.transition(name, PROCESSED, step)


@pytest.fixture
def mixed(db):
    runs = [
        ("170101_0001", "archived", "processed"),
        ("170101_0002", "archived", "processed"),
        ("170101_0003", "compressed", "processed"),
        ("170101_0004", "ondeck", "failed"),
        ("170101_0005", "acquired", "none"),
        ("170101_0006", "acquired", "none"),
    ]
    for n, (name, raw, proc) in enumerate(runs, 1):
        put(db, name, n, raw, proc)
    return runs


def test_counts_per_state_pair(db, mixed):
    assert db.counts() == {
        ("archived", "processed"): 2,
        ("compressed", "processed"): 1,
        ("ondeck", "failed"): 1,
        ("acquired", "none"): 2,
    }


def test_counts_of_an_empty_collection(db):
    assert db.counts() == {}


def test_pending_excludes_archived_runs_and_their_history(db, mixed):
    pending = db.pending()
    assert [d["name"] for d in pending] == ["170101_0003", "170101_0004", "170101_0005", "170101_0006"]
    assert all("history" not in d for d in pending)


def test_by_status(db, mixed):
    assert [d["name"] for d in db.by_status(PROCESSED, ["failed", "none"])] == [
        "170101_0004",
        "170101_0005",
        "170101_0006",
    ]


def test_resolve_by_name_or_number(db, mixed):
    assert db.resolve("170101_0004")["name"] == "170101_0004"
    assert db.resolve("4")["name"] == "170101_0004"
    assert db.resolve("0004")["name"] == "170101_0004"
    assert "history" not in db.resolve("4")
    assert db.last_number() == 6
    for ref in ("99", "170101_0099", "170101_0001; rm -rf ~", ""):
        with pytest.raises(runsdb.UnknownRun, match="not in the runs DB"):
            db.resolve(ref)


def test_after_number_pages_in_number_order_without_history(db, mixed):
    """The audit's round-robin page (fulliautomatix.audit.due_for_audit): a limited range on number."""
    assert [d["number"] for d in db.after_number(2, 3)] == [3, 4, 5]
    assert [d["number"] for d in db.after_number(4, 50)] == [5, 6]
    assert db.after_number(6, 50) == []
    assert all("history" not in d for d in db.after_number(0, 50))
    assert set(db.after_number(0, 1, {"_id": 0, "name": 1})[0]) == {"name"}


def test_indexes_on_name_and_state_fields(db):
    keys = {
        tuple(k for k, _ in ix["key"]) if isinstance(ix["key"], list) else tuple(ix["key"])
        for ix in db.col.list_indexes()
    }
    assert {("name",), ("raw_status",), ("processed_status",)} <= keys
    db.ensure_indexes()  # idempotent


def test_an_unreachable_db_is_one_clear_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    db = runsdb.RunsDB(f"mongodb://user:secret@127.0.0.1:{port}/", "asterix", "runs", timeout=0.3)
    with pytest.raises(runsdb.RunsDBError) as err:
        db.ping()
    db.close()
    msg = str(err.value)
    assert "unreachable" in msg and "FULLIAUTOMATIX_RUNS_DB" in msg
    assert "secret" not in msg, "credentials are not printed"
    assert "\n" not in msg


def test_a_malformed_uri_is_a_runs_db_error():
    with pytest.raises(runsdb.RunsDBError, match="not usable"):
        runsdb.RunsDB("mongodb://", "asterix", "runs", timeout=0.3)
