"""Finding the repository a command works on (the one place that walks up to ``.git``)."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ENV = "ORCHESTRATOR_REPO"  # overrides the search, for both command lines and the hooks


def find_repo_root(start: Path | None = None) -> Path:
    """The nearest directory at or above ``start`` holding ``.git`` (a dir, or a worktree's file).

    ``$ORCHESTRATOR_REPO`` overrides the search. Without a git repository the start directory is used,
    so that ``orchestrator init`` can run in a fresh folder.
    """
    env = os.environ.get(REPO_ENV)
    if env:
        return Path(env).resolve()
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / ".git").exists():
            return candidate
    return here
