"""Small charts as inline SVG text: stacked areas, bars, lines, histograms and one run's timeline.

No dependency, no script, no font or file to fetch: each function returns
one ``<svg class="plot">`` element whose marks carry ``<title>`` tooltips,
so the report opens offline in any browser.  Every drawn mark has the class
``mark`` (the browser test counts them).
"""

from __future__ import annotations

import math
from html import escape

W, H = 860, 260
LEFT, RIGHT, TOP, BOTTOM = 70, 150, 16, 46  # margins; the legend sits in the right one
PALETTE = {
    "acquired": "#9e9e9e",
    "transferring": "#64b5f6",
    "ondeck": "#1e88e5",
    "queued": "#ffb74d",
    "processing": "#fb8c00",
    "failed": "#e53935",
    "processed": "#8e24aa",
    "compressing": "#4db6ac",
    "compressed": "#00897b",
    "archiving": "#c0ca33",
    "archived": "#7cb342",
    "transferred": "#1e88e5",
    "transfer": "#1e88e5",
    "process": "#fb8c00",
    "compress": "#00897b",
    "archive": "#7cb342",
}
FALLBACK = ("#5c6bc0", "#26a69a", "#ef5350", "#ab47bc", "#ffa726", "#8d6e63")


def color(name: str, i: int = 0) -> str:
    return PALETTE.get(name, FALLBACK[i % len(FALLBACK)])


def nice_max(value: float, ticks: int = 4) -> float:
    """The top of an axis at or above value, split into `ticks` round steps (1, 2, 2.5 or 5 times a power of ten)."""
    if value <= 0:
        return float(ticks)
    power = 10 ** math.floor(math.log10(value / ticks))
    for step in (1, 2, 2.5, 5, 10):
        if value <= ticks * step * power:
            return ticks * step * power
    return ticks * 10 * power


def fmt_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1000 or unit == "PB":
            return f"{n:.0f} {unit}" if unit == "B" or n >= 100 else f"{n:.3g} {unit}"
        n /= 1000
    return str(n)


def fmt_number(n: float) -> str:
    return f"{n:,.0f}" if abs(n) >= 10 or n == int(n) else f"{n:.2g}"


class Frame:
    """The plotting area of one chart: scales, axes, legend."""

    def __init__(self, name: str, title: str, n: int, ymax: float, fmt=fmt_number, height: int = H, right: int = RIGHT):
        self.name, self.title, self.n, self.fmt, self.h, self.right = name, title, max(n, 1), fmt, height, right
        self.ymax = nice_max(ymax)
        self.parts: list[str] = []

    def x(self, i: float) -> float:
        span = W - LEFT - self.right
        return LEFT + span * (i / (self.n - 1) if self.n > 1 else 0.5)

    def y(self, v: float) -> float:
        return self.h - BOTTOM - (self.h - TOP - BOTTOM) * (v / self.ymax)

    def axes(self, xlabels: list[str], every: int = 1) -> None:
        p = self.parts
        for k in range(5):
            v = self.ymax * k / 4
            y = self.y(v)
            p.append(f'<line x1="{LEFT}" x2="{W - self.right}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
            p.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{escape(self.fmt(v))}</text>')
        for i, text in enumerate(xlabels):
            if text and i % every == 0:
                p.append(
                    f'<text x="{self.x(i):.1f}" y="{self.h - BOTTOM + 16}" text-anchor="middle">{escape(text)}</text>'
                )

    def legend(self, names: list[str]) -> None:
        x = W - self.right
        for i, name in enumerate(names):
            y = TOP + 4 + 16 * i
            self.parts.append(
                f'<rect x="{x + 12}" y="{y}" width="11" height="11" fill="{color(name, i)}"/>'
                f'<text x="{x + 28}" y="{y + 10}">{escape(name)}</text>'
            )

    def svg(self, empty: bool = False) -> str:
        if empty:
            self.parts.append(
                f'<text x="{(LEFT + W - self.right) / 2}" y="{self.h / 2}" text-anchor="middle" '
                'class="empty">nothing in this window</text>'
            )
        return (
            f'<svg class="plot" data-plot="{escape(self.name)}" viewBox="0 0 {W} {self.h}" width="{W}" '
            f'height="{self.h}" role="img" aria-label="{escape(self.title)}" xmlns="http://www.w3.org/2000/svg">'
            f"<title>{escape(self.title)}</title>" + "".join(self.parts) + "</svg>"
        )


def stacked_area(
    name: str,
    title: str,
    xlabels: list[str],
    series: dict[str, list[float]],
    tips: list[str] | None = None,
    every: int = 1,
) -> str:
    """One band per series, stacked in the given order (first at the bottom)."""
    n = len(xlabels)
    totals = [sum(s[i] for s in series.values()) for i in range(n)]
    f = Frame(name, title, n, max(totals, default=0))
    f.axes(xlabels, every)
    below = [0.0] * n
    shown = [k for k, s in series.items() if any(s)]
    for i, key in enumerate(series):
        values = series[key]
        if key not in shown:
            continue
        top = [b + v for b, v in zip(below, values)]
        pts = [f"{f.x(k):.1f},{f.y(top[k]):.1f}" for k in range(n)]
        pts += [f"{f.x(k):.1f},{f.y(below[k]):.1f}" for k in reversed(range(n))]
        peak = max(values)
        f.parts.append(
            f'<polygon class="mark" points="{" ".join(pts)}" fill="{color(key, i)}" fill-opacity="0.85">'
            f"<title>{escape(key)}: up to {peak:,.0f} runs</title></polygon>"
        )
        below = top
    if tips:  # invisible columns, one tooltip per sample with every state's count
        width = (W - LEFT - f.right) / max(n - 1, 1)
        for k in range(n):
            f.parts.append(
                f'<rect class="tip" x="{f.x(k) - width / 2:.1f}" y="{TOP}" width="{width:.1f}" '
                f'height="{f.h - TOP - BOTTOM}"><title>{escape(tips[k])}</title></rect>'
            )
    f.legend(shown)
    return f.svg(empty=not shown)


def bars(
    name: str,
    title: str,
    xlabels: list[str],
    series: dict[str, list[float]],
    fmt=fmt_number,
    stacked: bool = False,
    every: int = 1,
    height: int = H,
    legend: bool = True,
) -> str:
    """Bars per category: side by side (grouped) or stacked."""
    n = len(xlabels)
    if stacked:
        top = max((sum(s[i] for s in series.values()) for i in range(n)), default=0)
    else:
        top = max((max(s, default=0) for s in series.values()), default=0)
    f = Frame(name, title, n + 2, top, fmt, height, RIGHT if legend else 20)  # bars on ticks 1..n, clear of the ends
    f.axes([""] + list(xlabels) + [""], every)
    slot = (W - LEFT - f.right) / (n + 1)
    width = slot * 0.8 / (1 if stacked else max(len(series), 1))
    below = [0.0] * n
    drawn = False
    for j, (key, values) in enumerate(series.items()):
        for i, v in enumerate(values):
            if not v:
                continue
            x = f.x(i + 1) - slot * 0.4 + (0 if stacked else j * width)
            y0, y1 = f.y(below[i]), f.y(below[i] + v)
            f.parts.append(
                f'<rect class="mark" x="{x:.1f}" y="{y1:.1f}" width="{width:.1f}" '
                f'height="{max(y0 - y1, 0.5):.1f}" fill="{color(key, j)}">'
                f"<title>{escape(xlabels[i])}: {escape(key)} {escape(fmt(v))}</title></rect>"
            )
            drawn = True
            if stacked:
                below[i] += v
    if legend:
        f.legend(list(series))
    return f.svg(empty=not drawn)


def line(name: str, title: str, xlabels: list[str], values: list[float | None], unit: str, every: int = 1) -> str:
    """A line through the known values (None: no point), one dot per value."""
    known = [v for v in values if v is not None]
    f = Frame(name, title, len(xlabels) + 2, max(known, default=0), lambda v: f"{v:.3g} {unit}")
    f.axes([""] + list(xlabels) + [""], every)
    pts = [(f.x(i + 1), f.y(v), xlabels[i], v) for i, v in enumerate(values) if v is not None]
    if len(pts) > 1:
        f.parts.append(
            '<polyline class="mark" fill="none" stroke="#1e88e5" stroke-width="2" points="'
            + " ".join(f"{x:.1f},{y:.1f}" for x, y, _, _ in pts)
            + '"/>'
        )
    for x, y, day, v in pts:
        f.parts.append(
            f'<circle class="mark" cx="{x:.1f}" cy="{y:.1f}" r="4" fill="#1e88e5">'
            f"<title>{escape(day)}: {v:.3g} {escape(unit)}</title></circle>"
        )
    return f.svg(empty=not pts)


def histogram(name: str, title: str, bins: list[dict], key: str = "runs") -> str:
    """Counts per bin, as bars."""
    return bars(name, title, [b["label"] for b in bins], {key: [b["count"] for b in bins]}, height=220, legend=False)


def timeline(name: str, title: str, segments: list[tuple[str, float, float]], ticks: list[tuple[float, str]]) -> str:
    """One run's states along time: segments (state, start, end) in [0, 1] of the band's width."""
    names = list(dict.fromkeys(s for s, _, _ in segments))
    f = Frame(name, title, 2, 1, height=max(70, TOP + 8 + 16 * len(names)))
    span = W - LEFT - RIGHT
    for i, (state, a, b) in enumerate(segments):
        f.parts.append(
            f'<rect class="mark" x="{LEFT + span * a:.1f}" y="14" width="{max(span * (b - a), 1.5):.1f}" '
            f'height="24" fill="{color(state, i)}"><title>{escape(state)}</title></rect>'
        )
    for pos, text in ticks:
        anchor = "start" if pos <= 0 else "end" if pos >= 1 else "middle"
        f.parts.append(f'<text x="{LEFT + span * pos:.1f}" y="56" text-anchor="{anchor}">{escape(text)}</text>')
    f.legend(names)
    return f.svg(empty=not segments)
