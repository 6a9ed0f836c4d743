"""Export to YAML and import back: round trip, errors with file:line:column, all or nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bno_orchestrator.errors import ConfigError
from bno_orchestrator.models import TaskStatus
from bno_orchestrator.store import Store
from bno_orchestrator.workflow import block_task, create_task, move_task
from bno_orchestrator.yamlexport import dump_export, export_tasks, import_tasks
from tests.orchestrator.core_fixtures import FakeClock, shipped_workflow


def _seeded(path: Path) -> Store:
    store = Store(path, clock=FakeClock())
    workflow = shipped_workflow()
    create_task(store, {"title": "design", "type": "architecture", "impact": 5, "labels": ["api"],
                        "description": "two\nlines"}, actor="human:a")
    create_task(store, {"title": "build", "depends_on": ["T-0001"], "complexity": "high"}, actor="human:a")
    move_task(store, workflow, "T-0001", "assigned", actor="router")
    block_task(store, workflow, "T-0001", "waiting on review", actor="human:a")
    return store


def test_round_trip_into_a_fresh_store(tmp_path: Path) -> None:
    with _seeded(tmp_path / "a.db") as source:
        out = tmp_path / "tasks.yaml"
        assert export_tasks(source, out) == 2
        original = source.projection()
    doc = yaml.safe_load(out.read_text())
    assert doc["version"] == 1 and [t["id"] for t in doc["tasks"]] == ["T-0001", "T-0002"]
    assert "updated_at" not in doc["tasks"][0] and "impact" not in doc["tasks"][1]  # defaults left out
    with Store(tmp_path / "b.db", clock=FakeClock()) as target:
        report = import_tasks(target, shipped_workflow(), out, actor="human:b")
        assert report.created == ["T-0001", "T-0002"]
        copy = target.projection()
        assert copy["T-0001"].status == TaskStatus.BLOCKED
        # a new task starts in the backlog and makes one legal move: its history here is backlog -> blocked
        assert copy["T-0001"].blocked_from == TaskStatus.BACKLOG != original["T-0001"].blocked_from
        restored = [t.model_copy(update={"blocked_from": original[t.id].blocked_from}) for t in copy.values()]
        assert dump_export(restored) == dump_export(list(original.values()))
        again = import_tasks(target, shipped_workflow(), out, actor="human:b")
        assert again.unchanged == ["T-0001", "T-0002"] and again.events == 0


def test_edits_and_moves_are_applied_in_one_transaction(tmp_path: Path) -> None:
    with _seeded(tmp_path / "a.db") as store:
        out = tmp_path / "tasks.yaml"
        export_tasks(store, out)
        doc = yaml.safe_load(out.read_text())
        doc["tasks"][1]["title"] = "build it"
        doc["tasks"][0]["status"] = "assigned"  # blocked -> assigned is legal for a human
        doc["tasks"].append({"id": "NEW-1", "title": "new", "depends_on": ["T-0002"]})
        out.write_text(yaml.safe_dump(doc, sort_keys=False))
        dry = import_tasks(store, shipped_workflow(), out, actor="human:a", dry_run=True)
        count = store.event_count()
        assert dry.events == 3 and store.event_count() == count
        report = import_tasks(store, shipped_workflow(), out, actor="human:a")
        assert report.edited == {"T-0002": {"title": ("build", "build it")}} and report.moved == {"T-0001": ("blocked", "assigned")}
        assert report.created == ["NEW-1"] and store.event_count() == count + 3
        assert store.task("T-0002").title == "build it"


def test_bad_files_are_refused_whole_with_their_location(tmp_path: Path) -> None:
    with _seeded(tmp_path / "a.db") as store:
        out = tmp_path / "tasks.yaml"
        export_tasks(store, out)
        text = out.read_text()
        count = store.event_count()
        workflow = shipped_workflow()
        bad = tmp_path / "bad.yaml"

        bad.write_text(text.replace("impact: 5", "impact: 9"))
        with pytest.raises(ConfigError) as info:
            import_tasks(store, workflow, bad, actor="human:a")
        line = text.splitlines().index("  impact: 5") + 1
        assert (info.value.line, info.value.field) == (line, "tasks.0.impact")
        assert str(info.value).startswith(f"{bad}:{line}:")

        bad.write_text(text.replace("title: build", "title: [build"))
        with pytest.raises(ConfigError, match="invalid YAML") as info:
            import_tasks(store, workflow, bad, actor="human:a")
        assert info.value.line is not None and info.value.column is not None

        illegal = yaml.safe_load(text)
        illegal["tasks"][1]["title"] = "renamed"  # a valid edit in the same file...
        illegal["tasks"][0]["status"] = "done"  # ...with an illegal move: nothing of the file is applied
        bad.write_text(yaml.safe_dump(illegal, sort_keys=False))
        with pytest.raises(ConfigError, match="illegal transition blocked -> done") as info:
            import_tasks(store, workflow, bad, actor="human:a")
        assert info.value.field == "tasks.0.status"

        cyclic = yaml.safe_load(text)
        cyclic["tasks"][0]["depends_on"] = ["T-0002"]
        bad.write_text(yaml.safe_dump(cyclic, sort_keys=False))
        with pytest.raises(ConfigError, match="cycle: T-0001 -> T-0002 -> T-0001"):
            import_tasks(store, workflow, bad, actor="human:a")

        dup = yaml.safe_load(text)
        dup["tasks"].append(dict(dup["tasks"][0]))
        bad.write_text(yaml.safe_dump(dup, sort_keys=False))
        with pytest.raises(ConfigError, match="appears twice"):
            import_tasks(store, workflow, bad, actor="human:a")

        assert store.event_count() == count
        assert store.task("T-0002").title == "build"


def test_a_partial_entry_changes_only_the_fields_it_names(tmp_path: Path) -> None:
    with _seeded(tmp_path / "a.db") as store:
        store_before = store.task("T-0001")
        partial = tmp_path / "partial.yaml"
        partial.write_text("version: 1\ntasks:\n  - id: T-0001\n    title: design\n    impact: 3\n")
        dry = import_tasks(store, shipped_workflow(), partial, actor="human:a", dry_run=True)
        assert dry.edited == {"T-0001": {"impact": (5, 3)}} and dry.moved == {}
        assert dry.lines() == ["edit T-0001 impact: 5 -> 3"]
        import_tasks(store, shipped_workflow(), partial, actor="human:a")
        after = store.task("T-0001")
    assert after.impact == 3
    assert (after.status, after.labels, after.description) == (store_before.status, ["api"], "two\nlines")


def test_an_import_cannot_create_a_task_past_the_workflow(tmp_path: Path) -> None:
    with _seeded(tmp_path / "a.db") as store:
        count = store.event_count()
        bad = tmp_path / "done.yaml"
        bad.write_text("version: 1\ntasks:\n  - id: X-1\n    title: shipped already\n    status: done\n")
        with pytest.raises(ConfigError) as info:
            import_tasks(store, shipped_workflow(), bad, actor="human:a")
        assert (info.value.line, info.value.field) == (5, "tasks.0.status")
        assert "backlog -> done" in str(info.value) and store.event_count() == count
        ok = tmp_path / "assigned.yaml"
        ok.write_text("version: 1\ntasks:\n  - id: X-2\n    title: routed\n    status: assigned\n")
        report = import_tasks(store, shipped_workflow(), ok, actor="human:a")
        assert report.created == ["X-2"] and report.moved == {"X-2": ("backlog", "assigned")}
        kinds = [e.kind for e in store.events(task_id="X-2")]
    assert kinds == ["task.created", "task.moved"]


def test_unknown_agents_are_refused_with_the_known_ones_listed(tmp_path: Path) -> None:
    with _seeded(tmp_path / "a.db") as store:
        bad = tmp_path / "agents.yaml"
        bad.write_text("version: 1\ntasks:\n  - id: T-0002\n    title: build\n    assignees: [nobody]\n")
        with pytest.raises(ConfigError) as info:
            import_tasks(store, shipped_workflow(), bad, actor="human:a", known_agents={"alice", "bob"})
    assert info.value.field == "tasks.0.assignees.0" and "the agents are: alice, bob" in str(info.value)
