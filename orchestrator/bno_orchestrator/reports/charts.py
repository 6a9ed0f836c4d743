"""Deterministic SVG charts for the weekly report: burn-up (scope vs done) and velocity (done per week).

Plain SVG text with coordinates printed to one decimal, attributes in a fixed order and every label
escaped, so the same data always gives the same bytes (and a title cannot inject markup).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from markupsafe import escape

from bno_orchestrator.reports.viewmodel import BurnPoint, VelocityWeek

WIDTH = 640
HEIGHT = 260
LEFT, RIGHT, TOP, BOTTOM = 44.0, 16.0, 28.0, 40.0
FONT = 'font-family="sans-serif" font-size="11"'
SCOPE_COLOR = "#8c8c8c"
DONE_COLOR = "#2e7d32"
BAR_COLOR = "#1565c0"
MEAN_COLOR = "#ef6c00"


def _f(value: float) -> str:
    text = f"{value:.1f}"
    return "0.0" if text == "-0.0" else text


def _nice_max(value: float) -> int:
    """The smallest of 1, 2, 5 x 10^k at or above ``value`` (at least 1)."""
    if value <= 1:
        return 1
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if step * power >= value:
            return int(step * power)
    return int(10 * power)


def _text(x: float, y: float, label: str, anchor: str = "middle", extra: str = "") -> str:
    return (f'<text x="{_f(x)}" y="{_f(y)}" text-anchor="{anchor}" {FONT}{extra}>'
            f"{escape(label)}</text>")


def _frame(title: str, desc: str, y_max: int) -> list[str]:
    plot_h = HEIGHT - TOP - BOTTOM
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img">',
        f"<title>{escape(title)}</title>",
        f"<desc>{escape(desc)}</desc>",
        f'<rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="#ffffff"/>',
        _text(LEFT, 16.0, title, "start", ' font-weight="bold"'),
    ]
    for tick in sorted({0, y_max // 2, y_max}):
        y = TOP + plot_h - plot_h * tick / y_max
        parts.append(f'<line x1="{_f(LEFT)}" y1="{_f(y)}" x2="{_f(WIDTH - RIGHT)}" y2="{_f(y)}" '
                     f'stroke="#e0e0e0" stroke-width="1"/>')
        parts.append(_text(LEFT - 6, y + 4, str(tick), "end"))
    parts.append(f'<line x1="{_f(LEFT)}" y1="{_f(TOP + plot_h)}" x2="{_f(WIDTH - RIGHT)}" '
                 f'y2="{_f(TOP + plot_h)}" stroke="#424242" stroke-width="1"/>')
    return parts


def burnup_svg(points: Sequence[BurnPoint], title: str = "Burn-up: scope and done") -> str:
    """A burn-up chart: total scope and tasks done at the start of each day."""
    assert points, "a burn-up chart needs at least one point"
    plot_w = WIDTH - LEFT - RIGHT
    plot_h = HEIGHT - TOP - BOTTOM
    y_max = _nice_max(max(max(p.scope, p.done) for p in points))
    step = plot_w / (len(points) - 1) if len(points) > 1 else 0.0

    def xy(index: int, value: int) -> str:
        return f"{_f(LEFT + step * index)},{_f(TOP + plot_h - plot_h * value / y_max)}"

    desc = "; ".join(f"{p.day}: scope {p.scope}, done {p.done}" for p in points)
    parts = _frame(title, desc, y_max)
    scope_line = " ".join(xy(i, p.scope) for i, p in enumerate(points))
    done_line = " ".join(xy(i, p.done) for i, p in enumerate(points))
    parts.append(f'<polyline points="{scope_line}" fill="none" stroke="{SCOPE_COLOR}" stroke-width="2" '
                 f'stroke-dasharray="6 3"/>')
    parts.append(f'<polyline points="{done_line}" fill="none" stroke="{DONE_COLOR}" stroke-width="2"/>')
    labels = sorted({0, (len(points) - 1) // 2, len(points) - 1})
    for index in labels:
        parts.append(_text(LEFT + step * index, HEIGHT - BOTTOM + 16, points[index].day,
                           "start" if index == 0 and len(points) > 1 else "end" if index == len(points) - 1 else "middle"))
    last = points[-1]
    legend_y = HEIGHT - 8.0
    parts.append(f'<line x1="{_f(LEFT)}" y1="{_f(legend_y - 4)}" x2="{_f(LEFT + 20)}" y2="{_f(legend_y - 4)}" '
                 f'stroke="{SCOPE_COLOR}" stroke-width="2" stroke-dasharray="6 3"/>')
    parts.append(_text(LEFT + 24, legend_y, f"scope ({last.scope})", "start"))
    parts.append(f'<line x1="{_f(LEFT + 130)}" y1="{_f(legend_y - 4)}" x2="{_f(LEFT + 150)}" '
                 f'y2="{_f(legend_y - 4)}" stroke="{DONE_COLOR}" stroke-width="2"/>')
    parts.append(_text(LEFT + 154, legend_y, f"done ({last.done})", "start"))
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def velocity_svg(weeks: Sequence[VelocityWeek], mean: float, title: str = "Velocity: tasks done per week") -> str:
    """A bar per week (tasks done) and a dashed line at the mean."""
    assert weeks, "a velocity chart needs at least one week"
    plot_w = WIDTH - LEFT - RIGHT
    plot_h = HEIGHT - TOP - BOTTOM
    y_max = _nice_max(max(max(w.done for w in weeks), mean))
    slot = plot_w / len(weeks)
    bar = slot * 0.6
    desc = "; ".join(f"{w.label}: {w.done} done" for w in weeks) + f"; mean {mean:.2f}"
    parts = _frame(title, desc, y_max)
    for index, week in enumerate(weeks):
        height = plot_h * week.done / y_max
        x = LEFT + slot * index + (slot - bar) / 2
        y = TOP + plot_h - height
        parts.append(f'<rect x="{_f(x)}" y="{_f(y)}" width="{_f(bar)}" height="{_f(height)}" fill="{BAR_COLOR}">'
                     f"<title>{escape(f'{week.label}: {week.done} done ({week.sources})')}</title></rect>")
        parts.append(_text(x + bar / 2, y - 4, str(week.done)))
        parts.append(_text(x + bar / 2, HEIGHT - BOTTOM + 16, week.label))
    mean_y = TOP + plot_h - plot_h * mean / y_max
    parts.append(f'<line x1="{_f(LEFT)}" y1="{_f(mean_y)}" x2="{_f(WIDTH - RIGHT)}" y2="{_f(mean_y)}" '
                 f'stroke="{MEAN_COLOR}" stroke-width="1.5" stroke-dasharray="4 3"/>')
    parts.append(_text(WIDTH - RIGHT, HEIGHT - 8.0, f"mean {mean:.2f} per week", "end"))
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
