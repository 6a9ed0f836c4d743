"""Escalation from the event log: levels by time blocked, failed gate runs, overload; each fires once."""

from __future__ import annotations

from pathlib import Path

import pytest

from bno_orchestrator.config import load_escalation
from bno_orchestrator.errors import ConfigError
from bno_orchestrator.escalation import Escalation, escalate_now
from bno_orchestrator.models import TaskStatus
from bno_orchestrator.paths import data_root
from bno_orchestrator.routing import route_backlog
from bno_orchestrator.store import Store
from bno_orchestrator.workflow import block_task, create_task, move_task, record_verification
from tests.orchestrator.core_fixtures import FakeClock, init_repo


def _rules(fired: list[Escalation]) -> list[str]:
    return [f"{e.task_id}:{e.rule}" for e in fired]


def test_blocked_task_climbs_the_levels_once_each(tmp_path: Path) -> None:
    config = init_repo(tmp_path)
    clock = FakeClock()
    with Store.open(tmp_path, clock=clock) as store:
        create_task(store, {"title": "kv cache", "type": "inference", "complexity": 2}, actor="human:a")
        route_backlog(store, config)
        task = store.task("T-0001")
        assert task.support, "the router gave the task support agents"
        block_task(store, config.workflow, "T-0001", "upstream API missing", actor="human:a")
        assert _rules(escalate_now(store, config)) == ["T-0001:level-1-individual"]
        assert escalate_now(store, config) == []  # fires once
        clock.advance(hours=3)
        level2 = escalate_now(store, config)
        assert _rules(level2) == ["T-0001:level-2-team"] and level2[0].agents == tuple(task.support)
        clock.advance(hours=22)
        fired = escalate_now(store, config)
        assert _rules(fired) == ["T-0001:level-3-cross-team", "T-0001:blocker-1d"]
        assert fired[1].agents == ("architect",) and "blocked for 25h (> 1d)" in fired[1].reason
        assert "architect" in store.task("T-0001").support
        clock.advance(days=3)
        count = store.event_count()
        dry = escalate_now(store, config, dry_run=True)
        assert _rules(dry) == ["T-0001:level-4-architecture-review"]
        assert store.event_count() == count  # a dry run records nothing
        final = escalate_now(store, config)
        assert final[0].to == "escalated"
        task = store.task("T-0001")
        assert task.status == TaskStatus.ESCALATED and task.escalation_level == 4
        assert escalate_now(store, config) == []
        fired_rules = [e.payload["rule"] for e in store.events(kind="task.escalated")]
        assert len(fired_rules) == len(set(fired_rules)) == 5


def test_repeated_gate_failures_bring_oversight_then_review(tmp_path: Path) -> None:
    config = init_repo(tmp_path)
    clock = FakeClock()
    with Store.open(tmp_path, clock=clock) as store:
        create_task(store, {"title": "quant kernel", "type": "performance"}, actor="human:a")
        route_backlog(store, config)
        move_task(store, config.workflow, "T-0001", "in_development", actor="human:a")

        def verify(passed: bool) -> None:
            record_verification(store, "T-0001", run_id=f"r{store.event_count()}", passed=passed,
                                agent="performance")

        verify(False)
        assert escalate_now(store, config) == []
        verify(False)
        fired = escalate_now(store, config)
        assert _rules(fired) == ["T-0001:failed-gates-oversight"] and fired[0].agents == ("truth-validator",)
        verify(True)
        verify(False)
        assert escalate_now(store, config) == []  # 3 failures: the architect step needs 4
        verify(False)
        fired = escalate_now(store, config)
        assert _rules(fired) == ["T-0001:failed-gates-architect"] and fired[0].to == "escalated"
        assert store.task("T-0001").status == TaskStatus.ESCALATED


def test_overload_redistributes_the_lowest_priority_unstarted_work(tmp_path: Path) -> None:
    config = init_repo(tmp_path)
    with Store.open(tmp_path, clock=FakeClock()) as store:
        for impact in (5, 1, 3):
            create_task(store, {"title": f"doc {impact}", "type": "documentation", "impact": impact,
                                "assignees": ["documentation"]}, actor="human:a")
        for task_id in ("T-0001", "T-0002", "T-0003"):
            move_task(store, config.workflow, task_id, "assigned", actor="human:a")
        capacity = config.agents["documentation"].capacity
        config.agents = {**config.agents, "documentation": config.agents["documentation"].model_copy(
            update={"capacity": 1})}
        fired = escalate_now(store, config)
        assert [e.task_id for e in fired] == ["T-0002", "T-0003"]  # impact 1 and 3 go; impact 5 stays
        assert all(e.action == "redistribute" and e.to == "backlog" for e in fired)
        for task_id in ("T-0002", "T-0003"):
            task = store.task(task_id)
            assert task.status == TaskStatus.BACKLOG and task.assignees == []
        assert store.task("T-0001").assignees == ["documentation"]
        assert escalate_now(store, config) == []
        assert capacity >= 1


def test_escalation_yaml_errors_name_the_place(tmp_path: Path) -> None:
    text = (data_root() / "workflows" / "escalation.yaml").read_text(encoding="utf-8")
    bad = tmp_path / "escalation.yaml"
    bad.write_text(text.replace("add: [truth-validator]", "add: [truth-validatr]"))
    with pytest.raises(ConfigError) as info:
        load_escalation(bad, agents=["architect", "orchestrator", "truth-validator"])
    assert "unknown agent 'truth-validatr'" in str(info.value) and info.value.line is not None
    assert info.value.field == "triggers.1.add.0"
    bad.write_text(text.replace("after: 1d\n    within: 3d", "after: banana\n    within: 3d"))
    with pytest.raises(ConfigError, match="duration"):
        load_escalation(bad)
    bad.write_text(text.replace("states: [blocked]", "states: [stuck]"))
    with pytest.raises(ConfigError, match="unknown state 'stuck'"):
        load_escalation(bad, states=["blocked", "escalated"])
