"""A dispatch whose orchestrator died without recording the end (``kill -9``, OOM, a lost machine) leaves
an attempt open in the store and perhaps an agent still running in the worktree. The next dispatch of
the task, holding the task's lock (so the old orchestrator is certainly gone), finds such an attempt,
stops every process still marked with the attempt's worktree (any session or process group), and records
the attempt as interrupted, before anything new starts beside it.
"""

from __future__ import annotations

from dataclasses import dataclass

from bno_foundation.processes import processes_with_env, stop_processes
from bno_orchestrator.events import DispatchInterrupted, EventKind
from bno_orchestrator.models import Event
from bno_orchestrator.store import Store

ACTOR = "dispatch"
WORKTREE_ENV = "ORCHESTRATOR_WORKTREE"  # set for every executor (see executors.run_executor)


@dataclass(frozen=True)
class Leftover:
    """An attempt that was started and never recorded as ended."""

    attempt: int
    agent: str
    executor: str
    worktree: str
    log_file: str


def open_attempt(store: Store, task_id: str) -> Leftover | None:
    """The task's last attempt when it has a ``dispatch.started`` and neither a ``dispatch.finished`` nor a
    ``dispatch.handoff``."""
    started: dict[int, Event] = {}
    finished: set[int] = set()
    for event in store.events(task_id=task_id):
        attempt = event.payload.get("attempt")
        if not isinstance(attempt, int):
            continue
        if event.kind == EventKind.DISPATCH_STARTED.value:
            started[attempt] = event
        elif event.kind in (EventKind.DISPATCH_FINISHED.value, EventKind.DISPATCH_HANDOFF.value):
            finished.add(attempt)  # a hand-off ends the attempt's process part: a person works on
    if not started:
        return None
    last = max(started)
    if last in finished:
        return None
    payload = started[last].payload
    return Leftover(last, str(payload.get("agent", "")), str(payload.get("executor", "")),
                    str(payload.get("worktree", "")), str(payload.get("log_file") or ""))


def reap_leftover(store: Store, task_id: str) -> str | None:
    """Stop what an unfinished attempt of ``task_id`` left running and record it as interrupted.

    Call it holding the task's dispatch lock. Returns a note for the user, or None when nothing was open.
    """
    leftover = open_attempt(store, task_id)
    if leftover is None:
        return None
    stopped = stop_processes(processes_with_env(WORKTREE_ENV, leftover.worktree)) if leftover.worktree else []
    what = f"{len(stopped)} leftover process(es) stopped" if stopped else "no process was left"
    cause = "orchestrator died"
    store.append(Event.of(
        DispatchInterrupted(leftover.attempt, leftover.agent, leftover.executor, leftover.log_file, cause),
        actor=ACTOR, task_id=task_id,
        reason=f"attempt {leftover.attempt} never recorded an end (its orchestrator died); {what}",
    ))
    return f"attempt {leftover.attempt} of {task_id} was left open by an orchestrator that died: {what}"
