"""``orchestrator advance [TASK_ID | --all] [--approve]``: move tasks on after development, gate by gate.

Each pipeline state of ``workflows/development.yaml`` (review, integration, qa, testing) runs its gates on the
task's worktree; a pass moves the task on, a failure sends it back to development; the last move lands the
task branch in its target (``workflows/dispatch.yaml``). ``orchestrator dispatch`` runs this by itself once
the gates pass. Exit code 0 when every task advanced as far as it could without a failure (done, or waiting
for a person's ``--approve``), 1 when one was sent back or could not land.
"""

from __future__ import annotations

import argparse
from typing import Any

from bno_foundation.cli import EXIT_FAILURE, EXIT_OK, print_json
from bno_orchestrator.commands import add_json_flag, shown, stdout_console
from bno_orchestrator.commands.core_support import checked_repo


def print_advance(result: Any, indent: str = "") -> None:
    """Show one :class:`~bno_orchestrator.dispatch.advance.AdvanceResult` (task text is never markup)."""
    out = stdout_console()
    for stage in result.stages:
        verification = stage.verification
        verdict = shown(f"{indent}{stage.state}: ")
        if verification is not None:
            verdict.append("PASSED" if verification.passed else "FAILED",
                           style="green" if verification.passed else "red")
            verdict.append_text(shown(f" {verification.reason}"))
        else:
            verdict.append_text(shown(stage.note or "no gate ran", "yellow"))
        if stage.moved_to:
            verdict.append_text(shown(f" -> {stage.moved_to}"))
        out.print(verdict)
    if result.conflicts:
        out.print(shown(f"{indent}merge conflict in: {', '.join(result.conflicts)}", "red"))
    if result.landing is not None:
        landed = result.landing
        how = (f"pull request {landed.pr_url}" if landed.pr_url
               else f"{landed.strategy} into {landed.target} at {str(landed.commit)[:12]}")
        out.print(shown(f"{indent}landed: {how}", "green"))
    for escalation in result.escalations:
        out.print(shown(f"{indent}escalated: {escalation.rule} -> {', '.join(escalation.agents) or '-'} "
                        f"({escalation.reason})", "yellow"))
    if result.waiting:
        out.print(shown(f"{indent}{result.waiting}"))
    if result.failed:
        out.print(shown(f"{indent}{result.failed}", "red"))
    out.print(shown(f"{indent}status: {result.status}"))


def run(args: argparse.Namespace) -> int:
    """Handle ``advance``."""
    from bno_orchestrator.dispatch.advance import advance_task

    results = advance_task(checked_repo(args), args.task_id, approve=args.approve, every=args.all)
    if args.json:
        print_json([r.as_json() for r in results])
    else:
        if not results:
            stdout_console().print("no task is in a pipeline state (review ... testing)")
        for result in results:
            stdout_console().print(f"{result.task_id} ({result.start})")
            print_advance(result, "  ")
    return EXIT_OK if all(r.ok for r in results) else EXIT_FAILURE


def register(sub: Any) -> None:
    """Add ``advance``."""
    parser = sub.add_parser("advance", help="run the gates of each pipeline state and move tasks on to done")
    parser.add_argument("task_id", nargs="?", default=None, metavar="TASK_ID", help="the task (or --all)")
    parser.add_argument("--all", action="store_true", help="every task in review, integration, qa or testing")
    parser.add_argument("--approve", action="store_true",
                        help="a person approves the move out of a state marked `approve: human`")
    add_json_flag(parser)
    parser.set_defaults(handler=run)
