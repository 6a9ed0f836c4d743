"""``orchestrator report weekly``: the weekly status report (Markdown or HTML) from the store.

The window is an ISO week (``--week 2026-W02``), the seven days before ``--end DATE``, or by default the
seven days before now. The report is written atomically (``--out FILE``; Markdown charts land beside it as
``FILE-STEM.burnup.svg`` and ``.velocity.svg``) or printed; ``--json`` prints the view model instead.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path
from typing import Any

from bno_foundation.atomic import atomic_write
from bno_orchestrator.commands import add_json_flag


def _window(args: argparse.Namespace) -> Any:
    from bno_orchestrator.errors import UserError
    from bno_orchestrator.models import utcnow
    from bno_orchestrator.reports.viewmodel import week_window, window_ending

    if args.week and args.end:
        raise UserError("give --week or --end, not both")
    if args.week:
        try:
            return week_window(args.week)
        except ValueError as exc:
            raise UserError(f"--week: {exc}") from None
    if args.end:
        try:
            end = dt.datetime.fromisoformat(args.end)
        except ValueError:
            raise UserError(f"--end: expected a date like 2026-01-12 or 2026-01-12T09:00, not {args.end!r}") from None
        return window_ending(end)
    return window_ending(utcnow())


def run_weekly(args: argparse.Namespace) -> int:
    """Handle ``report weekly``."""
    from bno_foundation.cli import print_json
    from bno_orchestrator.commands.core_support import load, open_store
    from bno_orchestrator.errors import UserError
    from bno_orchestrator.reports.render import charts, render_html, render_markdown
    from bno_orchestrator.reports.viewmodel import weekly_from_store

    if args.weeks < 1:
        raise UserError("--weeks must be at least 1")
    window = _window(args)
    config = load(args)
    with open_store(args) as store:
        report = weekly_from_store(store, window, scoring=config.scoring, history_weeks=args.weeks,
                                   aging_days=args.aging_days)
    out: Path | None = Path(args.out) if args.out else None
    if args.json:
        data = report.as_json()
        if out is not None:
            import json

            atomic_write(out, json.dumps(data, indent=2, sort_keys=True) + "\n")
        else:
            print_json(data)
        return 0
    fmt = args.format or (out.suffix.lstrip(".").lower() if out is not None and out.suffix in (".md", ".html") else "md")
    if fmt == "html":
        text = render_html(report)
    elif out is not None:
        refs: dict[str, str] = {}
        for name, svg in sorted(charts(report).items()):
            chart_path = out.with_name(f"{out.stem}.{name}.svg")
            atomic_write(chart_path, svg)
            refs[name] = chart_path.name
        text = render_markdown(report, chart_refs=refs)
    else:
        text = render_markdown(report)
    if out is not None:
        atomic_write(out, text)
        print(f"wrote {out} ({report.label}, status {report.status})", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def register(sub: Any) -> None:
    """Add ``report``."""
    parser = sub.add_parser("report", help="status reports from the store")
    reports = parser.add_subparsers(title="reports", metavar="REPORT", parser_class=type(parser))
    weekly = reports.add_parser("weekly", help="the weekly status report (Markdown or HTML)")
    when = weekly.add_mutually_exclusive_group()
    when.add_argument("--week", default=None, help="an ISO week, e.g. 2026-W02 (Monday 00:00 UTC to Monday)")
    when.add_argument("--end", default=None, help="the window's end (exclusive), e.g. 2026-01-12; default now")
    weekly.add_argument("--format", choices=("md", "html"), default=None,
                        help="output format (default: from --out's suffix, else md)")
    weekly.add_argument("--out", default=None, help="write to FILE (atomically) instead of stdout")
    weekly.add_argument("--weeks", type=int, default=6, help="weeks of history in the charts (default 6)")
    weekly.add_argument("--aging-days", dest="aging_days", type=float, default=3.0,
                        help="a task in one state this long counts as aging (default 3)")
    add_json_flag(weekly)
    weekly.set_defaults(handler=run_weekly)
