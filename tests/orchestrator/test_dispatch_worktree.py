"""Per-task git worktrees: created from a base, reused, cleaned up; the user's checkout is never touched."""

from __future__ import annotations

from pathlib import Path

import git
import pytest

from bno_orchestrator.dispatch import worktree as wt
from bno_orchestrator.errors import UserError
from tests.orchestrator.dispatch_helpers import main_state


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    git.Repo.init(path, initial_branch="main")
    (path / "a.txt").write_text("one\n")
    assert wt.commit_all(path, "first") is not None
    return path


def test_worktree_is_made_from_the_base_and_leaves_the_checkout_alone(repo: Path) -> None:
    # uncommitted user work, staged and unstaged, must survive untouched
    (repo / "a.txt").write_text("user edit\n")
    (repo / "staged.txt").write_text("staged\n")
    git.Repo(repo).git.add("staged.txt")
    before = main_state(repo)
    tree = wt.ensure_worktree(repo, "T-7")
    assert tree.created
    assert tree.path == repo.resolve() / ".orchestrator" / "worktrees" / "T-7"
    assert tree.branch == "orchestrator/T-7"
    assert tree.base == git.Repo(repo).head.commit.hexsha
    assert (tree.path / "a.txt").read_text() == "one\n"  # the commit, not the user's edit
    assert not (tree.path / "staged.txt").exists()
    assert main_state(repo) == before  # .orchestrator/ is excluded, the index and HEAD unchanged
    assert "orchestrator/T-7" in [h.name for h in git.Repo(repo).heads]


def test_worktree_is_reused_and_keeps_work_in_progress(repo: Path) -> None:
    first = wt.ensure_worktree(repo, "T-1")
    (first.path / "work.txt").write_text("in progress\n")
    again = wt.ensure_worktree(repo, "T-1")
    assert not again.created
    assert again.path == first.path and again.base == first.base
    assert (again.path / "work.txt").read_text() == "in progress\n"
    assert wt.changed_files(again.path, again.base) == ["work.txt"]
    assert wt.find_worktree(repo, "T-1") == first.path
    assert wt.find_worktree(repo, "T-2") is None


def test_commit_all_commits_on_the_task_branch_only(repo: Path) -> None:
    before = main_state(repo)
    tree = wt.ensure_worktree(repo, "T-3")
    (tree.path / "a.txt").write_text("fixed\n")
    sha = wt.commit_all(tree.path, "T-3: fix")
    assert sha is not None
    handle = git.Repo(repo)
    assert handle.commit("orchestrator/T-3").hexsha == sha
    assert str(handle.commit("orchestrator/T-3").message).startswith("T-3: fix")
    assert main_state(repo) == before
    assert wt.commit_all(tree.path, "nothing") is None  # nothing left to commit
    assert wt.changed_files(tree.path, tree.base) == ["a.txt"]  # committed changes still count vs the base


def test_cleanup_removes_the_worktree_and_a_later_dispatch_gets_the_branch_back(repo: Path) -> None:
    tree = wt.ensure_worktree(repo, "T-4")
    (tree.path / "b.txt").write_text("kept on the branch\n")
    wt.commit_all(tree.path, "T-4: work")
    report = wt.cleanup(repo, "T-4")
    assert report["removed"] and not report["branch_deleted"]
    assert not tree.path.exists()
    again = wt.ensure_worktree(repo, "T-4")
    assert again.created and (again.path / "b.txt").read_text() == "kept on the branch\n"
    assert again.base == tree.base  # the fork point, not the branch tip
    # deleting a branch whose commits no other branch holds needs --force; uncommitted work too
    with pytest.raises(UserError, match=r"1 commit\(s\) no other branch holds"):
        wt.cleanup(repo, "T-4", delete_branch=True)
    (again.path / "c.txt").write_text("not committed\n")
    with pytest.raises(UserError, match=r"uncommitted work \(c.txt\)"):
        wt.cleanup(repo, "T-4")
    assert (again.path / "c.txt").is_file()
    report = wt.cleanup(repo, "T-4", delete_branch=True, force=True)
    assert report["branch_deleted"] and report["removed"]
    assert "orchestrator/T-4" not in [h.name for h in git.Repo(repo).heads]


def test_explicit_base_and_bad_inputs(repo: Path, tmp_path: Path) -> None:
    first = git.Repo(repo).head.commit.hexsha
    (repo / "a.txt").write_text("two\n")
    wt.commit_all(repo, "second")
    tree = wt.ensure_worktree(repo, "T-5", base=first)
    assert tree.base == first and (tree.path / "a.txt").read_text() == "one\n"
    with pytest.raises(UserError, match="unknown base"):
        wt.ensure_worktree(repo, "T-6", base="no-such-ref")
    empty = tmp_path / "empty"
    git.Repo.init(empty)
    with pytest.raises(UserError, match="no commit"):
        wt.ensure_worktree(empty, "T-1")
    with pytest.raises(UserError, match="not a git repository"):
        wt.ensure_worktree(tmp_path / "nowhere", "T-1")
    squatter = wt.worktree_path(repo, "T-9")
    squatter.mkdir(parents=True)
    (squatter / "x").write_text("not a worktree")
    with pytest.raises(UserError, match="not a registered worktree"):
        wt.ensure_worktree(repo, "T-9")


def test_branch_names_are_valid_refs_for_dotted_task_ids(repo: Path) -> None:
    assert wt.branch_name("T-1") == "orchestrator/T-1"
    assert wt.branch_name("v1..2.") == "orchestrator/v1-2-"
    assert wt.branch_name("x.lock") == "orchestrator/x-lock"
    tree = wt.ensure_worktree(repo, "rel..1.")
    assert tree.branch == "orchestrator/rel-1-" and tree.path.name == "rel..1."
