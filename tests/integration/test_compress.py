"""The compress stage's one-pass verification: a run whose bytes changed after transfer never passes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from fulliautomatix import compress, markers, process, transfer
from fulliautomatix.standins import simulate
from fulliautomatix import config as fa_config
from fa_testlib import JobLog as Log


def processed_run(db, config) -> str:
    """One simulated run, transferred and processed by calling the stages directly."""
    Path(config["daq"]["raw_dir"]).mkdir(parents=True, exist_ok=True)
    run = simulate.simulate(db, config, 1, 200, "physics")[0]
    transfer_and_process(db, config, run)
    return run


def transfer_and_process(db, config, run: str) -> None:
    state = fa_config.state_dir(config)
    log_path = Path(config["work_dir"]) / "logs" / "t.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a") as log:
        transfer.transfer_run(db, config, run, str(markers.path(state, "transfer", run)), log)
        process.process_run(
            db,
            config,
            run,
            str(markers.path(state, "transfer", run)),
            str(markers.path(state, "process", run)),
            log,
            str(log_path),
        )


def compress_it(db, config, run, log):
    state = fa_config.state_dir(config)
    return compress.compress_run(
        db, config, run, str(markers.path(state, "process", run)), str(markers.path(state, "compress", run)), log
    )


@pytest.mark.parametrize("verify", ["stream", "decompress"])
def test_a_member_changed_after_transfer_fails_then_the_run_starts_over_and_verifies(db, config, verify):
    config["compression"]["verify"] = verify
    run = processed_run(db, config)
    p = compress.paths(config, run)
    victim = sorted(p["raw"].iterdir())[0]
    good = victim.read_bytes()
    victim.write_bytes(good[:100] + bytes([good[100] ^ 0x01]) + good[101:])
    log = Log()
    with pytest.raises(compress.CompressionError, match="no longer matches the checksums of its transfer"):
        compress_it(db, config, run, log)
    doc = db.get(run)
    assert f"checksum of {victim.name} differs" in doc["compressed"]["error"]
    # The plain copy went bad: the run starts over from its verified DAQ copy (recovery.recover).
    assert doc["raw_status"] == "acquired"
    assert not list(p["archive"].parent.glob(f"*{run}*")), "neither the partial nor the final file is left"
    assert "fa-tarstream write" in log.text
    for name in ("transfer", "process", "compress"):
        markers.path(fa_config.state_dir(config), name, run).unlink(missing_ok=True)
    transfer_and_process(db, config, run)
    marker = compress_it(db, config, run, Log())
    info = marker["set"]["compressed"]
    assert info["hash"] == hashlib.sha256(p["archive"].read_bytes()).hexdigest()
    assert info["bytes"] == p["archive"].stat().st_size
    assert not p["raw"].exists()
    assert db.get(run)["raw_status"] == "compressed"
