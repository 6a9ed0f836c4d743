"""The orchestrator's domain models: tasks, their states and the events of the log.

A task a user writes (``task add``, an import file) is validated by :class:`Task` through
:func:`bno_foundation.yamlio.validate`, so a bad value is reported with its file, line, column and field.
Ranges follow the priority formula: Impact, Urgency, Resources and Risk in 1..5, Dependencies in 1..3, complexity
1 (simple) .. 4 (critical). The schemas of the rule files (``workflows/*.yaml``) are in
:mod:`bno_orchestrator.rules`; the kinds of event and their payloads in :mod:`bno_orchestrator.events`.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from bno_orchestrator import clock

if TYPE_CHECKING:
    from bno_orchestrator.events import EventPayload

COMPLEXITY_NAMES: dict[int, str] = {1: "simple", 2: "medium", 3: "high", 4: "critical"}
COMPLEXITY_LEVELS: dict[str, int] = {name: level for level, name in COMPLEXITY_NAMES.items()}
TASK_ID_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]*$")


def utcnow() -> dt.datetime:
    """The current time, timezone-aware UTC: the orchestrator's one clock (:mod:`bno_orchestrator.clock`),
    fixed by ``--now`` or ``ORCHESTRATOR_NOW`` when given, else the system clock."""
    return clock.now()


def as_utc(value: dt.datetime) -> dt.datetime:
    """``value`` as an aware UTC datetime (naive values are taken to be UTC)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


class TaskStatus(enum.StrEnum):
    """The states of ``workflows/development.yaml`` (the development workflow)."""

    BACKLOG = "backlog"
    ASSIGNED = "assigned"
    IN_DEVELOPMENT = "in_development"
    REVIEW = "review"
    INTEGRATION = "integration"
    QA = "qa"
    TESTING = "testing"
    DONE = "done"
    BLOCKED = "blocked"
    ESCALATED = "escalated"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# Fields a user may set when adding or editing a task (everything but id, status and bookkeeping).
EDITABLE_FIELDS: tuple[str, ...] = (
    "title", "description", "type", "components", "complexity", "impact", "urgency", "dependencies",
    "resources", "risk", "business_value", "time_criticality", "risk_reduction", "job_size", "assignees",
    "depends_on", "labels", "milestone", "phase", "estimate", "due",
)


class Task(_Strict):
    """A unit of work: what it is, how it scores, where it stands and who has it.

    The scoring terms (``impact`` ... ``risk``, the WSJF fields) are optional: a missing one takes the
    default of ``workflows/scoring.yaml`` (and ``task explain`` says so).
    """

    id: str = Field(min_length=1, max_length=64)
    title: str = Field(min_length=1)
    description: str = ""
    type: str = "implementation"
    components: list[str] = Field(default_factory=list)
    complexity: int = Field(default=2, ge=1, le=4, description="1 simple, 2 medium, 3 high, 4 critical")
    impact: int | None = Field(default=None, ge=1, le=5)
    urgency: int | None = Field(default=None, ge=1, le=5)
    dependencies: int | None = Field(default=None, ge=1, le=3)
    resources: int | None = Field(default=None, ge=1, le=5)
    risk: int | None = Field(default=None, ge=1, le=5)
    business_value: int | None = Field(default=None, ge=1, le=20)
    time_criticality: int | None = Field(default=None, ge=1, le=20)
    risk_reduction: int | None = Field(default=None, ge=1, le=20)
    job_size: int | None = Field(default=None, ge=1, le=20)
    status: TaskStatus = TaskStatus.BACKLOG
    assignees: list[str] = Field(default_factory=list)
    support: list[str] = Field(default_factory=list, description="secondary agents (router, escalation)")
    strategy: str | None = None
    depends_on: list[str] = Field(default_factory=list)
    labels: list[str] = Field(default_factory=list)
    milestone: str | None = None
    phase: str | None = None
    estimate: float | None = Field(default=None, ge=0, description="hours")
    due: dt.datetime | None = None
    escalation_level: int = Field(default=0, ge=0)
    blocked_reason: str | None = None
    blocked_from: TaskStatus | None = None
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None
    status_since: dt.datetime | None = None

    @field_validator("id")
    @classmethod
    def _id_shape(cls, value: str) -> str:
        if not TASK_ID_RE.match(value):
            raise ValueError("a task id starts with a letter and holds letters, digits, '-', '_' or '.'")
        return value

    @field_validator("complexity", mode="before")
    @classmethod
    def _complexity_name(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.isdigit():
            level = COMPLEXITY_LEVELS.get(value.strip().lower())
            if level is None:
                raise ValueError(f"complexity is 1..4 or one of {', '.join(COMPLEXITY_LEVELS)}")
            return level
        return value

    @field_validator("components", "depends_on", "labels", "assignees", "support")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))

    @field_validator("due", "created_at", "updated_at", "status_since")
    @classmethod
    def _utc(cls, value: dt.datetime | None) -> dt.datetime | None:
        return None if value is None else as_utc(value)

    @model_validator(mode="after")
    def _no_self_dependency(self) -> Task:
        if self.id in self.depends_on:
            raise ValueError(f"task {self.id} cannot depend on itself")
        return self

    @property
    def complexity_name(self) -> str:
        """``simple``, ``medium``, ``high`` or ``critical``."""
        return COMPLEXITY_NAMES[self.complexity]


def unfinished_dependencies(task: Task, tasks: Mapping[str, Task]) -> list[str]:
    """The ids in ``task.depends_on`` that are not done (unknown ids count as unfinished)."""
    waiting = []
    for dep in task.depends_on:
        other = tasks.get(dep)
        if other is None or other.status != TaskStatus.DONE:
            waiting.append(dep)
    return waiting


class Event(BaseModel):
    """One entry of the append-only event log: who did what to which task, when and why.

    ``kind`` is a plain string: the orchestrator writes the kinds of
    :class:`bno_orchestrator.events.EventKind`; other components may log kinds of their own.
    """

    model_config = ConfigDict(extra="forbid")

    id: int | None = None
    ts: dt.datetime | None = None
    actor: str = Field(min_length=1)
    kind: str = Field(min_length=1)
    task_id: str | None = None
    payload: dict[str, Any] = Field(default_factory=dict)
    reason: str = ""

    @field_validator("ts")
    @classmethod
    def _utc(cls, value: dt.datetime | None) -> dt.datetime | None:
        return None if value is None else as_utc(value)

    @classmethod
    def of(cls, data: EventPayload, *, actor: str, task_id: str | None, reason: str = "") -> Event:
        """The event recording ``data`` (a typed payload of :mod:`bno_orchestrator.events`)."""
        return cls(actor=actor, kind=data.KIND, task_id=task_id, payload=data.payload(), reason=reason)
