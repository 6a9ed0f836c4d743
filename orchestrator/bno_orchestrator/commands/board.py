"""``orchestrator board``: the Textual sprint board over the repository's store.

Textual is imported inside the handler only: git hooks import the CLI and must start fast.
"""

from __future__ import annotations

import argparse
from typing import Any

from bno_orchestrator.commands import add_json_flag


def run_board(args: argparse.Namespace) -> int:
    """Handle ``board`` (``--json`` prints the columns instead of opening the board)."""
    from bno_orchestrator.commands.core_support import actor_of, load, open_store
    from bno_orchestrator.tui.data import columns, load_snapshot

    config = load(args)
    with open_store(args) as store:
        if args.json:
            from bno_foundation.cli import print_json

            snapshot = load_snapshot(store, config.workflow, config.scoring)
            print_json({"last_event_id": snapshot.last_event_id, "columns": [
                {"state": c.state, "total": c.total, "cards": [
                    {"id": k.id, "title": k.title, "score": k.score, "agent": k.agent, "gate": k.gate,
                     "gate_run": k.gate_run, "blocked": k.blocked} for k in c.cards]}
                for c in columns(snapshot, args.filter or "")]})
            return 0
        from bno_orchestrator.tui.app import BoardApp

        app = BoardApp(store, config.workflow, config.scoring, actor=actor_of(args), poll_interval=args.poll)
        app.filter_text = args.filter or ""
        app.run()
    return 0


def register(sub: Any) -> None:
    """Add ``board``."""
    from bno_orchestrator.commands.core_support import add_actor_flag

    parser = sub.add_parser("board", help="the sprint board (Textual): columns per state, move cards, filter")
    parser.add_argument("--filter", default=None, help="start with this filter (agent:NAME label:X ... words)")
    parser.add_argument("--poll", type=float, default=0.1,
                        help="seconds between store polls (0: never; a poll reads only the new events)")
    add_actor_flag(parser)
    add_json_flag(parser)
    parser.set_defaults(handler=run_board)
