"""Where the orchestrator keeps its files in a target repository."""

from __future__ import annotations

import os
from pathlib import Path

STATE_DIR_NAME = ".orchestrator"
STORE_FILE_NAME = "state.db"


def find_repo_root(start: Path | None = None) -> Path:
    """The nearest directory at or above ``start`` holding ``.git`` (a dir or a worktree file).

    ``$ORCHESTRATOR_REPO`` overrides the search. Without a git repository the start directory is used,
    so that ``orchestrator init`` can run in a fresh folder.
    """
    env = os.environ.get("ORCHESTRATOR_REPO")
    if env:
        return Path(env).resolve()
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / ".git").exists():
            return candidate
    return here


def state_dir(repo: Path) -> Path:
    """``REPO/.orchestrator``: the store, gate records and caches."""
    return repo / STATE_DIR_NAME


def store_path(repo: Path) -> Path:
    """``REPO/.orchestrator/state.db``."""
    return state_dir(repo) / STORE_FILE_NAME


def data_root() -> Path:
    """The directory holding the shipped ``agents/`` and ``workflows/`` folders.

    In a source checkout they sit at the repository root, two levels above this package
    (``orchestrator/bno_orchestrator/``); in an installed wheel they are package data under
    ``bno_orchestrator/data``.
    """
    packaged = Path(__file__).resolve().parent / "data"
    if (packaged / "agents").is_dir():
        return packaged
    return Path(__file__).resolve().parents[2]


def config_root(repo: Path) -> Path:
    """The repo's own ``agents/`` and ``workflows/`` when it has them, else the shipped defaults."""
    if (repo / "workflows").is_dir() and (repo / "agents").is_dir():
        return repo
    return data_root()
