"""Render the weekly report view model to Markdown or HTML with Jinja2 (sandboxed).

The HTML environment autoescapes (task titles, reasons and machine names are user text); the charts are
our own SVG, passed in as :class:`markupsafe.Markup` after every label in them was escaped. The Markdown
environment escapes user text with the ``md`` filter (table pipes, emphasis, and raw HTML, which many
Markdown viewers would otherwise render). Number formats are fixed, so output is byte-stable.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from jinja2 import FileSystemLoader, StrictUndefined
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import Markup

from bno_orchestrator.reports.charts import burnup_svg, velocity_svg
from bno_orchestrator.reports.viewmodel import WeeklyReport

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


def _environment(autoescape: bool) -> SandboxedEnvironment:
    env = SandboxedEnvironment(
        loader=FileSystemLoader(str(TEMPLATES)), autoescape=autoescape, undefined=StrictUndefined,
        keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True,
    )
    env.filters.update(md=md_escape, num=num, pct=pct, signed=signed)
    env.globals.update(delta_pp=delta_pp)
    return env


def charts(report: WeeklyReport) -> dict[str, str]:
    """The report's charts as SVG text: ``burnup`` and ``velocity``."""
    return {
        "burnup": burnup_svg(report.burnup, f"Burn-up to {report.label}: scope and done"),
        "velocity": velocity_svg(report.velocity, report.velocity_mean),
    }


def data_uri(svg: str) -> str:
    """An SVG as a ``data:`` URI (for Markdown printed without files beside it)."""
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode("utf-8")).decode("ascii")


def render_markdown(report: WeeklyReport, *, chart_refs: dict[str, str] | None = None) -> str:
    """The report as Markdown; ``chart_refs`` maps ``burnup``/``velocity`` to image links (data URIs
    when not given)."""
    refs = chart_refs or {name: data_uri(svg) for name, svg in charts(report).items()}
    return _render("weekly.md.j2", False, report, {"chart_refs": refs})


def render_html(report: WeeklyReport) -> str:
    """The report as one self-contained HTML page (charts inline)."""
    svgs = {name: Markup(svg) for name, svg in charts(report).items()}  # escaped by charts.py
    return _render("weekly.html.j2", True, report, {"charts": svgs})


def _render(name: str, autoescape: bool, report: WeeklyReport, extra: dict[str, Any]) -> str:
    template = _environment(autoescape).get_template(name)
    return template.render(r=report, **extra)
