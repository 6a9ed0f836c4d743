"""The board's data layer: columns per workflow state, card badges, the filter language, the detail pane
(routing explanation, events, gate history) and moves through the workflow (illegal ones refused with the
allowed moves)."""

from __future__ import annotations

import pytest

from bno_orchestrator.config import load_config
from bno_orchestrator.errors import UserError
from bno_orchestrator.routing import route_backlog
from bno_orchestrator.tui.data import (
    Snapshot,
    adjacent_state,
    cards,
    columns,
    detail,
    load_snapshot,
    move_card,
    parse_filter,
)
from bno_orchestrator.workflow import record_verification
from tests.orchestrator.test_report_weekly import HUMAN, XSS, Scenario


def snap(s: Scenario) -> Snapshot:
    return load_snapshot(s.store, s.workflow, load_config(s.repo).scoring)


def test_columns_follow_the_workflow_and_rank_cards(scenario: Scenario) -> None:
    record_verification(scenario.store, "T-0005", run_id="20260115-ccc", passed=True, agent="code")
    record_verification(scenario.store, "T-0002", run_id="20260113-bbb", passed=False, agent="inference-engineer")
    snapshot = snap(scenario)
    cols = columns(snapshot)
    assert [c.state for c in cols] == ["backlog", "assigned", "in_development", "review", "integration", "qa",
                                       "testing", "done", "blocked", "escalated"]
    by_state = {c.state: [card.id for card in c.cards] for c in cols}
    assert by_state["backlog"] == ["T-0003", "T-0006"]  # impact 4 ranks above the default
    assert by_state["done"] == ["T-0005", "T-0001", "T-0002"]  # impact 5 first, then by id
    assert by_state["blocked"] == ["T-0004"]
    badges = {c.id: (c.gate, c.gate_run, c.agent, c.blocked) for c in cards(snapshot)}
    assert badges["T-0005"] == ("passed", "20260115-ccc", "code", False)
    assert badges["T-0002"] == ("failed", "20260113-bbb", "inference-engineer", False)
    assert badges["T-0004"][3] is True and badges["T-0003"][0] == "none"
    assert snapshot.last_event_id == scenario.store.event_count()


def test_filter_language(scenario: Scenario) -> None:
    snapshot = snap(scenario)

    def shown(query: str) -> list[str]:
        return sorted(card.id for c in columns(snapshot, query) for card in c.cards)

    assert shown("agent:code") == ["T-0005"]
    assert shown("is:blocked") == ["T-0004"]
    assert shown("state:backlog release") == ["T-0006"]
    assert shown("SCRIPT") == ["T-0005"] and shown("kv cache") == ["T-0002"]
    assert shown("is:unassigned") == ["T-0003", "T-0006"]
    totals = {c.state: (len(c.cards), c.total) for c in columns(snapshot, "agent:code")}
    assert totals["done"] == (1, 3) and totals["backlog"] == (0, 2)
    with pytest.raises(UserError, match="unknown filter field 'owner'"):
        parse_filter("owner:me")


def test_detail_explains_routing_events_and_gates(scenario: Scenario) -> None:
    config = load_config(scenario.repo)
    route_backlog(scenario.store, config)
    record_verification(scenario.store, "T-0003", run_id="20260115-ccc", passed=True, agent="x")
    snapshot = snap(scenario)
    info = detail(snapshot, "T-0003", scenario.workflow, HUMAN)
    sections = {s.title: s.lines for s in info.sections}
    assert list(sections) == ["Task", "Score", "Routing", "Moves", "Gate history", "Events"]
    routed = [e for e in scenario.store.events(task_id="T-0003") if e.kind == "task.routed"]
    assert routed and sections["Routing"][0].startswith(f"routed by event #{routed[0].id}: primary ")
    assert any(line.startswith("candidate ") for line in sections["Routing"])
    assert sections["Gate history"][0].startswith("run 20260115-ccc: passed") and "3 passed" in sections["Gate history"][0]
    assert sections["Moves"][0].startswith(f"{HUMAN} may move it to: in_development, backlog")
    assert any("task.created" in line for line in sections["Events"]) and "impact" in " ".join(sections["Score"])
    xss = detail(snapshot, "T-0005", scenario.workflow, HUMAN)
    assert xss.title == XSS and "not routed yet" in xss.text()


def test_moves_go_through_the_workflow(scenario: Scenario) -> None:
    refused = move_card(scenario.store, scenario.workflow, "T-0003", "review", actor=HUMAN)
    assert not refused.ok and "illegal transition backlog -> review" in refused.message
    assert refused.message.endswith("you may move T-0003 to: assigned, blocked, escalated")
    assert scenario.store.task("T-0003").status.value == "backlog"
    agent = move_card(scenario.store, scenario.workflow, "T-0004", "in_development", actor="agent:code")
    assert not agent.ok and "not assigned to T-0004" in agent.message
    done = move_card(scenario.store, scenario.workflow, "T-0001", "blocked", actor=HUMAN)
    assert not done.ok and done.message.endswith("you may move T-0001 to: nowhere")
    ok = move_card(scenario.store, scenario.workflow, "T-0003", "assigned", actor=HUMAN)
    assert ok.ok and scenario.store.task("T-0003").status.value == "assigned"
    last = scenario.store.events(task_id="T-0003")[-1]
    assert (last.kind, last.actor, last.reason) == ("task.moved", HUMAN, "moved on the board")
    states = scenario.workflow.states
    assert adjacent_state(states, "testing", 1) == "done" and adjacent_state(states, "backlog", -1) is None
