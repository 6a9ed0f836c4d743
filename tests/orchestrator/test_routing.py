"""Routing: the routing matrices, tie-breaks by track record/load/id, capacity, burnout, events."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from bno_orchestrator.agents import AgentSpec
from bno_orchestrator.config import load_routing
from bno_orchestrator.errors import ConfigError
from bno_orchestrator.models import Event, Task, TaskStatus
from bno_orchestrator.paths import data_root
from bno_orchestrator.routing import Decision, route, route_backlog
from bno_orchestrator.rules import ScoringConfig
from bno_orchestrator.scoring import score_tasks
from bno_orchestrator.store import Store
from bno_orchestrator.workflow import create_task, record_verification
from bno_orchestrator.workload import TrackRecord, high_streaks
from tests.orchestrator.core_fixtures import START, FakeClock, agent, init_repo, shipped_rules

AGENT_IDS = ("architect", "code", "debug", "best-practices", "inference-engine", "performance", "error-handling",
             "test-utilities", "documentation", "security", "truth-validator", "publishing", "ask",
             "phase-tracker", "commands-config", "research", "rules-config", "variable-matcher", "orchestrator")


def _agents(**overrides: dict[str, Any]) -> dict[str, AgentSpec]:
    return {name: agent(name, **overrides.get(name, {})) for name in AGENT_IDS}


def _route(tasks: list[Task], agents: dict[str, AgentSpec] | None = None, *, track: TrackRecord | None = None,
           load: dict[str, int] | None = None, streaks: dict[str, int] | None = None) -> dict[str, Decision]:
    scores = score_tasks(tasks, ScoringConfig(), now=START)
    decisions = route(tasks, scores, agents or _agents(), shipped_rules(), track=track, load=load, streaks=streaks)
    return {d.task_id: d for d in decisions}


def test_task_type_matrix_picks_primary_support_and_strategy() -> None:
    tasks = [Task(id="A", title="design", type="architecture", complexity=3),
             Task(id="S", title="typo", type="documentation", complexity=1),
             Task(id="C", title="release", type="publishing", complexity=4)]
    decisions = _route(tasks)
    a = decisions["A"]
    assert a.primary == "architect" and a.strategy == "full-team" and a.secondary[0] == "research"
    assert a.escalation == ("architect", "orchestrator")
    assert decisions["S"].primary == "documentation" and decisions["S"].secondary == ()  # a single specialist
    c = decisions["C"]
    assert c.primary == "publishing" and c.strategy == "all-hands"
    assert "truth-validator" in c.secondary  # critical tasks get QA (support team assembly)
    assert any("type primary (architecture)" in r for r in a.reasons)


def test_ties_break_by_track_record_then_load_then_id() -> None:
    # implementation -> code (task-type primary, 3 points); bitnet-inference -> inference-engine (owner, 3 points)
    task = Task(id="T", title="kv cache", type="implementation", components=["bitnet-inference"])
    by_id = _route([task])
    assert by_id["T"].primary == "code" and "broken by id" in by_id["T"].reasons[1]
    loaded = _route([task], load={"code": 1})
    assert loaded["T"].primary == "inference-engine" and "broken by load" in loaded["T"].reasons[1]
    history = [
        Event(id=1, actor="gates", kind="gates.verified", task_id="OLD1",
              payload={"run_id": "r1", "passed": True, "agent": "inference-engine"}),
        Event(id=2, actor="gates", kind="gates.verified", task_id="OLD2",
              payload={"run_id": "r2", "passed": False, "agent": "code"}),
        Event(id=3, actor="gates", kind="gates.verified", task_id="OLD2",  # a retry: not first-pass
              payload={"run_id": "r3", "passed": True, "agent": "code"}),
    ]
    track = TrackRecord.from_events(history, {"OLD1": "implementation", "OLD2": "implementation"})
    assert track.rate("code", "implementation") == 0.0 and track.rate("inference-engine", "implementation") == 1.0
    recorded = _route([task], track=track, load={"inference-engine": 1})
    assert recorded["T"].primary == "inference-engine"  # the record outranks the higher load
    assert "track record (1/1 first-pass vs 0/1 first-pass)" in recorded["T"].reasons[1]


def test_routing_is_deterministic_whatever_the_input_order() -> None:
    rules = shipped_rules()
    rng = random.Random(7)
    tasks = [Task(id=f"T-{i:03d}", title="t", type=rng.choice(list(rules.task_types)),
                  components=rng.sample(list(rules.components), rng.randint(0, 2)),
                  complexity=rng.randint(1, 4), impact=rng.randint(1, 5)) for i in range(120)]
    first = [d.as_json() for d in _route(tasks).values()]
    shuffled = tasks[:]
    rng.shuffle(shuffled)
    second = _route(shuffled)
    assert sorted(first, key=lambda d: d["task_id"]) == sorted((d.as_json() for d in second.values()),
                                                               key=lambda d: d["task_id"])


def test_capacity_is_respected_and_overflow_deferred() -> None:
    tasks = [Task(id=f"A{i}", title="design", type="architecture", impact=5 - i) for i in range(5)]
    decisions = _route(tasks, _agents(architect={"capacity": 2}, research={"capacity": 2}))
    primaries = [decisions[f"A{i}"].primary for i in range(5)]
    assert primaries == ["architect", "architect", "research", "research", None]
    deferred = decisions["A4"]
    assert deferred.outcome == "deferred" and "at capacity (2/2)" in deferred.reasons[0]
    assert any("architect skipped: at capacity" in r for r in decisions["A2"].reasons)


def test_complexity_range_of_an_agent_is_respected() -> None:
    task = Task(id="X", title="x", type="architecture", complexity=4)
    decision = _route([task], _agents(architect={"complexity": (1, 3)}))["X"]
    assert decision.primary == "research"
    assert any("takes complexity 1..3" in r for r in decision.reasons)


def test_burnout_rule_rotates_high_complexity_work() -> None:
    tasks = [Task(id=f"H{i}", title="hard", type="bugfix", complexity=3, impact=5 - i)
             for i in range(3)]
    decisions = _route(tasks, _agents(debug={"capacity": 5}, code={"capacity": 5}))
    assert [decisions[f"H{i}"].primary for i in range(3)] == ["debug", "debug", "code"]
    assert any("burnout rule (2 high-complexity tasks in a row)" in r for r in decisions["H2"].reasons)
    # a routine task resets the streak
    events = [Event(id=i, actor="router", kind="task.routed", task_id=f"P{i}",
                    payload={"primary": "debug", "complexity": c}) for i, c in enumerate((3, 3, 1, 3))]
    assert high_streaks(events, 3) == {"debug": 1}
    # nobody else can take it: the rule yields instead of deadlocking
    alone = _agents(debug={"capacity": 5}, code={"capacity": 1})
    only = [Task(id="Z", title="z", type="bugfix", complexity=3)]
    waived = _route(only, alone, load={"code": 1}, streaks={"debug": 2})["Z"]
    assert waived.primary == "debug" and "burnout rule waived" in " ".join(waived.reasons)


def test_blocked_and_assigned_tasks_are_not_routed() -> None:
    base = Task(id="B", title="base", type="architecture")
    top = Task(id="T", title="top", type="implementation", depends_on=["B"], impact=5, urgency=5)
    working = Task(id="W", title="w", type="implementation", status=TaskStatus.IN_DEVELOPMENT, assignees=["code"])
    manual = Task(id="M", title="m", type="implementation", assignees=["debug"])
    decisions = _route([base, top, working, manual])
    assert decisions["T"].outcome == "blocked" and decisions["T"].primary is None
    assert "W" not in decisions
    assert decisions["M"].primary == "debug" and decisions["M"].outcome == "manual"


def test_route_backlog_records_decisions_as_events(tmp_path: Path) -> None:
    config = init_repo(tmp_path)
    clock = FakeClock()
    with Store.open(tmp_path, clock=clock) as store:
        for i in range(4):
            create_task(store, {"title": f"design {i}", "type": "architecture", "impact": 5 - i}, actor="human:a")
        dry = route_backlog(store, config, dry_run=True)
        assert sum(d.routed for d in dry) == 4 and store.events(kind="task.routed") == []
        decisions = route_backlog(store, config)
        routed = store.events(kind="task.routed")
        assert len(routed) == sum(d.routed for d in decisions)
        first = routed[0]
        assert first.actor == "router" and first.payload["primary"] == decisions[0].primary
        assert first.payload["reasons"] and "points" in first.reason
        assert store.task(first.task_id or "").status == TaskStatus.ASSIGNED
        deferred = store.events(kind="task.deferred")
        route_backlog(store, config)  # nothing changed: no duplicate deferral events
        assert store.events(kind="task.deferred") == deferred


def test_routing_improves_with_recorded_history(tmp_path: Path) -> None:
    config = init_repo(tmp_path)
    with Store.open(tmp_path, clock=FakeClock()) as store:
        fields = {"type": "implementation", "components": ["bitnet-inference"]}
        create_task(store, {"title": "first", **fields}, actor="human:a")
        first = route_backlog(store, config, dry_run=True)[0]
        top, runner = first.candidates[0], first.candidates[1]
        assert top.points == runner.points, "the shipped matrices tie these two agents"
        assert first.primary == top.agent
        # the runner-up passes its gates first time on this task type, the favourite fails
        for title, agent_id, passed in (("old a", runner.agent, True), ("old b", top.agent, False)):
            old = create_task(store, {"title": title, **fields}, actor="human:a")
            record_verification(store, old.id, run_id=f"run-{old.id}", passed=passed, agent=agent_id)
        decision = next(d for d in route_backlog(store, config, dry_run=True) if d.task_id == "T-0001")
        assert decision.primary == runner.agent
        assert any("broken by track record (1/1 first-pass vs 0/1 first-pass)" in r for r in decision.reasons)


def test_unknown_agent_or_component_in_routing_yaml(tmp_path: Path) -> None:
    text = (data_root() / "workflows" / "routing.yaml").read_text(encoding="utf-8")
    bad = tmp_path / "routing.yaml"
    bad.write_text(text.replace("primary: debug,", "primary: debugger,"))
    with pytest.raises(ConfigError) as info:
        load_routing(bad, agents=AGENT_IDS)
    err = info.value
    assert "unknown agent 'debugger'" in str(err) and err.field == "task_types.bugfix.primary"
    assert err.line == text.splitlines().index(next(line for line in text.splitlines() if "bugfix:" in line)) + 1
    bad.write_text(text.replace("  kernels:  ", "  kernelz:  "))
    with pytest.raises(ConfigError, match="unknown component 'kernelz'"):
        load_routing(bad, agents=AGENT_IDS, components=list(shipped_rules().components))
    bad.write_text(text.replace("level: 4", "level: 3"))
    with pytest.raises(ConfigError, match=r"each level 1\.\.4"):
        load_routing(bad)


def test_shipped_configuration_is_consistent(tmp_path: Path) -> None:
    from bno_orchestrator.config import validate_all

    config = init_repo(tmp_path)
    assert validate_all(tmp_path) == []
    assert set(config.agents) == set(AGENT_IDS)
    named = {rule.primary for rule in config.routing.task_types.values()}
    assert named <= set(AGENT_IDS)
    (tmp_path / "workflows" / "routing.yaml").write_text(
        (tmp_path / "workflows" / "routing.yaml").read_text().replace("primary: architect,", "primary: architekt,"))
    problems = validate_all(tmp_path)
    assert len(problems) == 1 and "unknown agent 'architekt'" in str(problems[0])
