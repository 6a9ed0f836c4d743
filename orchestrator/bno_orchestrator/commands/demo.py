"""``orchestrator demo [--dir DIR] [--keep]``: the main job on the embedded defaults, end to end.

A throw-away git repository gets ``orchestrator init``, a small slice of BitNet code with failing tests, a
backlog of BitNet tasks and a two-gate DAG; the backlog is scored and routed, two tasks are dispatched to
scripted (deterministic, offline) executors and verified by the gates, one fails twice and escalates, and
the board status and the explanation of the top task are printed, all read back from the store.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from bno_foundation.cli import EXIT_FAILURE, EXIT_OK, print_json
from bno_orchestrator.commands import add_json_flag


def run(args: argparse.Namespace) -> int:
    """Handle ``demo``."""
    from bno_orchestrator.demo import run_demo

    summary = run_demo(Path(args.dir) if args.dir else None, keep=args.keep, quiet=args.json, agent=args.agent)
    if args.json:
        print_json(summary)
    return EXIT_OK if summary["ok"] else EXIT_FAILURE


def register(sub: Any) -> None:
    """Add ``demo``."""
    parser = sub.add_parser("demo", help="run a demo sprint in a temporary git repository (offline, < 1 min)")
    parser.add_argument("--dir", default=None,
                        help="where to build the demo repository (must be empty or absent; default a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary repository (--dir is always kept)")
    parser.add_argument("--agent", choices=("claude", "codex", "gemini"), default=None,
                        help="run the sprint through this real installed agent CLI, its model scripted on 127.0.0.1")
    add_json_flag(parser)
    parser.set_defaults(handler=run)
