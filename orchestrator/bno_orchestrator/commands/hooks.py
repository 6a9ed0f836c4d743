"""``orchestrator hooks install|uninstall|status``: git hooks that run the gates (thin over quality_gates).

``install`` goes through whoever owns the repository's hooks (pre-commit, lefthook, husky, else plain git
hooks; docs/hooks.md); ``--print`` shows the exact snippet and changes nothing. ``status`` exits 1 when a
hook of ours is configured or present somewhere git will not run it (inactive or bypassed).
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path
from typing import Any, cast

from bno_foundation.cli import EXIT_FAILURE, EXIT_OK, print_json
from bno_orchestrator.commands import add_json_flag, repo_from_args

MANAGER_CHOICES = ("pre-commit", "lefthook", "husky", "git")


def _say(text: str, end: str = "\n") -> None:
    """A line on stdout with its control characters made visible (paths and config values are user text)."""
    from bno_foundation.terminal import visible

    print(visible(text), end=end)


def _print_states(hooks: list[dict[str, Any]]) -> None:
    """One line per hook (state, who runs it, path), then why, when there is something to say."""
    for h in hooks:
        by = f" ({h['manager']})" if h["manager"] else ""
        _say(f"{h['name']:<11} {h['state'] + by:<22} {h['path']}")
        if h["detail"]:
            _say(f"{'':<11} {h['detail']}")


def _gates_config(repo: Path) -> Path | None:
    """The gates file the hooks pass as ``--config``: None when the repository has its own."""
    from bno_orchestrator.paths import gates_file
    from bno_quality_gates import GATES_FILE

    config = gates_file(repo, None)
    return None if config == repo / GATES_FILE else config.resolve()


def cmd_install(args: argparse.Namespace) -> int:
    """Install pre-commit and pre-push through the repository's hook manager (or plain hooks)."""
    from bno_quality_gates.hooks import HOOKS, detect, install, snippet

    repo = repo_from_args(args)
    config = _gates_config(repo)
    if args.print_snippet:
        manager = args.manager or detect(repo).manager
        snippets = {hook: snippet(manager, hook, config) for hook in HOOKS}
        if args.json:
            print_json({"manager": manager, "snippets": snippets})
            return EXIT_OK
        for hook, text in snippets.items():
            _say(f"# {manager}, {hook}:")
            _say(text, end="" if text.endswith("\n") else "\n")
        return EXIT_OK
    report = install(repo, hooks_path_ok=args.hooks_path_ok, config=config, manager=args.manager,
                     sync=not args.no_sync)
    if args.json:
        print_json(report.to_json())
        return EXIT_OK
    _say(f"hook manager: {report.manager} ({report.reason})")
    for path in dict.fromkeys(report.changed):
        _say(f"changed: {path}")
    if report.sync_command is not None:
        command = shlex.join(report.sync_command)
        why = "" if args.no_sync else f"  ({report.sync_command[0]} was not found here)"
        _say(f"ran: {command}" if report.synced else f"now run: {command}{why}")
    _print_states([h.to_json() for h in report.hooks])
    return EXIT_OK


def cmd_uninstall(args: argparse.Namespace) -> int:
    """Remove our hooks and entries everywhere and restore the hooks they chained."""
    from bno_quality_gates.hooks import uninstall

    states = uninstall(repo_from_args(args))
    if args.json:
        print_json({"hooks": [s.to_json() for s in states]})
    else:
        _print_states([s.to_json() for s in states])
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    """Per hook: whether git runs the gates and through whom; exit 1 when one of ours will not run."""
    from bno_quality_gates.hooks import BROKEN_STATES, describe

    info = describe(repo_from_args(args))
    hooks = cast("list[dict[str, Any]]", info["hooks"])
    broken = any(h["state"] in BROKEN_STATES for h in hooks)
    if args.json:
        print_json(info)
        return EXIT_FAILURE if broken else EXIT_OK
    _say(f"hooks directory: {info['hooks_dir']}")
    _say(f"core.hooksPath: {info['core_hooks_path'] or '(not set)'}")
    _say(f"hook manager: {info['manager']} ({info['manager_reason']})")
    _print_states(hooks)
    return EXIT_FAILURE if broken else EXIT_OK


def register(sub: Any) -> None:
    """Add ``hooks`` and its subcommands."""
    parser = sub.add_parser("hooks", help="git hooks: pre-commit runs the affected fast gates, pre-push all")
    hooks = parser.add_subparsers(title="hooks commands", metavar="SUBCOMMAND", parser_class=type(parser))
    install = hooks.add_parser(
        "install", help="install pre-commit and pre-push through pre-commit, lefthook, husky or plain hooks")
    install.add_argument("--manager", choices=MANAGER_CHOICES, default=None,
                         help="who runs the hooks (default: detected)")
    install.add_argument("--print", "--snippet", dest="print_snippet", action="store_true",
                         help="print the exact entries to paste, change nothing")
    install.add_argument("--no-sync", action="store_true",
                         help="do not run the manager's own install command (it is printed)")
    install.add_argument("--hooks-path-ok", action="store_true",
                         help="plain hooks: core.hooksPath is set, install into that directory anyway")
    add_json_flag(install)
    install.set_defaults(handler=cmd_install)
    uninstall = hooks.add_parser("uninstall", help="remove every entry and hook of ours, restore the previous hooks")
    add_json_flag(uninstall)
    uninstall.set_defaults(handler=cmd_uninstall)
    status = hooks.add_parser("status", help="whether git runs the gates, per hook (exit 1: one will not)")
    add_json_flag(status)
    status.set_defaults(handler=cmd_status)
