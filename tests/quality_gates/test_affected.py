"""Affected-only selection: changed files -> components -> gates, dependents and upstream."""

from __future__ import annotations

from pathlib import Path

import pytest

from bno_quality_gates.affected import changed_files, components_of, glob_regex, load_components, matches
from bno_quality_gates.errors import ConfigError, GateError
from bno_quality_gates.runner import Runner, RunOptions
from bno_quality_gates.spec import load_gates
from tests.quality_gates.conftest import git, pyc, write_gates

GATES = f"""
gates:
  core-test:
    command: {pyc("pass")}
    components: [core]
    hooks: [pre-commit, pre-push]
  docs:
    command: {pyc("pass")}
    components: [docs]
    hooks: [pre-commit, pre-push]
  integration:
    command: {pyc("pass")}
    depends: [core-test]
    hooks: [pre-push]
  package:
    command: {pyc("pass")}
    inputs: ["pyproject.toml"]
    hooks: [pre-push]
  report:
    command: {pyc("pass")}
    depends: [package, docs]
    hooks: [pre-commit, pre-push]
"""


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        ("src/**", "src/a/b/c.py", True),
        ("src/**/*.py", "src/c.py", True),
        ("src/*.py", "src/a/c.py", False),
        ("*/__init__.py", "bitnet/__init__.py", True),
        ("*/__init__.py", "bitnet/sub/__init__.py", False),
        ("docs/", "docs/x/y.md", True),
        ("file?.txt", "file1.txt", True),
        ("[ab].py", "c.py", False),
        ("**/test_*.py", "tests/x/test_a.py", True),
    ],
)
def test_globs(pattern: str, path: str, expected: bool) -> None:
    assert bool(glob_regex(pattern).match(path)) is expected


def test_components_file_and_membership(repo: Path) -> None:
    components = load_components(repo / "workflows" / "components.yaml")
    assert components == {"core": ["src/core/**"], "docs": ["docs/**", "README.md"]}
    assert components_of("src/core/a.py", components) == ["core"]
    assert matches("README.md", components["docs"])
    bad = repo / "bad.yaml"
    bad.write_text("components:\n  core:\n    paths: [x]\n    globs: [x]\n")
    with pytest.raises(ConfigError) as info:
        load_components(bad)
    assert info.value.line == 4 and info.value.field == "components.core.globs"


def _runner(repo: Path, **kw: object) -> Runner:
    write_gates(repo, GATES)
    return Runner(load_gates(repo / "workflows" / "gates.yaml"), RunOptions(repo=repo, **kw))  # type: ignore[arg-type]


def test_affected_selection_adds_dependents_and_upstream(repo: Path) -> None:
    runner = _runner(repo, mode="affected", changed=["src/core/a.py"])
    plan = runner.plan()
    assert plan.selected == ["core-test", "integration"]
    assert set(plan.not_affected) == {"docs", "package", "report"}
    runner = _runner(repo, mode="affected", changed=["README.md"])
    # report depends on docs (affected) and package (not affected, but its result is needed)
    assert runner.plan().selected == ["docs", "package", "report"]
    assert _runner(repo, mode="affected", changed=["notes.txt"]).plan().selected == []
    everything = _runner(repo, mode="affected", changed=["workflows/gates.yaml"]).plan().selected
    assert set(everything) == {"core-test", "docs", "integration", "package", "report"}


def test_hook_modes(repo: Path) -> None:
    pre_commit = _runner(repo, mode="hook", hook="pre-commit", changed=["src/core/a.py"]).plan()
    assert pre_commit.selected == ["core-test"], "integration is a pre-push gate"
    pre_push = _runner(repo, mode="hook", hook="pre-push").plan()
    assert set(pre_push.selected) == {"core-test", "docs", "integration", "package", "report"}
    only = _runner(repo, mode="only", only=["integration"]).plan()
    assert only.selected == ["core-test", "integration"]
    alone = _runner(repo, mode="only", only=["integration"], no_deps=True).plan()
    assert alone.selected == ["integration"]


def test_changed_files_from_git(repo: Path) -> None:
    (repo / "src" / "core" / "a.py").write_text("A = 5\n")
    (repo / "docs" / "new.md").write_text("new\n")
    assert changed_files(repo, staged=True) == []
    git(repo, "add", "src/core/a.py")
    assert changed_files(repo, staged=True) == ["src/core/a.py"]
    assert changed_files(repo, base="HEAD") == ["docs/new.md", "src/core/a.py"]
    git(repo, "commit", "-q", "-m", "change")
    assert changed_files(repo, base="HEAD~1") == ["docs/new.md", "src/core/a.py"]
    with pytest.raises(GateError, match="no-such-ref"):
        changed_files(repo, base="no-such-ref")


def test_staged_run_through_git_selects_only_affected(repo: Path) -> None:
    runner = _runner(repo, mode="hook", hook="pre-commit")
    git(repo, "add", "workflows/gates.yaml")
    git(repo, "commit", "-q", "-m", "gates")
    (repo / "docs" / "guide.md").write_text("# edited\n")
    git(repo, "add", "docs/guide.md")
    record = runner.run()
    assert [r.gate for r in record.results] == ["docs", "package", "report"]
    assert record.changed_files == ["docs/guide.md"] and "core-test" in record.not_affected
    git(repo, "commit", "-q", "-m", "docs")
    nothing = _runner(repo, mode="hook", hook="pre-commit").run()
    assert nothing.results == [] and nothing.exit_code == 0
