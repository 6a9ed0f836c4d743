"""``orchestrator worker``: claim routed tasks from the (shared) store and dispatch them on this machine.

Run one on any number of hosts pointed at one store (``ORCHESTRATOR_STORE_URL``): each claims a task
under a lease, heartbeats, runs the dispatch chain and the gates in its own clone, and releases it; a task
whose worker died is reclaimed once its lease expires (:mod:`bno_orchestrator.worker`). ``--once`` runs
until nothing is free and exits (CI); otherwise the worker waits for the store to change.
"""

from __future__ import annotations

import argparse
from typing import Any

from bno_foundation.cli import print_json
from bno_orchestrator.commands import add_json_flag, shown, stdout_console


def run(args: argparse.Namespace) -> int:
    """Handle ``worker``."""
    from bno_orchestrator.commands.core_support import checked_repo, load
    from bno_orchestrator.dispatch.run import DispatchOptions
    from bno_orchestrator.errors import UserError
    from bno_orchestrator.store import Store
    from bno_orchestrator.worker import dispatch_runner, run_worker

    if args.lease <= 0:
        raise UserError(f"--lease must be a positive number of seconds, not {args.lease}")
    repo = checked_repo(args)  # missing, not git, never set up: refused, nothing created
    config = load(args)
    options = DispatchOptions(executor=args.executor, timeout=args.timeout, advance=not args.no_advance)
    out = stdout_console()

    def said_claim(lease: Any) -> None:
        if not args.json:
            taken = f" (reclaimed from {lease.reclaimed_from})" if lease.reclaimed_from else ""
            out.print(shown(f"{lease.worker}: claimed {lease.task_id}, token {lease.token}{taken}"))

    report = run_worker(lambda: Store.open(repo), dispatch_runner(repo, options), worker=args.name,
                        lease_s=args.lease, scoring=config.scoring, max_tasks=args.max_tasks,
                        exit_when_idle=args.once, on_claim=said_claim)
    if args.json:
        print_json({"worker": report.worker, "ran": [{"task": t, "outcome": o} for t, o in report.ran],
                    "lost": report.lost})
    else:
        for task_id, outcome in report.ran:
            out.print(shown(f"{report.worker}: {task_id}: {outcome}"))
        for task_id in report.lost:
            out.print(shown(f"{report.worker}: {task_id}: lease lost, its later writes were refused"))
    return 1 if report.lost else 0


def register(sub: Any) -> None:
    parser = sub.add_parser("worker", help="claim routed tasks from the store and dispatch them here (any number "
                                           "of hosts)")
    parser.add_argument("--name", default=None, help="this worker's name in the history (default: HOST:PID)")
    parser.add_argument("--lease", type=float, default=60.0, metavar="SECONDS",
                        help="how long a claim holds without a heartbeat (default 60; renewed every third)")
    parser.add_argument("--once", action="store_true", help="exit when no task is free instead of waiting")
    parser.add_argument("--max-tasks", type=int, default=None, metavar="N", help="exit after N tasks")
    parser.add_argument("--executor", default=None, help="override every agent's executor kind")
    parser.add_argument("--timeout", type=float, default=None, metavar="SECONDS", help="executor timeout")
    parser.add_argument("--no-advance", action="store_true", help="stop at review after the gates pass")
    add_json_flag(parser)
    parser.set_defaults(handler=run)
