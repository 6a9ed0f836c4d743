"""Keep reports as dated files in one folder: one file per period, an index page, idempotent rewrites.

A report folder holds ``2026-W03.md`` (its charts beside it as ``2026-W03.burnup.svg`` and
``2026-W03.velocity.svg``), ``2026-W03.html`` or ``2026-W03.json`` per ISO week, ``2026-01-12.md`` per day,
and ``index.md`` / ``index.html`` listing them newest first. Every file is written atomically and only when
its bytes change: the report of a past period depends on the events stamped before its end alone, so
writing it again is a no-op, and a scheduled run that fires twice changes nothing.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from markupsafe import escape

from bno_foundation.atomic import atomic_write
from bno_orchestrator.reports.viewmodel import DAY, WEEK, WeeklyReport, Window, day_window, iso_week_of

FORMATS = ("md", "html", "json")
INDEX_STEM = "index"
_REPORT_STEM = re.compile(r"^(\d{4}-W\d{2}|\d{4}-\d{2}-\d{2})(\.\.\d{4}-\d{2}-\d{2})?$")


@dataclass(frozen=True, slots=True)
class Written:
    """One file of a publication: where, and whether its bytes changed."""

    path: Path
    changed: bool


def write_if_changed(path: Path, text: str) -> Written:
    """Write ``text`` to ``path`` atomically unless the file already holds exactly these bytes."""
    try:
        if path.read_bytes() == text.encode("utf-8"):
            return Written(path, False)
    except FileNotFoundError:
        pass
    atomic_write(path, text)
    return Written(path, True)


def report_files(report: WeeklyReport, fmt: str, stem: str) -> dict[str, str]:
    """The files of one report: file name -> text (Markdown links its two SVG charts by name)."""
    from bno_orchestrator.reports.render import charts, render_html, render_markdown

    if fmt == "json":
        return {f"{stem}.json": json.dumps(report.as_json(), indent=2, sort_keys=True) + "\n"}
    if fmt == "html":
        return {f"{stem}.html": render_html(report)}
    assert fmt == "md", f"unknown report format {fmt!r}"
    svgs = {f"{stem}.{name}.svg": svg for name, svg in sorted(charts(report).items())}
    refs = {name: f"{stem}.{name}.svg" for name in charts(report)}
    return {**svgs, f"{stem}.md": render_markdown(report, chart_refs=refs)}


def write_report(report: WeeklyReport, path: Path, fmt: str) -> list[Written]:
    """Write ``report`` to the file ``path`` (its charts beside it, named after its stem)."""
    files = report_files(report, fmt, path.stem)
    main = f"{path.stem}.{fmt}"
    return [write_if_changed(path if name == main else path.with_name(name), text) for name, text in files.items()]


def publish(report: WeeklyReport, folder: Path, fmt: str) -> list[Written]:
    """Write ``report`` into ``folder`` as ``LABEL.FORMAT`` and refresh the folder's index."""
    written = write_report(report, folder / f"{report.label}.{fmt}", fmt)
    if fmt != "json":
        written.append(write_index(folder, fmt))
    return written


def report_path(folder: Path, window: Window, fmt: str) -> Path:
    """Where the report of ``window`` lives in ``folder``."""
    return folder / f"{window.label}.{fmt}"


def listed_reports(folder: Path, fmt: str) -> list[str]:
    """The report stems in ``folder`` with files of format ``fmt``, newest first."""
    if not folder.is_dir():
        return []
    stems = {p.stem for p in folder.glob(f"*.{fmt}") if _REPORT_STEM.match(p.stem)}
    return sorted(stems, reverse=True)


def index_text(folder: Path, fmt: str) -> str:
    """The index page of ``folder``: a link to every report in it, newest first."""
    stems = listed_reports(folder, fmt)
    if fmt == "html":
        items = "\n".join(f'<li><a href="{escape(s)}.html">{escape(s)}</a></li>' for s in stems)
        return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>Status reports</title>\n"
                f"</head>\n<body>\n<h1>Status reports</h1>\n<ul>\n{items}\n</ul>\n</body>\n</html>\n")
    lines = "\n".join(f"- [{s}]({s}.md)" for s in stems)
    return f"# Status reports\n\n{lines}\n"


def write_index(folder: Path, fmt: str) -> Written:
    """Refresh ``folder/index.FORMAT``."""
    return write_if_changed(folder / f"{INDEX_STEM}.{fmt}", index_text(folder, fmt))


def last_complete_week(now: dt.datetime) -> Window:
    """The latest ISO week that ended at or before ``now``."""
    current = iso_week_of(now)
    return Window(current.start - WEEK, current.start)


def last_complete_day(now: dt.datetime) -> Window:
    """The latest UTC day that ended at or before ``now``."""
    today = day_window(now.date() if now.tzinfo is None else now.astimezone(dt.UTC).date())
    return Window(today.start - DAY, today.start)


def periods_since(first: dt.datetime, last: Window, of: Callable[[dt.datetime], Window]) -> Iterator[Window]:
    """Every period (``of`` gives the one holding an instant) from the one holding ``first`` to ``last``."""
    window = of(first)
    while window.start <= last.start:
        yield window
        window = of(window.end)


def missing(windows: Sequence[Window], folder: Path, fmt: str) -> list[Window]:
    """The windows whose report file is not in ``folder`` yet."""
    return [w for w in windows if not report_path(folder, w, fmt).exists()]
