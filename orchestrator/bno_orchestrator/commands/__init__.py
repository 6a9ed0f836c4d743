"""Command groups of the ``orchestrator`` CLI, one module each, each with ``register(subparsers)``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bno_foundation.repo import find_repo_root

if TYPE_CHECKING:
    from rich.text import Text


def repo_from_args(args: argparse.Namespace) -> Path:
    """The target repository: ``--repo`` when given, else the enclosing git repository."""
    repo = getattr(args, "repo", None)
    return Path(repo).resolve() if repo else find_repo_root()


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    """Add the ``--json`` flag every command offers."""
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")


def stdout_console() -> Any:
    """A Rich console on stdout that shows every string as text: no markup, no emoji codes, control
    characters made visible (:func:`bno_foundation.terminal.safe_console`). Style with :func:`shown`."""
    from bno_foundation.terminal import safe_console

    return safe_console(file=sys.stdout, soft_wrap=False)


def shown(value: object, style: str = "") -> Text:
    """``value`` as a Rich ``Text`` in ``style``, its control characters made visible: user text that is
    safe on any console (a ``Text`` is never read as markup, but Rich keeps its ESC and NUL characters)."""
    from rich.text import Text

    from bno_foundation.terminal import visible

    return Text(visible(str(value)), style=style)
