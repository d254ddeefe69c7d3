"""On a terminal, one line that shows what the tick is doing right now.

The cron wrapper sends Snakemake's output to the tick's log, so a person who
runs ``fulliautomatix`` by hand would otherwise see nothing for the length of
a tick.  :class:`LiveProgress` follows that log (which jobs started, which
finished) and each running transfer's own log (rsync's latest ``progress:``
line), and redraws one line about once a second.  Under cron (no terminal)
it is never created: nothing is printed.
"""

from __future__ import annotations

import re
import shutil
import sys
import time
from pathlib import Path

STARTED = re.compile(r"^(?:local)?(?:rule|checkpoint) (\w+):$")
JOBID = re.compile(r"^\s+jobid: (\d+)$")
WILDCARDS = re.compile(r"^\s+wildcards: (.*)$")
FINISHED = re.compile(r"^Finished jobid: (\d+)")
SHOWN = {
    "sync_runs_db": "planning",
    "transfer_run": "transfer",
    "process_run": "process",
    "compress_run": "compress",
    "close_batches": "batching",
    "archive_batch": "archive",
    "audit_archive": "audit",
}


class LiveProgress:
    """Call it every poll round while the tick's Snakemake runs; call close() at the end."""

    def __init__(self, log_file: Path, work_dir: str | Path, stream=None):
        self.log_file, self.logs = Path(log_file), Path(work_dir) / "logs"
        self.stream = stream or sys.stderr
        self.offset, self.pending_rule, self.pending_id = 0, None, None
        self.running: dict[str, tuple[str, str]] = {}  # jobid -> (rule, run or batch)
        self.done, self.started, self.width = 0, time.monotonic(), 0

    @staticmethod
    def wanted(stream=None) -> bool:
        """Only on a terminal: quiet under cron."""
        stream = stream or sys.stderr
        return hasattr(stream, "isatty") and stream.isatty()

    def _follow(self) -> None:
        try:
            with open(self.log_file, errors="replace") as fh:
                fh.seek(self.offset)
                lines = fh.read().splitlines()
                self.offset = fh.tell()
        except OSError:
            return
        for line in lines:
            if m := STARTED.match(line):
                self.pending_rule, self.pending_id = m.group(1), None
            elif self.pending_rule and (m := JOBID.match(line)):
                self.pending_id = m.group(1)
                self.running[self.pending_id] = (self.pending_rule, "")
            elif self.pending_id and (m := WILDCARDS.match(line)):
                self.running[self.pending_id] = (self.pending_rule, m.group(1).split("=", 1)[-1])
            elif m := FINISHED.match(line):
                self.done += self.running.pop(m.group(1), None) is not None

    def _rsync_progress(self, run: str) -> str:
        """The latest rsync progress line of a running transfer: "45% 120.00MB/s"."""
        try:
            with open(self.logs / "transfer_run" / f"{run}.log", errors="replace") as fh:
                lines = [ln for ln in fh.read().splitlines()[-20:] if ln.startswith("progress: ")]
        except OSError:
            return ""
        words = lines[-1].split() if lines else []
        return " ".join(w for w in words if w.endswith("%") or w.endswith("/s"))

    def line(self) -> str:
        self._follow()
        parts = []
        for rule, name in list(self.running.values())[:4]:
            extra = self._rsync_progress(name) if rule == "transfer_run" and name else ""
            parts.append(" ".join(p for p in (SHOWN.get(rule, rule), name, f"({extra})" if extra else "") if p))
        more = f" +{len(self.running) - 4}" if len(self.running) > 4 else ""
        elapsed = time.monotonic() - self.started
        return f"[{elapsed:4.0f} s] {self.done} jobs done; " + (", ".join(parts) + more if parts else "waiting")

    def __call__(self) -> None:
        text = self.line()[: max(20, shutil.get_terminal_size((100, 20)).columns - 1)]
        self.stream.write("\r" + text.ljust(self.width))
        self.stream.flush()
        self.width = len(text)

    def close(self) -> None:
        if self.width:
            self.stream.write("\r" + " " * self.width + "\r")
            self.stream.flush()
