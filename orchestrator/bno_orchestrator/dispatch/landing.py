"""Landing a task branch: bring the target into it (integration), then put it into the target.

The git plumbing of the pipeline's two merges, kept apart from the workflow that decides when they run
(:mod:`.advance`):

* :func:`integrate` merges the target branch into the task branch *inside the task's worktree*; a conflict
  is aborted at once (the worktree is left as it was) and reported with the conflicting files.
* :func:`land` puts the task branch into the target: ``ff`` (fast-forward only), ``merge`` (always a merge
  commit) or ``pr`` (push the branch and open a pull request with ``gh``). When the target is checked out in
  a worktree (usually the user's main checkout), the merge runs there with ``git merge``, so git itself keeps
  the user's uncommitted changes safe (it refuses rather than overwrite them); otherwise the target ref is
  moved with ``git merge-tree``/``git commit-tree`` and a compare-and-swap ``git update-ref``, touching no
  working tree at all.

Every git call is an argv list; nothing here reads task text as anything but a commit message.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from bno_orchestrator.dispatch.worktree import (
    identity_env,
    open_repo,
    registered_worktrees,
    uncommitted_files,
)
from bno_orchestrator.errors import UserError

if TYPE_CHECKING:
    import git

STRATEGIES = ("ff", "merge", "pr")


class LandingError(UserError):
    """The task branch could not be landed (the target moved, git refused, ``gh`` failed)."""


@dataclass
class Integration:
    """The result of merging the target into the task branch."""

    target: str
    target_sha: str
    head: str  # the task branch's head afterwards
    merged: bool  # a merge commit was made (False: already up to date, or a conflict)
    conflicts: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        """No conflict."""
        return not self.conflicts


@dataclass
class Landing:
    """How the task branch landed."""

    strategy: str
    target: str
    commit: str | None  # the target's new head (None for a pull request)
    where: str  # the worktree the merge ran in, or "ref" when only the ref moved, or the remote (pr)
    pr_url: str | None = None

    def as_json(self) -> dict[str, object]:
        """A JSON-ready dict."""
        return {"strategy": self.strategy, "target": self.target, "commit": self.commit, "where": self.where,
                "pr_url": self.pr_url}


def default_target(repo: Path, configured: str | None) -> str:
    """The branch task branches land in: ``configured``, else the branch checked out in ``repo``."""
    import git

    handle = open_repo(repo)
    if configured:
        if configured not in [h.name for h in handle.heads]:
            raise LandingError(f"the merge target {configured!r} (workflows/dispatch.yaml merge.target) is no "
                               f"branch of {repo}")
        return configured
    try:
        return str(handle.git.symbolic_ref("--short", "HEAD"))
    except git.GitCommandError:
        raise LandingError(f"{repo} has a detached HEAD: name the branch tasks land in with merge.target in "
                           "workflows/dispatch.yaml") from None


def _sha(handle: git.Repo, ref: str) -> str:
    return str(handle.git.rev_parse("--verify", f"{ref}^{{commit}}"))


def integrate(repo: Path, worktree: Path, target: str) -> Integration:
    """Merge ``target`` into the task branch checked out in ``worktree``.

    A conflict is aborted (``git merge --abort``), so the worktree is as it was; the conflicting files are
    returned. The worktree must have no uncommitted change (LandingError naming them)."""
    import git

    dirty = uncommitted_files(worktree)
    if dirty:
        raise LandingError(f"{worktree} has uncommitted changes ({', '.join(dirty[:5])}): commit or remove them "
                           "before the task is integrated")
    handle = open_repo(repo)
    target_sha = _sha(handle, target)
    tree = git.Repo(worktree)
    before = tree.head.commit.hexsha
    try:
        with tree.git.custom_environment(**identity_env(tree)):
            tree.git.merge("--no-ff", "--no-edit", "-m", f"Merge {target} into {tree.active_branch.name}", target_sha)
    except git.GitCommandError as exc:
        conflicts = [f for f in tree.git.diff("--name-only", "--diff-filter=U").splitlines() if f]
        if tree.git.rev_parse("-q", "--verify", "MERGE_HEAD", with_exceptions=False):
            tree.git.merge("--abort")
        if not conflicts:
            raise LandingError(f"git merge {target} in {worktree} failed: {exc.stderr.strip() or exc}") from None
        return Integration(target, target_sha, before, False, conflicts)
    head = tree.head.commit.hexsha
    return Integration(target, target_sha, head, head != before)


def land(repo: Path, branch: str, target: str, strategy: str, message: str, *, remote: str = "origin",
         title: str = "", body: str = "") -> Landing:
    """Put ``branch`` into ``target`` by ``strategy`` (see the module docstring)."""
    if strategy not in STRATEGIES:
        raise LandingError(f"unknown merge strategy {strategy!r}; strategies: {', '.join(STRATEGIES)}")
    if strategy == "pr":
        return open_pull_request(repo, branch, target, remote=remote, title=title or message, body=body)
    handle = open_repo(repo)
    checked_out = {ref: path for path, ref in registered_worktrees(handle).items() if ref}
    place = checked_out.get(f"refs/heads/{target}")
    if place is not None:
        return _merge_in_worktree(place, branch, target, strategy, message)
    return _merge_ref(handle, branch, target, strategy, message)


def _merge_in_worktree(place: Path, branch: str, target: str, strategy: str, message: str) -> Landing:
    """``git merge`` where the target is checked out: git refuses rather than overwrite local changes."""
    import git

    tree = git.Repo(place)
    args = ["--ff-only"] if strategy == "ff" else ["--no-ff", "--no-edit", "-m", message]
    try:
        with tree.git.custom_environment(**identity_env(tree)):
            tree.git.merge(*args, branch)
    except git.GitCommandError as exc:
        if tree.git.rev_parse("-q", "--verify", "MERGE_HEAD", with_exceptions=False):
            tree.git.merge("--abort")
        raise LandingError(f"git merge {branch} into {target} (checked out in {place}) refused: "
                           f"{(exc.stderr or str(exc)).strip()}") from None
    return Landing(strategy, target, str(tree.head.commit.hexsha), str(place))


def _merge_ref(handle: git.Repo, branch: str, target: str, strategy: str, message: str) -> Landing:
    """Move the target ref without a working tree: fast-forward, or a merge commit from ``git merge-tree``."""
    import git

    old, tip = _sha(handle, target), _sha(handle, branch)
    fast_forward = handle.is_ancestor(handle.commit(old), handle.commit(tip))
    if strategy == "ff":
        if not fast_forward:
            raise LandingError(f"{target} moved on since {branch} was integrated: it cannot be fast-forwarded "
                               "(the task goes back to integration)")
        new = tip
    else:
        try:
            tree = handle.git.merge_tree("--write-tree", old, tip).splitlines()[0]
        except git.GitCommandError as exc:
            raise LandingError(f"{branch} does not merge cleanly into {target}: {(exc.stdout or '').strip()[:300]}") \
                from None
        with handle.git.custom_environment(**identity_env(handle)):
            new = handle.git.commit_tree(tree, "-p", old, "-p", tip, "-m", message)
    try:
        handle.git.update_ref(f"refs/heads/{target}", new, old, "-m", f"orchestrator: land {branch}")
    except git.GitCommandError as exc:
        raise LandingError(f"{target} changed while {branch} was landed: {exc.stderr.strip()}") from None
    return Landing(strategy, target, str(new), "ref")


def open_pull_request(repo: Path, branch: str, target: str, *, remote: str, title: str, body: str) -> Landing:
    """Push ``branch`` to ``remote`` and open a pull request into ``target`` with ``gh``; the PR's URL."""
    import git

    gh = shutil.which("gh")
    if gh is None:
        raise LandingError("merge strategy 'pr' needs the GitHub CLI `gh` on PATH (https://cli.github.com; then "
                           "`gh auth login`), or set merge.strategy to ff or merge in workflows/dispatch.yaml")
    handle = open_repo(repo)
    if remote not in [r.name for r in handle.remotes]:
        raise LandingError(f"merge strategy 'pr' pushes to the remote {remote!r}, which {repo} does not have")
    try:
        handle.git.push("--set-upstream", remote, f"{branch}:{branch}")
    except git.GitCommandError as exc:
        raise LandingError(f"git push {remote} {branch} failed: {exc.stderr.strip() or exc}") from None
    argv = [gh, "pr", "create", "--base", target, "--head", branch, "--title", title, "--body", body or title]
    proc = subprocess.run(argv, cwd=repo, capture_output=True, text=True, timeout=120, check=False)
    if proc.returncode != 0:
        raise LandingError(f"gh pr create failed (exit {proc.returncode}): {proc.stderr.strip()[-400:]}")
    url = next((line.strip() for line in reversed(proc.stdout.splitlines()) if line.strip().startswith("http")),
               proc.stdout.strip())
    return Landing("pr", target, None, remote, pr_url=url)
