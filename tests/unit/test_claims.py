"""Per-run claims (fulliautomatix.claims): held by a process and the children it hands them to."""

import subprocess
import sys
import time

from fulliautomatix import claims

HOLD = """
import subprocess, sys
from fulliautomatix import claims
config = {"work_dir": sys.argv[1]}
claims.claim(config, "170101_0001", "job process_run of tick t1")
child = subprocess.Popen(["sleep", "30"], pass_fds=claims.held_fds())  # the processor
print(child.pid, flush=True)
sys.stdin.read()
"""


def test_a_claim_lasts_as_long_as_any_process_holding_it(tmp_path):
    config = {"work_dir": str(tmp_path)}
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    child = int(holder.stdout.readline())
    busy = claims.busy(config)
    assert list(busy) == ["170101_0001"] and "job process_run of tick t1" in busy["170101_0001"]
    try:
        claims.claim(config, "170101_0001", "job process_run of tick t2")
        raise AssertionError("a second claim was granted")
    except claims.Busy as exc:
        assert "still works on it" in str(exc) and "\n" not in str(exc)
    holder.kill()  # the job dies; the processor it started runs on and keeps the claim
    holder.wait()
    assert list(claims.busy(config)) == ["170101_0001"]
    subprocess.run(["kill", str(child)])
    deadline = time.monotonic() + 10
    while claims.busy(config) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert claims.busy(config) == {}
    assert not list((tmp_path / "state" / "claims").iterdir()), "a dead holder's file goes"
    claims.claim(config, "170101_0001", "job process_run of tick t3")
    assert claims.held_fds()
    claims.release(config, "170101_0001")
    assert claims.held_fds() == () and not list((tmp_path / "state" / "claims").iterdir())
