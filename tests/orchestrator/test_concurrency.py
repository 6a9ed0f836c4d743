"""Four processes writing 1,000 transitions each to one store at the same time lose nothing."""

from __future__ import annotations

import itertools
import multiprocessing
import time
from pathlib import Path

from bno_orchestrator.models import TaskStatus
from bno_orchestrator.store import Store, replay
from bno_orchestrator.workflow import create_task, move_in, move_task
from tests.orchestrator.core_fixtures import shipped_workflow

WORKERS = 4
TRANSITIONS = 1000
SHARED = "SHARED"
CYCLE = {"in_development": "review", "review": "integration", "integration": "in_development"}


def _worker(path: str, index: int, barrier: object) -> int:
    """Half the moves step the shared task round a 3-cycle (read-decide-write in one transaction),
    half toggle this worker's own task between in_development and review."""
    workflow = shipped_workflow()
    own = f"W{index}"
    done = 0
    with Store(Path(path)) as store:
        barrier.wait()  # type: ignore[attr-defined]
        for step in range(TRANSITIONS):
            if step % 2 == 0:
                with store.write() as tx:
                    current = tx.task(SHARED).status.value
                    move_in(tx, workflow, SHARED, CYCLE[current], actor=f"human:w{index}")
            else:
                current = store.task(own).status.value
                target = "review" if current == "in_development" else "in_development"
                move_task(store, workflow, own, target, actor=f"human:w{index}")
            done += 1
    return done


def test_four_processes_lose_no_transition(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    workflow = shipped_workflow()
    with Store(path) as store:
        for task_id in (SHARED, *(f"W{i}" for i in range(WORKERS))):
            create_task(store, {"id": task_id, "title": task_id}, actor="human:setup")
            for state in ("assigned", "in_development"):
                move_task(store, workflow, task_id, state, actor="human:setup")
        before = store.event_count()
    ctx = multiprocessing.get_context("spawn")
    started = time.perf_counter()
    with ctx.Manager() as manager, ctx.Pool(WORKERS) as pool:
        barrier = manager.Barrier(WORKERS)  # all four start writing at the same moment
        results = pool.starmap(_worker, [(str(path), i, barrier) for i in range(WORKERS)])
    elapsed = time.perf_counter() - started
    print(f"\n{WORKERS} processes x {TRANSITIONS} transitions: {elapsed:.2f} s wall including process start-up")
    assert results == [TRANSITIONS] * WORKERS
    with Store(path) as store:
        events = store.events()
        assert store.event_count() == before + WORKERS * TRANSITIONS
        shared_moves = WORKERS * TRANSITIONS // 2
        expected = "in_development"
        for _ in range(shared_moves % 3):
            expected = CYCLE[expected]
        assert store.task(SHARED).status.value == expected
        for i in range(WORKERS):
            # an even number of toggles brings each worker's task back where it started
            assert store.task(f"W{i}").status == TaskStatus.IN_DEVELOPMENT
        moves = [e for e in events if e.kind == "task.moved" and e.task_id == SHARED][2:]
        assert len(moves) == shared_moves
        # every move started from the state the previous one ended in: no lost update
        for earlier, later in itertools.pairwise(moves):
            assert later.payload["from"] == earlier.payload["to"]
        assert replay(events) == store.projection()
