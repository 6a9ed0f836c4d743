"""``quality-gates``: run a repository's gate DAG; what the installed git hooks call.

``quality-gates run [--hook pre-commit|pre-push | --all | --only GATE ...] [--config FILE]``. The gates
file defaults to the repository's ``workflows/gates.yaml``; whoever installs the hooks passes ``--config``
when the repository has none of its own. The pre-commit fast path (no staged file touches any gate)
imports only the standard library, PyYAML and the glob matcher: it costs little more than starting Python.

The orchestrator's ``gates run`` resolves its paths and calls :func:`run_gates` with the same arguments.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bno_foundation.cli import EXIT_OK, CliArgumentParser, print_json, run_cli
from bno_foundation.errors import ConfigError, UserError
from bno_foundation.repo import find_repo_root
from bno_quality_gates import GATES_FILE, STATE_DIR_NAME, STORE_FILE_NAME

HOOKS = ("pre-commit", "pre-push")


def add_run_arguments(run: argparse.ArgumentParser) -> None:
    """The arguments of a gate run (shared with ``orchestrator gates run``)."""
    which = run.add_mutually_exclusive_group()
    which.add_argument("--all", action="store_true", help="every gate, affected or not")
    which.add_argument("--only", nargs="+", metavar="GATE", help="these gates (and their upstream)")
    which.add_argument("--hook", choices=HOOKS, help="what a git hook runs")
    run.add_argument("--base", default=None, help="the base ref: changes since it (default: uncommitted work)")
    run.add_argument("--no-deps", action="store_true", help="with --only: do not run upstream gates")
    run.add_argument("--no-cache", action="store_true", help="run even when a pass is cached")
    run.add_argument("--workers", type=int, default=None, help="parallel gates (default: the gates file)")
    run.add_argument("--source", choices=["worktree", "index"], default=None,
                     help="test the working tree, or a snapshot of the staged content (pre-commit default)")
    run.add_argument("--quiet", action="store_true", help="only the verdict line")
    run.add_argument("--config", default=None, help=f"the gates file (default: {GATES_FILE})")
    run.add_argument("--json", action="store_true", help="print the run record as JSON")


def _progress(console: Any) -> Any:
    def on_event(event: str, name: str, result: Any) -> None:
        if event == "start":
            console.print(f"[dim]…[/] {name} started")
            return
        from rich.markup import escape

        from bno_quality_gates.summary import STATUS_STYLE

        style = STATUS_STYLE.get(result.status, "")
        detail = f" ({escape(result.reason)})" if result.reason else ""
        console.print(f"[{style}]{result.status:>8}[/] {escape(name)} {result.duration:.2f}s{detail}")

    return on_event


def _mode(args: argparse.Namespace) -> str:
    if args.hook:
        return "hook"
    if args.all:
        return "all"
    return "only" if args.only else "affected"


def run_gates(args: argparse.Namespace, *, repo: Path, config_path: Path, state_dir: Path) -> int:
    """Run the gates as ``args`` asks (the arguments of :func:`add_run_arguments`); returns the exit code."""
    if args.hook == "pre-commit" and not args.json:
        # the fast path: no validation machinery when no staged file can affect any gate
        from bno_quality_gates.fastpath import nothing_affected, record_noop, skip_from_env

        staged = nothing_affected(repo, config_path)
        if staged is not None:
            run_id = record_noop(state_dir / STORE_FILE_NAME, repo, staged, skip_from_env())
            print(f"nothing to check: no gate is affected by the {len(staged)} staged file(s) (run {run_id})")
            return EXIT_OK
    from rich.console import Console

    from bno_quality_gates.runner import Runner, RunOptions
    from bno_quality_gates.spec import load_gates
    from bno_quality_gates.summary import render_table, verdict_line

    if not config_path.is_file():
        raise ConfigError("no gates file here (pass --config FILE)", path=config_path)
    config = load_gates(config_path)
    mode = _mode(args)
    if args.no_deps and mode != "only":
        raise UserError("--no-deps goes with --only")
    base = args.base
    if base and set(base) == {"0"}:
        base = None  # git's "no commit" (a new branch pushed, a first push in CI)
    from bno_quality_gates.fastpath import skip_from_env

    options = RunOptions(
        repo=repo, mode=mode, hook=args.hook, base=base, only=list(args.only or []), no_deps=args.no_deps,
        use_cache=not args.no_cache, workers=args.workers, skip=skip_from_env(),
        source=args.source or ("index" if args.hook == "pre-commit" else "worktree"),
        state_dir=state_dir, db_path=state_dir / STORE_FILE_NAME,
    )
    err = Console(stderr=True, highlight=False)
    record = Runner(config, options, on_event=None if (args.json or args.quiet) else _progress(err)).run()
    if args.json:
        print_json(record.to_json())
    elif args.quiet:
        print(verdict_line(record))
    else:
        render_table(record)
        print(f"records: {record.run_dir}")
    if record.overridden:
        err.print(f"[yellow]SKIP requested for required gate(s) {', '.join(record.overridden)}: recorded, not green[/]")
    return record.exit_code


def _cmd_run(args: argparse.Namespace) -> int:
    repo = Path(args.repo).resolve() if args.repo else find_repo_root()
    config_path = Path(args.config) if args.config else repo / GATES_FILE
    state_dir = Path(args.state_dir) if args.state_dir else repo / STATE_DIR_NAME
    return run_gates(args, repo=repo, config_path=config_path, state_dir=state_dir)


def build_parser() -> argparse.ArgumentParser:
    """The ``quality-gates`` argument parser."""
    from bno_quality_gates.version import VERSION

    parser = CliArgumentParser(prog="quality-gates", description="Run a repository's quality-gate DAG.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {VERSION}")
    parser.add_argument("-v", "--verbose", action="store_true", help="print tracebacks of errors")
    parser.add_argument("--repo", default=None, help="the repository (default: the enclosing git repo)")
    parser.add_argument("--state-dir", default=None, help=f"records and caches (default: REPO/{STATE_DIR_NAME})")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=CliArgumentParser)
    run = sub.add_parser("run", help="run the affected gates (or --all, --only, --hook)")
    add_run_arguments(run)
    run.set_defaults(handler=_cmd_run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Console-script entry point."""
    return run_cli("quality-gates", build_parser(), argv, (UserError,))


if __name__ == "__main__":
    raise SystemExit(main())
