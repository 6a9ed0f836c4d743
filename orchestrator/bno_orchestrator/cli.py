"""The ``orchestrator`` command line: one entry point, one error handler, exit codes.

Each command group lives in its own module under :mod:`bno_orchestrator.commands` and adds itself with
``register(subparsers)``. Handlers import what they need lazily: this module and the command modules
import no heavy library (no torch, no textual) so that git hooks start fast.

Exit codes: 0 success, 1 a negative verdict (a gate failed, doctor found a problem), 2 a user error,
3 an internal error (the traceback is written to a log file), 130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Sequence

from bno_foundation.cli import CliArgumentParser, run_cli
from bno_orchestrator import __version__
from bno_orchestrator.errors import UserError

COMMAND_MODULES: tuple[str, ...] = (
    "bno_orchestrator.commands.doctor",
    "bno_orchestrator.commands.init",
    "bno_orchestrator.commands.tasks",
    "bno_orchestrator.commands.route",
    "bno_orchestrator.commands.status",
    "bno_orchestrator.commands.escalate",
    "bno_orchestrator.commands.exchange",
    "bno_orchestrator.commands.agents",
    "bno_orchestrator.commands.gates", "bno_orchestrator.commands.hooks",
    "bno_orchestrator.commands.report", "bno_orchestrator.commands.board",
    "bno_orchestrator.commands.dispatch", "bno_orchestrator.commands.advance", "bno_orchestrator.commands.demo",
    "bno_orchestrator.commands.store", "bno_orchestrator.commands.worker",
)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, with every command group registered."""
    parser = CliArgumentParser(
        prog="orchestrator",
        description="Run the development of an ML code base with specialist agents and hard quality gates.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="print tracebacks of errors")
    parser.add_argument("--repo", default=None, help="the target repository (default: the enclosing git repo)")
    from bno_orchestrator.clock import add_now_option

    add_now_option(parser)  # --now TIME: one fixed clock for the command (or $ORCHESTRATOR_NOW)
    sub = parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=CliArgumentParser)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Console-script entry point."""
    from bno_orchestrator.clock import fix

    try:
        return run_cli("orchestrator", build_parser(), argv, (UserError,))
    finally:
        fix(None)  # a clock fixed by --now lasts for this command only


if __name__ == "__main__":
    raise SystemExit(main())
