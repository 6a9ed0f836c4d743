"""Affected-only selection: changed files -> components -> gates, plus their dependents transitively.

Changed files come from git: the staged set (``git diff --cached --name-only``, what a commit will hold) or a
range (``git diff --name-only BASE...HEAD`` plus uncommitted changes). A gate is affected when a changed file
matches one of its ``inputs`` globs or the globs of one of its ``components`` (from
``workflows/components.yaml``). Globs are repository-relative with ``/`` separators; ``**`` spans
directories, ``*`` and ``?`` stay inside one path segment.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable
from pathlib import Path

from pydantic import BaseModel, ConfigDict, field_validator

from bno_foundation.yamlio import load_yaml, validate
from bno_quality_gates.errors import GateError
from bno_quality_gates.globs import glob_regex, matches

__all__ = [
    "changed_files",
    "components_of",
    "gate_globs",
    "glob_regex",
    "load_components",
    "matches",
    "unstaged_changes",
]


class _Component(BaseModel):
    model_config = ConfigDict(extra="forbid")

    description: str = ""
    paths: list[str]

    @field_validator("paths")
    @classmethod
    def _non_empty(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("a component needs at least one path glob")
        return value


class _ComponentsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = 1
    components: dict[str, _Component]


def load_components(path: str | Path) -> dict[str, list[str]]:
    """``components.yaml`` -> ``{component id: [path globs]}`` (ConfigError with file:line on bad input)."""
    located = load_yaml(path)
    model = validate(_ComponentsFile, located)
    return {name: list(c.paths) for name, c in model.components.items()}


def components_of(path: str, components: dict[str, list[str]]) -> list[str]:
    """The components whose globs match ``path`` (a file may belong to several)."""
    return [name for name, globs in components.items() if matches(path, globs)]


def _git(repo: Path, *args: str) -> str:
    try:
        proc = subprocess.run(
            ["git", *args], cwd=repo, capture_output=True, text=True, check=False, timeout=60
        )
    except FileNotFoundError:
        raise GateError("git is not installed") from None
    if proc.returncode != 0:
        raise GateError(f"git {' '.join(args)} failed in {repo}: {proc.stderr.strip()}")
    return proc.stdout


def changed_files(repo: Path, *, staged: bool = False, base: str | None = None, head: str = "HEAD") -> list[str]:
    """Repository-relative paths changed: staged (``staged=True``) or between ``base`` and ``head``.

    With ``base``, uncommitted (staged, unstaged and untracked) changes count too when ``head`` is HEAD,
    so that a run before committing sees the work in progress.
    """
    if staged:
        return sorted(set(_lines(_git(repo, "diff", "--cached", "--name-only", "--no-renames", "-z"))))
    if base is None:
        raise GateError("changed_files needs staged=True or a base ref")
    _git(repo, "rev-parse", "--verify", "--quiet", f"{base}^{{commit}}")
    files = set(_lines(_git(repo, "diff", "--name-only", "--no-renames", "-z", f"{base}...{head}")))
    if head == "HEAD":
        files |= set(_lines(_git(repo, "diff", "--name-only", "--no-renames", "-z", "HEAD")))
        files |= set(_lines(_git(repo, "ls-files", "--others", "--exclude-standard", "-z")))
    return sorted(files)


def unstaged_changes(repo: Path) -> list[str]:
    """Tracked files whose working-tree content differs from the index (plus nothing untracked)."""
    return sorted(_lines(_git(repo, "diff", "--name-only", "-z")))


def _lines(text: str) -> list[str]:
    return [p for p in text.split("\0") if p]


def gate_globs(gate_inputs: Iterable[str], gate_components: Iterable[str], components: dict[str, list[str]]) -> list[str]:
    """A gate's own input globs plus the globs of the components it names."""
    globs = list(gate_inputs)
    for component in gate_components:
        globs.extend(components.get(component, []))
    return globs
