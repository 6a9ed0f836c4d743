"""Per-task git worktrees: ``REPO/.orchestrator/worktrees/<task-id>`` on branch ``orchestrator/<task-id>``.

Made with ``git worktree add PATH -b BRANCH BASE`` (GitPython), reused when it is already there, removed by
:func:`cleanup`. Nothing here touches the user's working tree or index: a worktree has its own checkout and
its own index; only ``.git/worktrees/`` and the branch ref are added. ``.orchestrator/`` is kept out of the
user's ``git status`` through ``.git/info/exclude`` when the repository does not ignore it already.

When the gates pass, :func:`commit_all` commits the agent's work on the task branch (inside the worktree),
so a reviewer sees it as an ordinary branch; the user's branch is left alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bno_orchestrator.errors import UserError
from bno_orchestrator.paths import state_dir

if TYPE_CHECKING:
    import git

BRANCH_PREFIX = "orchestrator/"
FALLBACK_IDENTITY = ("bitnet-orchestrator", "orchestrator@localhost")


@dataclass(frozen=True)
class Worktree:
    """A task's worktree."""

    task_id: str
    path: Path
    branch: str
    base: str  # the commit it was made from (a full sha)
    created: bool  # False when an existing worktree was reused

    def as_json(self) -> dict[str, object]:
        """A JSON-ready dict."""
        return {"task_id": self.task_id, "path": str(self.path), "branch": self.branch, "base": self.base,
                "created": self.created}


def worktree_path(repo: Path, task_id: str) -> Path:
    """``REPO/.orchestrator/worktrees/<task-id>``."""
    return state_dir(repo) / "worktrees" / task_id


def branch_name(task_id: str) -> str:
    """``orchestrator/<task-id>`` (with what git refuses in a ref name, ``..`` and a trailing ``.`` or
    ``.lock``, replaced: task ids may hold dots)."""
    name = task_id.replace("..", "-")
    while name.endswith((".", ".lock")):
        name = name[: -len(".lock")] + "-lock" if name.endswith(".lock") else name[:-1] + "-"
    return f"{BRANCH_PREFIX}{name}"


def open_repo(repo: Path) -> git.Repo:
    """The GitPython repository at ``repo`` (a UserError when it is not a git repository with a commit)."""
    import git

    try:
        handle = git.Repo(repo)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        raise UserError(f"{repo} is not a git repository: dispatch works in git worktrees (run `git init`)") from None
    if not handle.head.is_valid():
        raise UserError(f"{repo} has no commit yet: dispatch makes worktrees from a commit (commit something first)")
    return handle


def resolve_base(repo: Path, base: str | None = None) -> str:
    """The full sha of ``base`` (default HEAD) in ``repo``."""
    import git

    handle = open_repo(repo)
    ref = base or "HEAD"
    try:
        return str(handle.commit(ref).hexsha)
    except (git.BadName, ValueError, git.GitCommandError):
        raise UserError(f"unknown base {ref!r} in {repo} (a branch, tag or commit)") from None


def registered_worktrees(handle: git.Repo) -> dict[Path, str | None]:
    """Registered worktrees: path -> branch ref (None when detached)."""
    out: dict[Path, str | None] = {}
    current: Path | None = None
    for line in handle.git.worktree("list", "--porcelain").splitlines():
        if line.startswith("worktree "):
            current = Path(line[len("worktree "):]).resolve()
            out[current] = None
        elif line.startswith("branch ") and current is not None:
            out[current] = line[len("branch "):]
    return out


def _ensure_excluded(handle: git.Repo, repo: Path) -> None:
    """Keep ``.orchestrator/`` out of the user's ``git status`` (``info/exclude``, never ``.gitignore``)."""
    import git

    probe = ".orchestrator/worktrees/probe"
    try:
        handle.git.check_ignore("-q", probe)
        return  # already ignored
    except git.GitCommandError:
        pass
    exclude = Path(handle.git.rev_parse("--git-common-dir"))
    if not exclude.is_absolute():
        exclude = (repo / exclude).resolve()
    exclude = exclude / "info" / "exclude"
    exclude.parent.mkdir(parents=True, exist_ok=True)
    text = exclude.read_text(encoding="utf-8") if exclude.exists() else ""
    if ".orchestrator/" not in text.splitlines():
        with open(exclude, "a", encoding="utf-8") as handle_file:
            handle_file.write(("" if not text or text.endswith("\n") else "\n") + ".orchestrator/\n")


def ensure_worktree(repo: Path, task_id: str, base: str | None = None) -> Worktree:
    """The task's worktree: reused when registered, else ``git worktree add PATH -b BRANCH BASE``.

    A task branch left from an earlier (cleaned-up) worktree is checked out again rather than recreated,
    so earlier work on it is kept. ``base`` is used only when the branch is new.
    """
    import git

    repo = Path(repo).resolve()
    handle = open_repo(repo)
    _ensure_excluded(handle, repo)
    path = worktree_path(repo, task_id)
    branch = branch_name(task_id)
    registered = registered_worktrees(handle)
    if path.resolve() in registered:
        if not path.is_dir():
            handle.git.worktree("prune")
        else:
            ref = registered[path.resolve()]
            if ref not in (f"refs/heads/{branch}", None):
                raise UserError(f"{path} is a worktree of {ref}, not of {branch}: remove it (`git worktree remove`)")
            head = git.Repo(path).head.commit.hexsha
            fork = handle.git.merge_base(head, resolve_base(repo, base))
            return Worktree(task_id, path, branch, str(fork), created=False)
    if path.exists() and any(path.iterdir()):
        raise UserError(f"{path} exists but is not a registered worktree: move it away or delete it")
    base_sha = resolve_base(repo, base)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        if branch in [h.name for h in handle.heads]:
            handle.git.worktree("add", str(path), branch)
            base_sha = str(handle.git.merge_base(branch, base_sha))
        else:
            handle.git.worktree("add", str(path), "-b", branch, base_sha)
    except git.GitCommandError as exc:
        raise UserError(f"git worktree add {path} failed: {exc.stderr.strip() or exc}") from None
    return Worktree(task_id, path, branch, base_sha, created=True)


def find_worktree(repo: Path, task_id: str) -> Path | None:
    """The task's worktree path when one is registered and present, else None."""
    repo = Path(repo).resolve()
    path = worktree_path(repo, task_id)
    if not path.is_dir():
        return None
    return path if path.resolve() in registered_worktrees(open_repo(repo)) else None


def cleanup(repo: Path, task_id: str, *, delete_branch: bool = False, force: bool = False) -> dict[str, object]:
    """Remove the task's worktree; the branch stays unless ``delete_branch``.

    Nothing is lost without ``force``: a worktree with uncommitted changes is refused (naming them), and so
    is deleting a branch whose commits no other branch holds."""
    import git

    repo = Path(repo).resolve()
    handle = open_repo(repo)
    path = worktree_path(repo, task_id)
    branch = branch_name(task_id)
    registered = path.resolve() in registered_worktrees(handle)
    if registered and path.is_dir() and not force:
        dirty = uncommitted_files(path)
        if dirty:
            shown = ", ".join(dirty[:8]) + (f" and {len(dirty) - 8} more" if len(dirty) > 8 else "")
            raise UserError(f"{path} has uncommitted work ({shown}): commit it, or pass --force to delete it")
    if delete_branch and not force and branch in [h.name for h in handle.heads]:
        unmerged = unmerged_commits(handle, branch)
        if unmerged:
            raise UserError(f"branch {branch} has {unmerged} commit(s) no other branch holds: merge them, or pass "
                            "--force to delete the branch anyway")
    removed = False
    if registered:
        if path.is_dir():
            handle.git.worktree("remove", "--force", str(path))
        removed = True
    handle.git.worktree("prune")
    branch_deleted = False
    if delete_branch and branch in [h.name for h in handle.heads]:
        try:
            handle.git.branch("-D", branch)
            branch_deleted = True
        except git.GitCommandError as exc:
            raise UserError(f"cannot delete branch {branch}: {exc.stderr.strip() or exc}") from None
    return {"task_id": task_id, "path": str(path), "removed": removed, "branch": branch,
            "branch_deleted": branch_deleted}


def uncommitted_files(path: Path) -> list[str]:
    """Uncommitted changes in the worktree at ``path``: tracked and untracked files (ignored ones aside)."""
    import git

    out = git.Repo(path).git.status("--porcelain", "--untracked-files=all")
    return [line[3:] for line in out.splitlines() if line.strip()]


def unmerged_commits(handle: git.Repo, branch: str) -> int:
    """How many commits of ``branch`` no other local branch holds."""
    others = [f"^{h.name}" for h in handle.heads if h.name != branch]
    out = handle.git.rev_list("--count", branch, *others)
    return int(out.strip() or 0)


def changed_files(path: Path, base: str) -> list[str]:
    """Files changed in the worktree at ``path`` since ``base``: committed, staged, unstaged and untracked."""
    from bno_quality_gates.affected import changed_files as git_changed

    return git_changed(Path(path), base=base)


def commit_all(path: Path, message: str) -> str | None:
    """Commit everything in the worktree at ``path`` on its branch; the new sha, or None when nothing changed.

    Uses the repository's identity when it has one, else a fallback orchestrator identity (environment
    only, no config is written).
    """
    import git

    wt = git.Repo(path)
    wt.git.add("-A")
    if not wt.git.status("--porcelain"):
        return None
    env = identity_env(wt)
    with wt.git.custom_environment(**env):
        wt.git.commit("-q", "--no-verify", "-m", message)
    return str(wt.head.commit.hexsha)


def identity_env(handle: git.Repo) -> dict[str, str]:
    """The fallback orchestrator identity as environment variables when the repository has none (no git
    config is ever written); empty when it has one."""
    import git

    try:
        handle.git.config("user.email")
        return {}
    except git.GitCommandError:
        name, email = FALLBACK_IDENTITY
        return {"GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": email, "GIT_COMMITTER_NAME": name,
                "GIT_COMMITTER_EMAIL": email}
