"""Helpers for the dispatch tests: a real git repository with ``orchestrator init``, a one-gate DAG and a
routed task whose agent runs a scripted shell executor."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path
from typing import Any

import git

from bno_orchestrator.agents import ExecutorSpec, dump_agent, load_agent
from bno_orchestrator.dispatch.worktree import commit_all

# the gate passes when mod.txt says "fixed"
GATES = """version: 1
defaults: {workers: 1, term_grace: 1}
gates:
  check:
    command: [python, -c, "import pathlib, sys; sys.exit(0 if 'fixed' in pathlib.Path('mod.txt').read_text() else 1)"]
    inputs: ["mod.txt", "tools/**"]
    timeout: 60
"""

TOOLS = {
    # argv: WORKTREE PROMPT_FILE
    "tools/fix.py": (
        "import pathlib, sys\n"
        "prompt = pathlib.Path(sys.argv[2]).read_text()\n"
        "pathlib.Path(sys.argv[1], 'mod.txt').write_text('fixed\\n')\n"
        "print('{\"result\": \"fixed it\"}')\n"
    ),
    "tools/break.py": (
        "import pathlib, sys\n"
        "pathlib.Path(sys.argv[1], 'mod.txt').write_text('still broken\\n')\n"
        "print('{\"result\": \"fixed it, all tests pass\"}')\n"
    ),
    "tools/nothing.py": "print('{\"result\": \"done, trust me\"}')\n",
    "tools/stdin.py": "import sys\nprint('stdin:', repr(sys.stdin.read()))\n",
}


def make_repo(path: Path) -> Path:
    """A git repository with ``orchestrator init``, the one-gate DAG, the tools and one commit."""
    from bno_orchestrator.commands.init import init_repo

    git.Repo.init(path, initial_branch="main")
    init_repo(path, profile="shipped")
    (path / "workflows" / "gates.yaml").write_text(GATES, encoding="utf-8")
    (path / "mod.txt").write_text("broken\n", encoding="utf-8")
    for rel, text in TOOLS.items():
        (path / rel).parent.mkdir(parents=True, exist_ok=True)
        (path / rel).write_text(text, encoding="utf-8")
    assert commit_all(path, "initial") is not None, "the fixture commit found nothing to commit"
    return path


def set_executor(repo: Path, agent: str, kind: str, **options: Any) -> None:
    """Give ``agent`` (a file in ``repo``/agents) the executor ``kind`` with ``options``."""
    path = repo / "agents" / f"{agent}.md"
    spec = load_agent(path).model_copy(update={"executor": ExecutorSpec(kind=kind, options=options)})  # type: ignore[arg-type]
    path.write_text(dump_agent(spec), encoding="utf-8")


def add_routed_task(repo: Path, task_id: str = "T-1", **fields: Any) -> str:
    """Create a task (implementation on bitnet-quant: the router gives it to ``code``) and route it."""
    from bno_orchestrator.config import load_config
    from bno_orchestrator.routing import route_backlog
    from bno_orchestrator.store import Store
    from bno_orchestrator.workflow import create_task

    data = {"id": task_id, "title": f"Task {task_id}: make mod.txt say fixed", "type": "implementation",
            "components": ["bitnet-quant"], "complexity": 1, **fields}
    with Store.open(repo) as store:
        create_task(store, data, actor="human:test")
        route_backlog(store, load_config(repo))
        task = store.task(task_id)
    assert task.assignees, f"the router did not assign {task_id}"
    return task.assignees[0]


def main_state(repo: Path) -> tuple[str, str, str]:
    """What must not change in the user's checkout: ``git status``, the index entries, HEAD."""
    status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=repo,
                            capture_output=True, text=True, check=True).stdout
    staged = subprocess.run(["git", "ls-files", "--stage"], cwd=repo, capture_output=True, text=True, check=True).stdout
    index = hashlib.sha256(staged.encode()).hexdigest()
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True,
                          check=True).stdout.strip()
    return status, index, head


def fake_cli(tmp_path: Path, monkeypatch: Any, name: str, body: str) -> Path:
    """A stand-in ``name`` CLI (a Python script running ``body``) found first through ``$BNO_AGENT_BIN_DIR``."""
    import stat
    import sys

    from bno_orchestrator.dispatch.clis import BIN_DIR_ENV

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / name
    fake.write_text(f"#!{sys.executable}\nimport os, pathlib, sys, time\n{body}")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv(BIN_DIR_ENV, str(bin_dir))
    return fake


def installed_cli(kind: str) -> Path:
    """The agent CLI ``kind`` the orchestrator would run (``$BNO_AGENT_BIN_DIR``, this checkout's (or its main
    checkout's) ``.agent-clis/``, then PATH); the test is skipped, saying where it looked, when it is absent."""
    import pytest

    from bno_orchestrator.dispatch.clis import BIN_DIR_ENV, find_binary, local_bin_dirs

    root = Path(__file__).resolve().parents[2]
    path = find_binary(kind, root)
    if path is None:
        where = ", ".join(str(d) for d in local_bin_dirs(root))
        pytest.skip(f"the {kind} CLI is not installed in ${BIN_DIR_ENV}, {where} or PATH (make agent-clis "
                    "installs it)")
    return path
