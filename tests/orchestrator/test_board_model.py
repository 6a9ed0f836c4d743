"""The board's data layer at scale: the incremental model (filter and store changes without a rebuild)
agrees with a model built from scratch, only changed cards are rebuilt, workflow steps, title truncation,
saved filters and the add/edit form's fields."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from bno_orchestrator.config import load_config
from bno_orchestrator.errors import UserError
from bno_orchestrator.store import Store
from bno_orchestrator.tui.bench import generate_store, generated_fields
from bno_orchestrator.tui.data import BoardModel, load_snapshot, refresh_snapshot, step_target, truncate
from bno_orchestrator.tui.edits import form_fields, form_values
from bno_orchestrator.tui.filters import delete_filter, load_filters, save_filter
from bno_orchestrator.workflow import block_task, create_task, edit_task, move_task, record_verification
from tests.orchestrator.core_fixtures import shipped_workflow
from tests.orchestrator.test_report_weekly import HUMAN, Scenario

COUNT = 300


@pytest.fixture
def big(tmp_path: Path) -> Iterator[Store]:
    (tmp_path / ".git").mkdir()
    store = Store.open(tmp_path)
    generate_store(store, COUNT)
    yield store
    store.close()


def test_generated_store_is_one_transaction_and_deterministic(big: Store) -> None:
    assert big.event_count() == COUNT and len(big.tasks()) == COUNT
    assert generated_fields(50) == generated_fields(50) and generated_fields(50, seed=1) != generated_fields(50)
    states = {t.status.value for t in big.tasks()}
    assert states == set(shipped_workflow().states)


def test_incremental_updates_match_a_fresh_model(big: Store, tmp_path: Path) -> None:
    workflow, scoring = shipped_workflow(), load_config(tmp_path).scoring
    snapshot = load_snapshot(big, workflow, scoring)
    model = BoardModel(snapshot, "label:perf")
    backlog = [t.id for t in big.tasks(["backlog"])]
    dependency = next(t for t in big.tasks() if t.depends_on and t.status.value != "done")
    move_task(big, workflow, backlog[0], "assigned", actor=HUMAN)
    block_task(big, workflow, backlog[1], "waiting on a reviewer", actor=HUMAN)
    edit_task(big, backlog[2], {"title": "Renamed", "labels": ["perf"], "impact": 5}, actor=HUMAN)
    record_verification(big, backlog[3], run_id="r1", passed=False, agent="code")
    create_task(big, {"title": "new perf work", "labels": ["perf"]}, actor=HUMAN)
    move_task(big, workflow, dependency.depends_on[0], "blocked", actor=HUMAN, reason="x")
    refresh = refresh_snapshot(big, snapshot, scoring)
    assert refresh is not None and refresh_snapshot(big, refresh.snapshot, scoring) is None
    assert {backlog[0], backlog[1], backlog[2], backlog[3], dependency.depends_on[0]} <= refresh.changed
    assert len(refresh.changed) < COUNT // 10  # only the named tasks and their dependency neighbours
    changed_states = model.update(refresh)
    fresh = BoardModel(load_snapshot(big, workflow, scoring), "label:perf")
    assert model.columns == fresh.columns
    assert {"backlog", "assigned", "blocked"} <= changed_states
    assert model.set_filter("is:blocked") and model.columns == BoardModel(fresh.snapshot, "is:blocked").columns
    with pytest.raises(UserError):
        model.set_filter("owner:me")
    assert model.query == "is:blocked"  # a bad query leaves the filter as it was
    card = model.columns[-2].cards[0]
    assert model.locate(card.id) == (len(model.columns) - 2, 0)
    gate = BoardModel(fresh.snapshot)._cards[backlog[3]]
    assert (gate.gate, gate.gate_run) == ("failed", "r1")


def test_step_target_follows_the_workflow(scenario: Scenario) -> None:
    wf = scenario.workflow
    assert step_target(wf, scenario.store.task("T-0003"), HUMAN, 1) == ("assigned", "")
    target, why = step_target(wf, scenario.store.task("T-0003"), HUMAN, -1)
    assert target is None and why == f"T-0003: no back move from backlog for {HUMAN}; allowed: assigned, blocked, escalated"
    move_task(scenario.store, wf, "T-0003", "assigned", actor=HUMAN)
    move_task(scenario.store, wf, "T-0003", "in_development", actor=HUMAN)
    assert step_target(wf, scenario.store.task("T-0003"), HUMAN, -1) == ("backlog", "")
    assert step_target(wf, scenario.store.task("T-0003"), "agent:nobody", 1)[0] is None
    blocked = scenario.store.task("T-0004")  # blocked from in_development
    assert step_target(wf, blocked, HUMAN, 1) == ("in_development", "")
    assert step_target(wf, scenario.store.task("T-0001"), HUMAN, 1)[1].startswith("T-0001: no forward move from done")


def test_truncate_wraps_words_and_ends_with_an_ellipsis() -> None:
    assert truncate("Docs pass", 12, 2) == ("Docs pass",)
    assert truncate("Release | notes *draft* and more words", 12, 2) == ("Release |", "notes *draf…")
    assert truncate("line\nbreaks\tand   runs", 40) == ("line breaks and runs",)
    assert truncate("averyveryverylongword", 8, 1) == ("averyve…",)


def test_saved_filters_are_checked_and_written_whole(tmp_path: Path) -> None:
    path = tmp_path / ".orchestrator" / "board-filters.json"
    assert load_filters(path) == {}
    assert save_filter(path, "  my   perf ", "label:perf agent:code") == {"my perf": "label:perf agent:code"}
    save_filter(path, "stuck", "is:blocked")
    assert json.loads(path.read_text()) == {"my perf": "label:perf agent:code", "stuck": "is:blocked"}
    with pytest.raises(UserError, match="unknown filter field 'owner'"):
        save_filter(path, "bad", "owner:me")
    with pytest.raises(UserError, match="needs a name"):
        save_filter(path, " ", "is:blocked")
    assert delete_filter(path, "stuck") == {"my perf": "label:perf agent:code"}
    with pytest.raises(UserError, match="no saved filter 'stuck'"):
        delete_filter(path, "stuck")
    path.write_text("{not json")
    with pytest.raises(UserError, match="not valid JSON"):
        load_filters(path)


def test_form_fields(scenario: Scenario) -> None:
    assert form_fields({"title": " A  title ", "priority": "4", "labels": "a, b,, ", "assignee": "code"}) == {
        "title": "A title", "impact": 4, "labels": ["a", "b"], "assignees": ["code"]}
    assert form_fields({"title": "x"}) == {"title": "x", "impact": None, "labels": [], "assignees": []}
    with pytest.raises(UserError, match="needs a title"):
        form_fields({"title": "  "})
    with pytest.raises(UserError, match="priority '0'"):
        form_fields({"title": "x", "priority": "0"})
    assert form_values(scenario.store.task("T-0004")) == {
        "title": "Ternary GEMV", "priority": "4", "labels": "", "assignee": "kernel-engineer"}


def test_bench_report_puts_the_targets_beside_the_figures() -> None:
    from bno_orchestrator.tui.bench import Figures, percentile, report

    assert percentile([0.3, 0.1, 0.2, 0.4], 0.5) == 0.2 and percentile([0.3, 0.1, 0.2, 0.4], 0.95) == 0.4
    figures = Figures(first_paint=0.4, keys=(0.09, 0.1), keys_cpu=(0.01, 0.02), noop_keys=(0.08,),
                      filter_keys=(0.12,), filter_cpu=(0.06,), external=())
    lines = report(figures, 2000).splitlines()
    assert lines[0] == "board benchmark, 2000 tasks"
    assert lines[1].startswith("first paint") and lines[1].endswith("target < 1000 ms: meets")
    by_name = {line[:17].strip(): line for line in lines[2:]}
    assert by_name["key (cpu)"].endswith("target p95 < 50 ms: meets") and "median     15.0 ms" in by_name["key (cpu)"]
    assert by_name["filter key (cpu)"].endswith("target p95 < 50 ms: MISSES")
    assert by_name["key"].endswith("(Pilot round trip, no target)")
    assert by_name["external event"] == "external event    not measured"
