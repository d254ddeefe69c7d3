"""The simulated ASTERIX raw format (used by simulate-daq and the reference processor).

A run is a directory of ``raw_NNN.bin`` files.  Each file is a header
``b"ASTXRAW1" + uint32 events + uint32 samples`` followed by, per event,
``samples`` little-endian int16 ADC values: a flat baseline with noise and one
negative-going photon pulse.
"""

from __future__ import annotations

import random
import struct
from array import array
from pathlib import Path

MAGIC = b"ASTXRAW1"
HEADER = struct.Struct("<8sII")
SAMPLES = 256
EVENTS_PER_FILE = 250


def write_file(path: Path, events: int, rng: random.Random, samples: int = SAMPLES) -> None:
    data = array("h")
    for _ in range(events):
        base = 8000 + rng.randint(-20, 20)
        wave = [base + rng.randint(-4, 4) for _ in range(samples)]
        t0 = rng.randint(samples // 4, samples // 2)
        amp = rng.randint(50, 3000)
        for k, frac in enumerate((0.3, 1.0, 0.7, 0.45, 0.25, 0.12, 0.05)):
            wave[t0 + k] -= int(amp * frac)
        data.extend(wave)
    if data.itemsize != 2:  # pragma: no cover - array('h') is 2 bytes everywhere we run
        raise RuntimeError("int16 array expected")
    with open(path, "wb") as fh:
        fh.write(HEADER.pack(MAGIC, events, samples))
        if struct.pack("=h", 1) != struct.pack("<h", 1):  # pragma: no cover - big endian
            data.byteswap()
        fh.write(data.tobytes())


def write_run(directory: Path, run: str, events: int) -> list[Path]:
    """Write a simulated run of `events` events; deterministic per run name."""
    rng = random.Random(run)
    directory.mkdir(parents=True, exist_ok=True)
    files = []
    left, i = events, 0
    while left > 0 or i == 0:
        n = min(EVENTS_PER_FILE, left)
        p = directory / f"raw_{i:03d}.bin"
        write_file(p, n, rng)
        files.append(p)
        left -= n
        i += 1
    return files


def read_file(path: Path):
    """Yield each event of a raw file as an array of int16 samples."""
    with open(path, "rb") as fh:
        magic, events, samples = HEADER.unpack(fh.read(HEADER.size))
        if magic != MAGIC:
            raise ValueError(f"{path}: not an ASTERIX raw file")
        for _ in range(events):
            wave = array("h")
            chunk = fh.read(2 * samples)
            if len(chunk) != 2 * samples:
                raise ValueError(f"{path}: truncated event data")
            wave.frombytes(chunk)
            if struct.pack("=h", 1) != struct.pack("<h", 1):  # pragma: no cover
                wave.byteswap()
            yield wave
