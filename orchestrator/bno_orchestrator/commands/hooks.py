"""``orchestrator hooks install|uninstall|status``: git hooks that run the gates (thin over quality_gates)."""

from __future__ import annotations

import argparse
from typing import Any

from bno_foundation.cli import EXIT_OK, print_json
from bno_orchestrator.commands import add_json_flag, repo_from_args


def _print_states(states: list[Any], as_json: bool, extra: dict[str, Any] | None = None) -> None:
    if as_json:
        print_json({**(extra or {}), "hooks": [s.to_json() for s in states]})
        return
    for s in states:
        chained = f" (chained: {s.chained})" if s.chained else ""
        print(f"{s.name:<11} {s.state:<13} {s.path}{chained}")


def cmd_install(args: argparse.Namespace) -> int:
    """Install pre-commit and pre-push, keeping and chaining existing hooks."""
    from bno_orchestrator.paths import gates_file
    from bno_quality_gates import GATES_FILE
    from bno_quality_gates.hooks import install

    repo = repo_from_args(args)
    config = gates_file(repo, None)
    own = config == repo / GATES_FILE
    states = install(repo, hooks_path_ok=args.hooks_path_ok, config=None if own else config.resolve())
    _print_states(states, args.json)
    return EXIT_OK


def cmd_uninstall(args: argparse.Namespace) -> int:
    """Remove our hooks and restore the ones they chained."""
    from bno_quality_gates.hooks import uninstall

    states = uninstall(repo_from_args(args))
    _print_states(states, args.json)
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    """What is installed, where, and core.hooksPath."""
    from bno_quality_gates.hooks import describe, status

    repo = repo_from_args(args)
    info = describe(repo)
    if args.json:
        print_json(info)
        return EXIT_OK
    print(f"hooks directory: {info['hooks_dir']}")
    print(f"core.hooksPath: {info['core_hooks_path'] or '(not set)'}")
    _print_states(status(repo), False)
    return EXIT_OK


def register(sub: Any) -> None:
    """Add ``hooks`` and its subcommands."""
    parser = sub.add_parser("hooks", help="git hooks: pre-commit runs the affected fast gates, pre-push all")
    hooks = parser.add_subparsers(title="hooks commands", metavar="SUBCOMMAND", parser_class=type(parser))
    install = hooks.add_parser("install", help="install pre-commit and pre-push (existing hooks are chained)")
    install.add_argument("--hooks-path-ok", action="store_true",
                         help="core.hooksPath is set: install into that directory anyway")
    add_json_flag(install)
    install.set_defaults(handler=cmd_install)
    uninstall = hooks.add_parser("uninstall", help="remove them and restore the previous hooks")
    add_json_flag(uninstall)
    uninstall.set_defaults(handler=cmd_uninstall)
    status = hooks.add_parser("status", help="what is installed")
    add_json_flag(status)
    status.set_defaults(handler=cmd_status)
