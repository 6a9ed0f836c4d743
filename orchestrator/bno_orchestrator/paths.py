"""Where the orchestrator keeps its files in a target repository."""

from __future__ import annotations

from pathlib import Path

from bno_foundation.repo import contained_path, find_repo_root
from bno_quality_gates import STATE_DIR_NAME, STORE_FILE_NAME

__all__ = ["STATE_DIR_NAME", "STORE_FILE_NAME", "config_root", "data_root", "find_repo_root", "gates_file", "state_dir",
           "store_path"]


def state_dir(repo: Path) -> Path:
    """``REPO/.orchestrator``: the store, gate records and caches (refused when it links outside REPO)."""
    return contained_path(repo, STATE_DIR_NAME)


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


def gates_file(repo: Path, explicit: str | Path | None = None) -> Path:
    """The gates file of ``repo``, resolved here once for every command: ``explicit`` when given, else
    the repository's own ``workflows/gates.yaml``, else the shipped one."""
    if explicit:
        return Path(explicit)
    own = repo / "workflows" / "gates.yaml"
    return own if own.is_file() else data_root() / "workflows" / "gates.yaml"
