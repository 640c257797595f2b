"""The plot of a chaos run, as Jepsen draws it: throughput and latency over time,
with each fault's interval shaded and named.

Written as plain SVG (a few rectangles, lines and dots) rather than with a
plotting library: it is all the figure needs, and it keeps the project's
dependencies to what the service itself uses. Opens in any browser.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from html import escape
from typing import Any

from zkactors.chaos.history import Operation

WIDTH, HEIGHT = 960, 520
LEFT, RIGHT, TOP = 70, 20, 30
PANEL = 190  # height of each panel
GAP = 50
#: Latency dots drawn at most: a ten-minute run has a million operations.
MAX_DOTS = 20_000
COLOURS = {"ok": "#2a9d4b", "fail": "#e0a100", "info": "#d1352b"}
FAULT_COLOURS = {"partition-leader": "#9ecae1", "isolate": "#c6dbef", "bridge": "#bcbddc",
                 "oneway-leader": "#fdd0a2", "loss": "#d9d9d9", "delay": "#dadaeb",
                 "kill": "#fcbba1", "pause": "#c7e9c0", "disk-full": "#fde0ef"}


def render(operations: Iterable[Operation], faults: list[dict[str, Any]],
           title: str) -> str:
    ops = list(operations)
    end = max([op.complete or op.invoke for op in ops]
              + [f.get("end") or 0 for f in faults] + [1.0])
    x_scale = (WIDTH - LEFT - RIGHT) / end

    def x(t: float) -> float:
        return LEFT + t * x_scale

    parts = [(f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
              f'font-family="sans-serif" font-size="11">'),
             f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
             f'<text x="{LEFT}" y="18" font-size="14">{escape(title)}</text>']
    top2 = TOP + PANEL + GAP
    for fault in faults:  # shaded behind both panels
        start, stop = fault["start"], fault.get("end") or fault["start"]
        colour = FAULT_COLOURS.get(fault["kind"], "#eeeeee")
        for y0 in (TOP, top2):
            parts.append(f'<rect x="{x(start):.1f}" y="{y0}" width="{max(1.0, x(stop) - x(start)):.1f}" '
                         f'height="{PANEL}" fill="{colour}" opacity="0.7">'
                         f'<title>{escape(fault["kind"])}: {escape(fault.get("detail", ""))}</title></rect>')
        parts.append(f'<text x="{x(start) + 2:.1f}" y="{TOP + 10}" font-size="9" '
                     f'fill="#555">{escape(fault["kind"])}</text>')
    parts += _throughput(ops, end, x, TOP)
    parts += _latency(ops, x, top2)
    parts += _axis(end, x, TOP + PANEL)
    parts += _axis(end, x, top2 + PANEL)
    legend_x = LEFT
    for outcome, colour in COLOURS.items():
        parts.append(f'<circle cx="{legend_x}" cy="{HEIGHT - 12}" r="4" fill="{colour}"/>'
                     f'<text x="{legend_x + 8}" y="{HEIGHT - 8}">{outcome}</text>')
        legend_x += 60
    parts.append(f'<text x="{legend_x + 20}" y="{HEIGHT - 8}" fill="#555">shaded: faults '
                 '(hover for detail); time in seconds from the first operation</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _throughput(ops: list[Operation], end: float, x: Any, y0: int) -> list[str]:
    """Completed operations per second, by outcome, in one-second buckets."""
    buckets = math.ceil(end)
    counts = {o: [0] * (buckets + 1) for o in COLOURS}
    for op in ops:
        t = op.complete if op.complete is not None else op.invoke
        counts.get(op.outcome, counts["info"])[int(t)] += 1
    top = max([max(c) for c in counts.values()] + [1])
    parts = [f'<text x="8" y="{y0 + 12}">ops/s</text>',
             f'<text x="{LEFT - 6}" y="{y0 + 10}" text-anchor="end">{top}</text>',
             f'<line x1="{LEFT}" y1="{y0}" x2="{LEFT}" y2="{y0 + PANEL}" stroke="#333"/>']
    for outcome, colour in COLOURS.items():
        points = " ".join(f"{x(i + 0.5):.1f},{y0 + PANEL - PANEL * n / top:.1f}"
                          for i, n in enumerate(counts[outcome]))
        parts.append(f'<polyline points="{points}" fill="none" stroke="{colour}" '
                     f'stroke-width="1.5"/>')
    return parts


def _latency(ops: list[Operation], x: Any, y0: int) -> list[str]:
    """Each completed operation's latency (at most MAX_DOTS of them, evenly
    spread), on a log scale from 0.1 ms to 10 s."""
    low, high = math.log10(1e-4), math.log10(10.0)

    def y(seconds: float) -> float:
        v = min(max(math.log10(max(seconds, 1e-4)), low), high)
        return y0 + PANEL - PANEL * (v - low) / (high - low)

    parts = [f'<text x="8" y="{y0 + 12}">latency</text>',
             f'<line x1="{LEFT}" y1="{y0}" x2="{LEFT}" y2="{y0 + PANEL}" stroke="#333"/>']
    for label, seconds in (("0.1 ms", 1e-4), ("1 ms", 1e-3), ("10 ms", 1e-2),
                           ("100 ms", 0.1), ("1 s", 1.0), ("10 s", 10.0)):
        parts.append(f'<text x="{LEFT - 6}" y="{y(seconds) + 4:.1f}" text-anchor="end" '
                     f'font-size="9">{label}</text>')
    done = [op for op in ops if op.complete is not None]
    step = max(1, len(done) // MAX_DOTS)  # a long run: every step-th, evenly
    for op in done[::step]:
        parts.append(f'<circle cx="{x(op.complete):.1f}" cy="{y(op.complete - op.invoke):.1f}" '
                     f'r="1.3" fill="{COLOURS.get(op.outcome, "#999")}" opacity="0.6"/>')
    return parts


def _axis(end: float, x: Any, y: int) -> list[str]:
    step = max(1, int(end // 12) or 1)
    parts = [f'<line x1="{LEFT}" y1="{y}" x2="{x(end):.1f}" y2="{y}" stroke="#333"/>']
    for t in range(0, int(end) + 1, step):
        parts.append(f'<text x="{x(t):.1f}" y="{y + 14}" text-anchor="middle" '
                     f'font-size="9">{t}</text>')
    return parts
