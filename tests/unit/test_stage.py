"""The stage skeleton (fulliautomatix.stage) and the tick's snapshots, on the session's real nx-27017 server.

No Snakemake: each test calls the skeleton in-process with a stage whose
work is a plain function, and counts the runs-DB commands it sends.
"""

import datetime as dt
import io

import pytest
from bson import ObjectId
from pymongo import monitoring

from fulliautomatix import markers, runsdb, snapshots, stage, states

RUN = "170101_0001"


class Commands(monitoring.CommandListener):
    """The names of the runs-DB commands sent while it is active."""

    active: list | None = None

    def started(self, event):
        if Commands.active is not None and event.command_name not in ("hello", "isMaster", "ismaster"):
            Commands.active.append(event.command_name)

    def succeeded(self, event):
        pass

    def failed(self, event):
        pass


monitoring.register(Commands())


@pytest.fixture
def sent():
    Commands.active = []
    yield Commands.active
    Commands.active = None


@pytest.fixture
def tick_config(config):
    config["tick"]["id"] = "t1"
    return config


def new_run(db, **extra):
    db.insert_run(
        {
            "name": RUN,
            "number": 1,
            "events": 10,
            "source": "physics",
            "raw_status": "acquired",
            "raw_location": "daq",
            "processed_status": "none",
            **extra,
        }
    )
    return db.get(RUN)


def test_a_snapshot_comes_back_as_it_was_written(tmp_path):
    when = dt.datetime(2026, 5, 1, 12, 0, 0, 123000, tzinfo=dt.timezone.utc)
    doc = {
        "_id": ObjectId(),
        "name": RUN,
        "rev": 3,
        "events": 10,
        "seconds": 1.5,
        "history": [{"at": when}],
        "transfer": {"started": when, "checksums": [{"path": "a", "size": 1}]},
        "compressed": {"at": "2026-05-01T12:00:00+00:00"},
    }
    snapshots.save_snapshot(tmp_path / "s.json", doc)
    back = snapshots.load_snapshot(tmp_path / "s.json")
    assert back["_id"] == doc["_id"] and back["rev"] == 3 and back["seconds"] == 1.5
    assert back["transfer"]["started"] == when and back["transfer"]["started"].tzinfo is not None
    assert back["history"][0]["at"] == when
    # a time the document held as a string comes back a date, as the runs DB layer stores it
    assert back["compressed"]["at"] == dt.datetime(2026, 5, 1, 12, tzinfo=dt.timezone.utc)
    assert snapshots.load_snapshot(tmp_path / "none.json") is None
    (tmp_path / "torn.json").write_text('{"name": ')
    assert snapshots.load_snapshot(tmp_path / "torn.json") is None


def test_take_reads_the_snapshot_not_the_db(db, tick_config, sent):
    doc = new_run(db)
    stage.keep(tick_config, {**doc, "events": 99})
    sent.clear()
    assert stage.take(db, tick_config, RUN)["events"] == 99 and sent == []
    tick_config["tick"]["id"] = ""  # outside a tick: the runs DB
    assert stage.take(db, tick_config, RUN)["events"] == 10 and sent == ["find"]


def test_local_processing_starts_in_one_write_with_both_history_entries(db, tick_config, sent):
    doc = new_run(db)
    sent.clear()
    doc = stage.claim(
        db, tick_config, doc, states.PROCESSED, "processing", via=("queued",), fields={"processing": {"attempts": 1}}
    )
    assert sent == ["update"]
    stored = db.get(RUN)
    assert stored["processed_status"] == "processing" and stored["processing"]["attempts"] == 1
    assert [(h["from"], h["to"]) for h in stored["history"]] == [("none", "queued"), ("queued", "processing")]
    assert stage.take(db, tick_config, RUN)["rev"] == stored["rev"] == doc["rev"]


def transfer_like(work, failed=None):
    return stage.Stage(
        "transfer",
        "transferring",
        ("acquired", "transferring"),
        note="transfer verified",
        work=work,
        failed=failed or (lambda doc, attempt, exc: exc),
        again=lambda doc: markers.run_marker("transfer", doc["name"], {}, {"again": True}),
        failures=(ValueError,),
        claim_fields=lambda doc, attempt: {"transfer.attempts": attempt},
    )


def test_a_stage_claims_works_and_records_in_two_writes(db, tick_config, tmp_path, sent):
    new_run(db)
    stage.keep(tick_config, db.get(RUN))
    sent.clear()

    def work(doc, attempt):
        assert doc["raw_status"] == "transferring" and attempt == 1
        return markers.run_marker("transfer", RUN, {"transfer.bytes": 5}, {"bytes": 5})

    marker = stage.run_stage(
        db, tick_config, RUN, transfer_like(work), tmp_path / "m.json", io.StringIO(), attempts_in="transfer"
    )
    assert sent == ["update", "update"]
    assert markers.read(tmp_path / "m.json") == marker
    stored = db.get(RUN)
    assert stored["raw_status"] == "ondeck" and stored["transfer"] == {"attempts": 1, "bytes": 5}
    assert stage.take(db, tick_config, RUN)["rev"] == stored["rev"]  # the next stage starts from it
    # done already, its marker lost: written again, nothing sent
    sent.clear()
    log = io.StringIO()
    again = stage.run_stage(
        db, tick_config, RUN, transfer_like(work), tmp_path / "m2.json", log, attempts_in="transfer"
    )
    assert again["measured"] == {"again": True} and sent == [] and "marker was lost" in log.getvalue()


def test_a_failed_attempt_goes_back_with_its_hint(db, tick_config, tmp_path):
    new_run(db)

    def work(doc, attempt):
        raise ValueError("disk on fire")

    def failed(doc, attempt, exc):
        stage.give_back(db, tick_config, doc, states.RAW, "acquired", {"transfer.error": str(exc)}, "failed")
        return RuntimeError(f"run {RUN}: {exc}; {stage.retry_hint(RUN, 3 - attempt)}")

    with pytest.raises(RuntimeError, match=r"disk on fire; the next tick retries \(2 attempts left\)"):
        stage.run_stage(
            db,
            tick_config,
            RUN,
            transfer_like(work, failed),
            tmp_path / "m.json",
            io.StringIO(),
            attempts_in="transfer",
        )
    stored = db.get(RUN)
    assert stored["raw_status"] == "acquired" and stored["transfer"]["error"] == "disk on fire"
    assert not (tmp_path / "m.json").exists()
    assert stage.retry_hint(RUN, 0, fix=f"see {tmp_path}") == (
        f"no attempts left: see {tmp_path}, then `fulliautomatix retry {RUN}`"
    )


def test_replaying_a_marker_the_snapshot_shows_sends_nothing(db, tick_config, tmp_path, sent):
    doc = new_run(db)
    marker = markers.run_marker("transfer", RUN, {"transfer.bytes": 5}, {})
    markers.write(tmp_path / "ondeck.json", marker)
    sent.clear()
    doc = stage.replay(db, tick_config, tmp_path / "ondeck.json", doc)  # behind: two steps, two writes
    assert doc["raw_status"] == "ondeck" and sent == ["update", "update"]
    sent.clear()
    assert stage.replay(db, tick_config, tmp_path / "ondeck.json", doc)["rev"] == doc["rev"] and sent == []


def test_a_lost_record_leaves_the_marker_and_one_line(db, tick_config, tmp_path, capfd):
    doc = new_run(db)
    log = io.StringIO()
    broken = runsdb.RunsDB("mongodb://127.0.0.1:9/", "x", "x", timeout=0.2)
    marker = markers.run_marker("transfer", RUN, {}, {})
    assert stage.record(broken, tick_config, marker, tmp_path / "m.json", doc, "verified", log) is None
    assert (tmp_path / "m.json").exists()
    assert "the next tick repairs the runs DB from it" in log.getvalue()
    assert "runs DB did not record it as ondeck" in capfd.readouterr().err


def test_a_batch_is_claimed_and_recorded_in_one_bulk_write_each(db, tick_config, sent):
    names = ["170101_0001", "170101_0002"]
    for i, name in enumerate(names):
        db.insert_run(
            {
                "name": name,
                "number": i + 1,
                "events": 1,
                "source": "physics",
                "raw_status": "compressed",
                "raw_location": "x",
                "processed_status": "processed",
            }
        )
    docs = {name: db.get(name) for name in names}
    db.update(names[1], {"note": "changed meanwhile"})  # its snapshot is stale now: re-read, written alone
    sent.clear()
    docs = db.transition_many(
        docs, states.RAW, "archiving", {n: {"archive.batch": "b"} for n in names}, expect=("compressed", "archiving")
    )
    assert sent[0] == "update" and sent.count("update") == 2  # the bulk write, then the stale one alone
    assert all(db.get(n)["raw_status"] == "archiving" and db.get(n)["archive"]["batch"] == "b" for n in names)
    sent.clear()
    marker = {"batch": "b", "runs": {n: {"archive": {"batch": "b", "member": f"{n}.tar.zst"}} for n in names}}
    newest = stage.record(db, tick_config, marker, tick_config["work_dir"] + "/b.json", docs, "archived", io.StringIO())
    assert sent == ["update"] and {d["raw_status"] for d in newest.values()} == {"archived"}
    assert all(len(db.get(n)["history"]) == 2 for n in names)


def test_an_unreachable_db_is_one_line_naming_it():
    broken = runsdb.RunsDB("mongodb://fa:secret@127.0.0.1:9/", "x", "x", timeout=0.2)
    with pytest.raises(runsdb.RunsDBError) as err:
        broken.get(RUN)
    assert "runs DB at mongodb://***@127.0.0.1:9/ is unreachable" in str(err.value)
    assert "secret" not in str(err.value)
