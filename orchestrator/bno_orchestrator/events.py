"""The kinds of event the orchestrator writes to its log, and the payloads of the main ones.

:class:`EventKind` is a ``StrEnum``: a member compares equal to, hashes like and is stored as its plain
string, so logs written before it existed read back unchanged. :attr:`bno_orchestrator.models.Event.kind`
stays a ``str`` (other components may log kinds of their own); code that writes or matches a kind uses
the members.

Each payload class below names its kind (``KIND``) and builds the JSON payload with exactly the keys its
readers (the projection in :mod:`bno_orchestrator.store`, escalation, the router's track record, the
board, the reports, the prompt's last gate failures) expect; :meth:`bno_orchestrator.models.Event.of`
makes the event. This module imports nothing heavy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar, Protocol


class EventKind(StrEnum):
    """Every kind of event the orchestrator writes."""

    TASK_CREATED = "task.created"  # a new task (payload: the task's fields)
    TASK_EDITED = "task.edited"  # fields changed (not the status)
    TASK_MOVED = "task.moved"  # a workflow transition
    TASK_ROUTED = "task.routed"  # the router chose a primary agent (and moved the task to assigned)
    TASK_DEFERRED = "task.deferred"  # the router could not route the task (logged only)
    TASK_ESCALATED = "task.escalated"  # an escalation level or trigger fired
    TASK_DELETED = "task.deleted"  # the task leaves the projection (payload: its fields, so it can come back)
    TASK_RESTORED = "task.restored"  # a deleted task comes back as it was (payload: its fields)
    DISPATCH_STARTED = "dispatch.started"  # an executor attempt begins in the task's worktree
    DISPATCH_HANDOFF = "dispatch.handoff"  # a manual executor: the prompt goes to a person
    DISPATCH_FINISHED = "dispatch.finished"  # the executor exited, timed out or was interrupted
    GATES_VERIFIED = "gates.verified"  # the gates' verdict on a task's work (after dispatch, or in a pipeline state)
    MERGE_CONFLICT = "merge.conflict"  # integrating the target into the task branch conflicted (files named)
    TASK_LANDED = "task.landed"  # the task branch landed in its target (merged, or a pull request opened)


# The kinds that change a task's projection; every other kind is only logged.
PROJECTED_KINDS: frozenset[EventKind] = frozenset({
    EventKind.TASK_CREATED, EventKind.TASK_EDITED, EventKind.TASK_MOVED, EventKind.TASK_ROUTED,
    EventKind.TASK_ESCALATED, EventKind.TASK_DELETED, EventKind.TASK_RESTORED,
})
# The kinds a person's ``task undo`` can invert (the router's and escalation's decisions are not undone).
UNDOABLE_KINDS: frozenset[EventKind] = frozenset({
    EventKind.TASK_CREATED, EventKind.TASK_EDITED, EventKind.TASK_MOVED, EventKind.TASK_DELETED,
    EventKind.TASK_RESTORED,
})
# The payload key an undo writes beside its own fields: the id of the event it inverts.
UNDOES_KEY = "undoes"
# The kinds that can change a task's status: their payload's "to" (task.created: the task's own status).
STATUS_KINDS: frozenset[EventKind] = frozenset({
    EventKind.TASK_CREATED, EventKind.TASK_MOVED, EventKind.TASK_ROUTED, EventKind.TASK_ESCALATED,
})


class EventPayload(Protocol):
    """A typed payload: its kind, and the JSON-ready dict stored with the event."""

    KIND: ClassVar[EventKind]

    def payload(self) -> dict[str, Any]:
        """The JSON-ready payload."""
        ...


# ------------------------------------------------------------------------------------------------ tasks


@dataclass(frozen=True, slots=True)
class TaskCreated:
    """``task.created``: the new task's fields (as JSON; bookkeeping timestamps left out)."""

    KIND: ClassVar[EventKind] = EventKind.TASK_CREATED
    task: Mapping[str, Any]

    def payload(self) -> dict[str, Any]:
        """``{"task": {...}}``."""
        return {"task": dict(self.task)}


@dataclass(frozen=True, slots=True)
class TaskEdited:
    """``task.edited``: the changed fields' new and previous values."""

    KIND: ClassVar[EventKind] = EventKind.TASK_EDITED
    changes: Mapping[str, Any]
    previous: Mapping[str, Any]
    undoes: int | None = None  # the event this edit inverts (``task undo``)

    def payload(self) -> dict[str, Any]:
        """``{"changes": {...}, "previous": {...}}`` (plus ``"undoes": ID`` for an undo)."""
        return _with_undoes({"changes": dict(self.changes), "previous": dict(self.previous)}, self.undoes)


@dataclass(frozen=True, slots=True)
class TaskMoved:
    """``task.moved``: a transition of the development workflow."""

    KIND: ClassVar[EventKind] = EventKind.TASK_MOVED
    from_: str
    to: str
    undoes: int | None = None  # the event this move inverts (``task undo``)

    def payload(self) -> dict[str, Any]:
        """``{"from": STATE, "to": STATE}`` (plus ``"undoes": ID`` for an undo)."""
        return _with_undoes({"from": self.from_, "to": self.to}, self.undoes)


@dataclass(frozen=True, slots=True)
class TaskDeleted:
    """``task.deleted``: the task leaves the projection. ``task`` holds every field it had (bookkeeping
    timestamps included), so :class:`TaskRestored` can bring it back exactly; ``detached`` names the tasks
    whose dependency on it a forced delete removed (by ``task.edited`` events before this one)."""

    KIND: ClassVar[EventKind] = EventKind.TASK_DELETED
    task: Mapping[str, Any]
    detached: Sequence[str] = ()
    undoes: int | None = None  # the event this delete inverts (``task undo`` of a create or a restore)

    def payload(self) -> dict[str, Any]:
        """``{"task": {...}, "detached": [ID, ...]}`` (plus ``"undoes": ID`` for an undo)."""
        return _with_undoes({"task": dict(self.task), "detached": list(self.detached)}, self.undoes)


@dataclass(frozen=True, slots=True)
class TaskRestored:
    """``task.restored``: a deleted task back in the projection as it was when ``deleted_event`` removed it
    (``task``: the fields that event recorded)."""

    KIND: ClassVar[EventKind] = EventKind.TASK_RESTORED
    task: Mapping[str, Any]
    deleted_event: int
    undoes: int | None = None  # the event this restore inverts (``task undo`` of a delete)

    def payload(self) -> dict[str, Any]:
        """``{"task": {...}, "deleted_event": ID}`` (plus ``"undoes": ID`` for an undo)."""
        return _with_undoes({"task": dict(self.task), "deleted_event": self.deleted_event}, self.undoes)


def _with_undoes(payload: dict[str, Any], undoes: int | None) -> dict[str, Any]:
    """``payload`` with ``"undoes"`` added only for an undo (other events keep their exact payload)."""
    if undoes is not None:
        payload[UNDOES_KEY] = undoes
    return payload


@dataclass(frozen=True, slots=True)
class TaskRouted:
    """``task.routed``: the router's decision (:meth:`bno_orchestrator.routing.Decision.payload`) and the
    state the task moves to."""

    KIND: ClassVar[EventKind] = EventKind.TASK_ROUTED
    decision: Mapping[str, Any]
    to: str

    def payload(self) -> dict[str, Any]:
        """The decision's fields plus ``"to"``."""
        return {**self.decision, "to": self.to}


@dataclass(frozen=True, slots=True)
class TaskDeferred:
    """``task.deferred``: the router's decision not to route the task now, with its reasons."""

    KIND: ClassVar[EventKind] = EventKind.TASK_DEFERRED
    decision: Mapping[str, Any]

    def payload(self) -> dict[str, Any]:
        """The decision's fields."""
        return dict(self.decision)


@dataclass(frozen=True, slots=True)
class TaskEscalated:
    """``task.escalated``: one escalation rule firing (``to``: the state it moves the task to, if any)."""

    KIND: ClassVar[EventKind] = EventKind.TASK_ESCALATED
    rule: str
    level: int
    action: str
    agents: Sequence[str]
    to: str | None

    def payload(self) -> dict[str, Any]:
        """``{"rule", "level", "action", "agents", "to"}``."""
        return {"rule": self.rule, "level": self.level, "action": self.action, "agents": list(self.agents),
                "to": self.to}


# --------------------------------------------------------------------------------------------- dispatch


@dataclass(frozen=True, slots=True)
class DispatchStarted:
    """``dispatch.started``: one executor attempt, where it works and what it runs."""

    KIND: ClassVar[EventKind] = EventKind.DISPATCH_STARTED
    attempt: int
    agent: str
    executor: str
    worktree: str
    branch: str
    base: str
    worktree_created: bool
    prompt_file: str
    log_file: str | None  # None for the manual executor
    argv: Sequence[str]  # as shown: the prompt item replaced by a note
    support: Sequence[str]

    def payload(self) -> dict[str, Any]:
        """The fields above, as JSON."""
        return {"attempt": self.attempt, "agent": self.agent, "executor": self.executor, "worktree": self.worktree,
                "branch": self.branch, "base": self.base, "worktree_created": self.worktree_created,
                "prompt_file": self.prompt_file, "log_file": self.log_file, "argv": list(self.argv),
                "support": list(self.support)}


@dataclass(frozen=True, slots=True)
class DispatchHandoff:
    """``dispatch.handoff``: a manual executor; a person takes the prompt file and works in the worktree."""

    KIND: ClassVar[EventKind] = EventKind.DISPATCH_HANDOFF
    attempt: int
    agent: str
    prompt_file: str
    worktree: str

    def payload(self) -> dict[str, Any]:
        """The fields above, as JSON."""
        return {"attempt": self.attempt, "agent": self.agent, "prompt_file": self.prompt_file,
                "worktree": self.worktree}


@dataclass(frozen=True, slots=True)
class DispatchFinished:
    """``dispatch.finished``: how the executor ended (:meth:`ExecutorOutcome.as_json`) and what it changed.

    The agent's claim is recorded, never trusted (``claim_trusted`` is always false). For the agent CLIs the
    outcome carries what their machine output said: ``error_kind`` (None, not_logged_in, network, turn_limit,
    budget, permission_denied, crash), ``error``, ``cost_usd``, ``input_tokens``, ``output_tokens``, ``turns``,
    ``session_id`` and ``final_message``."""

    KIND: ClassVar[EventKind] = EventKind.DISPATCH_FINISHED
    attempt: int
    agent: str
    outcome: Mapping[str, Any]
    changed_files: Sequence[str]

    def payload(self) -> dict[str, Any]:
        """The outcome's fields plus attempt, agent, changed files and ``claim_trusted: false``."""
        return {"attempt": self.attempt, "agent": self.agent, **self.outcome,
                "changed_files": list(self.changed_files), "claim_trusted": False}


@dataclass(frozen=True, slots=True)
class DispatchInterrupted:
    """``dispatch.finished`` of an attempt cut short (Ctrl-C, SIGTERM): the process group is dead."""

    KIND: ClassVar[EventKind] = EventKind.DISPATCH_FINISHED
    attempt: int
    agent: str
    executor: str
    log_file: str
    cause: str = "SIGINT"  # SIGINT, SIGTERM, SIGHUP, or the exception's name

    def payload(self) -> dict[str, Any]:
        """``{"attempt", "agent", "kind", "interrupted": true, "cause", "log_file", "claim_trusted": false}``."""
        return {"attempt": self.attempt, "agent": self.agent, "kind": self.executor, "interrupted": True,
                "cause": self.cause, "log_file": self.log_file, "claim_trusted": False}


# ------------------------------------------------------------------------------------------------ gates


@dataclass(frozen=True, slots=True)
class GatesVerified:
    """``gates.verified``: the gates' verdict on a task's work (the router's track record and escalation
    read these)."""

    KIND: ClassVar[EventKind] = EventKind.GATES_VERIFIED
    run_id: str
    passed: bool
    agent: str
    task_type: str
    stage: str = "in_development"  # the workflow state whose gates ran

    def payload(self) -> dict[str, Any]:
        """``{"run_id", "passed", "agent", "task_type", "stage"}``."""
        return {"run_id": self.run_id, "passed": self.passed, "agent": self.agent, "task_type": self.task_type,
                "stage": self.stage}


# ---------------------------------------------------------------------------------------------- landing


@dataclass(frozen=True, slots=True)
class MergeConflict:
    """``merge.conflict``: the target did not merge into the task branch; the merge was aborted."""

    KIND: ClassVar[EventKind] = EventKind.MERGE_CONFLICT
    stage: str
    target: str
    target_sha: str
    files: Sequence[str]

    def payload(self) -> dict[str, Any]:
        """``{"stage", "target", "target_sha", "files"}``."""
        return {"stage": self.stage, "target": self.target, "target_sha": self.target_sha, "files": list(self.files)}


@dataclass(frozen=True, slots=True)
class TaskLanded:
    """``task.landed``: the task branch is in its target (``strategy`` ff or merge: ``commit`` is the target's
    new head) or a pull request was opened (``pr_url``)."""

    KIND: ClassVar[EventKind] = EventKind.TASK_LANDED
    branch: str
    strategy: str
    target: str
    commit: str | None
    pr_url: str | None
    worktree_removed: bool
    branch_deleted: bool

    def payload(self) -> dict[str, Any]:
        """``{"branch", "strategy", "target", "commit", "pr_url", "worktree_removed", "branch_deleted"}``."""
        return {"branch": self.branch, "strategy": self.strategy, "target": self.target, "commit": self.commit,
                "pr_url": self.pr_url, "worktree_removed": self.worktree_removed,
                "branch_deleted": self.branch_deleted}
