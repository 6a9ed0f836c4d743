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


def contained_path(repo: Path, relative: str | Path) -> Path:
    """``repo / relative``, refused when a symlink on the way leads out of ``repo``.

    A committed ``.orchestrator`` symlink (or one a checkout planted) must not make the tool write its
    store, records or reports outside the repository. Raises :class:`UserError` naming the link.
    """
    from bno_foundation.errors import UserError

    root = Path(repo).resolve()
    path = Path(repo) / relative
    resolved = path.resolve()
    if resolved != root and root not in resolved.parents:
        link = next((p for p in (path, *path.parents) if p.is_symlink()), path)
        raise UserError(f"{link} is a symbolic link to {resolved}, outside the repository {root}: refused "
                        f"(remove the link; the tool writes only inside the repository)")
    return path
