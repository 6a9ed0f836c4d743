"""``orchestrator route [--dry-run]``: route the backlog to agents and record each decision."""

from __future__ import annotations

import argparse
from typing import Any

from bno_foundation.cli import print_json
from bno_orchestrator.commands import add_json_flag, stdout_console
from bno_orchestrator.commands.core_support import fmt, load, num, open_store
from bno_orchestrator.scorers import SCORER_NAMES


def run(args: argparse.Namespace) -> int:
    """Handle ``route``."""
    from rich.table import Table

    from bno_orchestrator.routing import route_backlog

    config = load(args)
    with open_store(args) as store:
        decisions = route_backlog(store, config, dry_run=args.dry_run, scorer=args.scorer)
    if args.json:
        print_json({"dry_run": args.dry_run, "decisions": [d.as_json() for d in decisions]})
        return 0
    shown = decisions if args.all else [d for d in decisions if d.routed]
    title = "routing (dry run: nothing recorded)" if args.dry_run else "routing"
    table = Table(title=title)
    for column in ("task", "score", "cx", "primary", "support", "strategy", "why"):
        table.add_column(column, justify="right" if column in ("score", "cx") else "left")
    for d in shown:
        table.add_row(d.task_id, num(d.score), str(d.complexity), d.primary or f"({d.outcome})",
                      fmt(list(d.secondary)), d.strategy or "-", d.reasons[0] if d.reasons else "")
    out = stdout_console()  # reasons quote user text: shown as text, never as markup
    out.print(table)
    routed = sum(d.routed for d in decisions)
    counts = {k: sum(d.outcome == k for d in decisions) for k in ("deferred", "blocked")}
    out.print(f"{routed} routed, {counts['deferred']} deferred, {counts['blocked']} blocked"
              + ("" if args.all else " (--all shows every decision)"))
    return 0


def register(sub: Any) -> None:
    """Add ``route``."""
    parser = sub.add_parser("route", help="route the backlog: primary, support agents and strategy per task")
    parser.add_argument("--dry-run", action="store_true", help="show the decisions without recording them")
    parser.add_argument("--all", action="store_true", help="also list deferred and blocked tasks")
    parser.add_argument("--scorer", choices=SCORER_NAMES, default=None,
                        help="rank with another scorer than scoring.yaml's")
    add_json_flag(parser)
    parser.set_defaults(handler=run)
