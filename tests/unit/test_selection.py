"""Run selection: which runs a tick works on, which it refuses, how batches close."""

import datetime as dt
import itertools

import pytest

from fulliautomatix import selection, states

PATTERN = "^[0-9]{6}_[0-9]{4}$"
LIMITS = {"transfer_attempts": 3, "process_attempts": 3}
ALL_STAGES = ["transfer", "process", "compress", "archive"]
NOW = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.timezone.utc)


def doc(name="170101_0001", raw="acquired", proc="none", **extra):
    d = {
        "name": name,
        "number": int(name[-4:]) if name[-4:].isdigit() else 0,
        "events": 200,
        "source": "physics",
        "raw_status": raw,
        "raw_location": "zinc",
        "processed_status": proc,
    }
    d.update(extra)
    return d


# -- check_doc ---------------------------------------------------------------------


def test_a_well_formed_document_passes():
    assert selection.check_doc(doc(), PATTERN) is None


@pytest.mark.parametrize(
    "name",
    ["170101_0001; rm -rf ~", "170101_0001\n", "$(reboot)", "../170101_0001", "170101_001", "", None, 1701010001],
)
def test_names_that_do_not_match_the_pattern_are_refused(name):
    d = doc()
    d["name"] = name
    problem = selection.check_doc(d, PATTERN)
    assert problem is not None
    assert repr(name) in problem and "pattern" in problem


@pytest.mark.parametrize("missing", ["events", "source", "raw_status", "raw_location", "processed_status"])
def test_missing_fields_are_named(missing):
    d = doc()
    del d[missing]
    problem = selection.check_doc(d, PATTERN)
    assert problem is not None
    assert "170101_0001" in problem and missing in problem


@pytest.mark.parametrize(
    "field, value",
    [
        ("events", -1),
        ("events", "200"),
        ("events", 2.5),
        ("events", True),
        ("events", None),
        ("source", ""),
        ("source", 3),
        ("source", None),
        ("raw_status", "lost"),
        ("processed_status", "done"),
    ],
)
def test_bad_values_are_refused_with_the_run_named(field, value):
    problem = selection.check_doc(doc(**{field: value}), PATTERN)
    assert problem is not None and "170101_0001" in problem and field.split("_")[0] in problem


def test_the_pattern_is_configurable():
    assert selection.check_doc(doc(name="run-7"), "^run-[0-9]+$") is None
    assert selection.check_doc(doc(name="170101_0001"), "^run-[0-9]+$") is not None


# -- plan_targets ------------------------------------------------------------------


def first_stage(raw, proc):
    """The spec: where a run's chain starts, by its states (no failures)."""
    if raw in ("acquired", "transferring"):
        return "transfer"
    if raw == "ondeck":
        return "compress" if proc == "processed" else "process"
    if raw == "compressing":
        return "compress"
    return None  # compressed, archiving, archived: only batches (archive) are left


def expected_target(raw, proc, stages, markers_exist):
    """(target stage or None, held?) for one run, from the spec in the issue."""
    first = first_stage(raw, proc)
    if first is None or first not in stages:
        return None, False
    chain = selection.CHAIN
    i = chain.index(first)
    if not markers_exist and any(s not in stages for s in chain[:i]):
        return None, True
    last = i
    while last + 1 < len(chain) and chain[last + 1] in stages:
        last += 1
    return chain[last], False


STAGE_SETS = [list(c) for n in range(1, 5) for c in itertools.combinations(ALL_STAGES, n)]


@pytest.mark.parametrize("stages", STAGE_SETS, ids=["+".join(s) for s in STAGE_SETS])
@pytest.mark.parametrize("markers_exist", [True, False], ids=["markers", "no-markers"])
def test_plan_targets_for_every_state_and_stage_combination(stages, markers_exist):
    docs, want, want_held = [], [], set()
    for n, (raw, proc) in enumerate(itertools.product(states.RAW_STATES, states.PROCESSED_STATES)):
        d = doc(name=f"170101_{n:04d}", raw=raw, proc=proc)
        docs.append(d)
        target, held = expected_target(raw, proc, stages, markers_exist)
        if target:
            want.append((target, d["name"]))
        if held:
            want_held.add(d["name"])
    plan = selection.plan_targets(docs, stages, PATTERN, LIMITS, lambda stage, run: markers_exist)
    assert plan.targets == want
    assert {h.split()[1].rstrip(":") for h in plan.held} == want_held
    assert plan.bad == []


@pytest.mark.parametrize(
    "stages, raw, proc, target",
    [
        (ALL_STAGES, "acquired", "none", "compress"),  # the whole chain in one tick
        (["transfer"], "acquired", "none", "transfer"),  # --transfer stops at ondeck
        (["transfer", "compress"], "acquired", "none", "transfer"),  # a disabled stage ends the chain
        (["process"], "ondeck", "none", "process"),
        (["process"], "ondeck", "failed", "process"),  # failed, attempts left: retried
        (["process", "compress"], "ondeck", "processing", "compress"),  # a killed tick's run resumes
        (["compress"], "ondeck", "none", None),  # not processed yet
        (["compress"], "ondeck", "processed", "compress"),
        (["compress"], "compressing", "processed", "compress"),
        (["archive"], "acquired", "none", None),  # archive works on batches only
        (ALL_STAGES, "compressed", "processed", None),
        (ALL_STAGES, "archived", "processed", None),
    ],
)
def test_plan_targets_examples(stages, raw, proc, target):
    plan = selection.plan_targets([doc(raw=raw, proc=proc)], stages, PATTERN, LIMITS, lambda s, r: True)
    assert plan.targets == ([(target, "170101_0001")] if target else [])


def test_a_missing_earlier_marker_holds_the_run_when_its_stage_is_off():
    have = {("transfer", "170101_0001")}
    plan = selection.plan_targets(
        [doc(raw="ondeck", proc="processed")], ["compress"], PATTERN, LIMITS, lambda s, r: (s, r) in have
    )
    assert plan.targets == []
    assert len(plan.held) == 1 and "170101_0001" in plan.held[0] and "marker" in plan.held[0]


def test_bad_documents_are_reported_and_the_others_planned():
    docs = [doc(name="170101_0001"), doc(name="170101_0002; rm -rf ~"), doc(name="170101_0003")]
    del docs[2]["source"]
    docs.append(doc(name="170101_0004"))
    plan = selection.plan_targets(docs, ALL_STAGES, PATTERN, LIMITS, lambda s, r: False)
    assert plan.targets == [("compress", "170101_0001"), ("compress", "170101_0004")]
    assert len(plan.bad) == 2
    assert "'170101_0002; rm -rf ~'" in plan.bad[0]
    assert "170101_0003" in plan.bad[1] and "source" in plan.bad[1]


def test_a_backlog_is_taken_oldest_first_and_the_rest_waits_for_later_ticks():
    new = [doc(f"170102_{i:04d}") for i in range(5, 0, -1)] + [doc("170101_0009")]
    older = [doc("170101_0001", raw="ondeck", proc="processed"), doc("170101_0002", raw="ondeck")]
    plan = selection.plan_targets(new + older, ALL_STAGES, PATTERN, LIMITS, lambda s, r: True, max_transfers=3)
    assert sorted(plan.targets) == [
        ("compress", r) for r in ("170101_0001", "170101_0002", "170101_0009", "170102_0001", "170102_0002")
    ]
    assert plan.later == ["170102_0003", "170102_0004", "170102_0005"]
    unbounded = selection.plan_targets(new + older, ALL_STAGES, PATTERN, LIMITS, lambda s, r: True)
    assert len(unbounded.targets) == 8 and unbounded.later == []


@pytest.mark.parametrize("attempts, held", [(1, False), (2, False), (3, True), (5, True)])
def test_transfers_are_held_after_max_attempts(attempts, held):
    d = doc(raw="acquired", transfer={"attempts": attempts, "error": "rsync exited with 23"})
    plan = selection.plan_targets([d], ALL_STAGES, PATTERN, LIMITS, lambda s, r: False)
    if held:
        assert plan.targets == []
        assert len(plan.held) == 1
        assert "170101_0001" in plan.held[0] and "rsync exited with 23" in plan.held[0]
        assert "fulliautomatix retry 170101_0001" in plan.held[0]
    else:
        assert plan.targets == [("compress", "170101_0001")] and plan.held == []


def test_a_cleared_transfer_failure_is_not_held():
    d = doc(raw="acquired", transfer={"attempts": 0, "error": None})
    assert selection.plan_targets([d], ALL_STAGES, PATTERN, LIMITS, lambda s, r: False).targets


@pytest.mark.parametrize("attempts, held", [(2, False), (3, True)])
def test_processing_is_held_after_max_attempts(attempts, held):
    d = doc(raw="ondeck", proc="failed", processing={"attempts": attempts, "exit_code": 2})
    plan = selection.plan_targets([d], ALL_STAGES, PATTERN, LIMITS, lambda s, r: True)
    assert (plan.targets == []) is held
    assert bool(plan.held) is held
    if held:
        assert "exit 2" in plan.held[0] and "170101_0001" in plan.held[0]


def test_limits_come_from_the_config():
    d = doc(raw="acquired", transfer={"attempts": 3, "error": "x"})
    plan = selection.plan_targets([d], ALL_STAGES, PATTERN, {**LIMITS, "transfer_attempts": 5}, lambda s, r: False)
    assert plan.targets and not plan.held


# -- plan_batches ------------------------------------------------------------------


def compressed(n, *, bytes_=1000, age_days=0.0, raw="compressed", batch=None):
    at = NOW - dt.timedelta(days=age_days)  # a BSON date, as the compress stage writes it
    d = doc(name=f"170101_{n:04d}", raw=raw, proc="processed", compressed={"bytes": bytes_, "at": at})
    if batch:
        d["archive"] = {"batch": batch}
    return d


ARCHIVE = {"batch_runs": 2, "min_bytes": 0, "max_wait_days": 2}


def test_batches_close_at_batch_runs_and_the_rest_waits():
    docs = [compressed(n) for n in range(1, 6)]
    assert selection.plan_batches(docs, ARCHIVE, now=NOW) == {
        "170101_0001_to_170101_0002": ["170101_0001", "170101_0002"],
        "170101_0003_to_170101_0004": ["170101_0003", "170101_0004"],
    }


def test_a_small_batch_closes_once_its_oldest_run_waited_max_wait_days():
    docs = [compressed(1), compressed(2), compressed(3, age_days=2.5), compressed(4, age_days=0.5)]
    cfg = {**ARCHIVE, "batch_runs": 10}
    assert selection.plan_batches(docs[2:], cfg, now=NOW) == {
        "170101_0003_to_170101_0004": ["170101_0003", "170101_0004"]
    }
    assert selection.plan_batches([docs[3]], cfg, now=NOW) == {}
    assert selection.plan_batches([compressed(4, age_days=0.5)], {**cfg, "max_wait_days": 0.25}, now=NOW)
    assert selection.plan_batches([compressed(4)], {**cfg, "max_wait_days": 0}, now=NOW)


def test_a_batch_closes_at_min_bytes():
    docs = [compressed(1, bytes_=400), compressed(2, bytes_=700), compressed(3, bytes_=100), compressed(4, bytes_=100)]
    cfg = {"batch_runs": 100, "min_bytes": 1000, "max_wait_days": 2}
    assert selection.plan_batches(docs, cfg, now=NOW) == {"170101_0001_to_170101_0002": ["170101_0001", "170101_0002"]}


def test_min_bytes_zero_disables_the_size_limit():
    docs = [compressed(1, bytes_=10**12), compressed(2, bytes_=10**12)]
    assert selection.plan_batches(docs, {"batch_runs": 5, "min_bytes": 0, "max_wait_days": 2}, now=NOW) == {}


def test_only_compressed_and_archiving_runs_are_batched():
    docs = [
        doc(name=f"170101_000{i}", raw=raw, proc="processed", compressed={"bytes": 1, "at": NOW.isoformat()})
        for i, raw in enumerate(["acquired", "ondeck", "compressing", "archived", "compressed", "compressed"])
    ]
    assert selection.plan_batches(docs, ARCHIVE, now=NOW) == {
        "170101_0004_to_170101_0005": ["170101_0004", "170101_0005"]
    }


def test_runs_keep_an_assigned_batch():
    """A batch that failed (or was cut short) is retried with the same members and name."""
    docs = [
        compressed(1),
        compressed(2, batch="170101_0000_to_170101_0002"),
        compressed(3),
        compressed(4, raw="archiving", batch="170101_0000_to_170101_0002"),
        compressed(5),
    ]
    # The free runs between the recorded batch's members are not consecutive among
    # the runs not yet archived: each waits for its neighbours (or max_wait_days).
    assert selection.plan_batches(docs, ARCHIVE, now=NOW) == {
        "170101_0000_to_170101_0002": ["170101_0002", "170101_0004"]
    }


def test_an_assigned_batch_is_kept_even_when_smaller_than_batch_runs():
    docs = [compressed(7, batch="170101_0006_to_170101_0007")]
    assert selection.plan_batches(docs, {**ARCHIVE, "batch_runs": 4}, now=NOW) == {
        "170101_0006_to_170101_0007": ["170101_0007"]
    }


def test_batch_names_are_stable():
    docs = [compressed(n) for n in (4, 1, 3, 2)]
    first = selection.plan_batches(docs, ARCHIVE, now=NOW)
    assert selection.plan_batches(list(reversed(docs)), ARCHIVE, now=NOW) == first
    # Once a batch is assigned (archiving), new runs do not change its name or members.
    for d in docs:
        if d["name"] in first["170101_0001_to_170101_0002"]:
            d["raw_status"] = "archiving"
            d["archive"] = {"batch": "170101_0001_to_170101_0002"}
    docs += [compressed(0), compressed(5)]
    later = selection.plan_batches(docs, ARCHIVE, now=NOW)
    assert later == {
        "170101_0001_to_170101_0002": ["170101_0001", "170101_0002"],
        "170101_0003_to_170101_0004": ["170101_0003", "170101_0004"],
    }


@pytest.mark.parametrize("age_days, closes", [(2.5, True), (1.5, False)])
def test_iso_strings_not_yet_migrated_wait_as_dates_do(age_days, closes):
    old = compressed(1)
    old["compressed"]["at"] = (NOW - dt.timedelta(days=age_days)).isoformat(timespec="seconds")
    docs = [old, compressed(2, age_days=0.1)]
    assert bool(selection.plan_batches(docs, {**ARCHIVE, "batch_runs": 5}, now=NOW)) is closes


def test_naive_timestamps_are_read_as_utc():
    naive = compressed(1, age_days=3)
    naive["compressed"]["at"] = (NOW - dt.timedelta(days=3)).replace(tzinfo=None).isoformat()
    assert selection.plan_batches([naive], {**ARCHIVE, "batch_runs": 5}, now=NOW)


def test_batches_are_consecutive_in_name_order():
    """A run not yet compressed ends a group: no batch's name range holds another batch's run."""
    docs = [
        compressed(1),
        compressed(2),
        doc(name="170101_0003", raw="ondeck", proc="processed"),
        compressed(4),
        compressed(5),
        compressed(6),
    ]
    batches = selection.plan_batches(docs, {**ARCHIVE, "batch_runs": 2}, now=NOW)
    assert batches == {
        "170101_0001_to_170101_0002": ["170101_0001", "170101_0002"],
        "170101_0004_to_170101_0005": ["170101_0004", "170101_0005"],
    }


def test_a_group_cut_short_by_a_waiting_run_closes_after_max_wait_days():
    docs = [compressed(1, age_days=3), doc(name="170101_0002", raw="acquired", proc="none"), compressed(3)]
    assert selection.plan_batches(docs, {**ARCHIVE, "batch_runs": 4}, now=NOW) == {
        "170101_0001_to_170101_0001": ["170101_0001"]
    }


# -- runs that cannot succeed are held, never retried forever (issue 10, findings 4 and 5) --------

LIMITS3 = {**LIMITS, "compress_attempts": 3}


@pytest.mark.parametrize("proc", ["queued", "processing", "failed"])
def test_processing_attempts_used_up_hold_the_run_whatever_state_they_left(proc):
    d = doc(raw="ondeck", proc=proc, processing={"attempts": 3, "exit_code": None})
    first, held = selection.start_stage(d, LIMITS3)
    assert first is None and "fulliautomatix retry 170101_0001" in held
    assert selection.start_stage(doc(raw="ondeck", proc=proc, processing={"attempts": 2}), LIMITS3) == ("process", None)


def test_compression_attempts_used_up_hold_the_run():
    c = {"attempts": 3, "error": "tar exited with 2"}
    for raw, proc in (("ondeck", "processed"), ("compressing", "processed"), ("ondeck", "none")):
        first, held = selection.start_stage(doc(raw=raw, proc=proc, compressed=c), LIMITS3)
        assert first is None and "compression failed 3 times" in held and "retry" in held
    assert selection.start_stage(doc(raw="ondeck", proc="processed", compressed={**c, "attempts": 2}), LIMITS3) == (
        "compress",
        None,
    )


def test_a_lost_run_is_held_with_its_reason_and_left_out_of_batches():
    reason = "run 170101_0001: LOST: ... then `fulliautomatix retry 170101_0001`"
    lost = doc(
        raw="compressed",
        proc="processed",
        lost={"at": "x", "reason": reason},
        compressed={"bytes": 1, "at": "2024-01-01T00:00:00+00:00"},
    )
    assert selection.start_stage(lost, LIMITS3) == (None, reason)
    other = doc(
        name="170101_0002",
        raw="compressed",
        proc="processed",
        compressed={"bytes": 1, "at": "2024-01-01T00:00:00+00:00"},
    )
    batches = selection.plan_batches([lost, other], {"batch_runs": 2, "min_bytes": 0, "max_wait_days": 0}, now=NOW)
    assert batches == {"170101_0002_to_170101_0002": ["170101_0002"]}


def test_a_run_the_daq_has_no_directory_for_is_held_with_that_line():
    d = doc(transfer={"missing": "run 170101_0001: the DAQ has no directory /daq/170101_0001 ..."})
    assert selection.start_stage(d, LIMITS3) == (None, d["transfer"]["missing"])
