"""The weekly report: numbers from a two-week store with a controlled clock, their sources, deltas, gate
pass rates, test counts and perf trends from recorded runs, escaping of user text, byte-identical
output when rendered again (also after later events), and the cost of dispatch attempts per agent and per
task (unknown costs shown as unknown, never as 0)."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from bno_orchestrator.events import DispatchFinished, DispatchInterrupted, DispatchStarted, GatesVerified
from bno_orchestrator.models import Event
from bno_orchestrator.reports.charts import burnup_svg, velocity_svg
from bno_orchestrator.reports.render import cost_text, md_escape, render_html, render_markdown, usd
from bno_orchestrator.reports.viewmodel import (
    CostRow,
    WeeklyReport,
    Window,
    build_weekly,
    event_sources,
    gate_run_records,
    week_window,
    weekly_from_store,
    window_ending,
)
from bno_orchestrator.store import Store
from bno_orchestrator.workflow import Workflow, block_task, create_task, move_task
from bno_quality_gates.results import GateResult, ResultsDB, RunRecord
from bno_quality_gates.status import GateStatus
from tests.orchestrator.core_fixtures import FakeClock, shipped_workflow

HUMAN = "human:lead"
XSS = "<script>alert(1)</script>"
PATH = ("assigned", "in_development", "review", "integration", "qa", "testing", "done")


GATED = ("review", "integration", "qa", "testing")  # pipeline stages whose gates must pass before moving on


def move_through_gates(store: Store, workflow: Workflow, task_id: str, to: str) -> None:
    """Move a task as the pipeline does: a passing ``gates.verified`` of a gated stage, then the move."""
    task = store.task(task_id)
    if task.status.value in GATED:
        store.append(Event.of(GatesVerified(f"verify-{task_id}-{task.status.value}", True,
                                            task.assignees[0] if task.assignees else "", task.type,
                                            task.status.value), actor="gates", task_id=task_id))
    move_task(store, workflow, task_id, to, actor=HUMAN)


def at(month_day: int, hour: int = 10) -> dt.datetime:
    """A time in January 2026 (the 5th and 12th are Mondays: W02 and W03)."""
    return dt.datetime(2026, 1, month_day, hour, 0, tzinfo=dt.UTC)


@dataclass
class Scenario:
    """A store with two weeks of history and three recorded gate runs."""

    store: Store
    clock: FakeClock
    workflow: Workflow
    repo: Path

    def move(self, when: dt.datetime, task_id: str, *states: str) -> None:
        for state in states:
            self.clock.now = when
            move_through_gates(self.store, self.workflow, task_id, state)
            when += dt.timedelta(minutes=5)


def _gate_run(run_id: str, when: dt.datetime, *, test_failed: int, total: int, kernel_time: float | None) -> RunRecord:
    results = [
        GateResult("lint", GateStatus.PASSED, True, started=when.timestamp()),
        GateResult("test", GateStatus.FAILED if test_failed else GateStatus.PASSED, True,
                   counts={"passed": total - test_failed, "failed": test_failed, "errors": 0, "skipped": 0,
                           "total": total}, started=when.timestamp()),
    ]
    if kernel_time is not None:
        results.append(GateResult("perf", GateStatus.PASSED, True, started=when.timestamp(), metrics={"benches": {
            "kernels": {"kernel_time[gemv]": {"better": "lower", "cand_median": kernel_time, "base_median": 2.0,
                                              "median_ratio": kernel_time / 2.0}}}}))
    return RunRecord(run_id, when.timestamp(), when.timestamp() + 60, "all", None, None, None, "ci-box", results)


def build_scenario(repo: Path) -> Scenario:
    """W02: 4 tasks created, T-0001 done, T-0002 started, T-0004 assigned.
    W03: T-0005 (a hostile title) and T-0006 created; T-0002 and T-0005 done; T-0004 started then blocked
    and escalated; gate runs: one in W02 (passed), two in W03 (failed, then passed)."""
    clock = FakeClock(at(5, 9))
    (repo / ".git").mkdir(parents=True, exist_ok=True)
    store = Store.open(repo, clock=clock)
    scenario = Scenario(store, clock, shipped_workflow(), repo)
    for title, agent in (("Engine API", "architect"), ("KV cache", "inference-engineer"),
                         ("Docs pass", ""), ("Ternary GEMV", "kernel-engineer")):
        create_task(store, {"title": title, "assignees": [agent] if agent else [], "impact": 4}, actor=HUMAN)
    scenario.move(at(5, 10), "T-0001", *PATH)
    scenario.move(at(6, 10), "T-0002", "assigned", "in_development")
    scenario.move(at(9, 10), "T-0004", "assigned")
    clock.now = at(12, 10)
    create_task(store, {"title": XSS, "assignees": ["code"], "impact": 5}, actor=HUMAN)
    create_task(store, {"title": "Release | notes *draft*", "urgency": 2}, actor=HUMAN)
    scenario.move(at(13, 10), "T-0002", *PATH[2:])
    scenario.move(at(13, 12), "T-0004", "in_development")
    clock.now = at(14, 9)
    block_task(store, scenario.workflow, "T-0004", "waiting on <b>hardware</b>", actor=HUMAN)
    scenario.move(at(14, 10), "T-0005", *PATH)
    clock.now = at(16, 9)
    store.append(Event(actor="escalation", kind="task.escalated", task_id="T-0004", reason="blocked for 2d",
                       payload={"rule": "blocker-1d", "level": 0, "action": "add_agents", "agents": ["architect"],
                                "to": None}))
    with ResultsDB(store.path) as db:
        db.record(_gate_run("20260107-aaa", at(7, 12), test_failed=0, total=10, kernel_time=2.0))
        db.record(_gate_run("20260113-bbb", at(13, 12), test_failed=1, total=12, kernel_time=None))
        db.record(_gate_run("20260115-ccc", at(15, 12), test_failed=0, total=12, kernel_time=1.5))
        db.record(_gate_run("20260120-ddd", at(20, 12), test_failed=3, total=12, kernel_time=9.0))  # next week
    return scenario


W03 = week_window("2026-W03")
HOSTILE = "[bold]x[/bold] <script>alert(2)</script> | *done*"


def log_path(s: Scenario, task_id: str, attempt: int) -> Path:
    """Where the dispatcher logs an attempt: ``.orchestrator/logs/<task>/<attempt>.log``."""
    return s.repo / ".orchestrator" / "logs" / task_id / f"{attempt}.log"


def start_attempt(s: Scenario, when: dt.datetime, task_id: str, agent: str, executor: str, attempt: int) -> Event:
    """A ``dispatch.started`` event as the dispatcher writes it."""
    s.clock.now = when
    return s.store.append(Event.of(DispatchStarted(
        attempt=attempt, agent=agent, executor=executor, worktree=str(s.repo / "wt" / task_id), branch=f"bno/{task_id}",
        base="main", worktree_created=attempt == 1, prompt_file=str(log_path(s, task_id, attempt).with_suffix(".md")),
        log_file=str(log_path(s, task_id, attempt)), argv=[executor, "-p", "<prompt>"], support=[],
    ), actor="dispatch", task_id=task_id))


def finish_attempt(s: Scenario, when: dt.datetime, task_id: str, agent: str, executor: str, attempt: int, *,
                   cost: float | None, tokens: tuple[int | None, int | None] = (None, None), turns: int | None = None,
                   error_kind: str | None = None, error: str | None = None, exit_code: int = 0,
                   timed_out: bool = False, final_message: str | None = None, duration: float = 42.0,
                   session_id: str | None = None, started: bool = False) -> Event:
    """``dispatch.started`` five minutes before ``when`` (unless ``started`` already) and ``dispatch.finished``
    (the payload of ``ExecutorOutcome.as_json`` plus the changed files) at ``when``."""
    if not started:
        start_attempt(s, when - dt.timedelta(minutes=5), task_id, agent, executor, attempt)
    outcome = {"kind": executor, "argv": [executor], "exit_code": None if timed_out else exit_code,
               "timed_out": timed_out, "duration": duration, "log_file": str(log_path(s, task_id, attempt)),
               "claim": final_message, "handoff": False, "error_kind": error_kind, "error": error, "cost_usd": cost,
               "input_tokens": tokens[0], "output_tokens": tokens[1], "turns": turns, "session_id": session_id,
               "final_message": final_message, "state_dir": None}
    s.clock.now = when
    return s.store.append(Event.of(DispatchFinished(attempt, agent, outcome, ["src/a.py"]), actor="dispatch",
                                   task_id=task_id))


def interrupt_attempt(s: Scenario, when: dt.datetime, task_id: str, agent: str, executor: str, attempt: int) -> Event:
    """An attempt cut short by Ctrl-C: ``dispatch.finished`` with ``interrupted: true`` and no numbers."""
    start_attempt(s, when - dt.timedelta(minutes=5), task_id, agent, executor, attempt)
    s.clock.now = when
    return s.store.append(Event.of(DispatchInterrupted(attempt, agent, executor, str(log_path(s, task_id, attempt))),
                                   actor="dispatch", task_id=task_id))


def add_dispatches(s: Scenario) -> dict[str, Event]:
    """Dispatch attempts around W03. This week: T-0002 (inference-engineer) one ok attempt at $0.50 and one
    network error without a cost; T-0005 (code) $0.73 with a hostile final message; T-0004 (kernel-engineer)
    a timeout without a cost and an interrupted attempt. Last week: T-0001 (architect) $0.25. Next week:
    T-0002 $9.99 (not counted)."""
    return {
        "w02": finish_attempt(s, at(8, 10), "T-0001", "architect", "claude", 1, cost=0.25, tokens=(10, 20), turns=1),
        "ok": finish_attempt(s, at(13, 9), "T-0002", "inference-engineer", "claude", 1, cost=0.5, tokens=(1000, 200),
                             turns=5, session_id="sess-1"),
        "network": finish_attempt(s, at(13, 11), "T-0002", "inference-engineer", "claude", 2, cost=None,
                                  error_kind="network", error="connect ECONNREFUSED <b>api</b> | retry",
                                  exit_code=1),
        "timeout": finish_attempt(s, at(13, 14), "T-0004", "kernel-engineer", "gemini", 1, cost=None,
                                  tokens=(300, None), turns=2, timed_out=True),
        "interrupted": interrupt_attempt(s, at(14, 8), "T-0004", "kernel-engineer", "gemini", 2),
        "hostile": finish_attempt(s, at(14, 9), "T-0005", "code", "codex", 1, cost=0.73, tokens=(3000, 500),
                                  turns=7, final_message=HOSTILE, session_id="019a-codex"),
        "w04": finish_attempt(s, at(20, 10), "T-0002", "inference-engineer", "claude", 3, cost=9.99, tokens=(1, 1),
                              turns=1),
    }


def week2_window() -> Window:
    return week_window("2026-W02")


def weekly(scenario: Scenario, window: Window = W03) -> WeeklyReport:
    return weekly_from_store(scenario.store, window)


def test_delivery_numbers_and_deltas(scenario: Scenario) -> None:
    report = weekly(scenario)
    assert report.label == "2026-W03" and report.start == "2026-01-12 00:00" and report.end == "2026-01-19 00:00"
    done = report.metric("done")
    assert (done.value, done.previous, done.delta, done.ids) == (2, 1, 1, ("T-0002", "T-0005"))
    started = report.metric("started")
    assert (started.value, started.previous, started.ids) == (2, 2, ("T-0004", "T-0005"))
    carried = report.metric("carried_over")
    assert (carried.value, carried.previous, carried.ids) == (1, 2, ("T-0004",))
    added = report.metric("scope_added")
    assert (added.value, added.previous, added.ids) == (2, 4, ("T-0005", "T-0006"))
    assert report.metric("scope_total").value == 6 and report.metric("scope_total").previous == 4
    # the sources are the events that made each number
    events = {(e.task_id, e.payload.get("to")): e.id for e in scenario.store.events(kind="task.moved")}
    assert done.sources == event_sources([events[("T-0002", "done")], events[("T-0005", "done")]])
    assert report.metric("carried_over").sources == event_sources([events[("T-0004", "blocked")]])


def test_burnup_velocity_and_charts(scenario: Scenario) -> None:
    report = weekly_from_store(scenario.store, W03, history_weeks=2)
    assert [(w.label, w.done) for w in report.velocity] == [("2026-W02", 1), ("2026-W03", 2)]
    assert report.velocity_mean == pytest.approx(1.5)
    assert report.burnup[0].day == "2026-01-05" and report.burnup[-1].day == "2026-01-19"
    assert (report.burnup[-1].scope, report.burnup[-1].done) == (6, 3)
    by_day = {p.day: (p.scope, p.done) for p in report.burnup}
    assert by_day["2026-01-06"] == (4, 1) and by_day["2026-01-14"] == (6, 2)
    svg = burnup_svg(report.burnup, "Burn-up <x>")
    assert svg.startswith("<svg") and "Burn-up &lt;x&gt;" in svg and svg.count("<polyline") == 2
    assert "scope (6)" in svg and "done (3)" in svg
    bars = velocity_svg(report.velocity, report.velocity_mean)
    assert bars.count("<rect x=") == 3 and "mean 1.50 per week" in bars  # background + one bar per week
    assert burnup_svg(report.burnup) == burnup_svg(report.burnup)


def test_gate_pass_rates_tests_and_perf_from_recorded_runs(scenario: Scenario) -> None:
    report = weekly(scenario)
    assert (report.runs, report.runs_passed, report.run_rate, report.previous_run_rate) == (2, 1, 0.5, 1.0)
    assert report.run_sources == "runs 20260113-bbb, 20260115-ccc"  # not the run of the next week
    gates = {g.gate: g for g in report.gates}
    assert (gates["test"].runs, gates["test"].ok, gates["test"].rate, gates["test"].previous_rate) == (2, 1, 0.5, 1.0)
    assert gates["test"].statuses == (("failed", 1), ("passed", 1))
    assert gates["lint"].rate == 1.0 and gates["perf"].runs == 1
    tests = report.tests
    assert tests is not None and (tests.run_id, tests.total, tests.passed, tests.failed) == ("20260115-ccc", 12, 12, 0)
    assert (tests.previous_total, tests.previous_run_id) == (10, "20260107-aaa")
    (perf,) = report.perf  # in-run ratios only: 1.5/2.0 in run ccc this week, 2.0/2.0 in run aaa the week before
    assert (perf.bench, perf.metric, perf.machine, perf.measurements, perf.replays) == (
        "kernels", "kernel_time[gemv]", "ci-box", 1, 0)
    assert (perf.latest_ratio, perf.latest_run, perf.latest_base, perf.latest_cand) == (0.75, "20260115-ccc", 2.0, 1.5)
    assert (perf.median_ratio, perf.previous_median_ratio, perf.previous_measurements) == (0.75, 1.0, 1)
    assert not perf.worse and perf.sources == "run 20260115-ccc"


def test_blocked_escalations_headline_and_plan(scenario: Scenario) -> None:
    report = weekly(scenario)
    (blocked,) = report.blocked
    assert (blocked.id, blocked.reason, blocked.since, blocked.agent) == (
        "T-0004", "waiting on <b>hardware</b>", "2026-01-14 09:00", "kernel-engineer")
    assert blocked.age_days == pytest.approx(4.625)
    (escalation,) = report.escalations
    assert (escalation.task_id, escalation.rule, escalation.agents) == ("T-0004", "blocker-1d", ("architect",))
    assert report.status == "amber"  # the latest run passed; a task is blocked, one escalation event
    assert [(r.level, r.text) for r in report.reasons] == [
        ("amber", "1 escalation event(s) this week for T-0004"), ("amber", "1 task(s) blocked: T-0004")]
    assert [p.id for p in report.plan_continue] == ["T-0004"]
    assert [p.id for p in report.plan_next] == ["T-0003", "T-0006"]  # impact 4 outranks default impact
    week2 = weekly(scenario, week_window("2026-W02"))
    assert week2.metric("done").value == 1 and week2.metric("done").previous == 0
    # T-0002 in development since Jan 6 10:05: 5.6 days at the week's end; T-0004 assigned 2.6 days ago
    assert [(i.id, round(i.age_days, 2)) for i in week2.aging] == [("T-0002", 5.58)]
    assert week2.status == "amber" and [r.level for r in week2.reasons] == ["amber"]
    assert weekly_from_store(scenario.store, week2_window(), aging_days=7).status == "green"


def test_markdown_and_html_are_byte_identical_and_escape_user_text(scenario: Scenario) -> None:
    report = weekly(scenario)
    html = render_html(report)
    assert XSS not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<b>hardware</b>" not in html and "&lt;b&gt;hardware&lt;/b&gt;" in html
    assert html.count("<svg") == 2 and "<script" not in html
    md = render_markdown(report)
    assert XSS not in md and "&lt;script&gt;" in md and "Release \\| notes \\*draft\\*" in md
    assert "| Done | 2 | 1 | +1 | T-0002, T-0005 |" in md
    assert "| test | 2 | 1 | 50.0% | 100.0% | -50.0 pp |" in md
    assert "12 tests (12 passed, 0 failed, 0 errors, 0 skipped)" in md and "+2 vs 10 in run 20260107-aaa" in md
    assert "| kernels | kernel\\_time\\[gemv\\] | lower | 1 | 0.750 | 20260115-ccc (2.0000 / 1.5000) |" in md
    # same input -> same bytes, also from a fresh store object and after later events
    scenario.clock.now = at(21, 9)
    create_task(scenario.store, {"title": "Later work"}, actor=HUMAN)
    move_task(scenario.store, scenario.workflow, "T-0003", "assigned", actor=HUMAN)
    with Store.open(scenario.repo) as again:
        later = weekly_from_store(again, W03)
    assert render_html(later) == html and render_markdown(later) == md
    assert json.dumps(later.as_json(), sort_keys=True) == json.dumps(report.as_json(), sort_keys=True)


def test_pure_builder_ignores_input_order(scenario: Scenario) -> None:
    events = scenario.store.events()
    runs = gate_run_records(scenario.store.path)
    a = build_weekly(events, runs, W03)
    b = build_weekly(list(reversed(events)), list(reversed(runs)), W03)
    assert render_markdown(a) == render_markdown(b)


def test_windows_and_escaping_helpers() -> None:
    assert week_window("2026-W03").start == at(12, 0) and window_ending(at(19, 0)) == week_window("2026-W03")
    assert window_ending(at(19, 12)).label == "2026-01-12..2026-01-19"
    with pytest.raises(ValueError, match="YYYY-Www"):
        week_window("2026-3")
    assert event_sources([7, 3, 4, 5, 9]) == "events #3-#5, #7, #9" and event_sources([]) == "no events"
    assert md_escape("a|b <i>") == "a\\|b &lt;i&gt;"


def test_cli_writes_reports_atomically(scenario: Scenario, capsys: pytest.CaptureFixture[str]) -> None:
    from bno_orchestrator.cli import main

    repo = str(scenario.repo)
    out = scenario.repo / "out" / "week.md"
    assert main(["--repo", repo, "report", "weekly", "--week", "2026-W03", "--out", str(out)]) == 0
    text = out.read_text()
    assert "](week.burnup.svg)" in text and (out.parent / "week.velocity.svg").read_text().startswith("<svg")
    assert sorted(p.name for p in out.parent.iterdir()) == ["week.burnup.svg", "week.md", "week.velocity.svg"]
    html = scenario.repo / "out" / "week.html"
    assert main(["--repo", repo, "report", "weekly", "--end", "2026-01-19", "--out", str(html)]) == 0
    assert html.read_text().startswith("<!DOCTYPE html>") and "2026-W03" in html.read_text()
    capsys.readouterr()
    assert main(["--repo", repo, "report", "weekly", "--week", "2026-W03", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["label"] == "2026-W03" and data["metrics"][0]["value"] == 2 and data["metrics"][0]["delta"] == 1
    assert main(["--repo", repo, "report", "weekly", "--week", "2026-W03", "--format", "md"]) == 0
    printed = capsys.readouterr().out  # for a terminal: text charts, no base64 image
    assert "base64" not in printed and "<svg" not in printed and "![" not in printed
    assert "2026-W03 │" + "█" * 40 + " 2" in printed and "2026-01-19 │" in printed
    assert main(["--repo", repo, "report", "weekly", "--week", "2026-W99"]) == 2
    assert "--week" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------ costs


def test_cost_per_agent_and_per_task(scenario: Scenario) -> None:
    events = add_dispatches(scenario)
    costs = weekly(scenario).costs
    total = costs.total
    assert (total.attempts, total.unknown_cost, total.known_cost) == (5, 3, 2)
    assert total.cost_usd == pytest.approx(1.23)  # 0.50 + 0.73; the unknown costs are not counted as 0
    assert (total.input_tokens, total.output_tokens, total.unknown_tokens) == (4300, 700, 3)
    assert (total.turns, total.unknown_turns) == (14, 2)
    assert total.errors == (("interrupted", 1), ("network", 1), ("timed_out", 1)) and total.failed == 3
    assert total.sources == event_sources(events[k].id for k in ("ok", "network", "timeout", "interrupted", "hostile"))
    agents = {row.key: row for row in costs.by_agent}
    assert [row.key for row in costs.by_agent] == ["code", "inference-engineer", "kernel-engineer"]  # by cost
    assert (agents["code"].cost_usd, agents["code"].attempts, agents["code"].executors) == (0.73, 1, ("codex",))
    ie = agents["inference-engineer"]
    assert (ie.cost_usd, ie.attempts, ie.unknown_cost, ie.errors) == (0.5, 2, 1, (("network", 1),))
    ke = agents["kernel-engineer"]
    assert (ke.cost_usd, ke.attempts, ke.unknown_cost, ke.input_tokens, ke.output_tokens) == (None, 2, 2, 300, None)
    tasks = {row.key: row for row in costs.by_task}
    assert sorted(tasks) == ["T-0002", "T-0004", "T-0005"]  # T-0001's attempt was last week
    assert (tasks["T-0005"].title, tasks["T-0005"].cost_usd) == (XSS, 0.73)
    assert (tasks["T-0002"].title, tasks["T-0002"].attempts, tasks["T-0002"].turns) == ("KV cache", 2, 5)
    assert tasks["T-0004"].cost_usd is None and tasks["T-0004"].turns == 2
    prev = costs.previous
    assert (prev.attempts, prev.cost_usd, prev.unknown_cost) == (1, 0.25, 0)
    assert [(e.task_id, e.kind, e.attempt) for e in costs.errors] == [
        ("T-0002", "network", 2), ("T-0004", "timed_out", 1), ("T-0004", "interrupted", 2)]
    assert costs.errors[0].message == "connect ECONNREFUSED <b>api</b> | retry"
    # a week without attempts: nothing, and no cost pretended
    empty = weekly(scenario, week_window("2026-W01")).costs
    assert empty.total.attempts == 0 and empty.total.cost_usd is None and empty.by_agent == ()


def test_cost_texts_are_honest() -> None:
    def row(attempts: int, cost: float | None, unknown: int) -> CostRow:
        return CostRow("a", "", attempts, cost, unknown, None, None, attempts, None, attempts, (), (), "no events")

    assert cost_text(row(5, 1.23, 2)) == "$1.23 over 5 attempts, 2 with unknown cost"
    assert cost_text(row(1, 0.0042, 0)) == "$0.0042 over 1 attempt"  # under a cent: not shown as $0.00
    assert cost_text(row(2, None, 2)) == "unknown over 2 attempts (none reported a cost)"
    assert cost_text(row(0, None, 0)) == "no dispatch attempts"
    assert usd(None) == "unknown" and usd(0.0) == "$0.00" and usd(1234.5) == "$1,234.50"


def test_cost_sections_in_markdown_and_html(scenario: Scenario) -> None:
    add_dispatches(scenario)
    report = weekly(scenario)
    md = render_markdown(report)
    assert "- Agent cost: $1.23 over 5 attempts, 3 with unknown cost (last week: $0.25 over 1 attempt)." in md
    assert "## Agent cost" in md and "### Per agent" in md and "### Per task" in md
    assert "tokens 4,300 in / 700 out (3 without counts); 14 turns (2 without a count)" in md
    assert "| code | 1 | $0.73 | 0 | 3,000 | 500 | 7 | none | codex |" in md
    assert "| inference-engineer | 2 | $0.50 | 1 | 1,000 | 200 | 5 | network 1 | claude |" in md
    assert "| kernel-engineer | 2 | unknown | 2 | 300 | unknown | 2 | interrupted 1, timed\\_out 1 | gemini |" in md
    assert "| T-0005 | &lt;script&gt;alert(1)&lt;/script&gt; | 1 | $0.73 | 0 |" in md
    assert "| T-0002 | KV cache | 2 | $0.50 | 1 |" in md
    assert "| T-0004 | Ternary GEMV | 2 | unknown | 2 |" in md
    assert "connect ECONNREFUSED &lt;b&gt;api&lt;/b&gt; \\| retry" in md and "<b>api</b>" not in md
    assert "$9.99" not in md  # next week's attempt
    html = render_html(report)
    assert "<li>Agent cost: $1.23 over 5 attempts, 3 with unknown cost (last week: $0.25 over 1 attempt).</li>" in html
    assert ("<tr><td>code</td><td class=\"n\">1</td><td class=\"n\">$0.73</td><td class=\"n\">0</td>"
            "<td class=\"n\">3,000</td><td class=\"n\">500</td><td class=\"n\">7</td><td>none</td><td>codex</td>") in html
    assert "<td>T-0005</td><td>&lt;script&gt;alert(1)&lt;/script&gt;</td><td class=\"n\">1</td><td class=\"n\">$0.73</td>" in html
    assert "<td>T-0004</td><td>Ternary GEMV</td><td class=\"n\">2</td><td class=\"n\">unknown</td>" in html
    assert "connect ECONNREFUSED &lt;b&gt;api&lt;/b&gt; | retry" in html and "<b>api</b>" not in html
    assert "<script" not in html and XSS not in md
    data = report.as_json()["costs"]
    assert data["total"]["cost_usd"] == pytest.approx(1.23) and data["total"]["unknown_cost"] == 3
    # stable output, and a week without attempts says so
    assert render_markdown(weekly(scenario)) == md
    w01 = render_markdown(weekly(scenario, week_window("2026-W01")))
    assert "No dispatch attempt finished this week (last week: no dispatch attempts)." in w01
