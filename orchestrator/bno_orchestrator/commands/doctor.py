"""``orchestrator doctor``: is this machine ready to run the orchestrator and the BitNet gates?"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path
from typing import Any

from bno_foundation.cli import EXIT_FAILURE, EXIT_OK, print_json
from bno_foundation.toolchain import (
    MISSING,
    OK,
    Check,
    checks_as_json,
    git_check,
    render_table,
    toolchain_checks,
)
from bno_orchestrator.commands import add_json_flag, repo_from_args
from bno_orchestrator.paths import state_dir


def store_writable_check(repo: Path) -> Check:
    """Whether ``REPO/.orchestrator`` can be created and written (checked with a real temporary file)."""
    target = state_dir(repo)
    try:
        target.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=target, prefix=".doctor-")
        os.close(fd)
        os.unlink(name)
    except OSError as exc:
        return Check("store path", MISSING, f"{target}: {exc.strerror or exc}", "make the directory writable")
    return Check("store path", OK, f"{target} is writable")


def run(args: argparse.Namespace) -> int:
    repo = repo_from_args(args)
    checks = [*toolchain_checks(include_slow=not args.quick), git_check(), store_writable_check(repo)]
    failed = any(c.failed for c in checks)
    if args.json:
        print_json({"ok": not failed, "checks": checks_as_json(checks)})
    else:
        render_table("orchestrator doctor", checks)
    return EXIT_FAILURE if failed else EXIT_OK


def register(sub: Any) -> None:
    parser = sub.add_parser("doctor", help="check the toolchain, git and the store path")
    parser.add_argument("--quick", action="store_true", help="skip the slow probes (CUDA, Triton interpreter)")
    add_json_flag(parser)
    parser.set_defaults(handler=run)
