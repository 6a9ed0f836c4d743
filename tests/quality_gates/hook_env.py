"""What the hook tests share: the real hook managers, a clean environment for `git commit`/`git push`, a
gate that fails on demand, and a launcher that records how the hooks called it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.quality_gates.conftest import git, pyc, write_gates

ROOT = Path(__file__).resolve().parents[2]
DEV_TOOLS_BIN = ROOT / ".dev-tools" / "node_modules" / ".bin"


def tool(name: str) -> Path:
    """The real ``pre-commit`` (beside this interpreter), ``lefthook`` or ``husky`` (``.dev-tools/``, from
    ``make dev-tools``), else PATH; the test is skipped, saying where it looked, when it is absent."""
    for candidate in (Path(sys.executable).parent / name, DEV_TOOLS_BIN / name):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed beside {sys.executable}, in {DEV_TOOLS_BIN} (make dev-tools) or on PATH")
    return Path(found)


def hook_env(tmp_path: Path) -> dict[str, str]:
    """The environment of a real `git commit`: the managers and our launcher on PATH, pre-commit's cache in
    ``tmp_path``, no SKIP/LEFTHOOK/HUSKY switches inherited from whoever runs the tests."""
    path = os.pathsep.join([str(Path(sys.executable).parent), str(DEV_TOOLS_BIN), os.environ.get("PATH", "")])
    env = {**os.environ, "PATH": path, "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home"),
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@e", "NO_COLOR": "1"}
    for name in ("SKIP", "LEFTHOOK", "LEFTHOOK_BIN", "HUSKY", "PRE_COMMIT_ALLOW_NO_CONFIG", "GIT_DIR",
                 "GIT_INDEX_FILE", "GIT_WORK_TREE"):
        env.pop(name, None)
    return env


def run(argv: list[str | Path], cwd: Path, env: dict[str, str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` in ``cwd`` (output captured, exit code not checked)."""
    return subprocess.run([str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True,
                          input=stdin, check=False)


GATE = (
    "import pathlib, sys; text = pathlib.Path('src/core/a.py').read_text().strip(); "
    "open({log!r}, 'a').write(text + chr(10)); sys.exit(0 if 'good' in text else 1)"
)


def add_failing_gate(repo: Path, log: Path, hook: str = "pre-commit") -> None:
    """A gates file whose one gate (run by ``hook``) appends the tested ``src/core/a.py`` to ``log`` and
    fails unless it says ``good``; committed past any hook."""
    write_gates(
        repo,
        f"""
        gates:
          check:
            command: {pyc(GATE.format(log=str(log)))}
            components: [core]
            hooks: [{hook}]
            cache: false
        """,
    )
    git(repo, "add", "workflows/gates.yaml")
    git(repo, "commit", "-q", "-m", "gates", "--no-verify")


def commit(repo: Path, env: dict[str, str], content: str, *extra: str) -> subprocess.CompletedProcess[str]:
    """Stage ``content`` as ``src/core/a.py`` (and the paths ``extra``) and try `git commit` through the hooks."""
    (repo / "src" / "core" / "a.py").write_text(content)
    git(repo, "add", "src/core/a.py", *extra)
    return run(["git", "commit", "-q", "-m", content.strip()], repo, env)


def user_log(repo: Path) -> list[str]:
    """The lines the user's own hooks wrote (``.git/user-hook.log``)."""
    path = repo / ".git" / "user-hook.log"
    return path.read_text().splitlines() if path.is_file() else []


USER_HOOK_LINE = 'echo {who} >> "$(git rev-parse --git-dir)/user-hook.log"'

RECORDER = """\
import json, sys
with open({out!r}, "a") as f:
    f.write(json.dumps({{"argv": sys.argv[1:], "stdin": sys.stdin.read()}}) + "\\n")
"""


def recording_launcher(tmp_path: Path) -> tuple[list[str], Path]:
    """A launcher that appends its arguments and stdin to a JSONL file instead of running the gates: what
    the hooks hand our command, whatever the run parser of the day accepts."""
    out = tmp_path / "calls.jsonl"
    script = tmp_path / "record_call.py"
    script.write_text(RECORDER.format(out=str(out)))
    return [sys.executable, str(script)], out


@dataclass(frozen=True)
class Call:
    """One call of the recording launcher."""

    argv: list[str]
    stdin: str


def calls(out: Path) -> list[Call]:
    """The calls :func:`recording_launcher` recorded, in order."""
    lines = out.read_text().splitlines() if out.is_file() else []
    return [Call(**json.loads(line)) for line in lines]


def bare_remote(repo: Path, tmp_path: Path, name: str = "origin") -> Path:
    """A bare repository added as remote ``name``; its path has a space to test the quoting."""
    remote = tmp_path / "the remote.git"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    git(repo, "remote", "add", name, str(remote))
    return remote
