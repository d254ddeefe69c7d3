"""The live progress line: on a terminal only, quiet under cron (real tick, real pseudo-terminal)."""

from __future__ import annotations

import os
import shlex
import subprocess

from fa_testlib import FA


def test_a_tick_on_a_terminal_shows_what_runs_and_under_cron_nothing(fa, config_path, db):
    made = fa(config_path, "simulate-daq", "--runs", "2")
    assert made.returncode == 0, made.stderr
    env = {k: v for k, v in os.environ.items() if not k.startswith("FULLIAUTOMATIX_")}
    # util-linux `script` gives the tick a pseudo-terminal, as a person's shell does
    tty = subprocess.run(["script", "-qfec", shlex.join([FA, "--config", str(config_path)]), "/dev/null"],
                         capture_output=True, text=True, timeout=300, env=env, stdin=subprocess.DEVNULL)
    assert tty.returncode == 0, tty.stdout[-2000:]
    assert tty.stdout.count("jobs done") >= 2, tty.stdout[-2000:]  # redrawn (text mode reads each \r as a newline)
    assert any(word in tty.stdout for word in ("transfer 2", "compress 2", "planning")), tty.stdout[-2000:]
    made = fa(config_path, "simulate-daq", "--runs", "1")
    cron = fa(config_path)  # stderr is a pipe, as under cron
    assert cron.returncode == 0, cron.stderr
    assert "jobs done" not in cron.stderr
