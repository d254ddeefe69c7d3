"""The live progress line: on a terminal only, quiet under cron (real tick, real pseudo-terminal)."""

from __future__ import annotations

import os
import shlex
import subprocess

from fa_testlib import FA


def test_a_tick_on_a_terminal_shows_what_runs_and_under_cron_nothing(fa, make_config, db, tmp_path):
    # a processor that takes 3 s, so the line is drawn while processing jobs run, however fast the machine
    slow = tmp_path / "slow-processor"
    slow.write_text('#!/bin/sh\nsleep 3\nmkdir -p "$2" && echo done > "$2/out"\n')
    slow.chmod(0o755)
    config_path = make_config(processing={"command": f"{slow} {{raw}} {{output}}"})
    made = fa(config_path, "simulate-daq", "--runs", "2")
    assert made.returncode == 0, made.stderr
    env = {k: v for k, v in os.environ.items() if not k.startswith("FULLIAUTOMATIX_")}
    # util-linux `script` gives the tick a pseudo-terminal, as a person's shell does
    tty = subprocess.run(
        ["script", "-qfec", shlex.join([FA, "--config", str(config_path)]), "/dev/null"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    assert tty.returncode == 0, tty.stdout[-2000:]
    assert tty.stdout.count("jobs done") >= 2, tty.stdout[-2000:]  # redrawn (text mode reads each \r as a newline)
    assert "process 2" in tty.stdout, tty.stdout[-2000:]  # a processing job, named by its run
    made = fa(config_path, "simulate-daq", "--runs", "1")
    cron = fa(config_path)  # stderr is a pipe, as under cron
    assert cron.returncode == 0, cron.stderr
    assert "jobs done" not in cron.stderr
