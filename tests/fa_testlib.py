"""Names shared by the test packages (importable as `fa_testlib`).

Kept out of conftest.py: several test folders have a conftest.py of their own,
and `from conftest import ...` would pick whichever was imported first.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FA = str(Path(sys.executable).with_name("fulliautomatix"))
REQUIRE_TESTBEDS = os.environ.get("FULLIAUTOMATIX_REQUIRE_TESTBEDS") == "1"


def skip_or_fail(reason: str):
    """Skip a test whose test bed cannot start; in CI that is a failure."""
    if REQUIRE_TESTBEDS:
        pytest.fail(f"test bed required in CI: {reason}")
    pytest.skip(reason)


class JobLog:
    """What a stage function writes to its job's log, kept in memory (a real file object's interface)."""

    def __init__(self):
        self.text = ""

    def write(self, text):
        self.text += text

    def flush(self):
        pass


def simulate(fa, config_path, n: int, events: int = 200, source: str = "physics") -> list[str]:
    """Simulate n DAQ runs with `fulliautomatix simulate-daq`; their names."""
    r = fa(config_path, "simulate-daq", "--runs", str(n), "--events", str(events), "--source", source)
    assert r.returncode == 0, r.stderr
    return r.stderr.strip().rsplit(": ", 1)[1].split(", ")


def digests(root: Path, *, skip_links: bool = False, with_dirs: bool = False) -> dict[str, str | None]:
    """sha256 of every file under root, by relative path: a copy compared byte for byte.

    skip_links leaves out symbolic links (a symlink test compares what is really there, not a link's
    target); with_dirs lists what is not a file too (directories), as None, so a directory made or
    removed shows.  A root that does not exist has none: {}.
    """
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else None
        for p in sorted(root.rglob("*"))
        if (with_dirs or p.is_file()) and not (skip_links and p.is_symlink())
    }
