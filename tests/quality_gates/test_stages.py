"""What a hook run tests: pre-commit exactly the index (never the working tree, never an untracked file,
touching neither), pre-push each pushed commit's tree with its range as the change; gates that opt in get
the change's file names."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest

from bno_foundation.errors import UserError
from bno_quality_gates.cli import main as quality_gates
from bno_quality_gates.cli import parse_push_lines
from bno_quality_gates.results import RunRecord
from bno_quality_gates.runner import Runner, RunOptions
from bno_quality_gates.spec import load_gates
from tests.quality_gates.conftest import git, pyc, write_gates

# fails when any file of the tree under test holds the word BAD (untracked files included, if it saw them)
NO_BAD = pyc(
    "import pathlib, sys; bad = [str(p) for p in pathlib.Path('.').rglob('*.py') if 'BAD' in p.read_text()]; "
    "print('bad files:', bad); sys.exit(1 if bad else 0)"
)
SHOW_HEAD = pyc("import os, pathlib; pathlib.Path(os.environ['GATE_OUT'], 'head').write_text(os.environ['GATE_HEAD'])")
GATES = f"""
gates:
  no-bad:
    command: {NO_BAD}
    inputs: ["src/**"]
    hooks: [pre-commit, pre-push]
  show-head:
    command: {SHOW_HEAD}
    inputs: ["src/**"]
    hooks: [pre-push]
    cache: false
"""
ZERO = "0" * 40


def _pre_commit(repo: Path) -> RunRecord:
    config = load_gates(repo / "workflows" / "gates.yaml")
    return Runner(config, RunOptions(repo=repo, mode="hook", hook="pre-commit")).run()


def _state(repo: Path) -> tuple[str, str, str, str]:
    """What a run must not change: the index entries, the unstaged diff, the status, a file's bytes."""
    return (git(repo, "ls-files", "-s"), git(repo, "diff"), git(repo, "status", "--porcelain", "-uall"),
            (repo / "src" / "core" / "a.py").read_text())


@pytest.fixture(autouse=True)
def _no_skip(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SKIP", raising=False)


@pytest.fixture
def gated(repo: Path) -> Path:
    write_gates(repo, GATES)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "gates")
    return repo


def test_pre_commit_tests_the_index_not_the_working_tree(gated: Path) -> None:
    repo = gated
    core = repo / "src" / "core"
    (core / "a.py").write_text("A = 'good'\n")
    git(repo, "add", "src/core/a.py")
    (core / "a.py").write_text("A = 'BAD, but unstaged'\n")
    (core / "untracked.py").write_text("U = 'BAD, but untracked'\n")
    before = _state(repo)
    record = _pre_commit(repo)
    assert [(r.gate, r.status) for r in record.results] == [("no-bad", "passed")], "only the staged content counts"
    assert record.changed_files == ["src/core/a.py"]
    assert _state(repo) == before, "the run touched neither the index nor the working tree"

    (core / "untracked.py").unlink()
    (core / "a.py").write_text("A = 'BAD, staged'\n")
    git(repo, "add", "src/core/a.py")
    (core / "a.py").write_text("A = 'fixed in the working tree only'\n")
    record = _pre_commit(repo)
    assert [(r.gate, r.status) for r in record.results] == [("no-bad", "failed")], "what will be committed fails"

    git(repo, "add", "src/core/a.py")  # no unstaged edit left: the index is still what is tested
    (core / "untracked.py").write_text("U = 'BAD, untracked'\n")
    assert [r.status for r in _pre_commit(repo).results] == ["passed"]


def test_gates_that_opt_in_get_the_staged_file_names(gated: Path, tmp_path: Path) -> None:
    repo = gated
    args_out, list_out, env_out = tmp_path / "args.json", tmp_path / "list.txt", tmp_path / "env.json"
    write_gates(repo, f"""
        gates:
          by-args:
            command: [python, -c, "import json, sys; open({str(args_out)!r}, 'w').write(json.dumps(sys.argv[1:]))",
                      "{{files}}"]
            inputs: ["src/**"]
            hooks: [pre-commit]
          by-file:
            command: {pyc(f"import os, shutil; shutil.copy(os.environ['CHANGED'], {str(list_out)!r})")}
            inputs: ["src/**"]
            env: {{CHANGED: "{{files_file}}"}}
            hooks: [pre-commit]
          none:
            command: {pyc(f"import json, os, sys; open({str(env_out)!r}, 'w').write(json.dumps([sys.argv[1:], sorted(os.environ.values())]))")}
            inputs: ["src/**"]
            hooks: [pre-commit]
        """)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "gates")
    (repo / "src" / "core" / "a.py").write_text("A = 2\n")
    (repo / "src" / "core" / "b.py").write_text("B = 2\n")
    (repo / "docs" / "guide.md").write_text("# staged, not an input of these gates\n")
    git(repo, "add", "-A")
    (repo / "src" / "core" / "c.py").write_text("C = 'untracked'\n")
    git(repo, "rm", "-q", "README.md")
    record = _pre_commit(repo)
    assert {r.gate: r.status for r in record.results} == {"by-args": "passed", "by-file": "passed", "none": "passed"}
    assert json.loads(args_out.read_text()) == ["src/core/a.py", "src/core/b.py"]
    assert list_out.read_text().splitlines() == ["src/core/a.py", "src/core/b.py"]
    argv, values = json.loads(env_out.read_text())
    assert argv == [] and not any("src/core/a.py" in v for v in values), "a gate that does not opt in gets no list"


def _push(repo: Path, lines: str, monkeypatch: pytest.MonkeyPatch, *extra: str) -> int:
    monkeypatch.setattr(sys, "stdin", io.StringIO(lines))
    return quality_gates(["--repo", str(repo), "run", "--hook", "pre-push", *extra, "origin", "file:///remote"])


def test_pre_push_tests_the_pushed_commit_not_the_working_tree(
    gated: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = gated
    remote = git(repo, "rev-parse", "HEAD").strip()
    (repo / "src" / "core" / "a.py").write_text("A = 'BAD'\n")
    git(repo, "commit", "-q", "-am", "bad")
    bad = git(repo, "rev-parse", "HEAD").strip()
    (repo / "src" / "core" / "a.py").write_text("A = 'fixed, not committed'\n")
    before = _state(repo)
    line = f"refs/heads/main {bad} refs/heads/main {remote}\n"
    assert _push(repo, line, monkeypatch, "--json") == 1, "the pushed commit fails although the working tree is fixed"
    record = json.loads(capsys.readouterr().out)
    assert record["head"] == bad and record["base"] == remote
    assert record["changed_files"] == ["src/core/a.py"], "the pushed range is the change"
    assert {r["gate"]: r["status"] for r in record["results"]} == {"no-bad": "failed", "show-head": "passed"}
    assert (Path(record["run_dir"]) / "gates" / "show-head" / "head").read_text() == bad, "$GATE_HEAD"
    assert _state(repo) == before

    git(repo, "commit", "-q", "-am", "fix")
    good = git(repo, "rev-parse", "HEAD").strip()
    deletion = f"(delete) {ZERO} refs/heads/old {remote}\n"
    assert _push(repo, deletion + f"refs/heads/main {good} refs/heads/main {remote}\n", monkeypatch, "--json") == 0
    assert [r["status"] for r in json.loads(capsys.readouterr().out)["results"]] == ["passed", "passed"]
    new_branch = f"refs/heads/topic {good} refs/heads/topic {ZERO}\n"
    assert _push(repo, new_branch, monkeypatch, "--json") == 0
    again = json.loads(capsys.readouterr().out)
    assert again["base"] is None and [r["status"] for r in again["results"]] == ["cached", "passed"], \
        "a new branch runs every pre-push gate; the same tree replays its pass"
    assert _push(repo, deletion, monkeypatch) == 0
    assert "only deletes" in capsys.readouterr().out


def test_pre_push_tests_each_pushed_commit(gated: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    repo = gated
    remote = git(repo, "rev-parse", "HEAD").strip()
    (repo / "src" / "core" / "a.py").write_text("A = 'BAD'\n")
    git(repo, "commit", "-q", "-am", "bad")
    bad = git(repo, "rev-parse", "HEAD").strip()
    git(repo, "checkout", "-q", "-b", "other", remote)
    (repo / "src" / "core" / "b.py").write_text("B = 'good'\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "good")
    good = git(repo, "rev-parse", "HEAD").strip()
    lines = f"refs/heads/other {good} refs/heads/other {remote}\nrefs/heads/main {bad} refs/heads/main {remote}\n"
    assert _push(repo, lines, monkeypatch, "--json") == 1, "one failing pushed commit refuses the push"
    records = json.loads(capsys.readouterr().out)
    assert [(r["head"], [g["status"] for g in r["results"]]) for r in records] == [(good, ["passed", "passed"]),
                                                                                  (bad, ["failed", "passed"])]


def test_parse_push_lines() -> None:
    sha, other = "a" * 40, "b" * 40
    text = (f"refs/heads/x {sha} refs/heads/x {other}\n(delete) {ZERO} refs/heads/gone {other}\n"
            f"refs/heads/new {sha} refs/heads/new {ZERO}\nrefs/heads/dup {sha} refs/heads/dup {other}\n\n")
    assert parse_push_lines(text) == [("refs/heads/x", sha, other), ("refs/heads/new", sha, None)]
    with pytest.raises(UserError, match="line 2"):
        parse_push_lines(f"refs/heads/x {sha} refs/heads/x {other}\nnot a push line\n")


def test_remote_and_url_only_go_with_pre_push(gated: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert quality_gates(["--repo", str(gated), "run", "--all", "origin", "url"]) == 2
    assert "REMOTE and URL go with --hook pre-push" in capsys.readouterr().err


def test_gate_program_reads_the_head_and_a_file_list(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bno_foundation import gate_program

    listing = tmp_path / "files"
    listing.write_text("src/a.py\n\nsrc/b c.py\n")
    assert gate_program.file_list(listing) == ["src/a.py", "src/b c.py"]
    with pytest.raises(gate_program.GateProgramError, match="cannot read the file list"):
        gate_program.file_list(tmp_path / "missing")
    monkeypatch.setenv("GATE_HEAD", "a" * 40)
    assert gate_program.head() == "a" * 40
    monkeypatch.setenv("GATE_HEAD", "")
    assert gate_program.head() is None


def test_a_real_git_push_runs_the_hook_contract(gated: Path, tmp_path: Path) -> None:
    """git itself calls `run --hook pre-push REMOTE URL` with the pushed refs on stdin: a failing commit is
    refused although the working tree holds a fix; once fixed, the push goes through."""
    import os
    import subprocess

    repo = gated
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    git(repo, "remote", "add", "origin", str(remote))
    git(repo, "push", "-q", "origin", "main")
    root = Path(__file__).resolve().parents[2]
    path = os.pathsep.join(str(root / p) for p in ("foundation", "quality_gates"))
    hook = repo / ".git" / "hooks" / "pre-push"
    hook.write_text(f'#!/bin/sh\nPYTHONPATH={path} exec {sys.executable} -m bno_quality_gates.cli '
                    'run --hook pre-push --quiet "$@"\n')
    hook.chmod(0o755)
    (repo / "src" / "core" / "a.py").write_text("A = 'BAD'\n")
    git(repo, "commit", "-q", "-am", "bad")
    (repo / "src" / "core" / "a.py").write_text("A = 'fixed, not committed'\n")
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@e"}
    env.pop("SKIP", None)
    refused = subprocess.run(["git", "push", "origin", "main"], cwd=repo, env=env, capture_output=True, text=True,
                             check=False)
    assert refused.returncode != 0, "the failing pushed commit was refused"
    assert "FAILED" in refused.stdout + refused.stderr and "bad files:" in refused.stderr, "its output is shown"
    git(repo, "commit", "-q", "-am", "fix")
    pushed = subprocess.run(["git", "push", "origin", "main"], cwd=repo, env=env, capture_output=True, text=True,
                            check=False)
    assert pushed.returncode == 0, pushed.stderr
    assert git(remote, "rev-parse", "main") == git(repo, "rev-parse", "HEAD")
