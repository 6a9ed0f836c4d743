"""Schemas of the rule files: ``workflows/development.yaml``, ``routing.yaml``, ``escalation.yaml``,
``scoring.yaml`` and ``dispatch.yaml``.

Each file is validated by one of these pydantic models through :func:`bno_foundation.yamlio.validate`
(see :mod:`bno_orchestrator.config`), so a bad value is reported with its file, line, column and field.
The domain models (tasks, events) are in :mod:`bno_orchestrator.models`.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from bno_orchestrator.agents.spec import ConcreteExecutorKind, ExecutorSpec
from bno_orchestrator.scorers import ScorerName

if TYPE_CHECKING:
    from bno_orchestrator.models import Task

AGENT_ID_RE = r"^[a-z][a-z0-9-]*$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------------------------------------- workflow


class StateSpec(_Strict):
    """One state of the development workflow and the moves out of it (target -> roles allowed)."""

    description: str = ""
    load: bool = Field(default=False, description="a task in this state counts against its agent's capacity")
    next: dict[str, list[str]] = Field(default_factory=dict)
    gates: list[str] = Field(
        default_factory=list,
        description="pipeline states: the gates that must pass for a task to move on (gate names of "
                    "gates.yaml, or 'affected' for the gates the task's change touches, 'all' for every gate)")
    approve: Literal["gates", "human"] = Field(
        default="gates", description="pipeline states: who moves the task on once its gates passed")
    integrate: bool = Field(
        default=False, description="pipeline states: merge the target branch into the task branch on entry "
                                   "(a conflict sends the task back to development, naming the files)")


class WorkflowSpec(_Strict):
    """``workflows/development.yaml``: states, allowed transitions and who may make each one."""

    version: int = 1
    initial: str = "backlog"
    terminal: list[str] = Field(default_factory=lambda: ["done"])
    roles: dict[str, str] = Field(default_factory=dict, description="role -> what it is")
    states: dict[str, StateSpec]
    pipeline: list[str] = Field(
        default_factory=list,
        description="the forward path after development (e.g. review, integration, qa, testing, done): "
                    "`orchestrator advance` runs each state's gates and moves the task on; the last state "
                    "lands the task branch in its target")


# ----------------------------------------------------------------------------------------------- routing


class MatrixEntry(_Strict):
    """One row of a routing matrix: the primary agent and its secondary support."""

    label: str = ""
    primary: str = Field(pattern=AGENT_ID_RE)
    secondary: list[str] = Field(default_factory=list)


class ComplexityRule(_Strict):
    """One row of the complexity routing matrix: coordination strategy, team size, escalation path."""

    level: int = Field(ge=1, le=4)
    route: str = ""
    strategy: str = Field(min_length=1)
    coordination: str = ""
    team: tuple[int, int] = (1, 1)
    escalation: list[str] = Field(default_factory=list)
    note: str = ""

    @model_validator(mode="after")
    def _team_range(self) -> ComplexityRule:
        low, high = self.team
        if not 1 <= low <= high:
            raise ValueError("team is [min, max] with 1 <= min <= max")
        return self


class SupportRule(_Strict):
    """Add a support agent when a task matches (support team assembly)."""

    id: str = Field(min_length=1)
    add: str = Field(pattern=AGENT_ID_RE)
    reason: str = ""
    min_complexity: int | None = Field(default=None, ge=1, le=4)
    components: list[str] = Field(default_factory=list)
    labels: list[str] = Field(default_factory=list)
    task_types: list[str] = Field(default_factory=list)

    def matches(self, task: Task) -> bool:
        """Whether every condition this rule names holds for ``task``."""
        if self.min_complexity is not None and task.complexity < self.min_complexity:
            return False
        if self.components and not set(self.components) & set(task.components):
            return False
        if self.labels and not set(self.labels) & set(task.labels):
            return False
        return not (self.task_types and task.type not in self.task_types)


class RoutingWeights(_Strict):
    """Points a candidate earns from each matrix hit."""

    type_primary: float = 3
    component_primary: float = 3
    type_secondary: float = 1
    component_secondary: float = 1
    declared: float = 1


class WorkloadRules(_Strict):
    """Capacity, rotation and burnout settings (agent workload balancing)."""

    high_complexity: int = Field(default=3, ge=1, le=4)
    max_consecutive_high: int = Field(default=2, ge=1)
    track_record_min_runs: int = Field(default=1, ge=1)


class RoutingRules(_Strict):
    """``workflows/routing.yaml``."""

    version: int = 1
    task_types: dict[str, MatrixEntry]
    components: dict[str, MatrixEntry]
    complexity: dict[str, ComplexityRule]
    support_rules: list[SupportRule] = Field(default_factory=list)
    weights: RoutingWeights = Field(default_factory=lambda: RoutingWeights())
    workload: WorkloadRules = Field(default_factory=lambda: WorkloadRules())

    @model_validator(mode="after")
    def _every_level(self) -> RoutingRules:
        levels = sorted(rule.level for rule in self.complexity.values())
        if levels != [1, 2, 3, 4]:
            raise ValueError("complexity needs exactly one rule for each level 1..4")
        return self

    def complexity_rule(self, level: int) -> ComplexityRule:
        """The rule for complexity ``level`` (1..4)."""
        for rule in self.complexity.values():
            if rule.level == level:
                return rule
        raise KeyError(level)


# -------------------------------------------------------------------------------------------- escalation

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: Any) -> dt.timedelta:
    """``"2h"``, ``"1d"``, ``"30m"``, ``"3d"`` or a number of seconds -> timedelta."""
    if isinstance(value, dt.timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return dt.timedelta(seconds=float(value))
    if isinstance(value, str):
        match = _DURATION_RE.match(value)
        if match:
            return dt.timedelta(seconds=float(match.group(1)) * _DURATION_UNITS[match.group(2)])
    raise ValueError("a duration is a number of seconds or like '30m', '2h', '1d', '1w'")


def format_duration(value: dt.timedelta) -> str:
    """The shortest of ``Nd``/``Nh``/``Nm``/``Ns`` that is exact, else hours with decimals."""
    seconds = value.total_seconds()
    for unit in ("w", "d", "h", "m"):
        size = _DURATION_UNITS[unit]
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    if seconds < 3600:
        return f"{int(seconds)}s"
    return f"{seconds / 3600:.1f}h"


class EscalationLevel(_Strict):
    """One level of the issue escalation process; a task reaches it after ``after`` in a state."""

    level: int = Field(ge=1)
    name: str = Field(min_length=1)
    after: dt.timedelta = dt.timedelta(0)
    within: dt.timedelta | None = None
    add: list[str] = Field(default_factory=list, description="agents; 'secondary' = the routed support")
    status: str | None = None
    description: str = ""

    @field_validator("after", "within", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return None if value is None else parse_duration(value)


class EscalationTrigger(_Strict):
    """A time-, failure- or load-based escalation trigger."""

    id: str = Field(min_length=1, pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    kind: Literal["time_in_state", "failed_gates", "overload"]
    states: list[str] = Field(default_factory=list, description="time_in_state: which states")
    after: dt.timedelta | None = None
    count: int | None = Field(default=None, ge=1, description="failed_gates: failed runs needed")
    add: list[str] = Field(default_factory=list)
    status: str | None = None
    action: Literal["notify", "add_agents", "redistribute"] = "add_agents"
    description: str = ""

    @field_validator("after", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return None if value is None else parse_duration(value)

    @model_validator(mode="after")
    def _needs(self) -> EscalationTrigger:
        if self.kind == "time_in_state" and (self.after is None or not self.states):
            raise ValueError("a time_in_state trigger needs 'states' and 'after'")
        if self.kind == "failed_gates" and self.count is None:
            raise ValueError("a failed_gates trigger needs 'count'")
        return self


class EscalationRules(_Strict):
    """``workflows/escalation.yaml``."""

    version: int = 1
    level_states: list[str] = Field(default_factory=lambda: ["blocked"])
    levels: list[EscalationLevel]
    triggers: list[EscalationTrigger] = Field(default_factory=list)

    @model_validator(mode="after")
    def _ordered(self) -> EscalationRules:
        numbers = [level.level for level in self.levels]
        if numbers != sorted(set(numbers)):
            raise ValueError("levels must have distinct, increasing 'level' numbers")
        afters = [level.after for level in self.levels]
        if afters != sorted(afters):
            raise ValueError("levels must have non-decreasing 'after' durations")
        ids = [trigger.id for trigger in self.triggers]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"duplicate trigger ids: {', '.join(duplicates)}")
        return self


# ----------------------------------------------------------------------------------------------- scoring


class PriorityDefaults(_Strict):
    """Values used for a term the task leaves unset."""

    impact: int = Field(default=3, ge=1, le=5)
    urgency: int = Field(default=3, ge=1, le=5)
    resources: int = Field(default=2, ge=1, le=5)
    risk: int = Field(default=2, ge=1, le=5)


class PriorityScoring(_Strict):
    """The priority formula ``Impact × Urgency × Dependencies / (Resources × Risk)``."""

    defaults: PriorityDefaults = Field(default_factory=lambda: PriorityDefaults())
    # Dependencies derived from how many unfinished tasks this one blocks: 0, 1, 2+ -> these values.
    dependencies_by_blocking: tuple[int, int, int] = (1, 2, 3)


class TaskwarriorScoring(_Strict):
    """Taskwarrior-style urgency: a sum of coefficient × factor (see ``task help urgency``)."""

    priority: dict[int, float] = Field(default_factory=lambda: {5: 6.0, 4: 6.0, 3: 3.9, 2: 1.8, 1: 1.8})
    age: float = 2.0
    age_max_days: float = Field(default=365.0, gt=0)
    blocking: float = 8.0
    blocked: float = -5.0
    tags: float = 1.0
    due: float = 12.0
    active: float = 4.0
    label_coefficients: dict[str, float] = Field(default_factory=dict)


class WsjfDefaults(_Strict):
    """WSJF inputs used when a task leaves them unset (else derived from the priority formula's terms)."""

    job_size: int = Field(default=3, ge=1, le=20)


class WsjfScoring(_Strict):
    """Weighted shortest job first: (business value + time criticality + risk reduction) / job size."""

    defaults: WsjfDefaults = Field(default_factory=lambda: WsjfDefaults())
    risk_reduction_by_blocking: tuple[int, int, int] = (1, 5, 8)


class ScoringConfig(_Strict):
    """``workflows/scoring.yaml``: which scorer ranks the backlog, and each scorer's settings."""

    version: int = 1
    scorer: ScorerName = ScorerName.PRIORITY
    priority: PriorityScoring = Field(default_factory=lambda: PriorityScoring())
    taskwarrior: TaskwarriorScoring = Field(default_factory=lambda: TaskwarriorScoring())
    wsjf: WsjfScoring = Field(default_factory=lambda: WsjfScoring())

    @model_validator(mode="before")
    @classmethod
    def _accept_old_names(cls, data: Any) -> Any:
        """Older rule files call the priority formula ``seed``: ``scorer: seed`` and a ``seed:`` section."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if data.get("scorer") == "seed":
            data["scorer"] = ScorerName.PRIORITY.value
        if "seed" in data:
            if "priority" in data:
                raise ValueError("give the priority formula's settings once, under 'priority' (not also 'seed')")
            data["priority"] = data.pop("seed")
        return data


# ---------------------------------------------------------------------------------------------- dispatch

MergeStrategy = Literal["ff", "merge", "pr"]


class DefaultExecutorSpec(ExecutorSpec):
    """The executor of every agent whose ``executor.kind`` is ``default``: a concrete kind (never
    ``default`` itself) and the options the agents' own options are laid over."""

    kind: ConcreteExecutorKind = "claude"


class MergeSettings(_Strict):
    """How a task branch whose gates passed lands in the target branch."""

    strategy: MergeStrategy = Field(
        default="merge", description="ff: fast-forward only; merge: a merge commit; pr: a pull request with `gh`"
    )
    target: str | None = Field(
        default=None, min_length=1,
        description="the branch task branches land in; null = the branch checked out in the main worktree",
    )
    remove_worktree: bool = Field(default=True, description="remove the task's worktree once merged")
    delete_branch: bool = Field(default=True, description="delete the task branch once merged (not for pr)")


class DispatchSettings(_Strict):
    """``workflows/dispatch.yaml``: the repository's default executor and how finished work is merged."""

    version: int = 1
    default_executor: DefaultExecutorSpec = Field(default_factory=lambda: DefaultExecutorSpec())
    merge: MergeSettings = Field(default_factory=lambda: MergeSettings())
