"""Temporary git repositories with toy gates files for the quality_gates tests."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from bno_foundation.processes import is_running

PY = sys.executable


def git(repo: Path, *args: str) -> str:
    """Run git in ``repo`` (a temporary test repository) and return stdout."""
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@e"}
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True, env=env).stdout


def pyc(code: str) -> str:
    """A YAML flow list running ``code`` with the test's Python (no shell)."""
    escaped = code.replace("'", "''")
    return f"[python, -c, '{escaped}']"


COMPONENTS = """\
version: 1
components:
  core:
    paths: ["src/core/**"]
  docs:
    paths: ["docs/**", "README.md"]
"""


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A committed git repo with src/core, docs and an empty workflows/ directory."""
    root = tmp_path / "repo"
    (root / "src" / "core").mkdir(parents=True)
    (root / "docs").mkdir()
    (root / "workflows").mkdir()
    (root / "src" / "core" / "a.py").write_text("A = 1\n")
    (root / "docs" / "guide.md").write_text("# guide\n")
    (root / "README.md").write_text("# readme\n")
    (root / ".gitignore").write_text(".orchestrator/\n")
    (root / "workflows" / "components.yaml").write_text(COMPONENTS)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "init")
    return root


def write_gates(repo: Path, body: str) -> Path:
    """Write ``workflows/gates.yaml`` (dedented) and return its path."""
    path = repo / "workflows" / "gates.yaml"
    path.write_text(textwrap.dedent(body))
    return path


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists; a zombie (dead, not yet reaped) counts as gone."""
    return is_running(pid)


def survivors(pids: list[int], within: float = 5.0) -> list[int]:
    """The processes of ``pids`` still alive after waiting up to ``within`` seconds for them to go."""
    deadline = time.monotonic() + within
    alive = [p for p in pids if pid_alive(p)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = [p for p in alive if pid_alive(p)]
    return alive
