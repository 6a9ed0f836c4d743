"""Dispatch workers on many machines: claim a routed task under a lease, heartbeat, release; reclaim the
task of a worker that died once its lease expires; refuse a stale worker's late writes (fencing).

A lease is one row of the store's ``leases`` table per task: the worker holding it, a fencing ``token``
that grows with every claim of the task, and an expiry. Everything happens inside the store's serialised
write transactions, so two workers can never claim one task at once:

* :func:`claim` picks, in one transaction, a task no live lease covers: a reclaim first (a task whose
  holder's lease expired unreleased: the holder died or lost the store), else the best ready routed
  (``assigned``) task. It writes the lease and a ``worker.claimed`` event (with ``reclaimed_from`` when it
  takes over), so the history shows who ran what.
* :class:`Heartbeat` renews the lease from a thread with a store connection of its own, every third of
  the lease; it stops renewing the moment the lease is found lost.
* :func:`fence` is the store's write guard while the task runs: every write transaction first checks that
  this lease still holds (same token, not released, not expired) and otherwise raises
  :class:`LeaseLostError`, so nothing a stale worker does after a reclaim reaches the log.
* :func:`release` ends the lease with a ``worker.released`` event (fenced too).

:func:`run_worker` is the loop ``orchestrator worker`` runs: claim, run the task with the heartbeat
going, release; when nothing is ready it waits for the store to change (LISTEN/NOTIFY on PostgreSQL).
The default task runner is :func:`dispatch_runner`: the dispatch chain of :mod:`.dispatch.run` (agent,
gates, pipeline) on this machine's clone.

Lease times come from the store's clock: hosts sharing a store keep their clocks in sync (NTP); a lease
is many seconds, skew is milliseconds.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import socket
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bno_orchestrator.errors import StoreError, UserError
from bno_orchestrator.models import Event, Task, TaskStatus, unfinished_dependencies

if TYPE_CHECKING:
    from bno_orchestrator.dispatch.run import DispatchOptions
    from bno_orchestrator.rules import ScoringConfig
    from bno_orchestrator.store import Store, Transaction

CLAIMED = "worker.claimed"
RELEASED = "worker.released"
DEFAULT_LEASE_S = 60.0
DEFAULT_IDLE_WAIT_S = 30.0

StoreFactory = Callable[[], "Store"]
TaskRunner = Callable[["Lease", "Store"], str]  # runs the leased task; returns the outcome to record


class LeaseLostError(UserError):
    """This worker's lease on a task no longer holds (expired, reclaimed or released): its write is refused."""


@dataclass(frozen=True)
class Lease:
    """A worker's claim on a task until ``expires_at``; ``token`` fences out every earlier holder."""

    task_id: str
    worker: str
    token: int
    expires_at: dt.datetime
    reclaimed_from: str | None = None


@dataclass(frozen=True)
class LeaseRow:
    """The stored lease of a task."""

    worker: str
    token: int
    expires_at: dt.datetime
    released: bool

    def live(self, now: dt.datetime) -> bool:
        """Held and not yet expired."""
        return not self.released and self.expires_at > now


def default_worker_name() -> str:
    """``HOST:PID``: unique among the workers sharing a store."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _ts(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat(timespec="microseconds")


def _lease_rows(tx: Transaction, task_id: str | None = None) -> dict[str, LeaseRow]:
    sql = "SELECT task_id, worker, token, expires_at, released FROM leases"
    rows = tx.execute(sql + " WHERE task_id = ?", (task_id,)) if task_id else tx.execute(sql)
    return {str(r[0]): LeaseRow(str(r[1]), int(r[2]), dt.datetime.fromisoformat(r[3]), bool(r[4])) for r in rows}


def _pick(tasks: Sequence[Task], leases: Mapping[str, LeaseRow], now: dt.datetime,
          scoring: ScoringConfig | None) -> tuple[Task, LeaseRow | None] | None:
    """The task to claim: a reclaim first (oldest expiry), else the best ready routed task."""
    by_id = {t.id: t for t in tasks}
    orphans = [(leases[t.id], t) for t in tasks
               if t.id in leases and not leases[t.id].released and not leases[t.id].live(now)
               and t.status in (TaskStatus.ASSIGNED, TaskStatus.IN_DEVELOPMENT)]
    if orphans:
        row, task = min(orphans, key=lambda pair: (pair[0].expires_at, pair[1].id))
        return task, row
    ready = [t for t in tasks if t.status == TaskStatus.ASSIGNED and t.assignees
             and not (t.id in leases and leases[t.id].live(now)) and not unfinished_dependencies(t, by_id)]
    if not ready:
        return None
    if scoring is None:
        best = min(ready, key=lambda t: t.id)
    else:
        from bno_orchestrator.scoring import score_tasks

        scores = score_tasks(tasks, scoring, now=now)
        best = min(ready, key=lambda t: (-scores[t.id].value, t.id))
    return best, leases.get(best.id)


def claim(store: Store, worker: str, *, lease_s: float = DEFAULT_LEASE_S,
          scoring: ScoringConfig | None = None) -> Lease | None:
    """Claim one task for ``worker`` (None when none is free); see the module docstring."""
    with store.write() as tx:
        now = tx.now()
        picked = _pick(tx.tasks(), _lease_rows(tx), now, scoring)
        if picked is None:
            return None
        task, previous = picked
        token = (previous.token if previous else 0) + 1
        expires = now + dt.timedelta(seconds=lease_s)
        reclaimed_from = previous.worker if previous is not None and not previous.released else None
        tx.execute(
            "INSERT INTO leases (task_id, worker, token, claimed_at, expires_at, released) VALUES (?, ?, ?, ?, ?, 0) "
            "ON CONFLICT(task_id) DO UPDATE SET worker = excluded.worker, token = excluded.token, "
            "claimed_at = excluded.claimed_at, expires_at = excluded.expires_at, released = 0",
            (task.id, worker, token, _ts(now), _ts(expires)),
        )
        payload: dict[str, object] = {"worker": worker, "token": token, "expires_at": _ts(expires),
                                      "status": task.status.value}
        if reclaimed_from is not None:
            payload["reclaimed_from"] = reclaimed_from
        reason = (f"lease of {reclaimed_from} expired {_ts(previous.expires_at)}" if previous and reclaimed_from
                  else "")
        tx.append(Event(actor=f"worker:{worker}", kind=CLAIMED, task_id=task.id, payload=payload, reason=reason))
        return Lease(task.id, worker, token, expires, reclaimed_from)


def check_lease(tx: Transaction, lease: Lease) -> None:
    """Raise :class:`LeaseLostError` unless ``lease`` still holds in this transaction."""
    row = _lease_rows(tx, lease.task_id).get(lease.task_id)
    now = tx.now()
    if row is None or row.token != lease.token or row.worker != lease.worker:
        holder = f"{row.worker} (token {row.token})" if row else "nobody"
        raise LeaseLostError(f"{lease.task_id}: worker {lease.worker} lost its lease (token {lease.token}); "
                             f"it is now held by {holder}: this write is refused")
    if row.released:
        raise LeaseLostError(f"{lease.task_id}: the lease of worker {lease.worker} (token {lease.token}) was "
                             "released: this write is refused")
    if not row.live(now):
        raise LeaseLostError(f"{lease.task_id}: the lease of worker {lease.worker} (token {lease.token}) expired "
                             f"at {_ts(row.expires_at)}: this write is refused")


def fence(lease: Lease) -> Callable[[Transaction], None]:
    """The store write guard that refuses every write once ``lease`` no longer holds."""
    def guard(tx: Transaction) -> None:
        check_lease(tx, lease)

    return guard


def renew(store: Store, lease: Lease, *, lease_s: float = DEFAULT_LEASE_S) -> Lease:
    """Push the lease's expiry ``lease_s`` past now (a heartbeat); LeaseLostError when it no longer holds."""
    with store.write() as tx:
        check_lease(tx, lease)
        expires = tx.now() + dt.timedelta(seconds=lease_s)
        tx.execute("UPDATE leases SET expires_at = ? WHERE task_id = ? AND token = ?",
                   (_ts(expires), lease.task_id, lease.token))
    return Lease(lease.task_id, lease.worker, lease.token, expires, lease.reclaimed_from)


def release(store: Store, lease: Lease, outcome: str) -> None:
    """End the lease with a ``worker.released`` event carrying ``outcome`` (refused once the lease is lost)."""
    with store.write() as tx:
        check_lease(tx, lease)
        tx.execute("UPDATE leases SET released = 1 WHERE task_id = ? AND token = ?", (lease.task_id, lease.token))
        status = tx.task(lease.task_id).status.value
        tx.append(Event(actor=f"worker:{lease.worker}", kind=RELEASED, task_id=lease.task_id,
                        payload={"worker": lease.worker, "token": lease.token, "outcome": outcome, "status": status}))


class Heartbeat:
    """Renews a lease every ``lease_s / 3`` seconds from a thread with its own store connection."""

    def __init__(self, open_store: StoreFactory, lease: Lease, lease_s: float) -> None:
        self._open_store = open_store
        self.lease = lease
        self._lease_s = lease_s
        self._stop = threading.Event()
        self.lost: LeaseLostError | None = None
        self.trouble: StoreError | None = None  # the last failed beat (the store was unreachable)
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{lease.task_id}", daemon=True)

    def _run(self) -> None:
        store: Store | None = None
        try:
            while not self._stop.wait(self._lease_s / 3):
                try:
                    store = store or self._open_store()
                    self.lease = renew(store, self.lease, lease_s=self._lease_s)
                except LeaseLostError as exc:
                    self.lost = exc
                    return
                except StoreError as exc:  # the store is unreachable for now: the next beat tries again
                    self.trouble = exc
                    if store is not None:
                        with contextlib.suppress(StoreError):
                            store.close()
                    store = None
        finally:
            if store is not None:
                store.close()

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class WorkerReport:
    """What one worker did: the tasks it ran (with their outcomes) and the ones whose lease it lost."""

    worker: str
    ran: list[tuple[str, str]]
    lost: list[str]


def run_task(open_store: StoreFactory, store: Store, lease: Lease, runner: TaskRunner, lease_s: float) -> str:
    """Run the leased task with the heartbeat going and every write fenced; release it with its outcome."""
    store.guard = fence(lease)
    try:
        with Heartbeat(open_store, lease, lease_s):
            try:
                outcome = runner(lease, store)
            except LeaseLostError:
                raise
            except Exception as exc:  # the task failed; the worker records it and goes on
                outcome = f"error: {type(exc).__name__}: {exc}"
    finally:
        store.guard = None
    release(store, lease, outcome)
    return outcome


def run_worker(open_store: StoreFactory, runner: TaskRunner, *, worker: str | None = None,
               lease_s: float = DEFAULT_LEASE_S, scoring: ScoringConfig | None = None, max_tasks: int | None = None,
               idle_wait_s: float = DEFAULT_IDLE_WAIT_S, exit_when_idle: bool = False,
               stop: threading.Event | None = None, on_claim: Callable[[Lease], None] | None = None) -> WorkerReport:
    """Claim and run tasks until ``max_tasks`` ran, ``stop`` is set, or (``exit_when_idle``) none is free."""
    name = worker or default_worker_name()
    report = WorkerReport(name, [], [])
    stop = stop or threading.Event()
    with open_store() as store:
        while not stop.is_set() and (max_tasks is None or len(report.ran) < max_tasks):
            seen = store.last_event_id()
            lease = claim(store, name, lease_s=lease_s, scoring=scoring)
            if lease is None:
                if exit_when_idle:
                    break
                store.wait_for_change(seen, idle_wait_s)
                continue
            if on_claim is not None:
                on_claim(lease)
            try:
                report.ran.append((lease.task_id, run_task(open_store, store, lease, runner, lease_s)))
            except LeaseLostError:
                report.lost.append(lease.task_id)
    return report


def dispatch_runner(repo: Path, options: DispatchOptions | None = None) -> TaskRunner:
    """The default runner: :func:`bno_orchestrator.dispatch.run.dispatch` of the leased task on this machine's
    clone ``repo`` (agent, gates and pipeline run here; every write goes to the shared store, fenced)."""
    import dataclasses

    from bno_orchestrator.config import load_config
    from bno_orchestrator.dispatch.run import DispatchOptions, dispatch

    config = load_config(repo)
    base = options or DispatchOptions()

    def run(lease: Lease, store: Store) -> str:
        result = dispatch(repo, dataclasses.replace(base, task_id=lease.task_id, next=False),
                          config=config, store=store)
        return result.status or "dispatched"

    return run
