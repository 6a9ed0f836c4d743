"""The development workflow: legal moves, who may make them, blocking, dependencies, bad YAML."""

from __future__ import annotations

from pathlib import Path

import pytest

from bno_orchestrator.config import load_workflow
from bno_orchestrator.errors import ConfigError, NotFoundError, TransitionError, UserError
from bno_orchestrator.models import TaskStatus
from bno_orchestrator.paths import data_root
from bno_orchestrator.store import Store
from bno_orchestrator.workflow import (
    block_task,
    create_task,
    edit_task,
    move_task,
    record_verification,
    unblock_task,
)
from tests.orchestrator.core_fixtures import FakeClock, shipped_workflow


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "state.db", clock=FakeClock())


def test_shipped_workflow_has_the_development_states() -> None:
    workflow = shipped_workflow()
    assert workflow.states[:8] == ["backlog", "assigned", "in_development", "review", "integration", "qa",
                                   "testing", "done"]
    assert {"blocked", "escalated"} <= set(workflow.states)
    assert workflow.targets("done") == {}
    assert "backlog" not in workflow.load_states() and "in_development" in workflow.load_states()


def test_illegal_transition_lists_the_allowed_ones(store: Store) -> None:
    create_task(store, {"title": "x"}, actor="human:a")
    with pytest.raises(TransitionError) as info:
        move_task(store, shipped_workflow(), "T-0001", "done", actor="human:a")
    message = str(info.value)
    assert "illegal transition backlog -> done" in message
    assert "assigned (human/router)" in message and "blocked" in message
    assert store.event_count() == 1  # nothing written


def test_roles_decide_who_may_move(store: Store) -> None:
    workflow = shipped_workflow()
    create_task(store, {"title": "x"}, actor="human:a")
    with pytest.raises(TransitionError, match="may not move backlog -> assigned"):
        move_task(store, workflow, "T-0001", "assigned", actor="agent:code")
    move_task(store, workflow, "T-0001", "assigned", actor="router")
    edit_task(store, "T-0001", {"assignees": ["code"]}, actor="human:a")
    with pytest.raises(TransitionError, match="not assigned"):
        move_task(store, workflow, "T-0001", "in_development", actor="agent:debug")
    task = move_task(store, workflow, "T-0001", "in_development", actor="agent:code")
    assert task.status == TaskStatus.IN_DEVELOPMENT
    with pytest.raises(TransitionError, match="already in_development"):
        move_task(store, workflow, "T-0001", "in_development", actor="human:a")
    with pytest.raises(TransitionError, match="unknown state"):
        move_task(store, workflow, "T-0001", "shipped", actor="human:a")


def test_block_and_unblock_return_to_the_previous_state(store: Store) -> None:
    workflow = shipped_workflow()
    create_task(store, {"title": "x"}, actor="human:a")
    move_task(store, workflow, "T-0001", "assigned", actor="router")
    move_task(store, workflow, "T-0001", "in_development", actor="human:a")
    with pytest.raises(UserError, match="reason"):
        block_task(store, workflow, "T-0001", "  ", actor="human:a")
    blocked = block_task(store, workflow, "T-0001", "CI is down", actor="human:a")
    assert blocked.status == TaskStatus.BLOCKED and blocked.blocked_reason == "CI is down"
    assert blocked.blocked_from == TaskStatus.IN_DEVELOPMENT
    back = unblock_task(store, workflow, "T-0001", actor="human:a")
    assert back.status == TaskStatus.IN_DEVELOPMENT and back.blocked_reason is None
    with pytest.raises(TransitionError, match="not blocked"):
        unblock_task(store, workflow, "T-0001", actor="human:a")


def test_unfinished_dependencies_hold_a_task_back(store: Store) -> None:
    workflow = shipped_workflow()
    create_task(store, {"title": "base"}, actor="human:a")
    create_task(store, {"title": "top", "depends_on": ["T-0001"]}, actor="human:a")
    with pytest.raises(TransitionError, match="blocked by unfinished T-0001"):
        move_task(store, workflow, "T-0002", "assigned", actor="human:a")
    for state in ("assigned", "in_development", "review", "integration", "qa", "testing", "done"):
        current = store.task("T-0001").status.value
        if workflow.spec.states[current].gates:  # the stage's gates pass, as `orchestrator advance` records
            record_verification(store, "T-0001", run_id=f"run-{current}", passed=True, agent="a", stage=current)
        move_task(store, workflow, "T-0001", state, actor="human:a")
    assert move_task(store, workflow, "T-0002", "assigned", actor="human:a").status == TaskStatus.ASSIGNED


def test_the_pipeline_cannot_be_skipped_by_any_actor(store: Store) -> None:
    workflow = shipped_workflow()
    create_task(store, {"title": "work", "assignees": ["coder"]}, actor="human:a")
    for state in ("assigned", "in_development", "review"):
        move_task(store, workflow, "T-0001", state, actor="human:a")
    with pytest.raises(TransitionError, match="needs the review gates to pass first"):
        move_task(store, workflow, "T-0001", "integration", actor="human:a")
    record_verification(store, "T-0001", run_id="r1", passed=False, agent="coder", stage="review")
    with pytest.raises(TransitionError, match="needs the review gates"):
        move_task(store, workflow, "T-0001", "integration", actor="gates")
    record_verification(store, "T-0001", run_id="r2", passed=True, agent="coder", stage="review")
    move_task(store, workflow, "T-0001", "integration", actor="gates")
    record_verification(store, "T-0001", run_id="r2b", passed=True, agent="coder", stage="integration")
    # blocked in integration: an agent may bring it back there, not further, and the gates must pass again
    block_task(store, workflow, "T-0001", "waiting", actor="agent:coder")
    for skip in ("qa", "testing"):
        with pytest.raises(TransitionError, match=r"would skip the pipeline's gates \(it left the pipeline at integration\)"):
            move_task(store, workflow, "T-0001", skip, actor="agent:coder")
    move_task(store, workflow, "T-0001", "integration", actor="agent:coder")
    with pytest.raises(TransitionError, match="needs the integration gates"):
        move_task(store, workflow, "T-0001", "qa", actor="human:a")
    # the pass before the block does not count after re-entry: the gates run again
    record_verification(store, "T-0001", run_id="r3", passed=True, agent="coder", stage="integration")
    assert move_task(store, workflow, "T-0001", "qa", actor="human:a").status.value == "qa"


def test_dependency_cycles_and_unknown_ids_are_refused(store: Store) -> None:
    create_task(store, {"title": "a"}, actor="human:a")
    create_task(store, {"title": "b", "depends_on": ["T-0001"]}, actor="human:a")
    create_task(store, {"title": "c", "depends_on": ["T-0002"]}, actor="human:a")
    count = store.event_count()
    with pytest.raises(UserError, match=r"cycle: T-0001 -> T-0003 -> T-0002 -> T-0001"):
        edit_task(store, "T-0001", {"depends_on": ["T-0003"]}, actor="human:a")
    with pytest.raises(NotFoundError, match="T-0099"):
        create_task(store, {"title": "d", "depends_on": ["T-0099"]}, actor="human:a")
    with pytest.raises(UserError, match="itself"):
        edit_task(store, "T-0001", {"depends_on": ["T-0001"]}, actor="human:a")
    assert store.event_count() == count


def test_bad_task_fields_name_the_field(store: Store) -> None:
    with pytest.raises(UserError, match="field 'impact'"):
        create_task(store, {"title": "x", "impact": 7}, actor="human:a")
    with pytest.raises(UserError, match="field 'complexity'"):
        create_task(store, {"title": "x", "complexity": "enormous"}, actor="human:a")
    with pytest.raises(UserError, match="status"):
        create_task(store, {"title": "x", "status": "done"}, actor="human:a")
    create_task(store, {"title": "x"}, actor="human:a")
    with pytest.raises(UserError, match="task move"):
        edit_task(store, "T-0001", {"status": "done"}, actor="human:a")
    assert create_task(store, {"title": "y", "complexity": "critical"}, actor="human:a").complexity == 4
    assert store.event_count() == 2


def test_invalid_workflow_yaml_names_file_line_and_field(tmp_path: Path) -> None:
    text = (data_root() / "workflows" / "development.yaml").read_text(encoding="utf-8")
    bad = tmp_path / "development.yaml"
    bad.write_text(text.replace("      review: [human, agent, gates]", "      reveiw: [human, agent, gates]"))
    with pytest.raises(ConfigError) as info:
        load_workflow(bad)
    err = info.value
    assert err.path == str(bad) and err.line is not None and err.column is not None
    assert err.field == "states.in_development.next.reveiw" and "unknown target state" in str(err)
    bad.write_text(text.replace("      assigned: [human, router]", "      assigned: [human, robot]"))
    with pytest.raises(ConfigError, match="unknown role 'robot'"):
        load_workflow(bad)
    bad.write_text("states: [\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_workflow(bad)
