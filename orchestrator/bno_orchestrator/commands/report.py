"""``orchestrator report``: status reports from the store, kept as dated files, and the schedule that writes them.

``report weekly`` and ``report daily`` build the same report (:mod:`bno_orchestrator.reports`) over a
window: an ISO week (``--week 2026-W02``), the seven days before ``--end``, a day (``--date 2026-01-12``)
or any range (``--from 2026-01-05 --to 2026-01-11``; a ``--to`` date is the last day included, a
``--to`` date-time the exclusive end). ``--out`` ending in ``.md``, ``.html`` or ``.json`` writes that one
file (Markdown charts beside it as ``STEM.burnup.svg`` and ``STEM.velocity.svg``); a folder (an existing
one, or a path without a suffix or ending in ``/``) keeps one file per week (or day) named by its label, plus an index page, and ``--catch-up``
fills in every period missing there since the first event. Files are written atomically and only when
their bytes change. Printed to a terminal, a report is Markdown with text charts.

``report schedule`` prints the crontab line, the systemd user timer and the GitHub Actions workflow that
run ``--catch-up`` on a schedule, and installs or uninstalls any of them. The clock is the global ``--now`` / ``ORCHESTRATOR_NOW``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bno_orchestrator.commands import add_json_flag

if TYPE_CHECKING:
    from bno_orchestrator.reports.viewmodel import Window

FILE_SUFFIXES = {".md": "md", ".html": "html", ".json": "json"}
PERIODS = ("weekly", "daily")


def _instant(text: str, option: str) -> dt.datetime:
    from bno_orchestrator.clock import parse_instant

    return parse_instant(text, option)


def _is_date(text: str) -> bool:
    try:
        dt.date.fromisoformat(text.strip())
    except ValueError:
        return False
    return len(text.strip()) == 10


def _range(args: argparse.Namespace) -> Window:
    from bno_orchestrator.errors import UserError
    from bno_orchestrator.reports.viewmodel import DAY, Window

    if not (args.from_ and args.to):
        raise UserError("give both --from and --to (a range), or neither")
    start = _instant(args.from_, "--from")
    end = _instant(args.to, "--to")
    if _is_date(args.to):
        end += DAY  # a --to date is the last day included
    if end <= start:
        raise UserError(f"--to {args.to} must come after --from {args.from_}")
    return Window(start, end)


def _folder_mode(args: argparse.Namespace) -> bool:
    """``--out`` names a folder: an existing one, a path ending in ``/``, or a path without a suffix."""
    if args.out is None:
        return False
    out = Path(args.out)
    if out.is_dir() or str(args.out).endswith(("/", os.sep)) or not out.suffix:
        return True
    if out.suffix.lower() not in FILE_SUFFIXES:
        from bno_orchestrator.errors import UserError

        raise UserError(f"--out: a report file ends in .md, .html or .json, and a folder has no suffix "
                        f"(or ends in /), not {args.out!r}")
    return False


def _window(args: argparse.Namespace, period: str) -> Window:
    """The report window the arguments ask for (the default depends on the period and on --out)."""
    from bno_orchestrator.errors import UserError
    from bno_orchestrator.models import utcnow
    from bno_orchestrator.reports.publish import last_complete_day, last_complete_week
    from bno_orchestrator.reports.viewmodel import day_window, week_window, window_ending

    given = [f"--{name}" for name in ("week", "end", "date") if getattr(args, name, None)]
    if args.from_ or args.to:
        given.append("--from/--to")
    if len(given) > 1:
        raise UserError(f"give one of {', '.join(given)}, not several")
    if args.from_ or args.to:
        return _range(args)
    if getattr(args, "week", None):
        try:
            return week_window(args.week)
        except ValueError as exc:
            raise UserError(f"--week: {exc}") from None
    if getattr(args, "end", None):
        return window_ending(_instant(args.end, "--end"))
    if getattr(args, "date", None):
        try:
            return day_window(dt.date.fromisoformat(args.date.strip()))
        except ValueError:
            raise UserError(f"--date: expected a day such as 2026-01-12, not {args.date!r}") from None
    now = utcnow()
    if period == "daily":
        return last_complete_day(now)
    return last_complete_week(now) if _folder_mode(args) else window_ending(now)


def _format(args: argparse.Namespace) -> str:
    if args.format:
        return str(args.format)
    if args.out is not None and not _folder_mode(args):
        return FILE_SUFFIXES[Path(args.out).suffix.lower()]
    return "json" if args.json else "md"


def _say(message: str) -> None:
    from bno_foundation.terminal import visible

    print(visible(message), file=sys.stderr)


def run_report(args: argparse.Namespace) -> int:
    """Handle ``report weekly`` and ``report daily``."""
    from bno_foundation.cli import print_json
    from bno_orchestrator.commands.core_support import load, open_store
    from bno_orchestrator.errors import UserError
    from bno_orchestrator.reports import publish
    from bno_orchestrator.reports.render import render_html, render_markdown
    from bno_orchestrator.reports.viewmodel import build_weekly, day_window, gate_run_records, iso_week_of

    period: str = args.period
    if args.history < 1:
        raise UserError(f"--{'weeks' if period == 'weekly' else 'days'} must be at least 1")
    if args.catch_up and not _folder_mode(args):
        raise UserError("--catch-up needs --out FOLDER (reports are kept one file per period there)")
    window = _window(args, period)
    fmt = _format(args)
    config = load(args)
    with open_store(args) as store:
        events = store.events()
        runs = gate_run_records(store.path, until=window.end)

    def build(w: Window) -> Any:
        return build_weekly(events, runs, w, scoring=config.scoring, history_weeks=args.history,
                            aging_days=args.aging_days)

    if _folder_mode(args):
        folder = Path(args.out)
        windows = [window]
        stamps = [e.ts for e in events if e.ts is not None]
        if args.catch_up and stamps:
            def period_of(when: dt.datetime) -> Window:
                return iso_week_of(when) if period == "weekly" else day_window(when.date())

            earlier = [w for w in publish.periods_since(min(stamps), window, period_of) if w.start < window.start]
            windows = [*publish.missing(earlier, folder, fmt), window]
        changed = 0
        for each in windows:
            report = build(each)
            for written in publish.write_report(report, publish.report_path(folder, each, fmt), fmt):
                changed += written.changed
                if written.path.suffix == f".{fmt}":
                    _say(f"{'wrote' if written.changed else 'unchanged'} {written.path} "
                         f"({report.label}, status {report.status})")
        if fmt != "json":
            index = publish.write_index(folder, fmt)
            changed += index.changed
        _say(f"{len(windows)} report(s) in {folder}, {changed} file(s) changed")
        return 0

    report = build(window)
    if args.out is not None:
        out = Path(args.out)
        files = publish.write_report(report, out, fmt)
        _say(f"{'wrote' if any(w.changed for w in files) else 'unchanged'} {out} "
             f"({report.label}, status {report.status})")
    elif fmt == "json":
        print_json(report.as_json())
    else:  # on stdout (a terminal, often): the titles and reasons in it show their control characters
        from bno_foundation.terminal import visible

        sys.stdout.write(visible(render_html(report) if fmt == "html" else render_markdown(report)))
    return 0


def run_schedule(args: argparse.Namespace) -> int:
    """Handle ``report schedule``."""
    from bno_foundation.cli import print_json
    from bno_orchestrator.commands.core_support import repo
    from bno_orchestrator.errors import UserError
    from bno_orchestrator.reports import schedule as sched

    if args.install and args.uninstall:
        raise UserError("give --install or --uninstall, not both")
    target = repo(args).resolve()
    out = Path(args.out).resolve() if args.out else target / ".orchestrator" / "reports" / args.period
    plan = sched.Schedule(args.period, target, out, args.format, sched.program(), args.branch, args.runner_label)
    if args.uninstall == "cron":
        print("removed the crontab entry" if sched.uninstall_cron(plan) else "no crontab entry to remove")
        return 0
    if args.uninstall == "systemd":
        print(f"disabled and removed {plan.unit_name}.timer" if sched.uninstall_systemd(plan)
              else f"no {plan.unit_name} units to remove")
        return 0
    if args.uninstall == "github":
        print(f"removed {plan.workflow_path}" if sched.uninstall_github(plan) else f"no {plan.workflow_path} to remove")
        return 0
    if args.install == "cron":
        print(f"installed in your crontab:\n{sched.install_cron(plan)}")
        return 0
    if args.install == "systemd":
        paths = sched.install_systemd(plan)
        print(f"wrote {', '.join(str(p) for p in paths)}; enabled and started {plan.unit_name}.timer")
        return 0
    if args.install == "github":
        path = sched.install_github(plan)
        print(f"wrote {path}; commit it, and register a self-hosted runner labelled {plan.runner_label!r} "
              "on this machine (the store lives here)")
        return 0
    if args.json:
        print_json({"crontab": sched.crontab_line(plan), "workflow_path": str(plan.workflow_path),
                    "workflow": sched.workflow_text(plan), "command": plan.command(),
                    "systemd_dir": str(sched.unit_dir()), "systemd": sched.systemd_units(plan)})
        return 0
    units = "".join(f"\n# {sched.unit_dir() / name}\n{text}" for name, text in sched.systemd_units(plan).items())
    sys.stdout.write(
        f"# crontab entry ({sched.WHEN_TEXT[plan.period]}; install with --install cron):\n"
        f"{sched.crontab_line(plan)}\n\n"
        f"# systemd user timer (install with --install systemd):{units}\n"
        f"# GitHub Actions workflow for {plan.workflow_path} (install with --install github):\n"
        f"{sched.workflow_text(plan)}"
    )
    return 0


def _add_report(reports: Any, period: str) -> None:
    noun = "week" if period == "weekly" else "day"
    parser = reports.add_parser(period, help=f"the {period} status report (Markdown, HTML or JSON)")
    when = parser.add_argument_group("window (one of)")
    if period == "weekly":
        when.add_argument("--week", default=None, help="an ISO week, e.g. 2026-W02 (Monday 00:00 UTC to Monday)")
        when.add_argument("--end", default=None,
                          help="the seven days before this instant (exclusive), e.g. 2026-01-12; default: now, "
                               "or with --out FOLDER the last complete ISO week")
    else:
        when.add_argument("--date", default=None, help="a UTC day, e.g. 2026-01-12 (default: yesterday)")
    when.add_argument("--from", dest="from_", default=None, help="a range's start, e.g. 2026-01-05")
    when.add_argument("--to", default=None,
                      help="a range's end: a date is the last day included, a date-time the exclusive end")
    parser.add_argument("--format", choices=("md", "html", "json"), default=None,
                        help="output format (default: from --out's suffix, else md)")
    parser.add_argument("--out", default=None,
                        help=f"FILE.md, FILE.html or FILE.json: write that file; a folder (no suffix, or ending "
                             f"in /): one file per {noun} and an index (written atomically, only when changed)")
    parser.add_argument("--catch-up", dest="catch_up", action="store_true",
                        help=f"with --out FOLDER: also write every missing {noun} since the first event")
    if period == "weekly":
        parser.add_argument("--weeks", dest="history", type=int, default=6,
                            help="weeks of history in the charts (default 6)")
    else:
        parser.add_argument("--days", dest="history", type=int, default=14,
                            help="days of history in the charts (default 14)")
    parser.add_argument("--aging-days", dest="aging_days", type=float, default=3.0,
                        help="a task in one state this long counts as aging (default 3)")
    add_json_flag(parser)
    parser.set_defaults(handler=run_report, period=period)


def register(sub: Any) -> None:
    """Add ``report``."""
    parser = sub.add_parser("report", help="status reports from the store")
    reports = parser.add_subparsers(title="reports", metavar="REPORT", parser_class=type(parser))
    for period in PERIODS:
        _add_report(reports, period)
    schedule = reports.add_parser("schedule", help="run the weekly (or daily) report on a schedule: cron, a "
                                                   "systemd user timer or GitHub Actions")
    schedule.add_argument("--period", choices=PERIODS, default="weekly", help="which report (default weekly)")
    schedule.add_argument("--out", default=None,
                          help="the reports folder (default REPO/.orchestrator/reports/PERIOD)")
    schedule.add_argument("--format", choices=("md", "html", "json"), default="md", help="report format (default md)")
    schedule.add_argument("--install", choices=("cron", "systemd", "github"), default=None,
                          help="add the crontab entry, enable a systemd user timer, or write the workflow file "
                               "into the repository")
    schedule.add_argument("--uninstall", choices=("cron", "systemd", "github"), default=None,
                          help="remove what --install added (the rest of the crontab stays as it was)")
    schedule.add_argument("--branch", default="status-reports",
                          help="the branch the workflow commits the reports to (default status-reports)")
    schedule.add_argument("--runner-label", dest="runner_label", default="orchestrator",
                          help="the self-hosted runner label of the machine with the store (default orchestrator)")
    add_json_flag(schedule)
    schedule.set_defaults(handler=run_schedule)
