"""Names shared by the test packages (importable as `fa_testlib`).

Kept out of conftest.py: several test folders have a conftest.py of their own,
and `from conftest import ...` would pick whichever was imported first.
"""

from __future__ import annotations

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
