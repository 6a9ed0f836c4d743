"""Deterministic charts for the status reports: burn-up (scope vs done) and velocity (done per period).

SVG for the HTML and Markdown files: plain text with coordinates printed to one decimal, attributes in a
fixed order and every label escaped, so the same data always gives the same bytes (and a title cannot
inject markup). Axis labels never overlap: their width is estimated from :data:`CHAR_WIDTH` and, where the
slots are too narrow, only every k-th label is drawn (always the latest). For a terminal there are text
charts (:func:`burnup_text`, :func:`velocity_text`) made of block characters.
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
CHAR_WIDTH = 6.6  # an upper bound of the advance of a digit or letter at font-size 11 (sans-serif), px
LABEL_GAP = 6.0  # px kept free between two axis labels
TEXT_BAR_WIDTH = 40  # cells of the longest bar of a text chart
TEXT_MAX_ROWS = 15  # rows of a text burn-up (every k-th day when there are more)


def label_width(label: str) -> float:
    """The estimated width of ``label`` drawn at the charts' font size, px."""
    return len(label) * CHAR_WIDTH


def label_stride(labels: Sequence[str], slot: float) -> int:
    """Draw every k-th label so that labels ``slot`` px apart (centred) cannot overlap: the smallest such k."""
    widest = max((label_width(label) for label in labels), default=0.0)
    if slot <= 0:
        return max(1, len(labels))
    return max(1, math.ceil((widest + LABEL_GAP) / slot))


def _shown(index: int, count: int, stride: int) -> bool:
    """Every ``stride``-th of ``count`` items, counted back from the last (so the latest is always shown)."""
    return (count - 1 - index) % stride == 0


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


def velocity_svg(weeks: Sequence[VelocityWeek], mean: float, title: str = "Velocity: tasks done per week",
                 unit: str = "week") -> str:
    """A bar per period (tasks done; ``unit`` names the period) and a dashed line at the mean."""
    assert weeks, "a velocity chart needs at least one week"
    plot_w = WIDTH - LEFT - RIGHT
    plot_h = HEIGHT - TOP - BOTTOM
    y_max = _nice_max(max(max(w.done for w in weeks), mean))
    slot = plot_w / len(weeks)
    bar = slot * 0.6
    desc = "; ".join(f"{w.label}: {w.done} done" for w in weeks) + f"; mean {mean:.2f}"
    parts = _frame(title, desc, y_max)
    axis = [w.short or w.label for w in weeks]
    axis_stride = label_stride(axis, slot)
    value_stride = label_stride([str(w.done) for w in weeks], slot)
    for index, week in enumerate(weeks):
        height = plot_h * week.done / y_max
        x = LEFT + slot * index + (slot - bar) / 2
        y = TOP + plot_h - height
        parts.append(f'<rect x="{_f(x)}" y="{_f(y)}" width="{_f(bar)}" height="{_f(height)}" fill="{BAR_COLOR}">'
                     f"<title>{escape(f'{week.label}: {week.done} done ({week.sources})')}</title></rect>")
        if _shown(index, len(weeks), value_stride):
            parts.append(_text(x + bar / 2, y - 4, str(week.done)))
        if _shown(index, len(weeks), axis_stride):
            parts.append(_text(x + bar / 2, HEIGHT - BOTTOM + 16, axis[index]))
    mean_y = TOP + plot_h - plot_h * mean / y_max
    parts.append(f'<line x1="{_f(LEFT)}" y1="{_f(mean_y)}" x2="{_f(WIDTH - RIGHT)}" y2="{_f(mean_y)}" '
                 f'stroke="{MEAN_COLOR}" stroke-width="1.5" stroke-dasharray="4 3"/>')
    parts.append(_text(WIDTH - RIGHT, HEIGHT - 8.0, f"mean {mean:.2f} per {unit}", "end"))
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _bar(cells: float, char: str = "█") -> str:
    return char * round(cells)


def velocity_text(weeks: Sequence[VelocityWeek], mean: float, unit: str = "week") -> str:
    """The velocity chart as text: one row per period, a bar of block characters and the count."""
    assert weeks, "a velocity chart needs at least one period"
    top = max(max(w.done for w in weeks), 1)
    width = max(len(w.label) for w in weeks)
    rows = [f"Velocity: tasks done per {unit} (mean {mean:.2f})"]
    for week in weeks:
        bar = _bar(TEXT_BAR_WIDTH * week.done / top)
        rows.append(f"{week.label:<{width}} │{bar}{' ' if bar else ''}{week.done}")
    return "\n".join(rows)


def burnup_text(points: Sequence[BurnPoint]) -> str:
    """The burn-up chart as text: per day (every k-th day when there are many, always the last) a bar of
    done (█) within scope (░), and ``done/scope``."""
    assert points, "a burn-up chart needs at least one point"
    top = max(max(p.scope for p in points), 1)
    stride = max(1, math.ceil(len(points) / TEXT_MAX_ROWS))
    rows = ["Burn-up: done (█) of scope (░) at the start of each day"]
    for index, point in enumerate(points):
        if not _shown(index, len(points), stride):
            continue
        done = round(TEXT_BAR_WIDTH * point.done / top)
        scope = max(done, round(TEXT_BAR_WIDTH * point.scope / top))
        rows.append(f"{point.day} │{'█' * done}{'░' * (scope - done)} {point.done}/{point.scope}")
    return "\n".join(rows)
