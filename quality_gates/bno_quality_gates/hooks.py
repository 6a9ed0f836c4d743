"""Git hooks: ``pre-commit`` runs the fast affected gates, ``pre-push`` the full DAG.

``install`` writes small POSIX sh scripts that call ``quality-gates run --hook NAME`` (this package's own
entry point) beside the installing interpreter (falling back to a ``quality-gates`` on PATH). A hook that was there before
is renamed ``NAME.orchestrator-chained`` and called first (its exit code is respected, pre-push gets its
stdin); ``uninstall`` puts it back byte for byte. When ``core.hooksPath`` is set (husky, pre-commit and
friends), install refuses unless told to install there (``hooks_path_ok``). The hooks never stash: a
pre-commit run with unstaged changes reads a snapshot of the index.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bno_foundation.atomic import atomic_write
from bno_quality_gates.errors import GateError

if TYPE_CHECKING:
    import git

MARKER = "# installed by bitnet-orchestrator: orchestrator hooks install"
CHAINED_SUFFIX = ".orchestrator-chained"
HOOKS: tuple[str, ...] = ("pre-commit", "pre-push")


@dataclass
class HookState:
    """What is installed for one hook."""

    name: str
    path: str
    state: str  # orchestrator | foreign | absent
    chained: str | None  # the chained previous hook, when there is one

    def to_json(self) -> dict[str, str | None]:
        """Plain JSON data."""
        return {"name": self.name, "path": self.path, "state": self.state, "chained": self.chained}


def _open(repo_path: Path) -> git.Repo:
    import git

    try:
        return git.Repo(repo_path, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        raise GateError(f"{repo_path} is not inside a git repository") from None


def hooks_path_setting(repo: git.Repo) -> str | None:
    """The value of ``core.hooksPath``, or None."""
    reader = repo.config_reader()
    try:
        value = reader.get_value("core", "hooksPath", default="")
    finally:
        reader.release()
    return str(value) or None


def hooks_dir(repo: git.Repo) -> Path:
    """Where git looks for hooks (``git rev-parse --git-path hooks``: honours core.hooksPath, worktrees)."""
    rel = repo.git.rev_parse("--git-path", "hooks")
    base = Path(repo.working_tree_dir or repo.git_dir)
    path = Path(rel)
    return (path if path.is_absolute() else base / path).resolve()


def _launcher() -> list[str]:
    """The command that runs the gates: the ``quality-gates`` script beside this interpreter, else -m."""
    script = Path(sys.executable).parent / "quality-gates"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-m", "bno_quality_gates.cli"]


def hook_script(name: str, config: Path | None = None) -> str:
    """The text of the hook ``name``; ``config`` is passed as ``--config`` (else the repo's own file)."""
    launcher = _launcher()
    primary = " ".join(shlex.quote(p) for p in launcher)
    config_arg = f" --config {shlex.quote(str(config))}" if config is not None else ""
    chained = f"{name}{CHAINED_SUFFIX}"
    stdin_setup = (
        'input=$(cat)\n'
        '# the remote sha of the first pushed ref is the base for diff coverage and the perf baseline\n'
        'remote_sha=$(printf "%s\\n" "$input" | head -n 1 | cut -d " " -f 4)\n'
        'case "$remote_sha" in ""|*[!0]*) ;; *) remote_sha="" ;; esac\n'
        if name == "pre-push" else ""
    )
    base_arg = ' ${remote_sha:+--base "$remote_sha"}' if name == "pre-push" else ""
    feed = 'printf "%s\\n" "$input" | ' if name == "pre-push" else ""
    return f"""#!/bin/sh
{MARKER}
# hook: {name}; a hook that was here before runs first: {chained}
# bypass: SKIP=gate1,gate2 git ... (recorded in the run), or git --no-verify
hook_dir=$(dirname "$0")
{stdin_setup}if [ -x "$hook_dir/{chained}" ]; then
    {feed}"$hook_dir/{chained}" "$@" || exit $?
fi
if [ -x {shlex.quote(launcher[0])} ]; then
    exec {primary} run --hook {name}{config_arg}{base_arg}
elif command -v quality-gates >/dev/null 2>&1; then
    exec quality-gates run --hook {name}{config_arg}{base_arg}
else
    echo "{name}: quality-gates is not installed here any more ({launcher[0]}); install the hooks again or use 'git {'commit' if name == 'pre-commit' else 'push'} --no-verify'" >&2
    exit 1
fi
"""


def _is_ours(path: Path) -> bool:
    try:
        return MARKER in path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False


def _target_dir(repo: git.Repo, hooks_path_ok: bool) -> Path:
    setting = hooks_path_setting(repo)
    if setting and not hooks_path_ok:
        raise GateError(
            f"core.hooksPath is set to {setting!r}: another tool (husky, pre-commit, ...) manages this "
            "repository's hooks, so git ignores .git/hooks. Refusing to install. Either unset it "
            "(git config --unset core.hooksPath) or rerun with --hooks-path-ok to install into that "
            "directory (existing hooks there are kept and chained)."
        )
    return hooks_dir(repo)


def install(
    repo_path: Path, *, hooks: tuple[str, ...] = HOOKS, hooks_path_ok: bool = False, config: Path | None = None
) -> list[HookState]:
    """Install the hooks (idempotent), chaining any hook that was there.

    ``config``: the gates file the hooks pass as ``--config``; None when the repository has its own
    ``workflows/gates.yaml`` (then the hook finds it at run time, in whichever worktree it runs).
    """
    repo = _open(repo_path)
    directory = _target_dir(repo, hooks_path_ok)
    directory.mkdir(parents=True, exist_ok=True)
    for name in hooks:
        path = directory / name
        chained = directory / f"{name}{CHAINED_SUFFIX}"
        if path.exists() and not _is_ours(path):
            if chained.exists():
                raise GateError(
                    f"{path} is not ours and {chained} already exists: resolve by hand (keep one of them)"
                )
            os.replace(path, chained)  # the same bytes, mode and inode
        atomic_write(path, hook_script(name, config), mode=0o755)
    return status(repo_path, hooks_path_ok=True)


def uninstall(repo_path: Path, *, hooks: tuple[str, ...] = HOOKS, hooks_path_ok: bool = True) -> list[HookState]:
    """Remove our hooks and restore the chained ones; a foreign hook is left alone."""
    repo = _open(repo_path)
    directory = _target_dir(repo, hooks_path_ok)
    for name in hooks:
        path = directory / name
        chained = directory / f"{name}{CHAINED_SUFFIX}"
        if path.exists() and not _is_ours(path):
            continue
        if path.exists():
            path.unlink()
        if chained.exists():
            os.replace(chained, path)
    return status(repo_path, hooks_path_ok=True)


def status(repo_path: Path, *, hooks_path_ok: bool = True) -> list[HookState]:
    """The state of each hook."""
    repo = _open(repo_path)
    directory = hooks_dir(repo)
    out = []
    for name in HOOKS:
        path = directory / name
        chained = directory / f"{name}{CHAINED_SUFFIX}"
        if not path.exists():
            state = "absent"
        elif _is_ours(path):
            state = "orchestrator"
        else:
            state = "foreign"
        out.append(HookState(name, str(path), state, str(chained) if chained.exists() else None))
    return out


def describe(repo_path: Path) -> dict[str, object]:
    """Hooks directory, core.hooksPath and each hook's state (for ``orchestrator hooks status``)."""
    repo = _open(repo_path)
    return {
        "hooks_dir": str(hooks_dir(repo)),
        "core_hooks_path": hooks_path_setting(repo),
        "launcher": _launcher(),
        "git": shutil.which("git"),
        "hooks": [h.to_json() for h in status(repo_path)],
    }
