"""The pure parts of the transfer and processing stages: commands, failure lines, requests, markers.

No Snakemake, no ssh, no runs DB: each function is called with a loaded config.
"""

import sys

import pytest
import yaml

from fulliautomatix import config as fa_config
from fulliautomatix import markers, process, transfer, transfer_commands

RUN = "170101_0001"


@pytest.fixture
def cfg(tmp_path):
    def load(**overrides):
        base = {
            "work_dir": str(tmp_path / "work"),
            "daq": {"raw_dir": str(tmp_path / "daq")},
            "clusters": {"local": {"scratch": str(tmp_path / "scratch")}},
            "archive": {"location": str(tmp_path / "archive")},
        }
        fa_config.deep_update(base, overrides)
        (tmp_path / "c.yaml").write_text(yaml.safe_dump(base))
        return fa_config.load(tmp_path / "c.yaml")

    return load


# -- transfer ---------------------------------------------------------------------


def test_rsync_pushes_the_run_into_staging_with_the_configured_modes(cfg, tmp_path):
    c = cfg(transfer={"group": "asterix", "timeout_seconds": 60})
    argv = transfer_commands.rsync_argv(c, RUN)
    assert argv[:3] == ["rsync", "-a", "--partial"] and argv.count("--partial") == 1
    assert "--chmod=D2770,F0660" in argv and "--chown=:asterix" in argv and "--timeout=60" in argv
    assert argv[-3:] == ["--", f"{tmp_path}/daq/{RUN}/", f"{tmp_path}/scratch/raw/.incoming/{RUN}/"]
    assert "-e" not in argv  # both ends here: no remote shell
    confined = transfer_commands.confined_rsync_argv(c, RUN)
    assert confined[:2] == ["bash", "-c"] and confined[4:6] == [f"{tmp_path}/daq", RUN]
    assert confined[-2] == "./"  # rsync reads the directory the confinement check entered


def test_no_timeout_and_no_group_add_no_flags(cfg):
    argv = transfer_commands.rsync_argv(cfg(transfer={"timeout_seconds": 0}), RUN)
    assert not [a for a in argv if a.startswith(("--timeout", "--chown"))]


@pytest.mark.parametrize(
    "dirs, files, umask", [("2770", "0660", "007"), ("0755", "0644", "022"), ("0700", "0600", "077")]
)
def test_the_umask_lets_nothing_more_than_the_modes_through(dirs, files, umask):
    assert transfer_commands.umask_for(dirs, files) == umask


def test_rsync_failures_in_words(cfg, tmp_path):
    c = cfg()
    missing = f'rsync: change_dir "{tmp_path}/daq/{RUN}" failed\n{tmp_path}/daq/{RUN}: no such directory\n'
    assert (
        transfer_commands.rsync_failure(c, RUN, 3, missing) == f"the DAQ has no directory {tmp_path}/daq/{RUN} on local"
    )
    full = transfer_commands.rsync_failure(c, RUN, 11, 'rsync: write failed on "x": No space left on device (28)\n')
    assert full.startswith(f"No space left on device on the cluster's scratch {tmp_path}/scratch (local)")
    assert "the next tick resumes the copy" in full
    other = transfer_commands.rsync_failure(c, RUN, 23, "rsync error: some files could not be transferred (code 23)\n")
    assert other.startswith("rsync exited with 23: ")


def test_the_prepare_command_moves_an_unrecorded_copy_back_to_staging(cfg, tmp_path):
    argv = transfer_commands.prepare_argv(cfg(), RUN)
    assert argv[:2] == ["bash", "-c"] and argv[4:] == [
        "007",
        "",
        "2770",
        f"{tmp_path}/scratch",
        f"{tmp_path}/scratch/raw/{RUN}",
        f"{tmp_path}/scratch/raw/.incoming/{RUN}",
    ]


def test_auto_checksums_try_the_best_first(cfg):
    assert transfer.algorithms(cfg(transfer={"checksum": "sha256"})) == ["sha256"]
    assert len(transfer.algorithms(cfg())) > 1


# -- processing -------------------------------------------------------------------


def doc(**extra):
    return {"name": RUN, "source": "physics", "events": 100, "processed_status": "none", **extra}


def test_the_command_is_filled_word_by_word(cfg, tmp_path):
    c = cfg(processing={"command": "proc --in {raw} --out {output} --cfg {pax_config} --run {run}"})
    assert process.command(c, RUN, "physics") == [
        "proc",
        "--in",
        f"{tmp_path}/scratch/raw/{RUN}",
        "--out",
        f"{tmp_path}/scratch/processed/{RUN}/{c['processing']['version']}",
        "--cfg",
        process.pax_config(c, "physics"),
        "--run",
        RUN,
    ]
    # a value is never parsed by a shell, whatever it holds
    assert process.command(c, "a b;c", "physics", raw="x y")[2] == "x y"
    assert process.command(cfg(), RUN, "physics")[0] == sys.executable


def test_a_bad_placeholder_is_a_config_error(cfg):
    with pytest.raises(fa_config.ConfigError, match="processing.command: bad placeholder"):
        process.command(cfg(processing={"command": "proc {nothing}"}), RUN, "physics")


def test_a_local_request(cfg, tmp_path):
    c = cfg()
    req = process.make_request(c, doc(processing={"attempts": 2, "timeouts": 1}, processed_outputs=[{"version": "v0"}]))
    assert req["run"] == RUN and req["queue"] == "local" and req["walltime"] == "" and req["attempts"] == 2
    assert req["raw"] == f"{tmp_path}/scratch/raw/{RUN}" and req["previous_outputs"] == [{"version": "v0"}]
    # reprocessing: a new tag starts its attempts afresh, reads the staged copy, writes beside the old output
    again = process.make_request(c, doc(processed_status="processed", processing={"attempts": 2}), tag="v1-r1")
    assert again["attempts"] == 0 and again["tag"] == "v1-r1"
    assert again["raw"] == f"{tmp_path}/scratch/reprocess/{RUN}/{RUN}" and again["output"].endswith("/v1-r1")


def test_the_processed_marker_says_how_a_replay_gets_there(cfg):
    c = cfg()
    req = process.make_request(c, doc())
    marker = process._processed_marker(c, RUN, req, 1.5, None)
    assert (marker["field"], marker["to"], marker["via"]) == ("processed_status", "processed", ["processing"])
    assert (
        marker["set"]["processing.exit_code"] == 0
        and marker["set"]["processed_outputs"][-1]["output"] == req["output"]
        and "reprocess" not in marker["set"]
    )
    assert process._processed_marker(c, RUN, req, 1.5, "v1-r1")["set"]["reprocess"] is None
    assert marker["stage"] == "process" and markers.STAGE_MARKERS["process"][1] == marker["field"]


def test_a_failed_processor_says_what_comes_next(cfg, tmp_path):
    c = cfg()
    first = process._failed(None, c, RUN, None, 2, 1, 0.5, str(tmp_path / "p.log"))
    assert str(first) == f"run {RUN}: processor exited with 2; the next tick retries (2 attempts left)"
    last = process._failed(None, c, RUN, None, 2, 3, 0.5, str(tmp_path / "p.log"))
    assert str(last) == (
        f"run {RUN}: processor exited with 2; no attempts left: see {tmp_path}/p.log, then `fulliautomatix retry {RUN}`"
    )


def test_no_attempt_beyond_the_limit(cfg):
    c = cfg()
    with pytest.raises(process.ProcessingFailed, match=r"3 processing attempts made already"):
        process._start_here(None, c, RUN, process.make_request(c, doc()), doc(), ["p"], 4, None)
