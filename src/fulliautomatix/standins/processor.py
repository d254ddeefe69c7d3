"""Reference processor: a STAND-IN for the experiment's processor (pax).

It does real, if simple, work on the simulated raw format: per event the
baseline (mean of the first 32 samples), the pulse area (baseline-subtracted
sum) and the peak time (sample of the minimum), written as a table.  The
workflow runs it through the configurable ``processing.command`` template,
exactly as it would run the real processor.

    python -m fulliautomatix.standins.processor --config ASTERIX --input RAWDIR --output OUTDIR
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

from . import rawformat

VERSION = "ref-1"
BASELINE_SAMPLES = 32


def process_event(wave) -> tuple[float, float, int]:
    baseline = sum(wave[:BASELINE_SAMPLES]) / BASELINE_SAMPLES
    area = baseline * len(wave) - sum(wave)
    peak = min(range(len(wave)), key=wave.__getitem__)
    return baseline, area, peak


def process_run(raw: Path, output: Path, pax_config: str) -> dict:
    files = sorted(raw.glob("raw_*.bin"))
    if not files:
        raise FileNotFoundError(f"no raw_*.bin files in {raw}")
    tmp = output.with_name(f".{output.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    events = 0
    with open(tmp / "events.tsv", "w") as out:
        out.write("file\tevent\tbaseline\tarea\tpeak_sample\n")
        for f in files:
            for i, wave in enumerate(rawformat.read_file(f)):
                b, a, p = process_event(wave)
                out.write(f"{f.name}\t{i}\t{b:.2f}\t{a:.1f}\t{p}\n")
                events += 1
    summary = {
        "events": events,
        "files": len(files),
        "processor": "fulliautomatix reference processor",
        "version": VERSION,
        "config": pax_config,
    }
    (tmp / "summary.json").write_text(json.dumps(summary, indent=1))
    if output.exists():
        shutil.rmtree(output)
    os.replace(tmp, output)
    return summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="fulliautomatix.processor", description=__doc__.splitlines()[0])
    ap.add_argument("--config", required=True, help="processor configuration (e.g. ASTERIX, ASTERIX_LED)")
    ap.add_argument("--input", required=True, type=Path, help="raw run directory")
    ap.add_argument("--output", required=True, type=Path, help="output directory")
    ap.add_argument("--version", action="version", version=VERSION)
    args = ap.parse_args(argv)
    try:
        summary = process_run(args.input, args.output, args.config)
    except (OSError, ValueError) as exc:
        print(f"processor: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
