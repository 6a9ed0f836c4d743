"""The demo sprint (``orchestrator demo``) runs offline in a temporary directory and leaves in its store every
milestone: routed, dispatched, verified passed, verified failed, escalated."""

from __future__ import annotations

import json
import os
from pathlib import Path

import git
import pytest

from bno_orchestrator.cli import main
from bno_orchestrator.demo import BACKLOG, FAILING_TASK, PASSING_TASK, run_demo
from bno_orchestrator.store import Store
from tests.orchestrator.dispatch_helpers import installed_cli


def test_demo_sprint_records_every_milestone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = tmp_path / "demo"
    code = main(["demo", "--dir", str(repo), "--json"])
    summary = json.loads(capsys.readouterr().out)
    assert code == 0
    assert summary["ok"], summary["milestones"]
    assert summary["kept"] and Path(summary["repo"]) == repo.resolve()
    with Store.open(repo) as store:
        events = store.events()
        tasks = {t.id: t for t in store.tasks()}
    kinds = [e.kind for e in events]
    assert kinds.count("task.created") == 8
    routed = {e.task_id for e in events if e.kind == "task.routed"}
    assert {PASSING_TASK, FAILING_TASK} <= routed
    verified = [(e.task_id, e.payload["stage"], e.payload["passed"]) for e in events if e.kind == "gates.verified"]
    assert verified == [(PASSING_TASK, "in_development", True), (PASSING_TASK, "review", True),
                        (PASSING_TASK, "integration", True), (PASSING_TASK, "qa", True),
                        (PASSING_TASK, "testing", True),
                        (FAILING_TASK, "in_development", False), (FAILING_TASK, "in_development", False)]
    escalated = [e for e in events if e.kind == "task.escalated"]
    assert [(e.task_id, e.payload["rule"]) for e in escalated] == [(FAILING_TASK, "failed-gates-oversight")]
    assert [e.task_id for e in events if e.kind == "dispatch.started"] == [PASSING_TASK, FAILING_TASK, FAILING_TASK]
    assert tasks[PASSING_TASK].status.value == "done"
    assert tasks[FAILING_TASK].status.value == "in_development"
    assert "truth-validator" in tasks[FAILING_TASK].support
    # the passing fix went through the pipeline and landed in main (a merge commit); its worktree and branch
    # are gone; BN-2's wrong work never left its branch
    handle = git.Repo(repo)
    landed = next(e for e in events if e.kind == "task.landed")
    assert landed.task_id == PASSING_TASK and landed.payload["strategy"] == "merge"
    assert handle.heads.main.commit.hexsha == landed.payload["commit"] and len(handle.heads.main.commit.parents) == 2
    assert "max(sum(flat) / len(flat), EPS)" in (repo / "bitnet_lite" / "quant.py").read_text()
    assert not handle.git.status("--porcelain")  # the checkout followed the merge: nothing left dirty
    assert f"orchestrator/{PASSING_TASK}" not in [h.name for h in handle.heads]
    assert not (repo / ".orchestrator" / "worktrees" / PASSING_TASK).exists()
    assert f"orchestrator/{FAILING_TASK}" in [h.name for h in handle.heads]
    # what it printed was the commands' output, read from the store
    output = summary["output"]
    assert "$ orchestrator dispatch BN-1" in output and "PASSED" in output and "FAILED" in output
    assert "$ orchestrator status" in output and f"$ orchestrator task explain {summary['top_task']}" in output
    assert "escalated: failed-gates-oversight -> truth-validator" in output


def test_demo_refuses_a_non_empty_dir_and_the_backlog_ships(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "file").write_text("x")
    code = main(["demo", "--dir", str(tmp_path / "busy"), "--json"])
    assert code == 2 and "not empty" in capsys.readouterr().err
    text = BACKLOG.read_text()
    assert text.count("- id: BN-") == 8 and "depends_on: [BN-2]" in text


def test_a_temporary_demo_repo_is_removed_even_when_a_step_fails(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile

    import bno_orchestrator.demo as demo

    target = tmp_path / "tmp-demo"

    def fake_mkdtemp(prefix: str = "") -> str:
        target.mkdir()
        return str(target)

    def broken(repo: Path) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(tempfile, "mkdtemp", fake_mkdtemp)
    monkeypatch.setattr(demo, "_write_slice", broken)
    with pytest.raises(OSError, match="disk full"):
        run_demo(None, quiet=True)
    assert not target.exists()


def test_demo_gates_fall_back_to_unittest_without_pytest(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    from bno_orchestrator.demo import demo_gates
    from bno_quality_gates.spec import parse_gates

    with_pytest = parse_gates(demo_gates())
    assert with_pytest.gates["test-quant"].command == [
        "python", "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_quant.py"]
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "pytest" else real(name, *a))
    without = parse_gates(demo_gates())
    assert without.gates["test-packing"].command == ["python", "-m", "unittest", "tests/test_packing.py"]
    assert list(without.gates) == ["syntax", "test-quant", "test-packing"]


def test_demo_through_a_real_agent_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """`demo --agent claude`: the same sprint, the real Claude Code CLI against the scripted model on 127.0.0.1."""
    installed_cli("claude")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "the-users-real-key")  # hidden from the demo's CLI
    repo = tmp_path / "demo"
    code = main(["demo", "--dir", str(repo), "--agent", "claude", "--json"])
    summary = json.loads(capsys.readouterr().out)
    assert code == 0 and summary["ok"], summary["milestones"]
    with Store.open(repo) as store:
        finished = store.events(kind="dispatch.finished")
        landed = store.events(kind="task.landed")
    assert [e.payload["kind"] for e in finished] == ["claude"] * 3
    assert all(e.payload["session_id"] and e.payload["error_kind"] is None for e in finished)
    assert [e.task_id for e in landed] == [PASSING_TASK]
    assert "max(sum(flat) / len(flat), EPS)" in (repo / "bitnet_lite" / "quant.py").read_text()
    assert os.environ["ANTHROPIC_API_KEY"] == "the-users-real-key"  # restored after the demo
