"""``orchestrator escalate [--dry-run]``: evaluate the escalation rules now and record what fires."""

from __future__ import annotations

import argparse
from typing import Any

from bno_foundation.cli import print_json
from bno_orchestrator.commands import add_json_flag, stdout_console
from bno_orchestrator.commands.core_support import fmt, load, open_store


def run(args: argparse.Namespace) -> int:
    """Handle ``escalate``."""
    from rich.table import Table

    from bno_orchestrator.escalation import escalate_now

    config = load(args)
    with open_store(args) as store:
        fired = escalate_now(store, config, dry_run=args.dry_run)
    if args.json:
        print_json({"dry_run": args.dry_run, "escalations": [e.as_json() for e in fired]})
        return 0
    out = stdout_console()  # reasons quote user text: shown as text, never as markup
    if not fired:
        out.print("no escalation due")
        return 0
    table = Table(title="escalations (dry run: nothing recorded)" if args.dry_run else "escalations")
    for column in ("task", "rule", "action", "agents", "to", "why"):
        table.add_column(column)
    for e in fired:
        table.add_row(e.task_id, e.rule, e.action, fmt(list(e.agents)), e.to or "-", e.reason)
    out.print(table)
    return 0


def register(sub: Any) -> None:
    """Add ``escalate``."""
    parser = sub.add_parser("escalate", help="apply the escalation rules of workflows/escalation.yaml now")
    parser.add_argument("--dry-run", action="store_true", help="show what would fire without recording it")
    add_json_flag(parser)
    parser.set_defaults(handler=run)
