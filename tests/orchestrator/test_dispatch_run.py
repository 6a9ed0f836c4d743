"""dispatch end to end on a real git repository: task choice, workflow moves, executor, gate verification,
escalation, hand-off, dry run, and the CLI."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import git
import pytest

from bno_orchestrator.cli import main
from bno_orchestrator.config import load_config
from bno_orchestrator.dispatch import DispatchOptions, dispatch
from bno_orchestrator.errors import UserError
from bno_orchestrator.store import Store
from bno_orchestrator.workflow import block_task, create_task
from tests.orchestrator.dispatch_helpers import add_routed_task, main_state, make_repo, set_executor

SHELL = ["python", "{worktree}/tools/{tool}", "{worktree}", "{prompt_file}"]


def use_tool(repo: Path, agent: str, tool: str) -> None:
    argv = [item.replace("{tool}", tool) for item in SHELL]
    set_executor(repo, agent, "shell", argv=argv, timeout=60)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo")


def events(repo: Path, task_id: str) -> list[tuple[str, str, dict[str, object]]]:
    with Store.open(repo) as store:
        return [(e.kind, e.actor, e.payload) for e in store.events(task_id=task_id)]


def test_passing_dispatch_moves_to_review_and_commits_on_the_task_branch(repo: Path) -> None:
    agent = add_routed_task(repo)
    use_tool(repo, agent, "fix.py")
    before = main_state(repo)
    result = dispatch(repo, DispatchOptions(task_id="T-1", advance=False))
    assert result.verification is not None and result.verification.passed
    assert result.verification.gates == {"check": "passed"}
    assert result.verification.changed_files == ["mod.txt"]
    assert result.status == "review"
    assert result.outcome is not None and result.outcome.claim == "fixed it"
    log = events(repo, "T-1")
    kinds = [(kind, actor) for kind, actor, _ in log]
    assert ("task.moved", f"agent:{agent}") in kinds
    assert kinds[-4:] == [("dispatch.started", "dispatch"), ("dispatch.finished", "dispatch"),
                          ("gates.verified", "gates"), ("task.moved", "gates")]
    verified = next(p for k, _, p in log if k == "gates.verified")
    assert verified["passed"] is True and verified["agent"] == agent and verified["run_id"] == result.verification.run_id
    handle = git.Repo(repo)
    assert result.commit == handle.commit("orchestrator/T-1").hexsha
    assert str(handle.commit("orchestrator/T-1").message).startswith("T-1: Task T-1")
    assert main_state(repo) == before  # the user's checkout, index and HEAD are untouched
    assert (repo / "mod.txt").read_text() == "broken\n"
    prompt = Path(str(result.prompt_file)).read_text()
    assert "Task T-1: make mod.txt say fixed" in prompt and result.worktree in prompt
    assert "Gates this change must pass: check" in prompt  # the repo's gates, not the agent's wish list
    # the gate run is in the same store, under the same run id
    from bno_quality_gates.results import ResultsDB

    with ResultsDB(repo / ".orchestrator" / "state.db") as db:
        assert db.run(result.verification.run_id) is not None


def test_failed_verification_stays_in_development_and_escalates_on_the_second(repo: Path) -> None:
    agent = add_routed_task(repo)
    use_tool(repo, agent, "break.py")
    first = dispatch(repo, DispatchOptions(task_id="T-1"))
    assert first.verification is not None and not first.verification.passed
    assert "check failed" in first.verification.reason
    assert first.status == "in_development" and first.commit is None and first.escalations == []
    second = dispatch(repo, DispatchOptions(task_id="T-1"))
    assert second.attempt == 2 and second.status == "in_development"
    assert [e.rule for e in second.escalations] == ["failed-gates-oversight"]
    prompt = Path(str(second.prompt_file)).read_text()
    assert "gate `check` failed" in prompt and "Attempt 2" in prompt  # the retry sees what the gates said
    log = events(repo, "T-1")
    assert [p["passed"] for k, _, p in log if k == "gates.verified"] == [False, False]
    escalated = [p for k, _, p in log if k == "task.escalated"]
    assert escalated and escalated[0]["agents"] == ["truth-validator"]
    with Store.open(repo) as store:
        assert "truth-validator" in store.task("T-1").support
    # a fixed third attempt passes: the gates, not the history, decide
    use_tool(repo, agent, "fix.py")
    third = dispatch(repo, DispatchOptions(task_id="T-1", advance=False))
    assert third.verification is not None and third.verification.passed and third.status == "review"


def test_an_executor_that_changes_nothing_fails_verification(repo: Path) -> None:
    agent = add_routed_task(repo)
    use_tool(repo, agent, "nothing.py")
    result = dispatch(repo, DispatchOptions(task_id="T-1"))
    assert result.verification is not None and not result.verification.passed
    assert "changed no file" in result.verification.reason
    assert result.outcome is not None and result.outcome.claim == "done, trust me"


def test_a_change_no_gate_checks_is_not_a_pass(repo: Path) -> None:
    agent = add_routed_task(repo)
    (repo / "tools" / "elsewhere.py").write_text(
        "import pathlib, sys\npathlib.Path(sys.argv[1], 'README-unchecked.txt').write_text('hi\\n')\n")
    git.Repo(repo).git.add(A=True)
    git.Repo(repo).index.commit("tool")
    use_tool(repo, agent, "elsewhere.py")
    result = dispatch(repo, DispatchOptions(task_id="T-1"))
    assert result.verification is not None and not result.verification.passed
    assert "no gate is affected" in result.verification.reason and result.status == "in_development"
    assert result.commit is None


def test_refusals_record_nothing(repo: Path) -> None:
    agent = add_routed_task(repo)
    config = load_config(repo)
    with Store.open(repo) as store:
        create_task(store, {"id": "T-2", "title": "later", "type": "implementation", "depends_on": ["T-1"]},
                    actor="human:test")
        create_task(store, {"id": "T-3", "title": "not routed", "type": "implementation"}, actor="human:test")
        count = store.event_count()
    with pytest.raises(UserError, match="run `orchestrator route` first"):
        dispatch(repo, DispatchOptions(task_id="T-3"))
    with pytest.raises(UserError, match="not both"):
        dispatch(repo, DispatchOptions(task_id="T-1", next=True))
    # a missing CLI is reported before anything moves
    set_executor(repo, agent, "claude", binary="claude-not-installed-here")
    with pytest.raises(UserError, match=r"needs `claude-not-installed-here`.*npm install -g @anthropic-ai/claude-code"):
        dispatch(repo, DispatchOptions(task_id="T-1"))
    with Store.open(repo) as store:
        assert store.event_count() == count and store.task("T-1").status.value == "assigned"
        assert not (repo / ".orchestrator" / "worktrees" / "T-1").exists()  # nothing made before the check
        block_task(store, config.workflow, "T-1", "waiting for the HF checkpoint", actor="human:test")
    with pytest.raises(UserError, match=r"T-1 is blocked \(waiting for the HF checkpoint\)"):
        dispatch(repo, DispatchOptions(task_id="T-1"))


def test_next_picks_the_best_scored_ready_task_and_dry_run_changes_nothing(repo: Path) -> None:
    add_routed_task(repo, "T-1", impact=2, urgency=2)
    agent = add_routed_task(repo, "T-9", impact=5, urgency=5)
    use_tool(repo, agent, "fix.py")
    with Store.open(repo) as store:
        count = store.event_count()
    before = main_state(repo)
    result = dispatch(repo, DispatchOptions(next=True, dry_run=True))
    assert result.task_id == "T-9" and result.dry_run
    assert result.prompt is not None and "Task T-9" in result.prompt and result.worktree in result.prompt
    assert result.argv[:3] == [sys.executable, f"{result.worktree}/tools/fix.py", result.worktree]
    assert result.argv[3].endswith("T-9/1.prompt.md")
    assert not Path(result.worktree).exists()
    with Store.open(repo) as store:
        assert store.event_count() == count
    assert main_state(repo) == before
    done = dispatch(repo, DispatchOptions(next=True, advance=False))
    assert done.task_id == "T-9" and done.status == "review"
    # T-1 is still assigned and ready, T-9 is in review: --next takes T-1, then nothing is left
    assert dispatch(repo, DispatchOptions(next=True, verify=False)).task_id == "T-1"
    with pytest.raises(UserError, match="no routed task is ready"):
        dispatch(repo, DispatchOptions(next=True))


def test_manual_handoff_then_verify_only(repo: Path) -> None:
    agent = add_routed_task(repo)
    set_executor(repo, agent, "manual")
    result = dispatch(repo, DispatchOptions(task_id="T-1"))
    assert result.outcome is not None and result.outcome.handoff
    assert result.status == "in_development" and result.verification is None
    assert Path(str(result.prompt_file)).is_file()
    kinds = [k for k, _, _ in events(repo, "T-1")]
    assert kinds[-2:] == ["dispatch.started", "dispatch.handoff"]
    # the person works in the worktree, then asks the gates
    (Path(result.worktree) / "mod.txt").write_text("fixed by hand\n")
    verified = dispatch(repo, DispatchOptions(task_id="T-1", verify_only=True, advance=False))
    assert verified.verification is not None and verified.verification.passed and verified.status == "review"


def test_cli_json_exit_codes_no_verify_and_cleanup(repo: Path, capsys: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "300")  # no wrapping of rich output
    agent = add_routed_task(repo)
    use_tool(repo, agent, "break.py")
    code = main(["--repo", str(repo), "dispatch", "T-1", "--json"])
    data = json.loads(capsys.readouterr().out)
    assert code == 1 and data["verification"]["passed"] is False and data["status"] == "in_development"
    assert data["escalations"] == [] and data["attempt"] == 1
    code = main(["--repo", str(repo), "dispatch", "T-1", "--no-verify"])
    out = capsys.readouterr().out
    assert code == 0 and "not verified (--no-verify)" in out and "attempt 2" in out
    assert [k for k, _, _ in events(repo, "T-1")][-1] == "dispatch.finished"
    code = main(["--repo", str(repo), "dispatch", "T-1", "--dry-run"])
    out = capsys.readouterr().out
    assert code == 0 and "attempt 3 (dry run: nothing recorded)" in out
    code = main(["--repo", str(repo), "dispatch", "--cleanup", "T-1", "--json"])
    err = capsys.readouterr().err
    assert code == 2 and "uncommitted work (mod.txt)" in err and "--force" in err  # the agent's work is kept
    assert (repo / ".orchestrator" / "worktrees" / "T-1" / "mod.txt").read_text() == "still broken\n"
    code = main(["--repo", str(repo), "dispatch", "--cleanup", "T-1", "--force", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["removed"] is True
    assert not (repo / ".orchestrator" / "worktrees" / "T-1").exists()
    code = main(["--repo", str(repo), "dispatch", "T-404"])
    assert code == 2 and "T-404" in capsys.readouterr().err


def test_a_task_being_dispatched_is_locked(repo: Path) -> None:
    from bno_orchestrator.dispatch.run import task_lock

    agent = add_routed_task(repo)
    use_tool(repo, agent, "fix.py")
    with task_lock(repo, "T-1"), pytest.raises(UserError, match="being dispatched by another process"):
        dispatch(repo, DispatchOptions(task_id="T-1"))
    with Store.open(repo) as store:
        assert store.task("T-1").status.value == "assigned"


def test_a_failed_gate_names_its_log_and_its_last_lines(repo: Path) -> None:
    agent = add_routed_task(repo)
    use_tool(repo, agent, "break.py")
    result = dispatch(repo, DispatchOptions(task_id="T-1"))
    assert result.verification is not None and not result.verification.passed
    assert "check failed" in result.verification.reason and "[log " in result.verification.reason
    log = result.verification.reason.split("[log ", 1)[1].split(":", 1)[0]
    assert Path(log).is_file() and "check" in Path(log).name


def test_executor_override_takes_the_default_executors_options(repo: Path) -> None:
    from bno_orchestrator.dispatch.run import executor_request

    text = (repo / "workflows" / "dispatch.yaml").read_text()
    (repo / "workflows" / "dispatch.yaml").write_text(
        text.replace("  kind: claude", "  kind: codex", 1).replace("  options: {}", "  options: {model: gpt-5.5}", 1))
    add_routed_task(repo)
    config = load_config(repo)
    with Store.open(repo) as store:
        task = store.task("T-1")
        override = executor_request(repo, store, config, task, DispatchOptions(task_id="T-1", executor="codex"))
        other = executor_request(repo, store, config, task, DispatchOptions(task_id="T-1", executor="gemini"))
    assert override.kind == "codex" and override.options["model"] == "gpt-5.5"
    assert other.kind == "gemini" and other.options == {}


def test_commands_refuse_a_directory_that_was_never_set_up(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bare = tmp_path / "bare"
    bare.mkdir()
    code = main(["--repo", str(bare), "status"])
    assert code == 2 and "orchestrator init" in capsys.readouterr().err
    assert not (bare / ".orchestrator").exists()  # no store made behind the user's back
