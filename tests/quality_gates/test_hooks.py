"""Hooks: install and uninstall around an existing hook, chaining, core.hooksPath, and a real commit."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from bno_quality_gates import hooks
from bno_quality_gates.errors import GateError
from tests.quality_gates.conftest import git, pyc, write_gates
from tests.quality_gates.hook_env import bare_remote, calls, hook_env, recording_launcher

EXISTING = b"#!/bin/sh\n# a team's own hook\necho chained-ran >> \"$(git rev-parse --git-dir)/chained.log\"\nexit 0\n"


def _existing_hook(repo: Path, name: str = "pre-commit", body: bytes = EXISTING) -> Path:
    path = repo / ".git" / "hooks" / name
    path.write_bytes(body)
    path.chmod(0o751)
    return path


def test_install_chains_and_uninstall_restores_byte_for_byte(repo: Path) -> None:
    original = _existing_hook(repo)
    before = (original.read_bytes(), stat.S_IMODE(original.stat().st_mode))
    report = hooks.install(repo)
    assert report.manager == "git"
    states = {s.name: s for s in report.hooks}
    assert (states["pre-commit"].state, states["pre-commit"].manager) == ("chained", "git")
    assert states["pre-commit"].chained and states["pre-push"].state == "installed"
    chained = repo / ".git" / "hooks" / "pre-commit.orchestrator-chained"
    assert chained.read_bytes() == before[0]
    text = original.read_text()
    assert hooks.MARKER in text and "gates run --hook pre-commit" in text and "orchestrator-chained" in text
    assert os.access(original, os.X_OK)
    # idempotent: a second install does not chain our own hook
    hooks.install(repo)
    assert chained.read_bytes() == before[0]
    states = {s.name: s for s in hooks.uninstall(repo)}
    assert states["pre-commit"].state == "absent" and states["pre-commit"].chained is None
    assert states["pre-push"].state == "absent"
    assert (original.read_bytes(), stat.S_IMODE(original.stat().st_mode)) == before
    assert not chained.exists()


def test_uninstall_leaves_a_foreign_hook_alone(repo: Path) -> None:
    path = _existing_hook(repo)
    hooks.uninstall(repo)
    assert path.read_bytes() == EXISTING


def test_core_hooks_path_is_refused_with_a_clear_message(repo: Path) -> None:
    git(repo, "config", "core.hooksPath", "tools/githooks")  # no manager we know
    with pytest.raises(GateError, match=r"core.hooksPath is set to 'tools/githooks'.*--hooks-path-ok"):
        hooks.install(repo)
    assert not (repo / ".git" / "hooks" / "pre-commit").exists()
    hooks.install(repo, hooks_path_ok=True)
    assert hooks.MARKER in (repo / "tools" / "githooks" / "pre-commit").read_text()
    info = hooks.describe(repo)
    assert (info["core_hooks_path"], info["manager"]) == ("tools/githooks", "git")
    assert [h.state for h in hooks.status(repo)] == ["installed", "installed"]


def test_hook_runs_chained_hook_then_gates_and_keeps_unstaged_work(repo: Path) -> None:
    """A real `git commit` through the installed hook: chained hook first, the staged content tested,
    unstaged edits untouched, a failing gate blocks the commit and SKIP lets it through (recorded)."""
    check = (
        "import pathlib, sys; text = pathlib.Path('src/core/a.py').read_text(); "
        "print('saw', text.strip()); sys.exit(0 if 'good' in text else 1)"
    )
    write_gates(
        repo,
        f"""
        gates:
          check:
            command: {pyc(check)}
            components: [core]
            hooks: [pre-commit]
        """,
    )
    git(repo, "add", "workflows/gates.yaml")
    git(repo, "commit", "-q", "-m", "gates", "--no-verify")
    _existing_hook(repo)
    hooks.install(repo)
    env_path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    env = {**os.environ, "PATH": env_path, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@e", "PYTHONPATH": str(Path(__file__).parents[2])}
    env.pop("SKIP", None)
    target = repo / "src" / "core" / "a.py"
    target.write_text("good = 1\n")
    git(repo, "add", "src/core/a.py")
    target.write_text("bad = 1  # unstaged edit\n")  # the working tree differs from the index
    ok = subprocess.run(["git", "commit", "-q", "-m", "good"], cwd=repo, env=env, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert target.read_text() == "bad = 1  # unstaged edit\n", "unstaged work is untouched"
    assert "chained-ran" in (repo / ".git" / "chained.log").read_text()
    git(repo, "add", "src/core/a.py")  # now stage the bad content
    blocked = subprocess.run(["git", "commit", "-q", "-m", "bad"], cwd=repo, env=env, capture_output=True, text=True)
    assert blocked.returncode != 0 and "failed" in blocked.stdout + blocked.stderr
    skipped = subprocess.run(
        ["git", "commit", "-q", "-m", "bad but skipped"], cwd=repo, env={**env, "SKIP": "check"},
        capture_output=True, text=True,
    )
    assert skipped.returncode == 0, skipped.stdout + skipped.stderr
    from bno_quality_gates.results import ResultsDB

    with ResultsDB(repo / ".orchestrator" / "state.db") as db:
        latest = db.run("latest")
    assert latest is not None and latest["skip_requested"] == ["check"] and latest["passed"] is False
    assert git(repo, "log", "--format=%s", "-1").strip() == "bad but skipped"


def test_pre_push_hands_git_s_arguments_and_stdin_to_the_chained_hook_and_to_our_command(
    repo: Path, tmp_path: Path
) -> None:
    """The contract with the run command: ``run --hook pre-push REMOTE URL`` with git's ref lines on stdin
    (the run command parses them), after the chained hook got the same arguments and stdin."""
    launcher, out = recording_launcher(tmp_path)
    remote = bare_remote(repo, tmp_path)
    _existing_hook(repo, "pre-push", b"#!/bin/sh\necho \"$@\" >> \"$(git rev-parse --git-dir)/prepush.txt\"\n"
                   b"cat >> \"$(git rev-parse --git-dir)/prepush.txt\"\n")
    hooks.install(repo, launcher=launcher)
    env = hook_env(tmp_path)
    first = git(repo, "rev-parse", "HEAD").strip()
    pushed = subprocess.run(["git", "push", "-q", "origin", "main"], cwd=repo, env=env, capture_output=True, text=True)
    assert pushed.returncode == 0, pushed.stderr
    (repo / "src" / "core" / "a.py").write_text("A = 7\n")
    git(repo, "commit", "-q", "-am", "more", "--no-verify")
    second = git(repo, "rev-parse", "HEAD").strip()
    pushed = subprocess.run(["git", "push", "-q", "origin", "main"], cwd=repo, env=env, capture_output=True, text=True)
    assert pushed.returncode == 0, pushed.stderr
    lines = [f"refs/heads/main {first} refs/heads/main {hooks.ZERO_SHA}",
             f"refs/heads/main {second} refs/heads/main {first}"]
    assert [(c.argv, c.stdin) for c in calls(out)] == [
        (["run", "--hook", "pre-push", "origin", str(remote)], line + "\n") for line in lines
    ]
    chained = (repo / ".git" / "prepush.txt").read_text().splitlines()
    assert chained == [f"origin {remote}", lines[0], f"origin {remote}", lines[1]]


def test_a_failing_chained_pre_push_hook_stops_the_push_before_our_command(repo: Path, tmp_path: Path) -> None:
    launcher, out = recording_launcher(tmp_path)
    bare_remote(repo, tmp_path)
    _existing_hook(repo, "pre-push", b"#!/bin/sh\nexit 3\n")
    hooks.install(repo, launcher=launcher)
    pushed = subprocess.run(["git", "push", "-q", "origin", "main"], cwd=repo, env=hook_env(tmp_path),
                            capture_output=True, text=True)
    assert pushed.returncode != 0 and calls(out) == []
