"""Command groups of the ``orchestrator`` CLI, one module each, each with ``register(subparsers)``."""

from __future__ import annotations

import argparse
from pathlib import Path

from bno_foundation.repo import find_repo_root


def repo_from_args(args: argparse.Namespace) -> Path:
    """The target repository: ``--repo`` when given, else the enclosing git repository."""
    repo = getattr(args, "repo", None)
    return Path(repo).resolve() if repo else find_repo_root()


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    """Add the ``--json`` flag every command offers."""
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")
