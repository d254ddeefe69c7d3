"""The reference processor (a stand-in for pax), the raw format, and the processing command."""

import json
import random
import struct
import subprocess
import sys
from array import array

import pytest
import yaml

from fulliautomatix import config as fa_config
from fulliautomatix import process
from fulliautomatix.standins import processor, rawformat

SAMPLES = 256
PULSE = {100: 300, 101: 1000, 102: 700, 103: 250}  # sample -> depth below baseline


def synthetic_wave(baseline=8000, pulse=PULSE, wobble=(3, -3)):
    """A flat baseline that averages to `baseline` exactly, with one negative pulse."""
    wave = [baseline + wobble[i % 2] for i in range(SAMPLES)]
    for k, depth in pulse.items():
        wave[k] = baseline + wobble[k % 2] - depth
    return wave


def expected(baseline=8000, pulse=PULSE):
    return float(baseline), float(sum(pulse.values())), max(pulse, key=pulse.get)


def test_one_event():
    b, a, p = processor.process_event(array("h", synthetic_wave()))
    assert (b, a, p) == expected()


def test_an_event_without_a_pulse():
    b, a, _ = processor.process_event(array("h", [500] * SAMPLES))
    assert (b, a) == (500.0, 0.0)


def test_the_baseline_uses_only_the_first_samples():
    wave = synthetic_wave(pulse={})
    wave[processor.BASELINE_SAMPLES :] = [8000 - 10] * (SAMPLES - processor.BASELINE_SAMPLES)
    b, a, _ = processor.process_event(array("h", wave))
    assert b == 8000.0
    assert a == 10 * (SAMPLES - processor.BASELINE_SAMPLES)


def write_raw(path, waves):
    """A raw file in the simulated ASTERIX format, built here byte by byte."""
    with open(path, "wb") as fh:
        fh.write(b"ASTXRAW1" + struct.pack("<II", len(waves), SAMPLES))
        for w in waves:
            fh.write(struct.pack(f"<{SAMPLES}h", *w))


def run_processor(*args):
    return subprocess.run([sys.executable, "-m", "fulliautomatix.processor", *args], capture_output=True, text=True)


def test_the_processor_writes_a_table_of_every_event(tmp_path):
    raw, out = tmp_path / "raw", tmp_path / "out" / "ref-1"
    raw.mkdir()
    events = [({}, 8000), ({40: 50}, 7000), (PULSE, 8000)]
    write_raw(raw / "raw_000.bin", [synthetic_wave(b, p) for p, b in events[:2]])
    write_raw(raw / "raw_001.bin", [synthetic_wave(8000, PULSE)])
    (raw / "notes.txt").write_text("not raw data")
    r = run_processor("--config", "ASTERIX_LED", "--input", str(raw), "--output", str(out))
    assert r.returncode == 0, r.stderr
    lines = (out / "events.tsv").read_text().splitlines()
    assert lines[0] == "file\tevent\tbaseline\tarea\tpeak_sample"
    assert lines[1:] == [
        "raw_000.bin\t0\t8000.00\t0.0\t1",  # no pulse: the first lowest sample (8000 - 3)
        "raw_000.bin\t1\t7000.00\t50.0\t40",
        "raw_001.bin\t0\t8000.00\t2250.0\t101",
    ]
    summary = json.loads((out / "summary.json").read_text())
    assert summary == json.loads(r.stdout)
    assert summary["events"] == 3 and summary["files"] == 2
    assert summary["config"] == "ASTERIX_LED" and summary["version"] == processor.VERSION
    assert sorted(p.name for p in out.parent.iterdir()) == ["ref-1"], "no partial output left"


def test_a_new_output_replaces_an_older_one_whole(tmp_path):
    raw, out = tmp_path / "raw", tmp_path / "out"
    raw.mkdir()
    write_raw(raw / "raw_000.bin", [synthetic_wave()])
    out.mkdir()
    (out / "stale.tsv").write_text("old")
    assert run_processor("--config", "ASTERIX", "--input", str(raw), "--output", str(out)).returncode == 0
    assert sorted(p.name for p in out.iterdir()) == ["events.tsv", "summary.json"]


@pytest.mark.parametrize(
    "content, words",
    [
        (None, "no raw_*.bin files"),
        (b"NOTASTX!" + struct.pack("<II", 1, SAMPLES), "not an ASTERIX raw file"),
        (b"ASTXRAW1" + struct.pack("<II", 2, SAMPLES) + b"\x00" * (2 * SAMPLES), "truncated"),
    ],
)
def test_bad_input_is_one_line_and_exit_1(tmp_path, content, words):
    raw, out = tmp_path / "raw", tmp_path / "out"
    raw.mkdir()
    if content is not None:
        (raw / "raw_000.bin").write_bytes(content)
    r = run_processor("--config", "ASTERIX", "--input", str(raw), "--output", str(out))
    assert r.returncode == 1
    assert words in r.stderr and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert not out.exists()


# -- the simulated raw format ------------------------------------------------------


def test_simulated_runs_are_deterministic_and_readable(tmp_path):
    a = rawformat.write_run(tmp_path / "a", "170101_0001", 600)
    b = rawformat.write_run(tmp_path / "b", "170101_0001", 600)
    assert [p.name for p in a] == ["raw_000.bin", "raw_001.bin", "raw_002.bin"]
    assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]
    waves = [w for p in a for w in rawformat.read_file(p)]
    assert len(waves) == 600 and all(len(w) == rawformat.SAMPLES for w in waves)
    results = [processor.process_event(w) for w in waves[:50]]
    for baseline, _, peak in results:
        assert 7970 <= baseline <= 8030
        assert rawformat.SAMPLES // 4 <= peak <= rawformat.SAMPLES // 2 + 1, "the pulse's deepest sample"
    assert sum(area for _, area, _ in results) / len(results) > 500, "pulses of 50-3000 ADC counts deep"


def test_the_writer_and_the_processor_agree(tmp_path):
    rawformat.write_file(tmp_path / "raw_000.bin", 5, random.Random(1))
    with open(tmp_path / "raw_000.bin", "rb") as fh:
        magic, events, samples = struct.unpack("<8sII", fh.read(16))
        first = struct.unpack(f"<{samples}h", fh.read(2 * samples))
    assert (magic, events, samples) == (b"ASTXRAW1", 5, rawformat.SAMPLES)
    assert list(next(rawformat.read_file(tmp_path / "raw_000.bin"))) == list(first)


# -- the processing command --------------------------------------------------------


@pytest.fixture
def config(tmp_path, monkeypatch):
    monkeypatch.delenv(fa_config.DB_ENV, raising=False)

    def make(command=None, **processing):
        if command:
            processing["command"] = command
        p = tmp_path / "config.yaml"
        p.write_text(yaml.safe_dump({"clusters": {"local": {"scratch": "/scratch/my fa"}}, "processing": processing}))
        return fa_config.load(p)

    return make


def test_the_default_command_runs_the_reference_processor(config):
    argv = process.command(config(), "170101_0001", "LED")
    assert argv == [
        sys.executable,
        "-m",
        "fulliautomatix.processor",
        "--config",
        "ASTERIX_LED",
        "--input",
        "/scratch/my fa/raw/170101_0001",
        "--output",
        "/scratch/my fa/processed/170101_0001/ref-1",
    ]


def test_the_processor_config_follows_the_source(config):
    c = config(pax_configs={"default": "ASTERIX", "LED": "ASTERIX_LED", "neutron": "ASTERIX_NG"})
    assert process.pax_config(c, "LED") == "ASTERIX_LED"
    assert process.pax_config(c, "neutron") == "ASTERIX_NG"
    assert process.pax_config(c, "physics") == "ASTERIX"


def test_the_template_is_split_before_values_are_filled_in(config):
    c = config(
        "paxer --config {pax_config} --input {raw} --output {output} --name '{run} x'",
        pax_configs={"default": "A; rm -rf ~"},
        version="v2",
    )
    assert process.command(c, "170101_0001", "physics") == [
        "paxer",
        "--config",
        "A; rm -rf ~",
        "--input",
        "/scratch/my fa/raw/170101_0001",
        "--output",
        "/scratch/my fa/processed/170101_0001/v2",
        "--name",
        "170101_0001 x",
    ]


@pytest.mark.parametrize("template", ["paxer {nope}", "paxer {0}", "paxer {raw"])
def test_a_bad_placeholder_names_the_config_key(config, template):
    with pytest.raises(fa_config.ConfigError, match="processing.command"):
        process.command(config(template), "170101_0001", "physics")
