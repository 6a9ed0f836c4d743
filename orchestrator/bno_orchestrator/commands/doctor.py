"""``orchestrator doctor``: the toolchain, git, the store and the agent CLIs (the checks are in
:mod:`.doctor_checks`, imported when the command runs: the CLI's start stays light)."""

from __future__ import annotations

import argparse
from typing import Any

from bno_orchestrator.commands import add_json_flag, repo_from_args


def run(args: argparse.Namespace) -> int:
    """The framework's view of the doctor: the toolchain, git, the store path, the store in use and whether
    it is reachable, and the agent CLIs."""
    from bno_foundation.toolchain import git_check, report, toolchain_checks
    from bno_orchestrator.commands.doctor_checks import agent_cli_checks, store_check, store_writable_check

    repo = repo_from_args(args)
    checks = [*toolchain_checks(include_slow=not args.quick), git_check(), store_writable_check(repo),
              store_check(repo), *agent_cli_checks(repo)]
    return report("orchestrator", checks, as_json=args.json)


def register(sub: Any) -> None:
    parser = sub.add_parser("doctor", help="check the toolchain, git, the store and the agent CLIs")
    parser.add_argument("--quick", action="store_true", help="skip the slow probes (CUDA, Triton interpreter)")
    add_json_flag(parser)
    parser.set_defaults(handler=run)
