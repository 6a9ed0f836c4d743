"""``orchestrator dispatch [TASK_ID|--next] [--dry-run] [--executor KIND] [--resume] [--no-verify] [--no-advance]``.

Runs the routed primary agent of a task in the task's own git worktree (its progress shown live), then
verifies the worktree with the gate DAG: the gates decide whether the task moves on to review, not what the
agent says; then the pipeline (``orchestrator advance``) takes it on to done and lands it. Exit code 0
when the gates passed (or for a dry run, a hand-off or ``--no-verify``), 1 when they did not.
``--cleanup TASK_ID`` removes the task's worktree (the branch stays unless ``--delete-branch``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bno_foundation.cli import EXIT_FAILURE, EXIT_OK, print_json
from bno_foundation.terminal import visible
from bno_orchestrator.commands import add_json_flag, shown, stdout_console
from bno_orchestrator.commands.core_support import checked_repo

if TYPE_CHECKING:
    from bno_orchestrator.dispatch.progress import Progress

KINDS = ("claude", "codex", "aider", "gemini", "shell", "manual")


def _print(result: Any) -> None:
    """The dispatch result on stdout; titles, prompts, agent output and reasons are shown as text."""
    from bno_orchestrator.commands.advance import print_advance
    from bno_orchestrator.money import usd

    out = stdout_console()
    head = f"attempt {result.attempt}" + (" (dry run: nothing recorded)" if result.dry_run else "")
    out.print(shown(result.task_id, "bold") + shown(f" {result.title}: {result.agent} via {result.executor}, {head}"))
    out.print(f"  worktree: {result.worktree} (branch {result.branch}, base {result.base[:12]})")
    if result.argv:
        argv = [item if len(item) <= 80 else f"{item[:60]}...({len(item)} chars)" for item in result.argv]
        out.print(f"  argv: {' '.join(argv)}")
    if result.dry_run:
        out.print("  prompt:")
        for line in (result.prompt or "").splitlines():
            out.print(f"    {line}")
    if result.prompt_file:
        out.print(f"  prompt file: {result.prompt_file}")
    outcome = result.outcome
    if outcome is not None and not outcome.handoff:
        ended = "timed out" if outcome.timed_out else f"exit code {outcome.exit_code}"
        out.print(f"  executor: {ended} in {outcome.duration:.2f}s, log {outcome.log_file}")
        if outcome.error_kind:
            out.print(shown("  executor error", "red") + shown(f": {outcome.error_kind}: {outcome.error or ''}"))
        cost = None if outcome.cost_usd is None else usd(outcome.cost_usd)
        stats = [f"{name} {value}" for name, value in (
            ("cost", cost), ("input tokens", outcome.input_tokens),
            ("output tokens", outcome.output_tokens), ("turns", outcome.turns),
            ("session", outcome.session_id)) if value is not None]
        if stats:
            out.print("  " + ", ".join(stats))
        if outcome.claim:
            first = outcome.claim.strip().splitlines()[0]
            out.print(f"  agent's claim (not trusted): {first}")
    verification = result.verification
    if verification is not None:
        style = "green" if verification.passed else "red"
        verdict = "PASSED" if verification.passed else "FAILED"
        out.print(shown("  gates: ") + shown(verdict, style) + shown(f" {verification.reason}"))
    if result.commit:
        out.print(f"  committed {result.commit[:12]} on {result.branch}")
    if result.advanced is not None:
        print_advance(result.advanced, "  ")
        return
    for escalation in result.escalations:
        agents = ", ".join(escalation.agents) or "-"
        out.print(shown("  escalated", "yellow") + shown(f": {escalation.rule} -> {agents} ({escalation.reason})"))
    for note in result.notes:
        out.print(f"  {note}")
    if result.status:
        out.print(f"  status: {result.status}")


def _progress_printer(*, json_output: bool) -> Callable[[Progress], None]:
    """Live progress lines while the agent works: on the console, or on stderr under ``--json`` (stdout stays
    one JSON document). The agent's text is shown as text, never as markup or terminal control."""
    styles = {"error": "bold red", "edit": "yellow", "tool": "cyan", "turn": "dim"}

    def show(record: Progress) -> None:
        clock = record.time.astimezone().strftime("%H:%M:%S")
        if json_output:
            print(visible(f"{clock} {record.kind:<7} {record.text}"), file=sys.stderr, flush=True)
        else:
            stdout_console().print(shown(f"  | {clock} {record.kind:<7} ", "dim") +
                                   shown(record.text, styles.get(record.kind, "")))
    return show


def run(args: argparse.Namespace) -> int:
    """Handle ``dispatch``."""
    from bno_orchestrator.errors import UserError

    target = checked_repo(args)  # missing, not git, never set up: refused, nothing created
    if args.cleanup:
        from bno_orchestrator.dispatch.worktree import cleanup

        if args.task_id is None:
            raise UserError("--cleanup needs the TASK_ID whose worktree to remove")
        report = cleanup(target, args.task_id, delete_branch=args.delete_branch, force=args.force)
        if args.json:
            print_json(report)
        else:
            what = "removed" if report["removed"] else "had no worktree at"
            extra = f"; branch {report['branch']} deleted" if report["branch_deleted"] else ""
            stdout_console().print(f"{args.task_id}: {what} {report['path']}{extra}")
        return EXIT_OK
    from bno_orchestrator.dispatch import DispatchOptions, dispatch

    options = DispatchOptions(
        task_id=args.task_id, next=args.next, dry_run=args.dry_run, executor=args.executor,
        verify=not args.no_verify, verify_only=args.verify_only, base=args.base, timeout=args.timeout,
        advance=not args.no_advance, resume=args.resume,
    )
    result = dispatch(target, options, on_progress=_progress_printer(json_output=args.json))
    if args.json:
        print_json(result.as_json())
    else:
        _print(result)
    outcome = result.outcome
    if outcome is not None and outcome.error_kind is not None:
        print(visible(f"error: {result.task_id}: the {result.executor} executor failed ({outcome.error_kind}): "
                      f"{(outcome.error or '').strip().splitlines()[0] if outcome.error else 'no message'}; "
                      "no gate ran, the task stays in development"), file=sys.stderr)
        return EXIT_FAILURE
    if result.verification is not None and not result.verification.passed:
        return EXIT_FAILURE
    if result.advanced is not None and not result.advanced.ok:
        return EXIT_FAILURE
    return EXIT_OK


def register(sub: Any) -> None:
    """Add ``dispatch``."""
    parser = sub.add_parser("dispatch", help="run a routed task's agent in its git worktree; the gates verify it")
    parser.add_argument("task_id", nargs="?", default=None, metavar="TASK_ID", help="the task (or --next)")
    parser.add_argument("--next", action="store_true", help="the best-scored assigned task that is ready")
    parser.add_argument("--dry-run", action="store_true",
                        help="show the prompt, argv and worktree; run and record nothing")
    parser.add_argument("--executor", choices=KINDS, default=None, help="override the agent's executor kind")
    parser.add_argument("--no-verify", action="store_true", help="do not run the gates after the executor")
    parser.add_argument("--verify-only", action="store_true",
                        help="run no executor: verify the task's worktree as it is (after a manual hand-off)")
    parser.add_argument("--base", default=None, help="the commit a new worktree starts from (default HEAD)")
    parser.add_argument("--timeout", type=float, default=None,
                        help="seconds before the executor's process group is killed (default: the agent's, else 1800)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the agent CLI session of the task's last attempt (claude, codex, gemini)")
    parser.add_argument("--no-advance", action="store_true",
                        help="stop at review when the gates pass (default: walk the pipeline to done and land)")
    parser.add_argument("--cleanup", action="store_true",
                        help="remove the worktree of TASK_ID (refused while it holds uncommitted work)")
    parser.add_argument("--delete-branch", action="store_true",
                        help="with --cleanup: also delete its branch (refused while no other branch holds its commits)")
    parser.add_argument("--force", action="store_true",
                        help="with --cleanup: delete uncommitted work and unmerged commits too")
    add_json_flag(parser)
    parser.set_defaults(handler=run)
