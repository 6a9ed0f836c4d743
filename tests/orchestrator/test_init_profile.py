"""`orchestrator init` in someone else's repository: components and gates made for what it holds."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from bno_orchestrator import repo_profile


def _files(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=root, check=True)
    return root


def _init(repo: Path, *extra: str) -> dict:
    proc = subprocess.run([sys.executable, "-m", "bno_orchestrator.cli", "--repo", str(repo), "init", "--json", *extra],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_a_python_project_gets_pytest_and_its_own_paths(tmp_path: Path) -> None:
    repo = _files(tmp_path, {"pyproject.toml": "[project]\nname = 'x'\n[tool.ruff]\n", "src/x/__init__.py": "",
                             "tests/test_x.py": "def test_x():\n    assert True\n", "README.md": "# x\n"})
    (repo / ".venv" / "bin").mkdir(parents=True)
    (repo / ".venv" / "bin" / "python").write_text("")
    report = _init(repo)
    assert report["profile"]["languages"] == ["python"]
    gates = yaml.safe_load((repo / "workflows" / "gates.yaml").read_text())["gates"]
    assert gates["test"]["command"] == ["{main}/.venv/bin/python", "-m", "pytest", "-q"]
    assert gates["lint"]["command"][-3:] == ["ruff", "check", "."]
    components = yaml.safe_load((repo / "workflows" / "components.yaml").read_text())["components"]
    assert components["source"]["paths"] == ["src/**"]
    assert components["tests"]["paths"] == ["tests/**"]
    assert "bitnet-core" not in components
    routing = yaml.safe_load((repo / "workflows" / "routing.yaml").read_text())
    assert set(routing["components"]) == set(components)
    # the generated files load: a task on the repository's component routes
    proc = subprocess.run([sys.executable, "-m", "bno_orchestrator.cli", "--repo", str(repo), "task", "add", "Fix x",
                           "--type", "bugfix", "--component", "source", "--json"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    # the agents name only this repository's components and gates: every file validates
    proc = subprocess.run([sys.executable, "-m", "bno_orchestrator.cli", "--repo", str(repo), "agents", "validate"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "19 valid agent(s)" in proc.stdout, proc.stdout + proc.stderr
    assert "bitnet-quant" not in (repo / "agents" / "code.md").read_text()


def test_node_and_go_projects_are_recognised(tmp_path: Path) -> None:
    node = _files(tmp_path / "node", {"package.json": json.dumps({"scripts": {"test": "vitest run", "lint": "eslint ."}}),
                                      "src/index.js": "export const x = 1\n"})
    profile = repo_profile.detect(node)
    assert [g.name for g in profile.gates] == ["npm-test", "npm-lint"]
    go = _files(tmp_path / "go", {"go.mod": "module x\n", "cmd/main.go": "package main\n"})
    profile = repo_profile.detect(go)
    assert profile.languages == ["go"] and profile.gates[0].command == ["go", "test", "./..."]
    assert "cmd/**" in profile.components["source"]["paths"]


def test_nothing_recognised_is_said_plainly(tmp_path: Path) -> None:
    repo = _files(tmp_path, {"notes.txt": "hello\n"})
    report = _init(repo)
    assert report["profile"]["gates"] == []
    assert any("can never be verified" in note for note in report["profile"]["notes"])
    assert yaml.safe_load((repo / "workflows" / "gates.yaml").read_text())["gates"] == {}
    proc = subprocess.run([sys.executable, "-m", "bno_orchestrator.cli", "--repo", str(repo), "init"],
                          capture_output=True, text=True, timeout=120)
    assert "nothing recognised" in proc.stdout


def test_shipped_profile_copies_this_projects_files(tmp_path: Path) -> None:
    repo = _files(tmp_path, {"pyproject.toml": "[project]\nname = 'x'\n"})
    report = _init(repo, "--profile", "shipped")
    assert report["profile"]["kind"] == "shipped"
    components = yaml.safe_load((repo / "workflows" / "components.yaml").read_text())["components"]
    assert "bitnet-core" in components
