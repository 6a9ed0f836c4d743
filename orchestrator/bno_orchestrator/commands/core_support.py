"""Helpers shared by the task, route, status, escalate and export/import commands."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bno_orchestrator.commands import repo_from_args

if TYPE_CHECKING:
    from rich.console import Console

    from bno_orchestrator.config import Config
    from bno_orchestrator.store import Store


def add_actor_flag(parser: argparse.ArgumentParser) -> None:
    """``--actor``: who makes the change (``human:NAME``, ``agent:ID``, ``router``, ``gates``...)."""
    parser.add_argument("--actor", default=None,
                        help="who makes the change (default: $ORCHESTRATOR_ACTOR or human:<login>)")


def actor_of(args: argparse.Namespace) -> str:
    """The ``--actor`` value or the default actor."""
    from bno_orchestrator.workflow import default_actor

    return str(getattr(args, "actor", None) or default_actor())


def require_repository(target: Path) -> bool:
    """Refuse (:class:`UserError`, exit 2, nothing created) a ``target`` that is not there, is no git
    repository, or was never set up for the orchestrator (no ``.orchestrator/state.db``, ``workflows/`` or
    ``agents/``), saying what to run. Returns whether the repository's configuration is there (a fresh clone
    of a set-up repository: its local store may be created on first use)."""
    from bno_orchestrator.errors import UserError
    from bno_orchestrator.paths import store_path

    if not target.is_dir():
        raise UserError(f"{target}: no such directory: point --repo at a git repository (`orchestrator init` sets "
                        "one up)")
    if not (target / ".git").exists():
        raise UserError(f"{target} is not a git repository: run `git init` and `orchestrator init` there, or point "
                        "--repo at a repository")
    configured = (target / "workflows").is_dir() or (target / "agents").is_dir()
    if not configured and not store_path(target).exists():
        raise UserError(f"{target} is not set up for the orchestrator (no .orchestrator/state.db, workflows/ or "
                        "agents/): run `orchestrator init` there first, or point --repo at a set-up repository")
    return configured


def checked_repo(args: argparse.Namespace) -> Path:
    """The target repository, refused unless it is there, a git repository and set up
    (:func:`require_repository`): what a command that opens the store itself (dispatch, advance, worker,
    gates) starts with, so that it creates nothing where it should not."""
    target = repo_from_args(args)
    require_repository(target)
    return target


def open_store(args: argparse.Namespace) -> Store:
    """The target repository's store: the one ``$ORCHESTRATOR_STORE_URL`` or ``workflows/store.yaml`` names
    (a team's PostgreSQL database), else the repository's SQLite file. psycopg is loaded only for a
    ``postgresql://`` URL. A repository that is missing, no git repository or never set up is refused
    (:func:`require_repository`); so is a store file that cannot be trusted (damaged, emptied, newer), with
    its file left as it is; a write-protected one opens read-only."""
    from bno_orchestrator.store import Store

    target = repo_from_args(args)
    configured = require_repository(target)
    return Store.open(target, create=configured)


def load(args: argparse.Namespace) -> Config:
    """The target repository's configuration (cross-checked)."""
    from bno_orchestrator.config import load_config

    return load_config(repo_from_args(args))


def repo(args: argparse.Namespace) -> Path:
    """The target repository."""
    return repo_from_args(args)


def console() -> Console:
    """A rich console on stdout that shows every string as text (never markup, emoji codes or terminal
    control); style with rich.text.Text."""
    from bno_foundation.terminal import safe_console

    console: Console = safe_console(file=sys.stdout, soft_wrap=False)
    return console


def fmt(value: Any) -> str:
    """A cell value: lists joined, None as '-'."""
    if value is None or value == []:
        return "-"
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def num(value: float) -> str:
    """A number with at most three decimals and no trailing zeros (``2``, ``0.8``, ``4.667``)."""
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text
