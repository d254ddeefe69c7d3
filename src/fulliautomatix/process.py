"""Stage 2: process a run with the configured processor.

The command is ``processing.command``: a template split into words first and
filled in word by word ({raw}, {output}, {pax_config}, {run}), so no value is
ever parsed by a shell.  Output goes to ``<scratch>/processed/<run>/<version>``;
a new processor version never overwrites an older output.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time

from . import config as fa_config
from . import hosts, markers, states, sync
from .runsdb import RunsDB


class ProcessingFailed(Exception):
    pass


def pax_config(config: dict, source: str) -> str:
    configs = config["processing"]["pax_configs"]
    return configs.get(source, configs.get("default", "ASTERIX"))


def paths(config: dict, run: str) -> dict[str, str]:
    scratch = fa_config.cluster(config)["scratch"]
    version = config["processing"]["version"]
    return {"raw": f"{scratch}/raw/{run}", "output": f"{scratch}/processed/{run}/{version}"}


def command(config: dict, run: str, source: str) -> list[str]:
    p = paths(config, run)
    values = {"raw": p["raw"], "output": p["output"], "pax_config": pax_config(config, source), "run": run,
              "python": sys.executable}
    try:
        return [word.format(**values) for word in shlex.split(config["processing"]["command"])]
    except (KeyError, IndexError, ValueError) as exc:
        raise fa_config.ConfigError(f"config key processing.command: bad placeholder ({exc})") from None


def tail(path, lines: int = 20) -> str:
    try:
        with open(path, errors="replace") as fh:
            return "".join(fh.readlines()[-lines:])
    except OSError:
        return ""


def process_run(db: RunsDB, config: dict, run: str, ondeck_marker: str, marker_path: str, log, log_path: str) -> dict:
    """Process one run on this machine; write its marker; return the marker."""
    hosts.check_run_name(run, config["run_name_pattern"])
    log_path = os.path.abspath(log_path)
    doc = db.get(run)
    sync.apply(db, markers.read(ondeck_marker), doc=doc)
    doc = db.get(run)
    version = config["processing"]["version"]
    p = paths(config, run)
    prev = doc.get("processing") or {}
    if doc["processed_status"] == "processed" and prev.get("processor_version") == version:
        marker = markers.run_marker("process", run, {"processing": prev}, prev)
        markers.write(marker_path, marker)
        return marker

    attempts = int(prev.get("attempts", 0)) + 1
    argv = command(config, run, doc["source"])
    info = {**prev, "attempts": attempts, "queue": "local", "job_id": None, "walltime": None,
            "processor_version": version, "output": p["output"], "command": argv, "exit_code": None}
    if doc["processed_status"] != "queued":
        doc = db.transition(run, states.PROCESSED, "queued", fields={"processing": info}, doc=doc)
    doc = db.transition(run, states.PROCESSED, "processing", fields={"processing.started": states.now()}, doc=doc)
    log.write(f"$ {shlex.join(argv)}\n")
    log.flush()
    t0 = time.monotonic()
    rc = subprocess.run(argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL).returncode
    seconds = round(time.monotonic() - t0, 3)
    if rc != 0:
        log.flush()
        db.transition(run, states.PROCESSED, "failed", doc=doc, note=f"exit {rc}",
                      fields={"processing.exit_code": rc, "processing.log_tail": tail(log_path),
                              "processing.seconds": seconds})
        left = config["processing"]["max_attempts"] - attempts
        hint = f"the next tick retries ({left} attempts left)" if left > 0 else f"no attempts left: see {log_path}, then `fulliautomatix retry {run}`"
        raise ProcessingFailed(f"run {run}: processor exited with {rc}; {hint}")
    info.update(exit_code=0, seconds=seconds, finished=states.now(), log_tail=None)
    marker = markers.run_marker("process", run, {"processing": info}, {"seconds": seconds, "output": p["output"]})
    markers.write(marker_path, marker)
    try:
        sync.apply(db, marker, doc=doc, note="processed")
    except Exception as exc:
        log.write(f"runs DB update failed ({exc}); the next tick will repair it from the marker\n")
    return marker
