"""Large simulated runs, written fast, in the simulated ASTERIX raw format.

:mod:`fulliautomatix.standins.rawformat` draws every sample with ``random.randint``,
which takes minutes for a gibibyte.  Here the same layout and statistics (a
header, then 256-sample int16 events: a per-event baseline of 8000 +- 20 ADC,
+-4 ADC of noise, one negative photon pulse of up to 3000 ADC) are written
with bulk byte operations: random bytes become noise through
``bytes.translate``, and each event's pulse is copied in from a pool of
pre-computed pulse shapes.  The data compresses like ``rawformat``'s, so the
compression benchmark does realistic work.
"""

from __future__ import annotations

import random
import struct
from pathlib import Path

from fulliautomatix.standins import rawformat

SAMPLES = rawformat.SAMPLES
PULSE = (0.3, 1.0, 0.7, 0.45, 0.25, 0.12, 0.05)  # the shape rawformat uses


class _Pool:
    """Translation tables (one per baseline offset) and pulse shapes."""

    def __init__(self, rng: random.Random):
        # Each random byte b becomes the low byte of baseline + noise, noise = b % 9 - 4.
        self.tables = [bytes(((8000 + off) & 0xFF) + (b % 9) - 4 for b in range(256)) for off in range(-20, 21)]
        self.high = bytes([8000 >> 8]) * SAMPLES  # 7976..8024 all have high byte 0x1F
        self.pulses = []
        for _ in range(1024):
            off, amp = rng.randint(-20, 20), rng.randint(50, 3000)
            values = [8000 + off + rng.randint(-4, 4) - int(amp * f) for f in PULSE]
            self.pulses.append((off + 20, struct.pack(f"<{len(values)}h", *values)))


def _events(count: int, rng: random.Random, pool: _Pool) -> bytes:
    noise = rng.randbytes(count * SAMPLES)
    out = bytearray(2 * SAMPLES * count)
    ev = bytearray(2 * SAMPLES)
    for i in range(count):
        table, pulse = pool.pulses[rng.getrandbits(10)]
        ev[0::2] = noise[i * SAMPLES : (i + 1) * SAMPLES].translate(pool.tables[table])
        ev[1::2] = pool.high
        t0 = 2 * rng.randint(SAMPLES // 4, SAMPLES // 2)
        ev[t0 : t0 + len(pulse)] = pulse
        out[i * 2 * SAMPLES : (i + 1) * 2 * SAMPLES] = ev
    return bytes(out)


def write_run(directory: Path, total_bytes: int, files: int, seed: str = "bench") -> int:
    """Write `files` raw files of about total_bytes/files bytes each; return the bytes written."""
    rng = random.Random(seed)
    pool = _Pool(rng)
    directory.mkdir(parents=True, exist_ok=True)
    events = max(1, total_bytes // files // (2 * SAMPLES))
    written = 0
    for i in range(files):
        data = rawformat.HEADER.pack(rawformat.MAGIC, events, SAMPLES) + _events(events, rng, pool)
        (directory / f"raw_{i:04d}.bin").write_bytes(data)
        written += len(data)
    return written
