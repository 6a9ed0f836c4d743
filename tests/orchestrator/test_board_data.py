"""The board's data layer: columns per workflow state, card badges, the filter language, the detail pane
(routing explanation, events, gate history, the last dispatch attempt and the live progress tail of a
running one) and moves through the workflow (illegal ones refused with the allowed moves)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bno_orchestrator.config import load_config
from bno_orchestrator.errors import UserError
from bno_orchestrator.routing import route_backlog
from bno_orchestrator.tui.data import (
    DISPATCH_SECTION,
    Snapshot,
    adjacent_state,
    cards,
    columns,
    detail,
    dispatch_lines,
    last_dispatch,
    load_snapshot,
    move_card,
    parse_filter,
    progress_path,
    read_progress_tail,
    running_progress_file,
    task_progress,
)
from bno_orchestrator.workflow import move_task, record_verification
from tests.orchestrator.test_report_weekly import (
    HOSTILE,
    HUMAN,
    XSS,
    Scenario,
    add_dispatches,
    at,
    log_path,
    start_attempt,
)


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
    assert (last.kind, last.actor, last.reason) == ("task.moved", HUMAN, "")  # no made-up reason
    states = scenario.workflow.states
    assert adjacent_state(states, "testing", 1) == "done" and adjacent_state(states, "backlog", -1) is None


# ------------------------------------------------------------------------------------------- dispatch


def progress_line(n: int, kind: str = "tool") -> str:
    return json.dumps({"t": f"2026-01-16T12:{n:02d}:00Z", "kind": kind, "text": f"step {n}"}) + "\n"


def running_attempt(s: Scenario) -> Path:
    """T-0003 moved into development and dispatched to ``code`` (attempt 1, no end yet); its progress file."""
    move_task(s.store, s.workflow, "T-0003", "assigned", actor=HUMAN)
    move_task(s.store, s.workflow, "T-0003", "in_development", actor=HUMAN)
    start_attempt(s, at(16, 12), "T-0003", "code", "claude", 1)
    path = progress_path(log_path(s, "T-0003", 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def test_detail_shows_the_last_dispatch(scenario: Scenario) -> None:
    events = add_dispatches(scenario)
    finished = events["hostile"].id or 0
    snapshot = snap(scenario)
    info = detail(snapshot, "T-0005", scenario.workflow, HUMAN)
    assert [s.title for s in info.sections][:2] == ["Task", DISPATCH_SECTION]
    lines = dict((s.title, s.lines) for s in info.sections)[DISPATCH_SECTION]
    assert lines[0] == "attempt 1: code (codex executor), started 2026-01-14 08:55 UTC"
    assert lines[1:6] == ("outcome: ok (exit 0)", "cost $0.73, tokens 3,000 in / 500 out, turns 7",
                          "duration 42.0s, 1 file(s) changed", "session 019a-codex",
                          f"source: #{finished - 1}, #{finished}")
    assert lines[6:] == ("final message:", f"  {HOSTILE}")  # kept verbatim: the pane renders it as plain text
    assert info.dispatch is not None and info.dispatch.final_message == HOSTILE and not info.dispatch.running
    # the interrupted attempt is T-0004's last; it reported nothing
    blocked = detail(snapshot, "T-0004", scenario.workflow, HUMAN).dispatch
    assert blocked is not None and (blocked.attempt, blocked.state, blocked.outcome) == (2, "interrupted", "interrupted")
    assert blocked.cost_usd is None and blocked.executor == "gemini"
    # earlier attempts, read from a prefix of the log: a CLI error and a timeout
    t2 = [e for e in snapshot.task_events("T-0002") if (e.id or 0) <= (events["network"].id or 0)]
    network = last_dispatch(t2, status="in_development")
    assert network is not None and network.attempt == 2 and network.cost_usd is None
    assert network.outcome == "error network: connect ECONNREFUSED <b>api</b> | retry"
    t4 = [e for e in snapshot.task_events("T-0004") if (e.id or 0) <= (events["timeout"].id or 0)]
    timeout = last_dispatch(t4)
    assert timeout is not None and timeout.outcome == "timed out after 42s"
    assert (timeout.input_tokens, timeout.output_tokens, timeout.turns) == (300, None, 2)
    assert dispatch_lines(timeout)[2] == "cost unknown, tokens 300 in / unknown out, turns 2"
    latest = detail(snapshot, "T-0002", scenario.workflow, HUMAN).dispatch  # the board shows the newest attempt
    assert latest is not None and (latest.attempt, latest.cost_usd) == (3, 9.99)
    # a task never dispatched has no such section
    assert last_dispatch(snapshot.task_events("T-0003")) is None
    assert DISPATCH_SECTION not in [s.title for s in detail(snapshot, "T-0003", scenario.workflow, HUMAN).sections]


def test_progress_tail_of_a_running_attempt(scenario: Scenario) -> None:
    path = running_attempt(scenario)
    info, tail = task_progress(snap(scenario), "T-0003", scenario.repo)
    assert info is not None and info.running and info.outcome == "running" and tail == ()  # no file yet
    assert running_progress_file(info) == scenario.repo / ".orchestrator" / "logs" / "T-0003" / "1.progress.jsonl"
    assert "outcome: running" in detail(snap(scenario), "T-0003", scenario.workflow, HUMAN).text()
    with path.open("w") as fh:
        fh.writelines(progress_line(n) for n in range(1, 13))
        fh.write(progress_line(13, "edit")[:25])  # the agent is half-way through writing line 13
    _, tail = task_progress(snap(scenario), "T-0003", scenario.repo)
    assert [e.text for e in tail] == [f"step {n}" for n in range(5, 13)]  # the last 8 complete lines
    assert tail[-1].line() == "12:12:00 tool    step 12"
    with path.open("a") as fh:
        fh.write(progress_line(13, "edit")[25:])
    _, tail = task_progress(snap(scenario), "T-0003", scenario.repo)
    assert [e.text for e in tail][-2:] == ["step 12", "step 13"] and tail[-1].kind == "edit"
    # reading only the end: a small chunk grows until enough lines are in; a damaged line is skipped
    with path.open("a") as fh:
        fh.write("not json\n" + progress_line(14, "error"))
    small = read_progress_tail(path, 3, chunk=16)
    assert [e.text for e in small] == ["step 12", "step 13", "step 14"]
    capped = len(progress_line(14, "error")) + len("not json\n")  # a cap on the bytes read: one line fits
    assert read_progress_tail(path, 2, chunk=16, max_bytes=capped) == small[2:]
    assert read_progress_tail(path.with_name("9.progress.jsonl")) == ()
    # once the task leaves development without an end recorded, nothing is followed
    move_task(scenario.store, scenario.workflow, "T-0003", "review", actor=HUMAN)
    info, tail = task_progress(snap(scenario), "T-0003", scenario.repo)
    assert info is not None and info.state == "unfinished" and tail == ()
    assert running_progress_file(info, scenario.repo) is None
