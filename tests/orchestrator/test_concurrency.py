"""Many processes writing 1,000 transitions each to one store at the same time lose nothing: four on the
embedded SQLite file, eight on PostgreSQL (the team store, where workers on many machines write at once).

The transitions are ``task.moved`` events appended through the Store API, each after reading the task's
state in the same write transaction: what is measured is the store (its serialised writers, its log and
projection), not the workflow's rules, which have tests of their own."""

from __future__ import annotations

import itertools
import multiprocessing
import time

from bno_orchestrator.events import TaskMoved
from bno_orchestrator.models import Event, TaskStatus
from bno_orchestrator.store import Store, replay
from bno_orchestrator.workflow import create_task, move_task
from tests.orchestrator.core_fixtures import shipped_workflow
from tests.orchestrator.pg_server import NewStoreUrl

WORKERS = {"sqlite": 4, "postgresql": 8}
TRANSITIONS = 1000
SHARED = "SHARED"
TOGGLE = {"in_development": "review", "review": "in_development"}
CYCLE = {"in_development": "review", "review": "integration", "integration": "in_development"}


def _step(store: Store, task_id: str, cycle: dict[str, str], actor: str) -> None:
    """Move ``task_id`` one step round ``cycle``: read, decide and append in one write transaction."""
    with store.write() as tx:
        current = tx.task(task_id).status.value
        tx.append(Event.of(TaskMoved(current, cycle[current]), actor=actor, task_id=task_id))


def _worker(url: str, index: int, barrier: object) -> int:
    """Half the moves step the shared task round a 3-cycle, half toggle this worker's own task between
    in_development and review."""
    own = f"W{index}"
    done = 0
    with Store.connect(url) as store:
        barrier.wait()  # type: ignore[attr-defined]
        for step in range(TRANSITIONS):
            if step % 2 == 0:
                _step(store, SHARED, CYCLE, f"human:w{index}")
            else:
                _step(store, own, TOGGLE, f"human:w{index}")
            done += 1
    return done


def test_concurrent_processes_lose_no_transition(new_store_url: NewStoreUrl) -> None:
    url = new_store_url()
    workflow = shipped_workflow()
    with Store.connect(url) as store:
        engine = store.engine
        workers = WORKERS[engine]
        for task_id in (SHARED, *(f"W{i}" for i in range(workers))):
            create_task(store, {"id": task_id, "title": task_id}, actor="human:setup")
            for state in ("assigned", "in_development"):
                move_task(store, workflow, task_id, state, actor="human:setup")
        before = store.event_count()
    ctx = multiprocessing.get_context("spawn")
    started = time.perf_counter()
    with ctx.Manager() as manager, ctx.Pool(workers) as pool:
        barrier = manager.Barrier(workers)  # all of them start writing at the same moment
        results = pool.starmap(_worker, [(url, i, barrier) for i in range(workers)])
    elapsed = time.perf_counter() - started
    with Store.connect(url) as store:
        events = store.events()
        lost = before + workers * TRANSITIONS - store.event_count()
        print(f"\n{engine}: {workers} processes x {TRANSITIONS} transitions: {elapsed:.2f} s wall including "
              f"process start-up; events lost: {lost}")
        assert results == [TRANSITIONS] * workers
        assert lost == 0
        shared_moves = workers * TRANSITIONS // 2
        expected = "in_development"
        for _ in range(shared_moves % 3):
            expected = CYCLE[expected]
        assert store.task(SHARED).status.value == expected
        for i in range(workers):
            # an even number of toggles brings each worker's task back where it started
            assert store.task(f"W{i}").status == TaskStatus.IN_DEVELOPMENT
        moves = [e for e in events if e.kind == "task.moved" and e.task_id == SHARED][2:]
        assert len(moves) == shared_moves
        # every move started from the state the previous one ended in: no lost update
        for earlier, later in itertools.pairwise(moves):
            assert later.payload["from"] == earlier.payload["to"]
        assert replay(events) == store.projection()
