"""Inline SVG charts drawn from the report's numbers: nothing fetched, no script, no library.

Colours are presentation attributes, not ``style`` attributes, so the charts look the same in
the served page (whose CSP allows no inline style attributes) and in a file opened from disk.
Every chart has a ``<title>`` and a ``<desc>``, every bar its own ``<title>`` (a tooltip and
what a screen reader says), and every number shown is also written as text.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

BAR = "#4c78a8"
P50 = "#e45756"
P95 = "#f58518"
INK = "#333333"
GRID = "#dddddd"


TICKS = 4  # gridlines above zero; both axes of the volume chart share them


def axis_step(value: float, *, whole: bool = False) -> float:
    """The step of ``TICKS`` gridlines reaching at least ``value``: 1, 2, 2.5 or 5 times a power
    of ten (never 2.5 or a fraction for ``whole`` numbers, such as counts)."""
    if value <= 0:
        return 1.0
    wanted = value / TICKS
    power = 10 ** math.floor(math.log10(wanted))
    steps = [m * power for m in (1, 2, 2.5, 5, 10)]
    if whole:
        steps = [s for s in steps if s >= 1 and s == int(s)] or [1.0]
    return float(next((s for s in steps if s >= wanted * (1 - 1e-9)), steps[-1]))


def _num(value: float) -> str:
    return f"{value:.0f}" if value >= 10 or value == int(value) else f"{value:.1f}"


def _open(key: str, width: int, height: int, title: str, desc: str) -> list[str]:
    # ``key`` makes the title and desc ids unique in a page that holds several charts.
    n = escape(key)
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}"'
        f' height="{height}" role="img" aria-labelledby="chart{n}-t chart{n}-d"'
        ' font-family="system-ui, sans-serif" font-size="12">',
        f'<title id="chart{n}-t">{escape(title)}</title>',
        f'<desc id="chart{n}-d">{escape(desc)}</desc>',
    ]


def volume_chart(volume: Sequence[dict[str, Any]], width: int = 760, height: int = 280) -> str:
    """Queries per day as bars, latency p50 and p95 per day as lines on a second axis."""
    left, right, top, bottom = 48, 64, 28, 44
    plot_w, plot_h = width - left - right, height - top - bottom
    days = len(volume)
    most = TICKS * axis_step(max((d["queries"] for d in volume), default=0), whole=True)
    slowest = TICKS * axis_step(max((d["p95_ms"] or 0 for d in volume), default=0))
    desc = (
        f"{sum(d['queries'] for d in volume)} queries over {days} days, at most "
        f"{max((d['queries'] for d in volume), default=0)} a day; the lines are the median "
        "and 95th-percentile latency of each day in milliseconds."
    )
    out = _open("volume", width, height, "Queries per day with latency p50 and p95", desc)
    if not days:
        out.append(
            f'<text x="{left}" y="{top + 20}" fill="{INK}">No queries in this period.</text>'
        )
        return "\n".join([*out, "</svg>"])
    step = plot_w / days

    def y_count(v: float) -> float:
        return top + plot_h - v / most * plot_h

    def y_ms(v: float) -> float:
        return top + plot_h - v / slowest * plot_h

    for tick in range(TICKS + 1):
        frac = tick / TICKS
        y = top + plot_h - frac * plot_h
        out.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="{GRID}"/>'
        )
        out.append(
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" fill="{INK}">'
            f"{_num(most * frac)}</text>"
        )
        out.append(
            f'<text x="{left + plot_w + 6}" y="{y + 4:.1f}" fill="{INK}">'
            f"{_num(slowest * frac)}</text>"
        )
    out.append(f'<text x="4" y="{top - 12}" fill="{INK}">queries</text>')
    out.append(f'<text x="{width - 4}" y="{top - 12}" text-anchor="end" fill="{INK}">ms</text>')
    label_every = max(1, math.ceil(days / 12))
    bar_w = max(1.0, step * 0.7)
    for i, d in enumerate(volume):
        x = left + i * step + (step - bar_w) / 2
        y = y_count(d["queries"])
        tip = f"{d['day']}: {d['queries']} queries"
        if d["p50_ms"] is not None:
            tip += f", latency p50 {d['p50_ms']:g} ms, p95 {d['p95_ms']:g} ms"
        out.append(
            f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}"'
            f' height="{top + plot_h - y:.1f}" fill="{BAR}"><title>{escape(tip)}</title></rect>'
        )
        if i % label_every == 0:
            out.append(
                f'<text x="{left + (i + 0.5) * step:.1f}" y="{top + plot_h + 16}"'
                f' text-anchor="middle" fill="{INK}">{escape(d["day"][5:])}</text>'
            )
    for key, colour, dash in (("p50_ms", P50, ""), ("p95_ms", P95, ' stroke-dasharray="6 3"')):
        out.append(_line(volume, key, left, step, y_ms, colour, dash))
    legend_y = height - 8
    out += [
        f'<rect x="{left}" y="{legend_y - 9}" width="12" height="10" fill="{BAR}"/>',
        f'<text x="{left + 16}" y="{legend_y}" fill="{INK}">queries per day</text>',
        f'<line x1="{left + 130}" x2="{left + 152}" y1="{legend_y - 4}" y2="{legend_y - 4}"'
        f' stroke="{P50}" stroke-width="2"/>',
        f'<text x="{left + 156}" y="{legend_y}" fill="{INK}">latency p50</text>',
        f'<line x1="{left + 246}" x2="{left + 268}" y1="{legend_y - 4}" y2="{legend_y - 4}"'
        f' stroke="{P95}" stroke-width="2" stroke-dasharray="6 3"/>',
        f'<text x="{left + 272}" y="{legend_y}" fill="{INK}">latency p95</text>',
    ]
    return "\n".join([*out, "</svg>"])


def _line(
    volume: Sequence[dict[str, Any]],
    key: str,
    left: float,
    step: float,
    y_of: Any,
    colour: str,
    dash: str,
) -> str:
    """One latency line; a day without queries breaks it rather than drawing a false zero."""
    path, pen_down, points = [], False, []
    for i, d in enumerate(volume):
        if d[key] is None:
            pen_down = False
            continue
        x, y = left + (i + 0.5) * step, y_of(d[key])
        path.append(f"{'L' if pen_down else 'M'}{x:.1f},{y:.1f}")
        points.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{colour}"/>')
        pen_down = True
    name = "p50" if key == "p50_ms" else "p95"
    return (
        f'<g class="line-{name}"><path d="{" ".join(path)}" fill="none" stroke="{colour}"'
        f' stroke-width="2"{dash}/>{"".join(points)}</g>'
    )


@dataclass(frozen=True)
class Bar:
    """One horizontal bar: its label, its value and what its tooltip says."""

    label: str
    value: float
    tip: str


def hbar_chart(key: str, bars: Sequence[Bar], title: str, desc: str, width: int = 760) -> str:
    """Labelled horizontal bars, longest first as given, each with its value written after it."""
    label_w, row_h, top = 300, 24, 8
    plot_w = width - label_w - 60
    height = top * 2 + row_h * max(1, len(bars))
    out = _open(key, width, height, title, desc)
    if not bars:
        out.append(f'<text x="8" y="{top + 16}" fill="{INK}">Nothing to show.</text>')
        return "\n".join([*out, "</svg>"])
    most = max(b.value for b in bars) or 1
    for i, b in enumerate(bars):
        y = top + i * row_h
        label = b.label if len(b.label) <= 44 else b.label[:43] + "…"
        w = max(1.0, b.value / most * plot_w)
        out += [
            f'<text x="{label_w - 8}" y="{y + 16}" text-anchor="end" fill="{INK}">'
            f"{escape(label)}</text>",
            f'<rect class="bar" x="{label_w}" y="{y + 4}" width="{w:.1f}" height="{row_h - 8}"'
            f' fill="{BAR}"><title>{escape(b.tip)}</title></rect>',
            f'<text x="{label_w + w + 6:.1f}" y="{y + 16}" fill="{INK}">{_num(b.value)}</text>',
        ]
    return "\n".join([*out, "</svg>"])
