"""The pre-commit fast path: decide "no gate is affected" without loading the validating machinery.

A pre-commit run where nothing relevant changed should cost little more than starting Python. This module
reads the staged file names and the globs of ``gates.yaml`` and ``components.yaml`` with the plain YAML
loader (no pydantic models, no networkx) and answers whether any gate's inputs are touched. Whenever it is
unsure (a config file is staged or does not parse) it answers "run", and the full runner (which validates
everything and reports errors with file and line) takes over.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

import yaml

from bno_quality_gates.globs import matches


def skip_from_env(environ: dict[str, str] | None = None) -> list[str]:
    """Gate names in ``$SKIP`` (comma separated, as pre-commit does)."""
    value = (environ if environ is not None else os.environ).get("SKIP", "")
    return [s.strip() for s in value.split(",") if s.strip()]


def staged_files(repo: Path) -> list[str]:
    """``git diff --cached --name-only`` (no renames)."""
    proc = subprocess.run(
        ["git", "diff", "--cached", "--name-only", "--no-renames", "-z"],
        cwd=repo, capture_output=True, text=True, check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.strip())
    return sorted(p for p in proc.stdout.split("\0") if p)


def _load(path: Path) -> Any:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the C build of the safe loader when present
    return yaml.load(path.read_text(encoding="utf-8"), Loader=loader)


def nothing_affected(repo: Path, gates_path: Path) -> list[str] | None:
    """The staged files when none of them can affect any gate; None when a full run must decide."""
    try:
        staged = staged_files(repo)
        if not staged:
            return []
        data = _load(gates_path)
        components_path = gates_path.parent / str(data.get("components_file", "components.yaml"))
        rel = {_rel(repo, gates_path), _rel(repo, components_path)}
        if rel & set(staged):
            return None
        components: dict[str, Any] = {}
        if components_path.is_file():
            components = (_load(components_path) or {}).get("components", {}) or {}
        for gate in (data.get("gates") or {}).values():
            globs = list(gate.get("inputs") or [])
            for component in gate.get("components") or []:
                globs.extend((components.get(component) or {}).get("paths") or [])
            if any(matches(f, globs) for f in staged):
                return None
        return staged
    except Exception:  # anything odd: let the validating runner decide and report
        return None


def _rel(repo: Path, path: Path) -> str:
    try:
        return path.resolve().relative_to(repo.resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def record_noop(db_path: Path, repo: Path, staged: list[str], skip: list[str]) -> str:
    """Record a pre-commit run in which no gate was affected; returns its run id."""
    from bno_quality_gates.results import ResultsDB, RunRecord, new_run_id

    now = time.time()
    run_id = new_run_id()
    record = RunRecord(run_id=run_id, started=now, finished=time.time(), mode="hook", hook="pre-commit", base=None,
                       head=None, machine="-", results=[], changed_files=staged, skip_requested=skip)
    with ResultsDB(db_path) as db:
        db.record(record)
    return run_id
