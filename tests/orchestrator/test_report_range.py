"""The report over any window, on a store built day by day under a fixed clock (``ORCHESTRATOR_NOW``):
lead and cycle times, per-agent and per-type breakdowns, scope removed, the daily report and ``--from/--to``,
perf trends from in-run ratios per machine, replayed gate results kept apart, a headline that agrees with
the tables, and readable terminal output. Every expected figure is worked out here from the scenario's
own times, not read back from the code under test."""

from __future__ import annotations

import datetime as dt
import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bno_orchestrator import clock
from bno_orchestrator.models import Event
from bno_orchestrator.reports.charts import CHAR_WIDTH, velocity_svg
from bno_orchestrator.reports.render import render_html, render_markdown
from bno_orchestrator.reports.viewmodel import (
    VelocityWeek,
    WeeklyReport,
    Window,
    day_window,
    week_window,
    weekly_from_store,
)
from bno_orchestrator.store import Store
from bno_orchestrator.workflow import Workflow, create_task
from bno_quality_gates.results import GateResult, ResultsDB, RunRecord
from bno_quality_gates.status import GateStatus
from tests.orchestrator.core_fixtures import shipped_workflow
from tests.orchestrator.test_report_weekly import move_through_gates

HUMAN = "human:lead"
TO_DONE = ("review", "integration", "qa", "testing", "done")
PASSED, CACHED = GateStatus.PASSED, GateStatus.CACHED
W07 = week_window("2026-W07")  # Monday 9 February 2026 to Monday 16 February


def at(day: int, hour: int = 9, minute: int = 0) -> dt.datetime:
    """A time in February 2026."""
    return dt.datetime(2026, 2, day, hour, minute, tzinfo=dt.UTC)


def days(delta: dt.timedelta) -> float:
    return delta.total_seconds() / 86400


@pytest.fixture(autouse=True)
def _real_clock_after() -> Iterator[None]:
    yield
    clock.fix(None)


@dataclass
class Team:
    store: Store
    workflow: Workflow
    repo: Path
    monkeypatch: pytest.MonkeyPatch

    def now(self, when: dt.datetime) -> None:
        """Every event from here on is stamped ``when`` (the store's own clock reads ORCHESTRATOR_NOW)."""
        self.monkeypatch.setenv("ORCHESTRATOR_NOW", when.isoformat())

    def move(self, when: dt.datetime, task_id: str, *states: str) -> None:
        """One state a minute from ``when``."""
        for index, state in enumerate(states):
            self.now(when + dt.timedelta(minutes=index))
            move_through_gates(self.store, self.workflow, task_id, state)


def perf(ratio: float, base: float, cand: float) -> dict[str, object]:
    """The perf gate's record of one metric (its decision and the interval of the ratio)."""
    return {"benches": {"gemv": {"time": {"better": "lower", "base_median": base, "cand_median": cand,
                                           "median_ratio": ratio, "decision": "pass",
                                           "interval": [round(ratio - 0.03, 4), round(ratio + 0.03, 4)]}}}}


def gate_run(run_id: str, when: dt.datetime, machine: str, results: list[GateResult]) -> RunRecord:
    for result in results:
        result.started = when.timestamp()
    return RunRecord(run_id, when.timestamp(), when.timestamp() + 60, "all", None, None, None, machine, results)


def build_team(repo: Path, monkeypatch: pytest.MonkeyPatch) -> Team:
    """Week 6 (2-8 Feb): A, B, C created on the 2nd, E on the 3rd; A started on the 4th.
    Week 7 (9-15 Feb): B and C started on the 9th; D created on the 10th; A done on the 10th, B on the
    11th; C back to the backlog and E escalated on the 12th; D deleted on the 13th."""
    (repo / ".git").mkdir(parents=True)
    monkeypatch.setenv("ORCHESTRATOR_NOW", at(2).isoformat())
    store = Store.open(repo)  # no clock given: the orchestrator's one clock
    team = Team(store, shipped_workflow(), repo, monkeypatch)
    for title, kind, agent in (("Ternary GEMV", "implementation", "kernel-engineer"),
                               ("Kernel guide", "docs", "writer"),
                               ("Packing", "implementation", "kernel-engineer")):
        create_task(store, {"title": title, "type": kind, "assignees": [agent]}, actor=HUMAN)
    team.now(at(3))
    create_task(store, {"title": "Release notes <b>", "type": "docs", "assignees": ["writer"]}, actor=HUMAN)  # T-0004
    team.move(at(4, 10), "T-0001", "assigned", "in_development")
    team.move(at(9, 9), "T-0002", "assigned", "in_development")
    team.move(at(9, 12), "T-0003", "assigned", "in_development")
    team.now(at(10))
    create_task(store, {"title": "Flaky test", "type": "test", "assignees": ["qa-engineer"]}, actor=HUMAN)  # T-0005
    team.move(at(10, 15), "T-0001", *TO_DONE)
    team.move(at(11, 9), "T-0002", *TO_DONE)
    team.move(at(12, 8), "T-0003", "backlog")
    team.now(at(12, 10))
    store.append(Event(actor="escalation", kind="task.escalated", task_id="T-0004", reason="no owner for 9 days",
                       payload={"rule": "stale", "level": 1, "action": "notify", "agents": [], "to": "escalated"}))
    team.now(at(13, 10))
    store.append(Event(actor=HUMAN, kind="task.deleted", task_id="T-0005", reason="duplicate of T-0002"))
    with ResultsDB(store.path) as db:
        db.record(gate_run("r1", at(6, 12), "box-a", [GateResult("perf", PASSED, True, metrics=perf(1.10, 2.0, 2.2))]))
        db.record(gate_run("r2", at(10, 12), "box-a", [
            GateResult("test", PASSED, True, counts={"passed": 5, "failed": 0, "errors": 0, "skipped": 0, "total": 5}),
            GateResult("perf", PASSED, True, metrics=perf(1.024, 1.0, 1.024)),
        ]))
        db.record(gate_run("r3", at(11, 12), "box-b", [GateResult("perf", PASSED, True, metrics=perf(0.9, 5.0, 4.5))]))
        db.record(gate_run("r4", at(12, 12), "box-a", [  # nothing changed: both replayed from r2
            GateResult("test", CACHED, True, cached_from="r2",
                       counts={"passed": 5, "failed": 0, "errors": 0, "skipped": 0, "total": 5}),
            GateResult("perf", CACHED, True, cached_from="r2", metrics=perf(1.024, 1.0, 1.024)),
        ]))
        db.record(gate_run("r5", at(13, 12), "box-a", [
            GateResult("test", GateStatus.FAILED, True, counts={"passed": 5, "failed": 1, "errors": 0, "skipped": 0, "total": 6}),
            GateResult("perf", CACHED, True, cached_from="r2", metrics=perf(1.024, 1.0, 1.024)),
        ]))
    return team


@pytest.fixture
def team(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Team]:
    built = build_team(tmp_path / "repo", monkeypatch)
    yield built
    built.store.close()


def report_of(team: Team, window: Window = W07, history: int = 2) -> WeeklyReport:
    return weekly_from_store(team.store, window, history_weeks=history)


def test_events_are_stamped_by_the_fixed_clock(team: Team) -> None:
    created = {e.task_id: e.ts for e in team.store.events(kind="task.created")}
    assert created == {"T-0001": at(2), "T-0002": at(2), "T-0003": at(2), "T-0004": at(3), "T-0005": at(10)}
    moves = [(e.task_id, e.payload["to"], e.ts) for e in team.store.events(kind="task.moved")]
    assert ("T-0001", "done", at(10, 15, 4)) in moves and ("T-0003", "backlog", at(12, 8)) in moves


def test_lead_and_cycle_times(team: Team) -> None:
    report = report_of(team)
    # A: created 2 Feb 09:00, in development 4 Feb 10:01, done 10 Feb 15:04; B: created 2 Feb 09:00,
    # in development 9 Feb 09:01, done 11 Feb 09:04
    lead_a, cycle_a = days(at(10, 15, 4) - at(2)), days(at(10, 15, 4) - at(4, 10, 1))
    lead_b, cycle_b = days(at(11, 9, 4) - at(2)), days(at(11, 9, 4) - at(9, 9, 1))
    done = {d.id: d for d in report.done}
    assert sorted(done) == ["T-0001", "T-0002"]
    assert done["T-0001"].lead_days == pytest.approx(lead_a) and done["T-0001"].cycle_days == pytest.approx(cycle_a)
    assert done["T-0002"].lead_days == pytest.approx(lead_b) and done["T-0002"].cycle_days == pytest.approx(cycle_b)
    assert report.lead is not None and report.cycle is not None
    assert (report.lead.count, report.lead.missing) == (2, 0)
    assert report.lead.median == pytest.approx((lead_a + lead_b) / 2) and report.lead.max == pytest.approx(lead_b)
    assert report.cycle.median == pytest.approx((cycle_a + cycle_b) / 2) and report.cycle.p85 == pytest.approx(cycle_a)


def test_per_agent_and_per_type(team: Team) -> None:
    report = report_of(team)
    agents = {(r.key, r.done, r.started, r.in_flight, r.blocked, r.done_ids) for r in report.by_agent}
    # kernel-engineer: A done, C started (then returned to the backlog); writer: B started and done, E
    # escalated (in flight at the end); the deleted task is not in flight
    assert agents == {("kernel-engineer", 1, 1, 0, 0, ("T-0001",)), ("writer", 1, 1, 1, 0, ("T-0002",))}
    assert [r.key for r in report.by_agent] == ["writer", "kernel-engineer"]  # same done and started; more in flight
    writer = next(r for r in report.by_agent if r.key == "writer")
    assert writer.median_cycle == pytest.approx(days(at(11, 9, 4) - at(9, 9, 1)))
    types = {(r.key, r.done, r.started, r.in_flight) for r in report.by_type}
    assert types == {("implementation", 1, 1, 0), ("docs", 1, 1, 1)}


def test_scope_removed_and_scope_total(team: Team) -> None:
    report = report_of(team)
    removed = [(i.id, i.how, i.when, i.reason) for i in report.removed]
    assert removed == [("T-0003", "back to backlog from in_development", "2026-02-12 08:00", ""),
                       ("T-0005", "deleted", "2026-02-13 10:00", "duplicate of T-0002")]
    assert report.metric("scope_removed").value == 2 and report.metric("scope_removed").previous == 0
    back = next(e.id for e in team.store.events(kind="task.moved") if e.payload["to"] == "backlog")
    deleted = next(e.id for e in team.store.events(kind="task.deleted"))
    assert report.metric("scope_removed").sources == f"events #{back}, #{deleted}"
    # five tasks created, one deleted: four in scope at the week's end, four at the end of week 6
    assert (report.metric("scope_total").value, report.metric("scope_total").previous) == (4, 4)
    assert report.burnup[-1].scope == 4 and report.burnup[-1].done == 2
    by_day = {p.day: p.scope for p in report.burnup}
    assert by_day["2026-02-11"] == 5 and by_day["2026-02-14"] == 4  # D counted from the 10th until deleted


def test_replayed_gate_results_are_not_new_runs_or_measurements(team: Team) -> None:
    report = report_of(team)
    # r2, r3, r5 executed gates; r4 only replayed r2's results
    assert (report.runs, report.runs_passed, report.replay_runs) == (3, 2, 1)
    assert report.run_sources == "runs r2, r3, r5" and report.replay_sources == "run r4"
    gates = {g.gate: (g.runs, g.ok, g.replays, g.statuses) for g in report.gates}
    assert gates == {"perf": (2, 2, 2, (("passed", 2),)), "test": (2, 1, 1, (("failed", 1), ("passed", 1)))}
    assert report.tests is not None and (report.tests.run_id, report.tests.total) == ("r5", 6)


def test_perf_trends_use_in_run_ratios_per_machine(team: Team) -> None:
    report = report_of(team)
    rows = {p.machine: p for p in report.perf}
    assert sorted(rows) == ["box-a", "box-b"] and report.perf_machines == ("box-a", "box-b")
    a = rows["box-a"]
    # the candidate median fell from 2.2 (6 Feb) to 1.024 (10 Feb), yet the in-run ratio says 2.4% worse:
    # only ratios are compared, and last week's median ratio on this machine was 1.10
    assert (a.measurements, a.replays, a.latest_ratio, a.latest_run) == (1, 2, 1.024, "r2")
    assert (a.previous_median_ratio, a.previous_measurements, a.worse) == (1.10, 1, True)
    b = rows["box-b"]
    assert (b.measurements, b.replays, b.latest_ratio, b.previous_median_ratio, b.worse) == (1, 0, 0.9, None, False)
    md = render_markdown(report)
    assert "### Machine box-a" in md and "### Machine box-b" in md
    assert (a.latest_decision, a.latest_interval) == ("pass", (0.994, 1.054))
    assert ("| gemv | time | lower | 1 | 1.024 [0.994, 1.054] (pass) | r2 (1.0000 / 1.0240) | 1.024 | 1.024 | 1.024 "
            "| 1.100 (1) | 2 |") in md
    assert "-53" not in md and "+130" not in md  # no change between absolute figures of different runs


def _table_rows(md: str, heading: str) -> list[str]:
    """The body rows of the first table under ``heading``."""
    section = md.split(heading + "\n", 1)[1]
    rows: list[str] = []
    for line in section.splitlines()[1:]:
        if line.startswith("|"):
            rows.append(line)
        elif rows or line.startswith("#"):
            break
    return rows[2:]  # header and separator


def test_headline_agrees_with_the_tables(team: Team) -> None:
    report = report_of(team)
    head = report.headline
    assert head is not None
    assert head.done == len(report.done) == report.metric("done").value == 2
    assert head.removed == len(report.removed) == 2
    assert head.escalation_events == len(report.escalations) == 1 and head.escalated_tasks == ("T-0004",)
    assert head.escalated_at_end == tuple(i.id for i in report.escalated) == ("T-0004",)
    assert head.blocked == () and head.aging == tuple(i.id for i in report.aging)
    assert (head.runs, head.runs_passed, head.replay_runs) == (report.runs, report.runs_passed, report.replay_runs)
    assert report.status == "red" and [r.level for r in report.reasons] == ["red", "red", "amber"]
    md = render_markdown(report)
    line = next(x for x in md.splitlines() if x.startswith("- 2 done"))
    done_rows = _table_rows(md, "### Done this week")
    escalation_rows = _table_rows(md, "## Escalations")
    removed_rows = _table_rows(md, "### Scope removed")
    figures = re.match(r"- (\d+) done .*, (\d+) removed from scope; new gate runs passed: (\d+)/(\d+)", line)
    assert figures is not None
    assert int(figures.group(1)) == len(done_rows) and int(figures.group(2)) == len(removed_rows)
    assert (int(figures.group(3)), int(figures.group(4))) == (2, 3)
    assert "1 replay-only run(s) not counted" in line
    escalations = next(x for x in md.splitlines() if x.startswith("- Escalations:"))
    assert escalations.startswith(f"- Escalations: {len(escalation_rows)} event(s) this week (T-0004); 1 task(s) "
                                  "escalated, 0 blocked")
    state_rows = _table_rows(md, "## Blocked, escalated and aging")
    assert [row.split(" | ")[2] for row in state_rows if "T-0004" in row] == ["escalated"]


def test_daily_report_and_ranges(team: Team) -> None:
    day = report_of(team, day_window(dt.date(2026, 2, 10)), history=7)
    assert (day.label, day.period, day.title) == ("2026-02-10", "day", "Daily status")
    assert [d.id for d in day.done] == ["T-0001"] and day.metric("scope_added").ids == ("T-0005",)
    assert [(v.label, v.done) for v in day.velocity][-2:] == [("2026-02-09", 0), ("2026-02-10", 1)]
    assert (day.runs, day.run_sources) == (1, "run r2")
    md = render_markdown(day)
    assert md.startswith("# Daily status 2026-02-10\n") and "| Done | 1 | 0 | +1 | T-0001 |" in md
    assert "tasks done per day" in md and "## Next day" in md
    span = report_of(team, Window(at(2, 0), at(12, 0)), history=1)
    assert (span.label, span.period) == ("2026-02-02..2026-02-12", "period")
    assert sorted(d.id for d in span.done) == ["T-0001", "T-0002"] and span.removed == ()
    assert span.metric("scope_added").value == 5


def test_terminal_markdown_is_text_and_html_has_svg(team: Team) -> None:
    report = report_of(team, history=6)
    md = render_markdown(report)
    assert "base64" not in md and "<svg" not in md and "![" not in md
    assert "2026-W07 │" in md and "2026-02-16 │" in md and "Release notes &lt;b&gt;" in md
    html = render_html(report)
    assert html.count("<svg") == 2 and "Release notes &lt;b&gt;" in html and "<b>" not in html.split("<body>")[1]


def _axis_labels(svg: str) -> list[tuple[float, str]]:
    """(x, text) of the labels on the x axis of a velocity chart (the row at y = 236.0)."""
    return [(float(x), text) for x, text in re.findall(r'<text x="([\d.]+)" y="236.0" text-anchor="middle"[^>]*>([^<]*)</text>', svg)]


@pytest.mark.parametrize("count", [6, 26, 60])
def test_velocity_labels_never_overlap(count: int) -> None:
    weeks = [VelocityWeek(f"2026-01-{i:02d}..2026-01-{i + 1:02d}", i % 7, "no events", f"{i:02d}-{i:02d}")
             for i in range(count)]
    svg = velocity_svg(weeks, 3.0)
    labels = _axis_labels(svg)
    assert labels and labels[-1][1] == weeks[-1].short  # the latest period is always labelled
    boxes = sorted((x - len(t) * CHAR_WIDTH / 2, x + len(t) * CHAR_WIDTH / 2) for x, t in labels)
    assert all(left[1] < right[0] for left, right in itertools.pairwise(boxes))
    if count == 6:
        assert len(labels) == 6  # room for all of them
