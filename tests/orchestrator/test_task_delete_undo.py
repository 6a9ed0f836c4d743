"""Deleting, restoring and undoing tasks: every change a new event, replay equal to the projection.

The store tests run on both engines (``new_store_url``: SQLite and a real PostgreSQL server).
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bno_orchestrator.errors import NotFoundError, TransitionError, UserError
from bno_orchestrator.events import EventKind
from bno_orchestrator.models import TaskStatus
from bno_orchestrator.store import Store, replay
from bno_orchestrator.workflow import (
    create_task,
    delete_task,
    edit_task,
    move_task,
    restore_task,
    undo_last,
)
from tests.orchestrator.core_fixtures import FakeClock, shipped_workflow
from tests.orchestrator.pg_server import NewStoreUrl

ALICE = "human:alice"
BOB = "human:bob"


def _store(new_store_url: NewStoreUrl) -> Store:
    return Store.connect(new_store_url(), clock=FakeClock())


def _assert_replay_equal(store: Store) -> None:
    stored = store.projection()
    assert replay(store.events()) == stored
    store.rebuild()  # rebuilding the projection from the log gives the same tasks too
    assert store.projection() == stored


def test_delete_takes_the_task_out_and_restore_brings_it_back_as_it_was(new_store_url: NewStoreUrl) -> None:
    with _store(new_store_url) as store:
        create_task(store, {"title": "keep", "labels": ["a"], "impact": 4}, actor=ALICE)
        move_task(store, shipped_workflow(), "T-0001", "assigned", actor=ALICE)
        before = store.task("T-0001")
        event = delete_task(store, "T-0001", actor=ALICE, reason="duplicate of T-9")
        assert event.kind == EventKind.TASK_DELETED and event.reason == "duplicate of T-9"
        assert event.actor == ALICE and event.payload["task"]["labels"] == ["a"]
        assert store.find("T-0001") is None and store.projection() == {}
        _assert_replay_equal(store)
        restored = restore_task(store, "T-0001", actor=BOB)
        # everything but the bookkeeping "updated_at" is as it was: status, since when, created when
        assert restored.model_dump(exclude={"updated_at"}) == before.model_dump(exclude={"updated_at"})
        assert restored.status == TaskStatus.ASSIGNED
        assert [e.kind for e in store.events(task_id="T-0001")][-2:] == ["task.deleted", "task.restored"]
        _assert_replay_equal(store)


def test_a_deleted_id_is_never_reused(new_store_url: NewStoreUrl) -> None:
    with _store(new_store_url) as store:
        create_task(store, {"title": "one"}, actor=ALICE)
        create_task(store, {"title": "two"}, actor=ALICE)
        delete_task(store, "T-0002", actor=ALICE)
        assert create_task(store, {"title": "three"}, actor=ALICE).id == "T-0003"
        with pytest.raises(UserError, match=r"T-0002 was deleted .*task restore T-0002"):
            create_task(store, {"id": "T-0002", "title": "again"}, actor=ALICE)
        _assert_replay_equal(store)


def test_restore_refuses_a_task_that_exists_or_never_was(new_store_url: NewStoreUrl) -> None:
    with _store(new_store_url) as store:
        create_task(store, {"title": "one"}, actor=ALICE)
        with pytest.raises(UserError, match="T-0001 is not deleted"):
            restore_task(store, "T-0001", actor=ALICE)
        with pytest.raises(NotFoundError, match="no deleted task 'T-0042'"):
            restore_task(store, "T-0042", actor=ALICE)
        with pytest.raises(NotFoundError, match="no task 'T-0042'"):
            delete_task(store, "T-0042", actor=ALICE)
        assert store.event_count() == 1


def test_delete_of_a_task_others_depend_on_is_refused_naming_them(new_store_url: NewStoreUrl) -> None:
    with _store(new_store_url) as store:
        create_task(store, {"title": "base"}, actor=ALICE)
        create_task(store, {"title": "top", "depends_on": ["T-0001"]}, actor=ALICE)
        create_task(store, {"title": "also", "depends_on": ["T-0001"]}, actor=ALICE)
        with pytest.raises(UserError, match=r"T-0002, T-0003 depend on it.*--force"):
            delete_task(store, "T-0001", actor=ALICE)
        assert store.event_count() == 3
        delete_task(store, "T-0001", actor=ALICE, force=True)
        assert store.task("T-0002").depends_on == [] and store.task("T-0003").depends_on == []
        kinds = [(e.kind, e.task_id) for e in store.events()][3:]
        assert kinds == [("task.edited", "T-0002"), ("task.edited", "T-0003"), ("task.deleted", "T-0001")]
        assert store.events(kind="task.deleted")[0].payload["detached"] == ["T-0002", "T-0003"]
        _assert_replay_equal(store)


def test_restore_waits_for_a_deleted_dependency(new_store_url: NewStoreUrl) -> None:
    with _store(new_store_url) as store:
        create_task(store, {"title": "base"}, actor=ALICE)
        create_task(store, {"title": "top", "depends_on": ["T-0001"]}, actor=ALICE)
        delete_task(store, "T-0002", actor=ALICE)
        delete_task(store, "T-0001", actor=ALICE)
        with pytest.raises(UserError, match="depends on T-0001, which no longer exist"):
            restore_task(store, "T-0002", actor=ALICE)
        restore_task(store, "T-0001", actor=ALICE)
        assert restore_task(store, "T-0002", actor=ALICE).depends_on == ["T-0001"]
        _assert_replay_equal(store)


def test_undo_walks_back_through_one_actors_events(new_store_url: NewStoreUrl) -> None:
    workflow = shipped_workflow()
    with _store(new_store_url) as store:
        create_task(store, {"title": "mine", "labels": ["a"]}, actor=ALICE)
        create_task(store, {"title": "bob's"}, actor=BOB)
        edit_task(store, "T-0001", {"labels": ["b"]}, actor=ALICE)
        move_task(store, workflow, "T-0001", "assigned", actor=ALICE)
        edit_task(store, "T-0002", {"title": "bob's own"}, actor=BOB)

        first = undo_last(store, workflow, actor=ALICE)  # the move, not Bob's later edit
        assert first.undone.kind == "task.moved" and first.task is not None
        assert first.task.status == TaskStatus.BACKLOG and first.event.payload["undoes"] == first.undone.id
        assert first.event.actor == ALICE and first.event.reason == f"undo of event {first.undone.id}"
        second = undo_last(store, workflow, actor=ALICE)  # then the edit
        assert second.task is not None and second.task.labels == ["a"]
        third = undo_last(store, workflow, actor=ALICE)  # then the create: a delete
        assert third.task is None and store.find("T-0001") is None
        assert third.event.kind == "task.deleted"
        with pytest.raises(UserError, match=f"nothing to undo for {ALICE}"):
            undo_last(store, workflow, actor=ALICE)
        assert store.task("T-0002").title == "bob's own"
        _assert_replay_equal(store)


def test_undo_of_a_delete_restores_and_of_a_restore_deletes(new_store_url: NewStoreUrl) -> None:
    workflow = shipped_workflow()
    with _store(new_store_url) as store:
        create_task(store, {"title": "x"}, actor=BOB)
        delete_task(store, "T-0001", actor=ALICE, reason="by mistake")
        undone = undo_last(store, workflow, actor=ALICE)
        assert undone.event.kind == "task.restored" and store.task("T-0001").title == "x"
        restore_event_count = store.event_count()
        delete_task(store, "T-0001", actor=BOB)
        restore_task(store, "T-0001", actor=BOB)
        assert undo_last(store, workflow, actor=BOB).event.kind == "task.deleted"
        assert store.event_count() == restore_event_count + 3
        _assert_replay_equal(store)


def test_undo_refuses_when_the_task_changed_since(new_store_url: NewStoreUrl) -> None:
    workflow = shipped_workflow()
    with _store(new_store_url) as store:
        create_task(store, {"title": "x"}, actor=ALICE)
        edit_task(store, "T-0001", {"title": "y"}, actor=ALICE)
        edit_task(store, "T-0001", {"impact": 5}, actor=BOB)
        count = store.event_count()
        with pytest.raises(UserError, match=r"cannot undo event 2 \(task.edited of T-0001\): T-0001 changed since "
                                            r"\(event 3, task.edited by human:bob\)"):
            undo_last(store, workflow, actor=ALICE)
        assert store.event_count() == count


def test_undo_of_a_move_goes_through_the_workflow(new_store_url: NewStoreUrl) -> None:
    workflow = shipped_workflow()
    with _store(new_store_url) as store:
        create_task(store, {"title": "x"}, actor=ALICE)
        move_task(store, workflow, "T-0001", "assigned", actor="router")
        edit_task(store, "T-0001", {"assignees": ["code"]}, actor=ALICE)
        move_task(store, workflow, "T-0001", "in_development", actor="agent:code")
        count = store.event_count()
        # the shipped workflow has no move in_development -> assigned: the undo is refused, nothing written
        with pytest.raises(TransitionError, match=r"cannot undo event 4 \(task.moved of T-0001\): T-0001: "
                                                  r"illegal transition in_development -> assigned"):
            undo_last(store, workflow, actor="agent:code")
        assert store.event_count() == count
        # assigned -> backlog is open to the router: its move is undone
        create_task(store, {"title": "y"}, actor=ALICE)
        move_task(store, workflow, "T-0002", "assigned", actor="router")
        undone = undo_last(store, workflow, actor="router")
        assert undone.task is not None and undone.task.status == TaskStatus.BACKLOG
        assert undone.event.payload == {"from": "assigned", "to": "backlog", "undoes": undone.undone.id}
        _assert_replay_equal(store)


def test_undo_of_a_create_is_refused_while_a_task_depends_on_it(new_store_url: NewStoreUrl) -> None:
    workflow = shipped_workflow()
    with _store(new_store_url) as store:
        create_task(store, {"title": "base"}, actor=ALICE)
        create_task(store, {"title": "top", "depends_on": ["T-0001"]}, actor=BOB)
        with pytest.raises(UserError, match=r"cannot undo event 1 .*T-0002 depends on it"):
            undo_last(store, workflow, actor=ALICE)


def test_list_fields_add_and_remove_items(new_store_url: NewStoreUrl) -> None:
    with _store(new_store_url) as store:
        create_task(store, {"title": "base"}, actor=ALICE)
        create_task(store, {"title": "x", "labels": ["a", "b"]}, actor=ALICE)
        task = edit_task(store, "T-0002", {}, actor=ALICE, add={"labels": ["c", "a"], "depends_on": ["T-0001"]},
                         remove={"labels": ["b"]})
        assert task.labels == ["a", "c"] and task.depends_on == ["T-0001"]
        edited = store.events(kind="task.edited")[-1].payload
        assert edited == {"changes": {"depends_on": ["T-0001"], "labels": ["a", "c"]},
                          "previous": {"depends_on": [], "labels": ["a", "b"]}}
        with pytest.raises(UserError, match="field 'labels' holds no 'zzz' to remove"):
            edit_task(store, "T-0002", {}, actor=ALICE, remove={"labels": ["zzz"]})
        with pytest.raises(UserError, match="field 'labels': give either the whole list or items"):
            edit_task(store, "T-0002", {"labels": ["q"]}, actor=ALICE, add={"labels": ["r"]})
        with pytest.raises(UserError, match="cannot add to or remove from 'title'"):
            edit_task(store, "T-0002", {}, actor=ALICE, add={"title": ["r"]})
        with pytest.raises(UserError, match="cycle"):
            edit_task(store, "T-0001", {}, actor=ALICE, add={"depends_on": ["T-0002"]})
        _assert_replay_equal(store)


def test_unknown_assignees_are_refused_naming_the_known_agents(new_store_url: NewStoreUrl) -> None:
    agents = ["code", "docs"]
    with _store(new_store_url) as store:
        with pytest.raises(UserError, match=r"field 'assignees': unknown agent 'ghost'; known agents: code, docs"):
            create_task(store, {"title": "x", "assignees": ["ghost"]}, actor=ALICE, known_agents=agents)
        create_task(store, {"title": "x", "assignees": ["code"]}, actor=ALICE, known_agents=agents)
        with pytest.raises(UserError, match="unknown agent 'ghost'"):
            edit_task(store, "T-0001", {}, actor=ALICE, add={"assignees": ["ghost"]}, known_agents=agents)
        task = edit_task(store, "T-0001", {}, actor=ALICE, add={"assignees": ["docs"]}, known_agents=agents)
        assert task.assignees == ["code", "docs"]


OPERATIONS = st.lists(st.tuples(st.sampled_from(["add", "edit", "move", "delete", "restore", "undo"]),
                                st.integers(min_value=1, max_value=4), st.sampled_from([ALICE, BOB])),
                      min_size=1, max_size=14)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(operations=OPERATIONS)
def test_any_sequence_of_deletes_restores_and_undos_replays_to_the_projection(
        tmp_path_factory: pytest.TempPathFactory, operations: list[tuple[str, int, str]]) -> None:
    workflow = shipped_workflow()
    with Store(tmp_path_factory.mktemp("ops") / "state.db", clock=FakeClock()) as store:
        for operation, number, actor in operations:
            task_id = f"T-{number:04d}"
            count = store.event_count()
            try:
                if operation == "add":
                    create_task(store, {"title": f"task {number}"}, actor=actor)
                elif operation == "edit":
                    edit_task(store, task_id, {}, actor=actor, add={"labels": [f"l{count}"]})
                elif operation == "move":
                    move_task(store, workflow, task_id, "assigned", actor=actor)
                elif operation == "delete":
                    delete_task(store, task_id, actor=actor, force=number % 2 == 0)
                elif operation == "restore":
                    restore_task(store, task_id, actor=actor)
                else:
                    undo_last(store, workflow, actor=actor)
            except UserError:  # refused (not found, not deleted, nothing to undo...): nothing written
                assert store.event_count() == count
            assert replay(store.events()) == store.projection()
        # no two tasks ever held one id: every created id is unique
        created = [e.task_id for e in store.events(kind="task.created")]
        assert len(created) == len(set(created))
