"""Render the report view model to Markdown or HTML with Jinja2 (sandboxed).

Markdown written to a file links its charts as SVG files beside it; Markdown for a terminal carries text
charts instead (never a base64 image a terminal would print as a wall of characters).

The HTML environment autoescapes (task titles, reasons and machine names are user text); the charts are
our own SVG, passed in as :class:`markupsafe.Markup` after every label in them was escaped. The Markdown
environment escapes user text with the ``md`` filter (table pipes, emphasis, and raw HTML, which many
Markdown viewers would otherwise render). Number formats are fixed, so output is byte-stable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import FileSystemLoader, StrictUndefined
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import Markup

from bno_orchestrator.money import usd
from bno_orchestrator.reports.charts import burnup_svg, burnup_text, velocity_svg, velocity_text
from bno_orchestrator.reports.viewmodel import CostRow, WeeklyReport

TEMPLATES = Path(__file__).resolve().parent / "templates"
_MD_SPECIAL = str.maketrans({
    "&": "&amp;", "<": "&lt;", ">": "&gt;", "|": "\\|", "\\": "\\\\", "`": "\\`", "*": "\\*", "_": "\\_",
    "[": "\\[", "]": "\\]", "\n": " ", "\r": " ",
})


def md_escape(value: object) -> str:
    """User text made inert in Markdown (and in a table cell)."""
    return str(value).translate(_MD_SPECIAL)


def num(value: float | None, digits: int = 2) -> str:
    """A fixed-precision number; ``n/a`` for None."""
    if value is None:
        return "n/a"
    text = f"{value:.{digits}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def pct(value: float | None) -> str:
    """``87.5%``; ``n/a`` for None."""
    return "n/a" if value is None else f"{num(100 * value, 1)}%"


def signed(value: int | float | None, digits: int = 0) -> str:
    """``+2``, ``-1``, ``±0`` (``n/a`` for None)."""
    if value is None:
        return "n/a"
    text = num(abs(value), digits) if digits else str(abs(int(value)))
    if float(text) == 0:
        return f"±{text}"
    return f"+{text}" if value > 0 else f"-{text}"


def delta_pp(now: float | None, before: float | None) -> str:
    """The change of a rate in percentage points (``+12.5 pp``), ``n/a`` when either side is missing."""
    if now is None or before is None:
        return "n/a"
    return f"{signed(100 * (now - before), 1)} pp"


def count(value: int | None) -> str:
    """``12,345``; ``unknown`` for None."""
    return "unknown" if value is None else f"{value:,}"


def plural(n: int, word: str) -> str:
    """``1 attempt``, ``2 attempts``."""
    return f"{n} {word}{'' if n == 1 else 's'}"


def cost_text(row: CostRow) -> str:
    """An honest total: ``$1.23 over 5 attempts, 2 with unknown cost`` (never an unknown counted as 0)."""
    if row.attempts == 0:
        return "no dispatch attempts"
    text = f"{usd(row.cost_usd)} over {plural(row.attempts, 'attempt')}"
    if row.cost_usd is None:
        return text + (" (none reported a cost)" if row.attempts > 1 else " (no cost reported)")
    if row.unknown_cost:
        text += f", {row.unknown_cost} with unknown cost"
    return text


def tokens_text(row: CostRow) -> str:
    """``12,345 in / 678 out`` plus the attempts without counts."""
    text = f"{count(row.input_tokens)} in / {count(row.output_tokens)} out"
    if row.unknown_tokens and (row.input_tokens is not None or row.output_tokens is not None):
        text += f" ({row.unknown_tokens} without counts)"
    return text


def errors_text(row: CostRow) -> str:
    """``network 1, timed_out 2``; ``none`` when every attempt ran without an executor error."""
    return ", ".join(f"{kind} {n}" for kind, n in row.errors) or "none"


def _environment(autoescape: bool) -> SandboxedEnvironment:
    env = SandboxedEnvironment(
        loader=FileSystemLoader(str(TEMPLATES)), autoescape=autoescape, undefined=StrictUndefined,
        keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True,
    )
    env.filters.update(md=md_escape, num=num, pct=pct, signed=signed, usd=usd, count=count, cost_text=cost_text,
                       tokens_text=tokens_text, errors_text=errors_text)
    env.globals.update(delta_pp=delta_pp)
    return env


def charts(report: WeeklyReport) -> dict[str, str]:
    """The report's charts as SVG text: ``burnup`` and ``velocity``."""
    return {
        "burnup": burnup_svg(report.burnup, f"Burn-up to {report.label}: scope and done"),
        "velocity": velocity_svg(report.velocity, report.velocity_mean,
                                 f"Velocity: tasks done per {report.period}", report.period),
    }


def text_charts(report: WeeklyReport) -> dict[str, str]:
    """The report's charts as text for a terminal: ``burnup`` and ``velocity``."""
    return {"burnup": burnup_text(report.burnup),
            "velocity": velocity_text(report.velocity, report.velocity_mean, report.period)}


def render_markdown(report: WeeklyReport, *, chart_refs: dict[str, str] | None = None) -> str:
    """The report as Markdown; ``chart_refs`` maps ``burnup``/``velocity`` to image links (the SVG files
    written beside the report). Without them the charts are text in fenced blocks, readable anywhere."""
    return _render("weekly.md.j2", False, report, {"chart_refs": chart_refs or {}, "text_charts": text_charts(report)})


def render_html(report: WeeklyReport) -> str:
    """The report as one self-contained HTML page (charts inline)."""
    svgs = {name: Markup(svg) for name, svg in charts(report).items()}  # escaped by charts.py
    return _render("weekly.html.j2", True, report, {"charts": svgs})


def _render(name: str, autoescape: bool, report: WeeklyReport, extra: dict[str, Any]) -> str:
    template = _environment(autoescape).get_template(name)
    return template.render(r=report, **extra)
