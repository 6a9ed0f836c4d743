"""The store: append-only log, projection == replay, migrations, atomic transactions, change waits.

Every test taking ``new_store_url`` runs twice: on the embedded SQLite engine and on PostgreSQL (a real
server the session starts, see :mod:`tests.orchestrator.pg_server`).
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bno_orchestrator.errors import NotFoundError, StoreError, TransitionError
from bno_orchestrator.events import PROJECTED_KINDS, EventKind, GatesVerified, TaskMoved
from bno_orchestrator.models import Event, TaskStatus
from bno_orchestrator.store import MIGRATIONS, SCHEMA_VERSION, Store, replay
from bno_orchestrator.workflow import block_task, create_task, edit_task, move_task, unblock_task
from tests.orchestrator.core_fixtures import START, FakeClock, shipped_workflow
from tests.orchestrator.pg_server import NewStoreUrl


def _store(new_store_url: NewStoreUrl, clock: FakeClock | None = None) -> Store:
    return Store.connect(new_store_url(), clock=clock or FakeClock())


def _raw(store: Store, statement: str) -> None:
    """Run ``statement`` on the store's database on a connection of its own, outside the Store API."""
    if store.engine == "sqlite":
        conn = sqlite3.connect(store.location, isolation_level=None)
        try:
            conn.execute(statement)
        finally:
            conn.close()
        return
    import psycopg

    with psycopg.connect(store._conn.url, autocommit=True) as pg:  # type: ignore[attr-defined]
        pg.execute(statement.encode())


def test_append_updates_projection_in_the_same_transaction(new_store_url: NewStoreUrl) -> None:
    clock = FakeClock()
    with _store(new_store_url, clock) as store:
        task = create_task(store, {"title": "first", "impact": 4}, actor="human:ann")
        assert task.id == "T-0001"
        assert task.created_at == START and task.status == TaskStatus.BACKLOG
        clock.advance(minutes=5)
        moved = move_task(store, shipped_workflow(), "T-0001", "assigned", actor="human:ann", reason="by hand")
        assert moved.status == TaskStatus.ASSIGNED and moved.status_since == START + dt.timedelta(minutes=5)
        events = store.events(task_id="T-0001")
        assert [e.kind for e in events] == ["task.created", "task.moved"]
        assert events[1].actor == "human:ann" and events[1].reason == "by hand"
        assert events[1].ts == START + dt.timedelta(minutes=5)
        assert events[1].payload == {"from": "backlog", "to": "assigned"}
        assert store.events(since=events[0].id) == [events[1]]
        assert store.events(kind="task.moved") == [events[1]]


def test_events_are_append_only(new_store_url: NewStoreUrl) -> None:
    with _store(new_store_url) as store:
        create_task(store, {"title": "x"}, actor="human:a")
        for statement in ("UPDATE events SET actor = 'mallory'", "DELETE FROM events"):
            with pytest.raises(Exception, match="append-only"):  # the database's own trigger refuses it
                _raw(store, statement)
        if store.engine == "postgresql":
            with pytest.raises(Exception, match="append-only"):
                _raw(store, "TRUNCATE events")
        assert store.event_count() == 1
        assert store.events()[0].actor == "human:a"


def test_projection_equals_replay_after_mixed_operations(new_store_url: NewStoreUrl) -> None:
    clock = FakeClock()
    workflow = shipped_workflow()
    with _store(new_store_url, clock) as store:
        for i in range(12):
            clock.advance(minutes=1)
            create_task(store, {"title": f"task {i}", "complexity": 1 + i % 4,
                                "depends_on": ["T-0001"] if i > 6 else []}, actor="human:a")
        for i in range(1, 7):
            clock.advance(minutes=1)
            move_task(store, workflow, f"T-{i:04d}", "assigned", actor="router")
            edit_task(store, f"T-{i:04d}", {"labels": [f"l{i}"], "impact": 1 + i % 5}, actor="human:a")
        block_task(store, workflow, "T-0002", "waiting for a review", actor="human:a")
        clock.advance(hours=1)
        unblock_task(store, workflow, "T-0002", actor="human:a")
        store.append(Event(actor="gates", kind="gates.verified", task_id="T-0003",
                           payload={"run_id": "r1", "passed": False, "agent": "code"}))
        store.append(Event(actor="escalation", kind="task.escalated", task_id="T-0004",
                           payload={"rule": "x", "level": 2, "action": "add_agents", "agents": ["debug"]}))
        projection = store.projection()
        assert replay(store.events()) == projection
        assert projection["T-0002"].status == TaskStatus.ASSIGNED and projection["T-0002"].blocked_from is None
        assert projection["T-0004"].support == ["debug"] and projection["T-0004"].escalation_level == 2
        assert store.rebuild() == 12
        assert store.projection() == projection


def test_write_transaction_is_all_or_nothing(new_store_url: NewStoreUrl) -> None:
    with _store(new_store_url) as store:
        create_task(store, {"title": "x"}, actor="human:a")
        before = store.event_count()
        with pytest.raises(RuntimeError), store.write() as tx:
            tx.append(Event(actor="human:a", kind="task.edited", task_id="T-0001",
                            payload={"changes": {"title": "changed"}}))
            raise RuntimeError("killed half-way")
        assert store.event_count() == before
        assert store.task("T-0001").title == "x"


def test_unknown_task_is_not_found(new_store_url: NewStoreUrl) -> None:
    with _store(new_store_url) as store:
        with pytest.raises(NotFoundError, match="T-0404"):
            store.task("T-0404")
        with pytest.raises(NotFoundError):
            store.append(Event(actor="human:a", kind="task.moved", task_id="T-0404", payload={"to": "done"}))
        assert store.event_count() == 0


def test_migration_from_version_1_rebuilds_the_projection(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE schema_version (component TEXT PRIMARY KEY, version INTEGER NOT NULL)")
    for statement in MIGRATIONS[0].statements:
        conn.execute(statement)
    conn.execute("INSERT INTO schema_version VALUES ('orchestrator', 1)")
    conn.execute(
        "INSERT INTO events (ts, actor, kind, task_id, payload, reason) VALUES (?, ?, ?, ?, ?, ?)",
        (START.isoformat(), "human:a", "task.created", "T-0001", '{"task": {"id": "T-0001", "title": "old"}}', ""),
    )
    conn.execute("CREATE TABLE gate_runs (run_id TEXT PRIMARY KEY)")  # another component's table
    conn.execute("INSERT INTO gate_runs VALUES ('r1')")
    conn.close()
    with Store(path) as store:
        assert store.schema_version() == SCHEMA_VERSION
        assert store.task("T-0001").title == "old"
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT run_id FROM gate_runs").fetchall() == [("r1",)]
    conn.close()


def test_a_newer_schema_is_refused(new_store_url: NewStoreUrl) -> None:
    url = new_store_url()
    with Store.connect(url) as store:
        assert store.schema_version() == SCHEMA_VERSION
        _raw(store, "UPDATE schema_version SET version = 99 WHERE component = 'orchestrator'")
    with pytest.raises(StoreError, match="newer"):
        Store.connect(url)


def test_open_uses_the_repo_state_dir_and_wal(tmp_path: Path) -> None:
    with Store.open(tmp_path) as store:
        assert store.path == tmp_path / ".orchestrator" / "state.db"
        assert store.engine == "sqlite" and store.location == str(store.path)
        mode = store._conn.execute("PRAGMA journal_mode").fetchone()[0]
        assert mode == "wal"


STATES = [s.value for s in TaskStatus]


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(0, 2), st.sampled_from(STATES), st.sampled_from(["human:a", "router",
                                                                                         "agent:code"])),
                min_size=1, max_size=25))
def test_random_moves_keep_projection_equal_to_replay(new_store_url: NewStoreUrl,
                                                      moves: list[tuple[int, str, str]]) -> None:
    workflow = shipped_workflow()
    clock = FakeClock()
    with Store.connect(new_store_url(), clock=clock) as store:
        for i in range(3):
            create_task(store, {"title": f"t{i}", "assignees": ["code"] if i == 0 else []}, actor="human:a")
        accepted = 0
        for index, target, actor in moves:
            clock.advance(minutes=1)
            task_id = f"T-{index + 1:04d}"
            before = store.task(task_id)
            allowed = workflow.allowed(before, actor)
            try:
                move_task(store, workflow, task_id, target, actor=actor)
                accepted += 1
                assert target in allowed
            except TransitionError:  # the workflow's own rules decide which; the store must record nothing
                assert store.task(task_id) == before
        assert store.event_count() == 3 + accepted
        assert replay(store.events()) == store.projection()


def test_event_kinds_are_the_strings_stored_in_the_log(new_store_url: NewStoreUrl) -> None:
    # the stored strings never change: logs written before EventKind existed read back the same
    assert {kind.value for kind in EventKind} == {
        "task.created", "task.edited", "task.moved", "task.routed", "task.deferred", "task.escalated",
        "dispatch.started", "dispatch.handoff", "dispatch.finished", "gates.verified", "merge.conflict",
        "task.landed", "task.deleted", "task.restored"}
    assert {"task.created", "task.edited", "task.moved", "task.routed", "task.escalated", "task.deleted",
            "task.restored"} == PROJECTED_KINDS
    event = Event.of(TaskMoved("backlog", "assigned"), actor="human:a", task_id="T-0001", reason="by hand")
    assert type(event.kind) is str and event.kind == "task.moved"
    assert event.payload == {"from": "backlog", "to": "assigned"}
    with _store(new_store_url) as store:
        create_task(store, {"title": "x"}, actor="human:a")
        store.append(Event(actor="human:a", kind="task.moved", task_id="T-0001",  # a plain-string writer
                           payload={"from": "backlog", "to": "assigned"}))
        store.append(Event.of(GatesVerified("run-1", False, "code", "implementation"), actor="gates",
                              task_id="T-0001"))
        store.append(Event(actor="other", kind="other.component", payload={"n": 1}))  # not ours: only logged
        assert store.task("T-0001").status == TaskStatus.ASSIGNED
        assert [e.kind for e in store.events(kind=EventKind.GATES_VERIFIED)] == ["gates.verified"]
        assert store.events(kind="gates.verified")[0].payload == {
            "run_id": "run-1", "passed": False, "agent": "code", "task_type": "implementation",
            "stage": "in_development"}
        assert replay(store.events()) == store.projection()
