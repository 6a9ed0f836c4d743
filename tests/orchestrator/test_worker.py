"""Workers on a shared store: exclusive claims, heartbeats, reclaim after a kill -9, fenced stale writes.

Every test runs on SQLite and on PostgreSQL (``new_store_url``). The fault test kills a real worker
process with SIGKILL mid-task and waits, on conditions with bounded loops, for its lease to expire.
"""

from __future__ import annotations

import collections
import json
import multiprocessing
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from bno_orchestrator.cli import main
from bno_orchestrator.models import Event, TaskStatus
from bno_orchestrator.store import Store, replay
from bno_orchestrator.store_url import ENV_VAR, parse
from bno_orchestrator.worker import (
    CLAIMED,
    RELEASED,
    Lease,
    LeaseLostError,
    claim,
    fence,
    release,
    renew,
    run_worker,
)
from bno_orchestrator.workflow import create_task, move_task
from tests.orchestrator.core_fixtures import FakeClock, shipped_workflow
from tests.orchestrator.dispatch_helpers import add_routed_task, make_repo
from tests.orchestrator.pg_server import NewStoreUrl
from tests.orchestrator.test_dispatch_run import use_tool

WAIT_S = 60.0  # the bound of every wait on a condition (never reached when things work)
MARK = "test.mid_task"


def _routed_tasks(store: Store, count: int) -> list[str]:
    workflow = shipped_workflow()
    ids = []
    for i in range(count):
        task = create_task(store, {"title": f"task {i}", "assignees": ["code"]}, actor="human:setup")
        move_task(store, workflow, task.id, "assigned", actor="human:setup")
        ids.append(task.id)
    return ids


def _develop(lease: Lease, store: Store) -> str:
    """A task runner that does real work through the workflow: assigned -> in_development -> review."""
    workflow = shipped_workflow()
    if store.task(lease.task_id).status == TaskStatus.ASSIGNED:
        move_task(store, workflow, lease.task_id, "in_development", actor="agent:code")
    move_task(store, workflow, lease.task_id, "review", actor="human:reviewer")
    return "review"


def test_a_claim_is_exclusive_and_a_stale_worker_is_fenced_out(new_store_url: NewStoreUrl) -> None:
    url = new_store_url()
    clock = FakeClock()
    with Store.connect(url, clock=clock) as first, Store.connect(url, clock=clock) as second:
        (task_id,) = _routed_tasks(first, 1)
        lease_a = claim(first, "host-a:1", lease_s=60)
        assert lease_a is not None and lease_a.task_id == task_id and lease_a.token == 1
        assert claim(second, "host-b:2", lease_s=60) is None  # held: nobody else gets it
        clock.advance(seconds=30)
        lease_a = renew(first, lease_a, lease_s=60)  # a heartbeat pushes the expiry on
        clock.advance(seconds=45)
        assert claim(second, "host-b:2", lease_s=60) is None  # 75 s after the claim, still held
        first.guard = fence(lease_a)
        move_task(first, shipped_workflow(), task_id, "in_development", actor="agent:code")  # the holder writes
        clock.advance(seconds=61)  # host-a stops heartbeating: its lease expires
        lease_b = claim(second, "host-b:2", lease_s=60)
        assert lease_b is not None and lease_b.token == 2 and lease_b.reclaimed_from == "host-a:1"
        before = first.event_count()
        with pytest.raises(LeaseLostError, match=r"host-a:1 lost its lease \(token 1\).*host-b:2 \(token 2\)"):
            move_task(first, shipped_workflow(), task_id, "review", actor="human:late")
        with pytest.raises(LeaseLostError):
            release(first, lease_a, "done")
        with pytest.raises(LeaseLostError):
            renew(first, lease_a)
        assert first.event_count() == before  # the stale worker's writes reached nothing
        first.guard = None
        release(second, lease_b, "review")
        claims = second.events(task_id=task_id, kind=CLAIMED)
        assert [(e.payload["worker"], e.payload["token"], e.payload.get("reclaimed_from")) for e in claims] == [
            ("host-a:1", 1, None), ("host-b:2", 2, "host-a:1")]
        assert [e.actor for e in claims] == ["worker:host-a:1", "worker:host-b:2"]
        assert [e.payload["worker"] for e in second.events(task_id=task_id, kind=RELEASED)] == ["host-b:2"]
        assert claim(second, "host-c:3") is None  # released in development: no worker takes it again
        assert replay(second.events()) == second.projection()


def test_claims_follow_dependencies_and_the_released_task_is_not_taken_again(new_store_url: NewStoreUrl) -> None:
    with Store.connect(new_store_url(), clock=FakeClock()) as store:
        first, second = _routed_tasks(store, 2)
        from bno_orchestrator.workflow import edit_task

        edit_task(store, first, {"depends_on": [second]}, actor="human:setup")
        lease = claim(store, "w:1")
        assert lease is not None and lease.task_id == second  # the first waits on the second
        assert claim(store, "w:2") is None
        _develop(lease, store)
        release(store, lease, "review")
        assert claim(store, "w:2") is None  # still waiting: its dependency is in review, not done


def test_the_heartbeat_keeps_a_running_task_s_lease(new_store_url: NewStoreUrl) -> None:
    url = new_store_url()
    with Store.connect(url) as setup:
        (task_id,) = _routed_tasks(setup, 1)
    expiries: list[str] = []

    def long_task(lease: Lease, store: Store) -> str:
        deadline = time.monotonic() + WAIT_S
        with Store.connect(url) as rival:
            while len(set(expiries)) < 3:  # the claim's expiry and two renewals by the heartbeat thread
                assert time.monotonic() < deadline, "the heartbeat never renewed the lease"
                with store.write() as tx:  # a fenced write: the lease still holds
                    expiries.append(tx.execute("SELECT expires_at FROM leases WHERE task_id = ?",
                                               (task_id,)).fetchone()[0])
                assert claim(rival, "rival:2", lease_s=3) is None  # nobody can take it meanwhile
                store.wait_for_change(store.last_event_id(), 0.2)
        return "held"

    report = run_worker(lambda: Store.connect(url), long_task, worker="steady:1", lease_s=3, max_tasks=1)
    assert report.ran == [(task_id, "held")] and report.lost == []
    assert sorted(set(expiries)) == list(dict.fromkeys(expiries))  # each renewal pushed the expiry later


def _worker_process(url: str, name: str, barrier: object) -> list[tuple[str, str]]:
    barrier.wait()  # type: ignore[attr-defined]
    report = run_worker(lambda: Store.connect(url), _develop, worker=name, lease_s=30, exit_when_idle=True)
    assert not report.lost
    return report.ran


def test_workers_in_many_processes_run_every_task_exactly_once(new_store_url: NewStoreUrl) -> None:
    url = new_store_url()
    with Store.connect(url) as store:
        ids = _routed_tasks(store, 16)
    ctx = multiprocessing.get_context("spawn")
    workers = 4
    with ctx.Manager() as manager, ctx.Pool(workers) as pool:
        barrier = manager.Barrier(workers)
        results = pool.starmap(_worker_process, [(url, f"host-{i}:w", barrier) for i in range(workers)])
    ran = sorted(task_id for result in results for task_id, _ in result)
    assert ran == ids
    with Store.connect(url) as store:
        claims = collections.Counter(e.task_id for e in store.events(kind=CLAIMED))
        releases = collections.Counter(e.task_id for e in store.events(kind=RELEASED))
        assert claims == releases == dict.fromkeys(ids, 1)
        assert all(task.status == TaskStatus.REVIEW for task in store.tasks())
        for task_id in ids:  # one worker did all of a task's work, inside its lease
            events = store.events(task_id=task_id)
            claimed = next(e for e in events if e.kind == CLAIMED)
            released = next(e for e in events if e.kind == RELEASED)
            assert released.payload["worker"] == claimed.payload["worker"]
            assert [e.kind for e in events if (claimed.id or 0) < (e.id or 0) < (released.id or 0)] == ["task.moved"] * 2
        assert replay(store.events()) == store.projection()


def _hanging_worker(url: str) -> None:
    """A worker whose task never finishes: it records that it is mid-task, then waits to be killed."""
    def hang(lease: Lease, store: Store) -> str:
        move_task(store, shipped_workflow(), lease.task_id, "in_development", actor="agent:code")
        store.append(Event(actor=f"worker:{lease.worker}", kind=MARK, task_id=lease.task_id))
        threading.Event().wait()
        return "never"

    run_worker(lambda: Store.connect(url), hang, worker="doomed:1", lease_s=2.0, max_tasks=1)


def _until(condition: object, what: str, store: Store) -> None:
    """Wait (bounded) until ``condition()`` holds, waking on store changes."""
    deadline = time.monotonic() + WAIT_S
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        store.wait_for_change(store.last_event_id(), 0.2)


def test_a_killed_worker_s_task_is_reclaimed_exactly_once(new_store_url: NewStoreUrl) -> None:
    url = new_store_url()
    with Store.connect(url) as store:
        (task_id,) = _routed_tasks(store, 1)
        ctx = multiprocessing.get_context("spawn")
        doomed = ctx.Process(target=_hanging_worker, args=(url,))
        doomed.start()
        try:
            _until(lambda: bool(store.events(task_id=task_id, kind=MARK)), "the worker to be mid-task", store)
        finally:
            os.kill(doomed.pid or 0, signal.SIGKILL)
            doomed.join(WAIT_S)
        assert doomed.exitcode == -signal.SIGKILL
        assert store.task(task_id).status == TaskStatus.IN_DEVELOPMENT

        def expired() -> bool:
            with store.write() as tx:
                row = tx.execute("SELECT expires_at FROM leases WHERE task_id = ?", (task_id,)).fetchone()
                return bool(row[0] < tx.now().isoformat(timespec="microseconds"))

        _until(expired, "the dead worker's lease to expire", store)
        with ctx.Manager() as manager, ctx.Pool(2) as pool:
            barrier = manager.Barrier(2)  # two survivors race for the orphan at the same moment
            results = pool.starmap(_worker_process, [(url, f"survivor-{i}:w", barrier) for i in range(2)])
        assert sorted(task for result in results for task, _ in result) == [task_id]
        claims = store.events(task_id=task_id, kind=CLAIMED)
        reclaims = [e for e in claims if e.payload.get("reclaimed_from") == "doomed:1"]
        print(f"\n{store.engine}: kill -9 mid-task: claims {len(claims)}, reclaims {len(reclaims)}")
        assert len(claims) == 2 and len(reclaims) == 1
        assert reclaims[0].payload["token"] == 2 and reclaims[0].payload["status"] == "in_development"
        assert [e.payload["worker"] for e in store.events(task_id=task_id, kind=RELEASED)] == [
            reclaims[0].payload["worker"]]
        assert store.task(task_id).status == TaskStatus.REVIEW


def test_a_worker_runs_dispatch_and_the_gates_on_its_clone(tmp_path: Path, new_store_url: NewStoreUrl,
                                                            monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    url = new_store_url()
    monkeypatch.setenv(ENV_VAR, url)  # the clone points at the shared store
    repo = make_repo(tmp_path / "repo")
    agent = add_routed_task(repo)
    use_tool(repo, agent, "fix.py")
    assert main(["--repo", str(repo), "worker", "--once", "--no-advance", "--name", "host-a:1", "--json"]) == 0
    said = json.loads(capsys.readouterr().out)
    assert said == {"worker": "host-a:1", "ran": [{"task": "T-1", "outcome": "review"}], "lost": []}
    with Store.open(repo) as store:
        assert store.location == parse(url).display  # the worker and the clone used the shared store
        kinds = [(e.kind, e.actor) for e in store.events(task_id="T-1")]
        claimed = kinds.index((CLAIMED, "worker:host-a:1"))
        assert kinds[claimed + 1:] == [
            ("task.moved", f"agent:{agent}"), ("dispatch.started", "dispatch"), ("dispatch.finished", "dispatch"),
            ("gates.verified", "gates"), ("task.moved", "gates"), (RELEASED, "worker:host-a:1")]
        run_id = store.events(task_id="T-1", kind="gates.verified")[0].payload["run_id"]
    # the gates ran on this machine: their record is in the clone's own file
    from bno_quality_gates.results import ResultsDB

    with ResultsDB(repo / ".orchestrator" / "state.db") as db:
        assert db.run(str(run_id)) is not None
