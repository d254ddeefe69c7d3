"""`fulliautomatix report`: the last days of the runs DB as figures (``--json``) and as one offline HTML page.

What is read, each once: the counts per state (as `status` reads them), the
pending runs and the runs written within the window (one equality query per
day on the ``updated_day`` index), with their histories.  A run written before the
window kept its state through it, so these are all the runs whose past in
the window can differ from their present: the backlog over time is rebuilt
from their histories, and nothing reads the whole collection (which takes
about 15 s at 100,000 runs on nx-27017).  One pass over those documents
(:class:`Aggregator`) computes every figure; :mod:`fulliautomatix.report_html`
draws them.
"""

from __future__ import annotations

import bisect
import contextlib
import datetime as _dt
import json
import math
import os
import re
import statistics
import sys
from collections import Counter
from pathlib import Path

from . import attention, states, status
from .backlog import BACKLOG, LISTED, STAGES, label
from .dates import as_utc, day_number, iso, now as utcnow

SAMPLES = 240  # points of the backlog curve over the window
# History entries that record a failed attempt: (field, from or None for any, to) -> stage.
FAILED = {
    (states.RAW, "transferring", "acquired"): "transfer",
    (states.PROCESSED, None, "failed"): "process",
    (states.RAW, "compressing", "ondeck"): "compress",
    (states.RAW, "archiving", "compressed"): "archive",
}
ERRORS = {
    "transfer": ("transfer", "error"),
    "process": ("processing", "log_tail"),
    "compress": ("compressed", "error"),
    "archive": ("archive", "error"),
}
DURATIONS = {
    "daq_to_ondeck": "DAQ to ondeck (written by the DAQ until verified on scratch)",
    "queue_wait": "queue wait (queued until the job started)",
    "processing": "processing time (the processor's run)",
    "compressed_to_archived": "compressed until archived (waiting for the batch, then the archive)",
}
EDGES = (10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 43200, 86400, 172800, 604800)
EDGE_LABELS = (
    "<10s",
    "10-30s",
    "30s-1m",
    "1-2m",
    "2-5m",
    "5-10m",
    "10-30m",
    "30m-1h",
    "1-2h",
    "2-6h",
    "6-12h",
    "12-24h",
    "1-2d",
    "2-7d",
    ">7d",
)
USED_EDGES = (0.25, 0.5, 0.75, 1.0, 1.25, 1.5)
USED_LABELS = ("<25%", "25-50%", "50-75%", "75-100%", "100-125%", "125-150%", ">150%")


class Aggregator:
    """Every figure of the report, accumulated one run document at a time."""

    def __init__(self, since: _dt.datetime, until: _dt.datetime, samples: int = SAMPLES):
        self.since, self.until, self.samples = since, until, samples
        self.step = max((until - since).total_seconds() / samples, 1e-3)
        self.diff = {name: [0] * (samples + 2) for name in BACKLOG}
        first = since.date()
        self.days = [(first + _dt.timedelta(days=i)).isoformat() for i in range((until.date() - first).days + 1)]
        zeros = [0] * len(self.days)
        self.bytes = {k: list(zeros) for k in ("transferred", "compressed", "archived")}
        self.rates: list[list[float]] = [[] for _ in self.days]
        self.failures = {stage: list(zeros) for stage in STAGES}
        self.durations: dict[str, list[float]] = {k: [] for k in DURATIONS}
        self.walltime_used: list[float] = []
        self.errors: Counter = Counter()
        self.example: dict[tuple[str, str], str] = {}

    def _day(self, t: _dt.datetime | None) -> int | None:
        if t is None or t < self.since or t > self.until:
            return None
        return (t.date() - self.since.date()).days

    def add(self, doc: dict) -> None:
        history = [e for e in (doc.get("history") or []) if isinstance(e, dict)]
        times = [as_utc(e.get("at")) for e in history]
        self._backlog(doc, history, times)
        self._durations(doc, history, times)
        for entry, t in zip(history, times):
            day = self._day(t)
            if day is not None:
                stage = FAILED.get((entry.get("field"), entry.get("from"), entry.get("to"))) or FAILED.get(
                    (entry.get("field"), None, entry.get("to"))
                )
                if stage:
                    self.failures[stage][day] += 1
        self._bytes(doc)
        self._errors(doc)

    def _segment(self, name: str | None, start: _dt.datetime, end: _dt.datetime | None) -> None:
        """The run was in backlog state `name` from start to end (None: still is)."""
        if name is None or (end is not None and end <= self.since):
            return
        first = max(0, math.ceil((start - self.since).total_seconds() / self.step))
        last = (
            self.samples + 1
            if end is None
            else min(self.samples + 1, math.ceil((end - self.since).total_seconds() / self.step))
        )
        if first < last:
            self.diff[name][first] += 1
            self.diff[name][last] -= 1

    def _backlog(self, doc: dict, history: list[dict], times: list) -> None:
        raw = next((e.get("from") for e in history if e.get("field") == states.RAW), doc.get(states.RAW))
        proc = next((e.get("from") for e in history if e.get("field") == states.PROCESSED), doc.get(states.PROCESSED))
        t = as_utc(doc.get("start")) or next((x for x in times if x), None) or self.since
        for entry, when in zip(history, times):
            if when is None:
                continue
            self._segment(label(raw, proc), t, when)
            if entry.get("field") == states.RAW:
                raw = entry.get("to")
            elif entry.get("field") == states.PROCESSED:
                proc = entry.get("to")
            t = max(t, when)
        self._segment(label(doc.get(states.RAW), doc.get(states.PROCESSED)), t, None)

    def _durations(self, doc: dict, history: list[dict], times: list) -> None:
        start = as_utc(doc.get("start")) or next((x for x in times if x), None)
        since_state: dict[tuple[str, str], _dt.datetime] = {}
        for entry, t in zip(history, times):
            if t is None:
                continue
            key, to = (entry.get("field"), entry.get("to")), entry.get("to")
            inside = self._day(t) is not None
            if key == (states.RAW, "ondeck") and inside and start and entry.get("from") == "transferring":
                self.durations["daq_to_ondeck"].append((t - start).total_seconds())
            elif key == (states.PROCESSED, "processing") and inside and (states.PROCESSED, "queued") in since_state:
                self.durations["queue_wait"].append((t - since_state[(states.PROCESSED, "queued")]).total_seconds())
            elif key == (states.RAW, "archived") and inside and (states.RAW, "compressed") in since_state:
                self.durations["compressed_to_archived"].append(
                    (t - since_state[(states.RAW, "compressed")]).total_seconds()
                )
            if entry.get("field") == states.PROCESSED:
                since_state = {k: v for k, v in since_state.items() if k[0] != states.PROCESSED}
            if key != (states.RAW, "compressed") or entry.get("from") == "compressing":  # not a failed archive
                since_state[(entry.get("field"), to)] = t
        p = doc.get("processing") or {}
        if self._day(as_utc(p.get("finished"))) is not None and isinstance(p.get("seconds"), (int, float)):
            self.durations["processing"].append(float(p["seconds"]))
            wall = _walltime_seconds(p.get("walltime"))
            if wall:
                self.walltime_used.append(float(p["seconds"]) / wall)

    def _bytes(self, doc: dict) -> None:
        t = doc.get("transfer") or {}
        day = self._day(as_utc(t.get("finished")))
        if day is not None and not t.get("error"):
            self.bytes["transferred"][day] += int(t.get("bytes") or 0)
            rate = t.get("mb_per_second")
            if not isinstance(rate, (int, float)) and t.get("seconds"):
                rate = int(t.get("bytes") or 0) / 1e6 / float(t["seconds"])
            if isinstance(rate, (int, float)):
                self.rates[day].append(float(rate))
        c = doc.get("compressed") or {}
        day = self._day(as_utc(c.get("at")))
        if day is not None:
            self.bytes["compressed"][day] += int(c.get("bytes") or 0)
        a = doc.get("archive") or {}
        day = self._day(as_utc(a.get("verified")))
        if day is not None:
            self.bytes["archived"][day] += int(a.get("bytes") or c.get("bytes") or 0)

    def _errors(self, doc: dict) -> None:
        name = str(doc.get("name"))
        for stage, (sub, key) in ERRORS.items():
            err = (doc.get(sub) or {}).get(key)
            if not err or (stage == "process" and doc.get(states.PROCESSED) != "failed"):
                continue
            text = str(err).strip().splitlines()[-1] if stage == "process" else str(err)
            text = re.sub(r"\s+", " ", text.replace(name, "RUN"))[:300]
            self.errors[(stage, text)] += 1
            self.example.setdefault((stage, text), name)

    def figures(self) -> dict:
        step = _dt.timedelta(seconds=self.step)
        backlog = {}
        for name, diff in self.diff.items():
            running, series = 0, []
            for k in range(self.samples + 1):
                running += diff[k]
                series.append(running)
            backlog[name] = series
        durations = {k: summary(v, EDGES, EDGE_LABELS) | {"title": DURATIONS[k]} for k, v in self.durations.items()}
        durations["walltime_used"] = summary(self.walltime_used, USED_EDGES, USED_LABELS) | {
            "title": "processing time / requested walltime (batch jobs)"
        }
        rates = [round(statistics.median(r), 2) if r else None for r in self.rates]
        top = [
            {"stage": s, "message": m, "count": n, "example": self.example[(s, m)]}
            for (s, m), n in self.errors.most_common(10)
        ]
        return {
            "backlog": {"times": [iso(self.since + step * k) for k in range(self.samples + 1)], "states": backlog},
            "daily": {
                "days": self.days,
                **{f"{k}_bytes": v for k, v in self.bytes.items()},
                "transfer_mb_per_s": rates,
            },
            "durations": durations,
            "failures": {"days": self.days, "stages": self.failures, "top_errors": top},
        }


def _walltime_seconds(value) -> int | None:
    from .batch import walltime

    try:
        return walltime.parse(value) if value else None
    except (ValueError, TypeError):
        return None


def summary(values: list[float], edges: tuple, labels: tuple) -> dict:
    """n, median, 90th percentile and maximum, and counts per bin (bins split at `edges`)."""
    counts = [0] * (len(edges) + 1)
    for v in values:
        counts[bisect.bisect_left(edges, v)] += 1  # a value at an edge counts below it
    ordered = sorted(values)
    pick = (lambda q: round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)) if ordered else (lambda q: None)
    return {
        "n": len(values),
        "median": pick(0.5),
        "p90": pick(0.9),
        "max": pick(1.0),
        "bins": [{"label": lab, "count": n} for lab, n in zip(labels, counts)],
    }


def timeline(doc: dict, until: _dt.datetime) -> dict:
    """One run's life for the page: its history and its states as segments."""
    history = [e for e in (doc.get("history") or []) if isinstance(e, dict)]
    entries = [{**{k: v for k, v in e.items() if k != "at"}, "at": iso(e.get("at"))} for e in history]
    return {
        "run": str(doc.get("name")),
        "raw_status": doc.get(states.RAW),
        "processed_status": doc.get(states.PROCESSED),
        "start": iso(doc.get("start")),
        "until": iso(until),
        "history": entries,
    }


def oldest(pending: list[dict], until: _dt.datetime, n: int = 10) -> list[dict]:
    """The n pending runs that left the DAQ longest ago."""
    rows = []
    for doc in pending:
        first = as_utc(doc.get("start")) or next(
            (t for t in (as_utc(e.get("at")) for e in doc.get("history") or [] if isinstance(e, dict)) if t), None
        )
        if first is not None and isinstance(doc.get("name"), str):
            rows.append(
                {
                    "run": doc["name"],
                    "raw_status": doc.get(states.RAW),
                    "processed_status": doc.get(states.PROCESSED),
                    "since": iso(first),
                    "age_seconds": round((until - first).total_seconds(), 1),
                }
            )
    return sorted(rows, key=lambda r: -r["age_seconds"])[:n]


def build(db, config: dict, days: float | None = None, until: _dt.datetime | None = None) -> dict:
    """Every figure of the report over the last `days` days (report.days by default)."""
    until = until or utcnow()
    days = float(config["report"]["days"] if days is None else days)
    since = until - _dt.timedelta(days=days)
    counts = db.counts()
    pending = db.pending(history=True)
    keys = [day_number(since + _dt.timedelta(days=k)) for k in range((until.date() - since.date()).days + 1)]
    docs = {d["_id"]: d for d in db.written_on(keys)}
    docs.update({d["_id"]: d for d in pending})
    agg = Aggregator(since, until)
    for doc in docs.values():
        agg.add(doc)
    items = attention.gather(db, config, until, pending, raw_values={raw for raw, _ in counts})
    figures = {
        "generated": iso(until),
        "window": {"from": iso(since), "to": iso(until), "days": days},
        "counts": status.as_json(counts, [])["counts"],
        "total": sum(counts.values()),
        "runs_read": len(docs),
        **agg.figures(),
        "attention": [i.as_dict() for i in items],
        "oldest_pending": oldest(pending, until),
    }
    shown = {i.run for i in items[:LISTED]} | {r["run"] for r in figures["oldest_pending"]}
    shown |= {e["example"] for e in figures["failures"]["top_errors"]}
    by_name = {str(d.get("name")): d for d in docs.values()}
    figures["timelines"] = {run: timeline(by_name[run], until) for run in sorted(shown) if run in by_name}
    return figures


def command(config: dict, days: float | None, out, as_json: bool) -> None:
    """`fulliautomatix report`: the page at `out` (else report.path); with `as_json` the figures on stdout
    instead (and the page only when `out` is given).  ReportError: the page could not be written."""
    from . import runsdb

    with runsdb.connect(config) as db:
        db.ensure_indexes()
        figures = build(db, config, days)
    if as_json:
        print(json.dumps(figures, indent=1, default=str))
    if out or not as_json:
        fix = "give --out a file you can write" if out else CONFIG_FIX
        path = write_html(figures, out or default_path(config), fix)
        print(f"report written to {path}", file=sys.stderr if as_json else sys.stdout)


class ReportError(Exception):
    """The page cannot be written where it was asked for: one line naming the path, the cause and the fix."""


CONFIG_FIX = 'set report.path in the config to a file you can write ("": <log_dir>/report.html)'


def default_path(config: dict) -> Path:
    return Path(config["report"]["path"] or Path(config["log_dir"]) / "report.html")


def write_html(figures: dict, path: str | os.PathLike, fix: str = CONFIG_FIX) -> Path:
    """Write the page atomically (a web server never serves half a file): a temporary file beside it,
    renamed over it, and removed whatever stops the writing.  ReportError (ending in `fix`) when the
    path is a directory or cannot be written."""
    from . import report_html

    path = Path(path)
    if path.is_dir():
        example = path / "report.html"
        raise ReportError(f"report: {path} is a directory, not a file; nothing written: {fix} (e.g. {example})")
    if path.exists() and not report_html.is_report(path):  # --out /etc/passwd, as root, replaced it
        raise ReportError(f"report: {path} exists and is not a Fulliautomatix report; it is never replaced: {fix}")
    page = report_html.render(figures)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(page, encoding="utf-8")
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            where = f" ({exc.filename})" if exc.filename and str(exc.filename) != str(path) else ""
            raise ReportError(f"report: cannot write {path}: {exc.strerror or exc}{where}; {fix}") from None
        raise
    return path


def write_tick_report(db, config: dict, marker_path: str, log) -> None:
    """The write_report rule: the report at report.path, and a marker saying so for this tick."""
    from . import markers

    figures = build(db, config)
    path = write_html(figures, default_path(config))
    kinds = Counter(i["kind"] for i in figures["attention"])
    log.write(
        f"report written to {path} ({figures['runs_read']} runs read; attention: "
        f"{', '.join(f'{k} {n}' for k, n in sorted(kinds.items())) or 'none'})\n"
    )
    markers.write(
        marker_path,
        {
            "path": str(path),
            "generated": figures["generated"],
            "runs_read": figures["runs_read"],
            "attention": dict(kinds),
        },
    )
