"""Bad input through the real CLI: one clear line naming the run or key, others go on."""

import socket

import yaml

from fa_testlib import digests, simulate
from fulliautomatix import config as fa_config

SHELL_NAME = "170101_0001; rm -rf ~"


def error_lines(stderr: str, word: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if word in ln]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unknown_run_is_named_and_the_other_runs_handled(fa, config_path, db):
    names = simulate(fa, config_path, 2)
    r = fa(config_path, "--transfer", "--run", "999999_9999", names[0], "77")
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    assert len(error_lines(r.stderr, "999999_9999")) == 1, r.stderr
    assert len(error_lines(r.stderr, "run 77")) == 1, r.stderr
    assert "not in the runs DB" in error_lines(r.stderr, "999999_9999")[0]
    assert db.get(names[0])["raw_status"] == "ondeck", "a listed run is still handled"
    assert db.get(names[1])["raw_status"] == "acquired", "a run not listed is left alone"


def test_only_unknown_runs_is_an_error_and_does_nothing(fa, config_path, db, tmp_path):
    names = simulate(fa, config_path, 1)
    r = fa(config_path, "--run", "999999_9999")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "nothing done" in r.stderr
    assert db.get(names[0])["raw_status"] == "acquired"
    assert not (tmp_path / "cluster").exists()


def test_malformed_documents_are_named_and_the_other_runs_archived(
    fa, config_path, db, raw_collection, tmp_path, monkeypatch
):
    good = simulate(fa, config_path, 2)
    daq = tmp_path / "daq"
    # The DAQ wrote a run without events and source, and one whose name is shell syntax.
    bad_docs = [
        {
            "name": "170101_0077",
            "number": 77,
            "raw_status": "acquired",
            "raw_location": "zinc",
            "processed_status": "none",
        },
        {
            "name": SHELL_NAME,
            "number": 78,
            "events": 200,
            "source": "physics",
            "raw_status": "acquired",
            "raw_location": "zinc",
            "processed_status": "none",
        },
    ]
    for d in bad_docs:
        raw_collection.insert_one({**d, "history": [], "rev": 0})
        (daq / d["name"]).mkdir()
        (daq / d["name"] / "raw_000.bin").write_bytes(b"ASTXRAW1 not really")
    # Should the name ever reach a shell, "~" is this canary home, not the real one.
    home = tmp_path / "home"
    (home / "keep").mkdir(parents=True)
    (home / "keep" / "canary").write_text("still here")
    daq_before = digests(daq)
    bad_before = {d["name"]: raw_collection.find_one({"name": d["name"]}) for d in bad_docs}

    for _ in range(2):
        r = fa(config_path, env={"HOME": str(home)})
        assert "Traceback" not in r.stderr
        assert r.returncode == 1, "a tick with malformed documents reports failure"
        lines = error_lines(r.stderr, "170101_0077")
        assert len(lines) == 1 and "events, source" in lines[0], r.stderr
        lines = error_lines(r.stderr, SHELL_NAME)
        assert len(lines) == 1 and "pattern" in lines[0], r.stderr

    for name in good:
        assert db.get(name)["raw_status"] == "archived"
    for name, before in bad_before.items():
        assert raw_collection.find_one({"name": name}) == before, "a malformed document is not touched"
    assert digests(daq) == daq_before, "nothing deleted or changed on the DAQ"
    assert (home / "keep" / "canary").read_text() == "still here"
    for where in ("cluster", "archive", "work/state"):
        found = [p for p in (tmp_path / where).rglob("*") if "170101_0077" in p.name or "rm -rf" in p.name]
        assert found == [], f"malformed runs reached {where}"


def test_a_config_failing_the_schema_is_one_line_naming_the_key(fa, make_config, tmp_path):
    path = make_config(archive={"batch_runs": "four"})
    for args in ([], ["status"], ["simulate-daq", "--runs", "1"], ["--dry_run"]):
        r = fa(path, *args)
        assert r.returncode == 1
        assert "Traceback" not in r.stderr
        assert r.stderr.strip().splitlines() == [r.stderr.strip()], "one line"
        assert "config key archive.batch_runs" in r.stderr
    for made in ("work", "logs", "daq", "cluster", "archive"):
        assert not (tmp_path / made).exists(), f"{made} created despite a bad config"


def test_an_unknown_config_key_is_named(fa, make_config, tmp_path):
    path = make_config()
    data = yaml.safe_load(path.read_text())
    data["transfer"] = {"checksums": "sha256"}
    path.write_text(yaml.safe_dump(data))
    r = fa(path)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "config key transfer.checksums: unknown key" in r.stderr
    assert not (tmp_path / "work").exists()


def test_an_unknown_cluster_is_one_line(fa, config_path, tmp_path):
    r = fa(config_path, "--cluster", "nope")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "'nope'" in r.stderr
    assert not (tmp_path / "work").exists()


def test_an_unreachable_runs_db_is_one_line(fa, make_config, tmp_path):
    port = closed_port()
    path = make_config(runs_db={"uri": f"mongodb://127.0.0.1:{port}/", "timeout_seconds": 0.5})
    (tmp_path / "daq" / "170101_0001").mkdir(parents=True)
    for args in ([], ["status"], ["--run", "170101_0001"]):
        r = fa(path, *args)
        assert r.returncode == 1, args
        assert "Traceback" not in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert "unreachable" in r.stderr and "runs_db.uri" in r.stderr
    assert not (tmp_path / "cluster").exists() and not (tmp_path / "archive").exists()
    assert (tmp_path / "daq" / "170101_0001").is_dir()


def test_an_unreachable_runs_db_from_the_environment(fa, make_config):
    path = make_config(runs_db={"timeout_seconds": 0.5})
    r = fa(path, "status", env={fa_config.DB_ENV: f"mongodb://127.0.0.1:{closed_port()}/"})
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "unreachable" in r.stderr


def test_a_daq_directory_inside_the_scratch_is_refused_before_any_run_moves(fa, make_config, tmp_path):
    """Before, the transfer's `mv -T` moved each DAQ run directory, its only copy, into scratch/raw/.incoming/."""
    path = make_config(daq={"raw_dir": str(tmp_path / "cluster" / "raw")})
    for args in (["simulate-daq", "--runs", "2"], []):
        r = fa(path, *args)
        assert r.returncode == 1 and "Traceback" not in r.stderr
        assert r.stderr.strip().splitlines() == [r.stderr.strip()], "one line"
        assert "daq.raw_dir" in r.stderr and "clusters.local.scratch" in r.stderr
    assert not (tmp_path / "cluster").exists() and not (tmp_path / "work").exists()
