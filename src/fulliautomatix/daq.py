"""Is the DAQ busy?  The tick's one question to the DAQ machine before it transfers anything.

:func:`survey_daq` asks the DAQ (one ssh call) whether it is live
(``daq.live_check``) and when each waiting run was last written to;
:func:`daq_check` turns the answer into the tick's decision: no transfers
while the DAQ is live or cannot tell, and no transfer of a run written to
within ``daq.settle_seconds`` or without a directory on the DAQ.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from dataclasses import dataclass, field

from . import states
from .places import daq_host, locations

# Runs the live check (argv "${@:1:n}") and prints "LIVE <exit status>", the
# DAQ's clock, and for the run names read from stdin the newest modification
# time of anything in each one's directory ("RUN <time> <run>"; "RUN missing
# <run>" for a name with no directory).  One find over all the runs' directories
# (%H: the run it was found under) and one awk keeping each run's newest time,
# however many runs wait: no process per run.
SURVEY = r"""
raw=$1; n=$2; shift 2
if [ "$n" -gt 0 ]; then "${@:1:$n}" >/dev/null 2>&1 </dev/null; echo "LIVE $?"; else echo "LIVE none"; fi
echo "NOW $(date +%s.%N)"
cd -- "$raw" 2>/dev/null || raw=
runs=()
while IFS= read -r run; do
  if [ -n "$raw" ] && [ -d "./$run" ]; then runs+=("./$run"); else echo "RUN missing $run"; fi
done
[ "${#runs[@]}" -gt 0 ] || exit 0
find "${runs[@]}" -printf '%T@ %H\n' 2>/dev/null |
  awk '{ r = substr($0, length($1) + 4); if (!(r in m) || $1 + 0 > m[r]) { m[r] = $1 + 0; s[r] = $1 } }
       END { for (r in m) print "RUN " s[r] " " r }'
exit 0
"""


@dataclass
class DaqSurvey:
    live: bool | None  # None: could not tell (the check failed, the DAQ is unreachable)
    reason: str = ""  # why nothing may be transferred, for the tick's one log line
    ages: dict[str, float | None] = field(default_factory=dict)  # seconds since last write; None: no directory

    @property
    def may_transfer(self) -> bool:
        return self.live is False

    def still_writing(self, settle: float) -> dict[str, float]:
        return {run: age for run, age in self.ages.items() if age is not None and age < settle}

    def missing(self) -> list[str]:
        """Runs the DAQ has no directory for."""
        return sorted(run for run, age in self.ages.items() if age is None)


def survey_argv(config: dict) -> list[str]:
    check = list(config["daq"]["live_check"])
    return ["bash", "-c", SURVEY, "fa-survey", config["daq"]["raw_dir"], str(len(check)), *check]


def _check_failed(check: str, host: str, status: str) -> str:
    """The one line for a live check that could not tell (exit status other than 0 and 1)."""
    if status == "127":
        return (
            f"DAQ live check command `{check}` was not found on {host} (exit 127): fix daq.live_check; "
            "no transfers this tick"
        )
    if status == "126":
        return (
            f"DAQ live check command `{check}` cannot be run on {host} (exit 126, not executable): fix "
            "daq.live_check; no transfers this tick"
        )
    return f"DAQ live check `{check}` on {host} failed (exit {status}): no transfers this tick"


def survey_daq(config: dict, runs: list[str], timeout: float = 120) -> DaqSurvey:
    """One call to the DAQ: is it live, and when was each run last written to?"""
    pattern = config["run_name_pattern"]
    runs = [r for r in runs if isinstance(r, str) and re.fullmatch(pattern, r)]
    daq = daq_host(config)
    check = shlex.join(config["daq"]["live_check"]) or "none"
    try:
        proc = daq.run(survey_argv(config), check=False, timeout=timeout, input="".join(f"{r}\n" for r in runs))
    except (OSError, subprocess.TimeoutExpired) as exc:
        return DaqSurvey(None, f"DAQ {daq.name} did not answer ({exc}): no transfers this tick")
    lines = proc.stdout.splitlines()
    if proc.returncode != 0 or not lines or not lines[0].startswith("LIVE "):
        err = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
        return DaqSurvey(None, f"DAQ {daq.name} could not be asked ({err}): no transfers this tick")
    status = lines[0].split()[1]
    if status == "0":
        return DaqSurvey(True, f"DAQ is live (`{check}` on {daq.name} exited 0): no transfers this tick")
    if status not in ("1", "none"):
        return DaqSurvey(None, _check_failed(check, daq.name, status))
    now = None
    ages: dict[str, float | None] = {}
    for line in lines[1:]:
        if line.startswith("NOW "):
            now = float(line.split()[1])
        elif line.startswith("RUN "):
            _, when, run = line.split(" ", 2)
            if when == "missing":
                ages[run] = None
            elif when and now is not None:
                ages[run] = max(0.0, now - float(when))
    return DaqSurvey(False, "", ages)


@dataclass
class DaqCheck:
    """What the tick's DAQ check decided: the stages and runs left, and its lines."""

    stages: list[str]
    docs: list[dict]
    messages: list[str] = field(default_factory=list)  # information
    warnings: list[str] = field(default_factory=list)  # a human should look (a broken check, a missing run)
    missing: dict[str, str] = field(default_factory=dict)  # run -> why: the DAQ has no directory for it
    daq: str = ""  # what the DAQ said: "live", "idle" or "unreachable"; "" when it was not asked


def no_directory(config: dict, run: str) -> str:
    """The one line for a run the DAQ has no directory for."""
    source = locations(config, run)["source"]
    return (
        f"run {run}: the DAQ has no directory {source} on {daq_host(config).name}: nothing to transfer; "
        f"it stays acquired until that directory exists (check the DAQ, then `fulliautomatix retry {run}`)"
    )


def daq_check(config: dict, stages: list[str], docs: list[dict]) -> DaqCheck:
    """The tick's DAQ check.

    When the DAQ is live the transfer stage is dropped for this tick (one
    information line); when its live check cannot tell (a missing command,
    an unreachable DAQ) too, with a warning.  Runs the DAQ wrote to within
    daq.settle_seconds, and runs it has no directory for (a warning each),
    are left out of it.  A tick with no run to transfer and nothing to purge
    does not ask the DAQ at all.  Its `daq` says what the DAQ answered (the
    metrics, the notifications and the STUCK check of acquired runs).
    """
    if "transfer" not in stages:
        return DaqCheck(stages, docs)
    waiting = [d["name"] for d in docs if d.get(states.RAW) in ("acquired", "transferring")]
    if not waiting and config["transfer"]["purge"] == "keep":
        return DaqCheck(stages, docs)  # nothing would touch the DAQ this tick: do not ask it
    survey = survey_daq(config, waiting)
    daq = {True: "live", False: "idle", None: "unreachable"}[survey.live]
    if not survey.may_transfer:
        out = DaqCheck([s for s in stages if s != "transfer"], docs, daq=daq)
        (out.messages if survey.live else out.warnings).append(survey.reason)
        return out
    settle = float(config["daq"]["settle_seconds"])
    busy = survey.still_writing(settle)
    out = DaqCheck(stages, [d for d in docs if d.get("name") not in busy], daq=daq)
    out.messages = [
        f"run {run}: the DAQ wrote to it {age:.0f} s ago (settle time {settle:g} s); not transferred this tick"
        for run, age in sorted(busy.items())
    ]
    out.missing = {run: no_directory(config, run) for run in survey.missing()}
    out.warnings = list(out.missing.values())
    out.docs = [d for d in out.docs if d.get("name") not in out.missing]
    return out
