"""The report's HTML page: one self-contained file drawn from the figures of :func:`fulliautomatix.report.build`.

Inline CSS and inline SVG only: no script, no font, no image to fetch; a
Content-Security-Policy that forbids any load makes that a rule the browser
enforces.  Every run in a list links to its history further down (``#run-NAME``).
"""

from __future__ import annotations

from html import escape

from . import svgplot
from .backlog import BACKLOG, LISTED, STAGES, label
from .dates import as_utc, duration

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:0 auto;max-width:1100px;padding:0 18px 40px;color:#212121}
h1{margin:18px 0 4px}h2{border-bottom:2px solid #e0e0e0;margin-top:34px}h3{margin:22px 0 4px}
nav a{margin-right:14px}table{border-collapse:collapse;margin:8px 0}td,th{border-bottom:1px solid #eee;
padding:3px 10px;text-align:left;vertical-align:top}th{background:#fafafa}td.n{text-align:right}
code{background:#f5f5f5;padding:1px 4px;border-radius:3px;white-space:nowrap}.muted{color:#757575}
.kind{font-weight:600}.BAD,.HELD{color:#c62828}.STUCK{color:#ef6c00}.RETRY{color:#1565c0}
svg.plot{display:block;max-width:100%;height:auto;margin:6px 0}svg.plot text{font-size:11px;fill:#424242}
svg.plot .grid{stroke:#eee}svg.plot .empty{fill:#9e9e9e;font-size:14px}svg.plot rect.tip{fill:transparent}
svg.plot rect.tip:hover{fill:rgba(0,0,0,.06)}section.run:target{background:#fffde7}
"""


def link(run: str, known: dict) -> str:
    return f'<a href="#run-{escape(run)}">{escape(run)}</a>' if run in known else escape(run)


def _every(n: int, most: int = 16) -> int:
    return max(1, -(-n // most))


def page(figures: dict, body: list[str]) -> str:
    w = figures["window"]
    head = (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        f'<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"{TITLE}{escape(figures['generated'])}</title><style>{STYLE}</style></head><body>"
        f'<h1>Fulliautomatix report</h1><p class="muted">generated {escape(figures["generated"])}; window '
        f"{escape(w['from'])} to {escape(w['to'])} ({w['days']:g} days); {figures['total']:,} runs in the runs DB, "
        f"{figures['runs_read']:,} read (pending or written in the window)</p>"
        '<nav><a href="#attention">attention</a><a href="#backlog">backlog</a><a href="#throughput">throughput'
        '</a><a href="#durations">time in state</a><a href="#failures">failures</a><a href="#runs">runs</a></nav>'
    )
    return head + "".join(body) + "</body></html>\n"


def counts_table(figures: dict) -> str:
    rows = "".join(
        f"<tr><td>{escape(str(c['raw_status']))}</td><td>{escape(str(c['processed_status']))}</td>"
        f'<td class="n">{c["runs"]:,}</td></tr>'
        for c in figures["counts"]
    )
    return (
        '<h2 id="counts">Runs per state</h2><table><tr><th>raw_status</th><th>processed_status</th><th>runs</th>'
        f'</tr>{rows}<tr><th colspan="2">total</th><th class="n">{figures["total"]:,}</th></tr></table>'
    )


def attention_section(figures: dict) -> str:
    items, known = figures["attention"], figures["timelines"]
    out = ['<h2 id="attention">Runs needing attention</h2>']
    if not items:
        out.append("<p>None: no run is held, stuck, retrying or malformed.</p>")
    else:
        out.append("<table><tr><th>kind</th><th>run</th><th>why</th><th>what fixes it</th></tr>")
        for i in items[:LISTED]:
            out.append(
                f'<tr><td class="kind {i["kind"]}">{i["kind"]}</td><td>{link(i["run"], known)}</td>'
                f"<td>{escape(i['reason'])}</td><td><code>{escape(i['command'])}</code></td></tr>"
            )
        out.append("</table>")
        if len(items) > LISTED:
            out.append(f"<p>and {len(items) - LISTED:,} more: <code>fulliautomatix status</code> lists all.</p>")
    out.append("<h3>Oldest pending runs</h3>")
    rows = "".join(
        f"<tr><td>{link(r['run'], known)}</td><td>{escape(str(r['raw_status']))} / "
        f"{escape(str(r['processed_status']))}</td><td>{escape(r['since'])}</td>"
        f'<td class="n">{duration(r["age_seconds"])}</td></tr>'
        for r in figures["oldest_pending"]
    )
    out.append(
        f"<table><tr><th>run</th><th>state</th><th>left the DAQ</th><th>age</th></tr>{rows}</table>"
        if rows
        else "<p>No pending run.</p>"
    )
    return "".join(out)


def backlog_section(figures: dict) -> str:
    b = figures["backlog"]
    times = [as_utc(t) for t in b["times"]]
    labels, seen = [], set()
    for k, t in enumerate(times):
        day = t.strftime("%m-%d")
        labels.append("" if day in seen or (k == 0 and t.hour >= 12) else day)  # no label half a day wide
        seen.add(day)
    every_day = _every(len(seen))
    kept, k = [], 0
    for text in labels:
        kept.append(text if text and k % every_day == 0 else "")
        k += bool(text)
    tips = [
        f"{t:%Y-%m-%d %H:%M}: "
        + (", ".join(f"{s} {b['states'][s][i]}" for s in BACKLOG if b["states"][s][i]) or "no pending run")
        for i, t in enumerate(times)
    ]
    chart = svgplot.stacked_area(
        "backlog", "Pending runs per state over the window", kept, {s: b["states"][s] for s in BACKLOG}, tips
    )
    return (
        '<h2 id="backlog">Backlog per state</h2><p class="muted">Runs in each state, rebuilt from the run '
        "histories (archived runs are not backlog); hover for the counts at a time.</p>" + chart
    )


def throughput_section(figures: dict) -> str:
    d = figures["daily"]
    days = [x[5:] for x in d["days"]]
    every = _every(len(days))
    series = {
        "transferred": d["transferred_bytes"],
        "compressed": d["compressed_bytes"],
        "archived": d["archived_bytes"],
    }
    return (
        '<h2 id="throughput">Bytes per day</h2><p class="muted">Raw bytes verified on scratch, compressed bytes '
        "written, and bytes archived and verified, by the day each finished.</p>"
        + svgplot.bars("bytes", "Bytes per day by stage", days, series, svgplot.fmt_bytes, every=every)
        + '<h3>Transfer rate</h3><p class="muted">Median rsync rate of the day\'s transfers.</p>'
        + svgplot.line("rate", "Transfer MB/s per day", days, d["transfer_mb_per_s"], "MB/s", every=every)
    )


def durations_section(figures: dict) -> str:
    out = [
        '<h2 id="durations">Time in state</h2><p class="muted">Distributions over the runs that finished '
        "the step within the window.</p>"
    ]
    for key, s in figures["durations"].items():
        fmt = (lambda v: f"{v:.0%}") if key == "walltime_used" else duration
        stats = (
            f"{s['n']:,} runs; median {fmt(s['median'])}, 90% within {fmt(s['p90'])}, longest {fmt(s['max'])}"
            if s["n"]
            else "no run in this window"
        )
        if key == "walltime_used" and not s["n"]:
            stats += " (runs processed here have no requested walltime)"
        out.append(
            f'<h3>{escape(s["title"])}</h3><p class="muted">{escape(stats)}</p>'
            + svgplot.histogram(key, s["title"], s["bins"])
        )
    return "".join(out)


def failures_section(figures: dict) -> str:
    f = figures["failures"]
    days = [x[5:] for x in f["days"]]
    chart = svgplot.bars(
        "failures",
        "Failed attempts per day by stage",
        days,
        {s: f["stages"][s] for s in STAGES},
        stacked=True,
        every=_every(len(days)),
    )
    out = [
        '<h2 id="failures">Failures per day</h2><p class="muted">Failed attempts recorded in the run histories '
        "(a transfer back to acquired, a processing failure, a compression back to ondeck, an archive back to "
        "compressed).</p>",
        chart,
        "<h3>Most frequent errors</h3>",
    ]
    if not f["top_errors"]:
        out.append("<p>No run carries an error now.</p>")
    else:
        rows = "".join(
            f'<tr><td>{escape(e["stage"])}</td><td class="n">{e["count"]}</td><td>{escape(e["message"])}'
            f"</td><td>{link(e['example'], figures['timelines'])}</td></tr>"
            for e in f["top_errors"]
        )
        out.append(
            '<p class="muted">The last error of each run that carries one (RUN stands for its name).</p>'
            f"<table><tr><th>stage</th><th>runs</th><th>message</th><th>for example</th></tr>{rows}</table>"
        )
    return "".join(out)


def segments(t: dict) -> tuple[list[tuple[str, float, float]], list[tuple[float, str]]]:
    """A run's states as fractions of its life so far, and a few time ticks."""
    history = t["history"]
    times = [as_utc(e["at"]) for e in history]
    start = as_utc(t["start"]) or next((x for x in times if x), None)
    end = as_utc(t["until"])
    if start is None or end is None or end <= start:
        return [], []
    span = (end - start).total_seconds()
    raw = next((e.get("from") for e in history if e.get("field") == "raw_status"), t["raw_status"])
    proc = next((e.get("from") for e in history if e.get("field") == "processed_status"), t["processed_status"])
    out, at = [], start
    for entry, when in zip(history, times):
        if when is None:
            continue
        out.append((label(raw, proc) or "archived", at, when))
        raw = entry["to"] if entry.get("field") == "raw_status" else raw
        proc = entry["to"] if entry.get("field") == "processed_status" else proc
        at = max(at, when)
    out.append((label(raw, proc) or "archived", at, end))
    segs = [(s, (a - start).total_seconds() / span, (b - start).total_seconds() / span) for s, a, b in out if b > a]
    ticks = [(0.0, f"{start:%m-%d %H:%M}"), (1.0, f"{end:%m-%d %H:%M}")]
    return segs, ticks


def runs_section(figures: dict) -> str:
    out = [
        '<h2 id="runs">Run histories</h2><p class="muted">Every run listed above: its states along its life '
        "and each recorded change.</p>"
    ]
    for run, t in figures["timelines"].items():
        segs, ticks = segments(t)
        rows = "".join(
            f"<tr><td>{escape(e['at'])}</td><td>{escape(str(e.get('field')))}</td><td>"
            f"{escape(str(e.get('from')))} &rarr; {escape(str(e.get('to')))}</td><td>"
            f"{escape(str(e.get('host', '')))}</td><td>{escape(str(e.get('note') or ''))}</td></tr>"
            for e in t["history"]
        )
        out.append(
            f'<section class="run" id="run-{escape(run)}"><h3>{escape(run)} <span class="muted">'
            f"{escape(str(t['raw_status']))} / {escape(str(t['processed_status']))}</span></h3>"
            + svgplot.timeline(f"run-{run}", f"run {run} along its life", segs, ticks)
            + (
                f"<table><tr><th>at</th><th>field</th><th>change</th><th>host</th><th>note</th></tr>{rows}</table>"
                if rows
                else "<p>No history yet: written by the DAQ, not yet touched.</p>"
            )
            + '<p><a href="#attention">back to the lists</a></p></section>'
        )
    return "".join(out)


TITLE = "<title>Fulliautomatix report "  # in the first few hundred bytes of every page (see page())


def is_report(path) -> bool:
    """Whether the existing file at path is a page this module wrote (only such a file is overwritten)."""
    try:
        with open(path, "rb") as fh:
            return TITLE.encode() in fh.read(2048)
    except OSError:
        return False


def render(figures: dict) -> str:
    """The whole page."""
    return page(
        figures,
        [
            attention_section(figures),
            counts_table(figures),
            backlog_section(figures),
            throughput_section(figures),
            durations_section(figures),
            failures_section(figures),
            runs_section(figures),
        ],
    )
