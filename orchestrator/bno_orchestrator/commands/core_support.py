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


def open_store(args: argparse.Namespace) -> Store:
    """The target repository's store: the one ``$ORCHESTRATOR_STORE_URL`` or ``workflows/store.yaml`` names
    (a team's PostgreSQL database), else the repository's SQLite file. psycopg is loaded only for a
    ``postgresql://`` URL."""
    from bno_orchestrator.store import Store
    from bno_orchestrator.store_url import SQLITE, resolve

    target = repo_from_args(args)
    chosen = resolve(target)
    set_up = (target / "workflows").is_dir() or (target / "agents").is_dir()
    if chosen.engine == SQLITE and chosen.source == "default" and not set_up and not (
            chosen.path is not None and chosen.path.exists()):
        from bno_orchestrator.errors import UserError

        raise UserError(f"{target} is not set up for the orchestrator (no .orchestrator/state.db, workflows/ or "
                        "agents/): run `orchestrator init` there first, or point --repo at a set-up repository")
    return Store.open(target)


def load(args: argparse.Namespace) -> Config:
    """The target repository's configuration (cross-checked)."""
    from bno_orchestrator.config import load_config

    return load_config(repo_from_args(args))


def repo(args: argparse.Namespace) -> Path:
    """The target repository."""
    return repo_from_args(args)


def console() -> Console:
    """A rich console on stdout."""
    from rich.console import Console

    return Console(file=sys.stdout, highlight=False, soft_wrap=False)


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
