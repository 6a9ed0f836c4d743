"""After the gates pass: the pipeline of development.yaml (review -> integration -> qa -> testing -> done), each
state's gates, merge conflicts, human approval, and landing the task branch (merge, ff, pr) on real git."""

from __future__ import annotations

import json
import os
from pathlib import Path

import git
import pytest

from bno_orchestrator.cli import main
from bno_orchestrator.dispatch import DispatchOptions, dispatch
from bno_orchestrator.dispatch.advance import advance_task
from bno_orchestrator.store import Store
from tests.orchestrator.dispatch_helpers import add_routed_task, make_repo, set_executor

SHELL = ["python", "{worktree}/tools/fix.py", "{worktree}", "{prompt_file}"]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = make_repo(tmp_path / "repo")
    agent = add_routed_task(path)
    set_executor(path, agent, "shell", argv=SHELL, timeout=60)
    _commit(path, "executor")
    return path


def _commit(repo: Path, message: str) -> str:
    handle = git.Repo(repo)
    handle.git.add(A=True)
    handle.index.commit(message)
    return handle.head.commit.hexsha


def _configure(repo: Path, *, strategy: str | None = None, target: str | None = None,
               approve: dict[str, str] | None = None, gates: dict[str, str] | None = None) -> None:
    """Edit the repository's dispatch.yaml / development.yaml (and commit, so worktrees see the same files)."""
    dispatch_yaml = repo / "workflows" / "dispatch.yaml"
    text = dispatch_yaml.read_text()
    if strategy:
        text = text.replace("strategy: merge", f"strategy: {strategy}", 1)
    if target:
        text = text.replace("target: null", f"target: {target}", 1)
    dispatch_yaml.write_text(text)
    development = repo / "workflows" / "development.yaml"
    text = development.read_text()
    for state, who in (approve or {}).items():
        start = text.index(f"\n  {state}:\n")
        end = text.index("    next:", start)
        block = text[start:end]
        block = (block.replace("    approve: gates", f"    approve: {who}") if "approve:" in block
                 else block + f"    approve: {who}\n")
        text = text[:start] + block + text[end:]
    for old, new in (gates or {}).items():
        assert old in text
        text = text.replace(old, new, 1)
    development.write_text(text)
    _commit(repo, "configure the pipeline")


def _kinds(repo: Path) -> list[tuple[str, str]]:
    with Store.open(repo) as store:
        return [(e.kind, str(e.payload.get("to") or e.payload.get("stage") or "")) for e in store.events(task_id="T-1")]


def _status(repo: Path) -> str:
    with Store.open(repo) as store:
        return store.task("T-1").status.value


def test_a_passing_task_walks_the_pipeline_and_lands_with_a_merge_commit(repo: Path) -> None:
    (repo / "notes.txt").write_text("the user's own uncommitted work\n")  # untouched by the landing
    main_before = git.Repo(repo).head.commit.hexsha
    result = dispatch(repo, DispatchOptions(task_id="T-1"))
    advanced = result.advanced
    assert advanced is not None and advanced.ok and result.status == "done"
    assert [s.state for s in advanced.stages] == ["review", "integration", "qa", "testing"]
    assert [s.moved_to for s in advanced.stages] == ["integration", "qa", "testing", "done"]
    handle = git.Repo(repo)
    head = handle.heads.main.commit
    assert advanced.landing is not None and advanced.landing.commit == head.hexsha
    assert head.parents[0].hexsha == main_before and len(head.parents) == 2
    assert (repo / "mod.txt").read_text() == "fixed\n"  # the checkout followed the merge
    assert (repo / "notes.txt").read_text() == "the user's own uncommitted work\n"
    assert "orchestrator/T-1" not in [h.name for h in handle.heads]
    assert not (repo / ".orchestrator" / "worktrees" / "T-1").exists()
    kinds = _kinds(repo)
    assert kinds[-9:] == [("gates.verified", "review"), ("task.moved", "integration"),
                          ("gates.verified", "integration"), ("task.moved", "qa"), ("gates.verified", "qa"),
                          ("task.moved", "testing"), ("gates.verified", "testing"), ("task.landed", ""),
                          ("task.moved", "done")]


def test_fast_forward_into_a_branch_that_is_not_checked_out_moves_only_the_ref(repo: Path) -> None:
    handle = git.Repo(repo)
    handle.create_head("release")
    _configure(repo, strategy="ff", target="release")
    handle.create_head("release", handle.head.commit, force=True)  # release == main, main stays checked out
    main_before = handle.heads.main.commit.hexsha
    result = dispatch(repo, DispatchOptions(task_id="T-1"))
    assert result.advanced is not None and result.advanced.ok, result.advanced
    landing = result.advanced.landing
    assert landing is not None and landing.where == "ref" and landing.strategy == "ff"
    release = handle.heads.release.commit
    assert release.hexsha == landing.commit and release.tree["mod.txt"].data_stream.read() == b"fixed\n"
    assert handle.heads.main.commit.hexsha == main_before and (repo / "mod.txt").read_text() == "broken\n"


def test_a_merge_conflict_sends_the_task_back_naming_the_files(repo: Path) -> None:
    first = dispatch(repo, DispatchOptions(task_id="T-1", advance=False))
    assert first.status == "review"
    (repo / "mod.txt").write_text("changed on main meanwhile\n")
    _commit(repo, "main moves on")
    [result] = advance_task(repo, "T-1")
    assert not result.ok and result.conflicts == ["mod.txt"] and result.status == "in_development"
    assert result.failed is not None and "mod.txt" in result.failed
    tree = Path(first.worktree)
    assert not git.Repo(tree).git.status("--porcelain")  # the merge was aborted: the worktree is as it was
    assert (tree / "mod.txt").read_text() == "fixed\n"
    with Store.open(repo) as store:
        conflict = store.events(task_id="T-1", kind="merge.conflict")[-1].payload
        moved = store.events(task_id="T-1", kind="task.moved")[-1]
    assert conflict["files"] == ["mod.txt"] and conflict["target"] == "main"
    assert moved.actor == "gates" and "mod.txt" in moved.reason


def test_human_approval_holds_the_task_until_approved(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _configure(repo, approve={"review": "human"})
    result = dispatch(repo, DispatchOptions(task_id="T-1"))
    assert result.advanced is not None and result.advanced.ok and result.status == "review"
    assert result.advanced.waiting is not None and "--approve" in result.advanced.waiting
    code = main(["--repo", str(repo), "advance", "T-1", "--json"])
    waiting = json.loads(capsys.readouterr().out)
    assert code == 0 and waiting[0]["status"] == "review" and waiting[0]["waiting"]
    code = main(["--repo", str(repo), "advance", "--all", "--approve", "--json"])
    approved = json.loads(capsys.readouterr().out)
    assert code == 0 and approved[0]["task_id"] == "T-1" and approved[0]["status"] == "done"
    assert approved[0]["landing"]["strategy"] == "merge"


def test_a_failing_stage_gate_sends_the_task_back_and_counts(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gates = (repo / "workflows" / "gates.yaml").read_text() + """  strict:
    command: [python, -c, "import sys; sys.exit(1)"]
    inputs: ["never-matches/**"]
    timeout: 60
"""
    (repo / "workflows" / "gates.yaml").write_text(gates)
    _configure(repo, gates={"    gates: [all]": "    gates: [check, strict]"})
    result = dispatch(repo, DispatchOptions(task_id="T-1"))
    advanced = result.advanced
    assert advanced is not None and not advanced.ok and result.status == "in_development"
    assert advanced.stages[-1].state == "testing" and advanced.stages[-1].moved_to == "in_development"
    assert advanced.failed is not None and "strict failed" in advanced.failed
    with Store.open(repo) as store:
        verdicts = [(e.payload["stage"], e.payload["passed"]) for e in store.events(task_id="T-1", kind="gates.verified")]
    assert verdicts[-1] == ("testing", False)
    assert "orchestrator/T-1" in [h.name for h in git.Repo(repo).heads]  # nothing landed, the work is kept
    assert (repo / "mod.txt").read_text() == "broken\n"
    code = main(["--repo", str(repo), "advance", "T-1"])
    assert code == 0 and "only tasks in review" in capsys.readouterr().out


def test_a_target_that_moves_before_landing_is_integrated_and_tested_again(repo: Path) -> None:
    handle = git.Repo(repo)
    handle.create_head("release")
    _configure(repo, target="release", approve={"testing": "human"})
    handle.create_head("release", handle.head.commit, force=True)
    result = dispatch(repo, DispatchOptions(task_id="T-1"))
    assert result.status == "testing"
    # someone lands other work in release meanwhile (without a checkout: a commit made on the branch)
    tree = handle.heads.release.commit.tree
    (repo.parent / "other.txt").write_text("other work\n")
    blob = handle.git.hash_object("-w", str(repo.parent / "other.txt"))
    index_env = {"GIT_INDEX_FILE": str(repo / ".git" / "tmp-index")}
    with handle.git.custom_environment(**index_env):
        handle.git.read_tree(tree.hexsha)
        handle.git.update_index("--add", "--cacheinfo", f"100644,{blob},other.txt")
        new_tree = handle.git.write_tree()
    moved = handle.git.commit_tree(new_tree, "-p", handle.heads.release.commit.hexsha, "-m", "other work")
    handle.git.update_ref("refs/heads/release", moved)
    [approved] = advance_task(repo, "T-1", approve=True)
    assert approved.ok and approved.status == "done", approved
    stages = [s.state for s in approved.stages]
    assert stages == ["testing", "testing"]  # approved, then re-integrated and tested again before landing
    landed = handle.heads.release.commit
    names = {item.path for item in landed.tree.traverse()}  # type: ignore[union-attr]
    assert {"other.txt", "mod.txt"} <= names and landed.tree["mod.txt"].data_stream.read() == b"fixed\n"
    assert handle.is_ancestor(handle.commit(moved), landed)


def test_pull_request_strategy_without_gh_refuses_clearly_and_keeps_the_task(repo: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    _configure(repo, strategy="pr")
    bare = repo.parent / "remote.git"
    git.Repo.init(bare, bare=True)
    git.Repo(repo).create_remote("origin", str(bare))
    only_git = repo.parent / "bin"
    only_git.mkdir()
    git_path = next(Path(d) / "git" for d in os.environ["PATH"].split(os.pathsep) if (Path(d) / "git").is_file())
    (only_git / "git").symlink_to(git_path)
    monkeypatch.setenv("PATH", str(only_git))
    result = dispatch(repo, DispatchOptions(task_id="T-1"))
    advanced = result.advanced
    assert advanced is not None and not advanced.ok and result.status == "testing"
    assert advanced.failed is not None and "`gh`" in advanced.failed
    assert "orchestrator/T-1" in [h.name for h in git.Repo(repo).heads]

