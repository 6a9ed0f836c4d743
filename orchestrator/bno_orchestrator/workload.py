"""Agent workload, track record and burnout streaks, all computed from the store.

* Load: the tasks an agent is the primary assignee of, in a state that ``development.yaml`` marks ``load``.
* Track record: per agent and task type, how often the *first* gate verification of a task the agent
  worked on passed (``gates.verified`` events: ``{"run_id", "passed", "agent"}``).
* High-intensity streak: how many high-complexity tasks in a row the router gave an agent (from the
  ``task.routed`` events), for the burnout rule ("alternate high-intensity and routine tasks").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from bno_orchestrator.events import EventKind
from bno_orchestrator.models import Event, Task


class AgentLike(Protocol):
    """The AgentSpec fields routing and workload read (``bno_orchestrator.agents.AgentSpec`` has them)."""

    @property
    def name(self) -> str: ...
    @property
    def task_types(self) -> Sequence[str]: ...
    @property
    def components(self) -> Sequence[str]: ...
    @property
    def complexity(self) -> tuple[int, int]: ...
    @property
    def capacity(self) -> int: ...
    @property
    def secondary(self) -> Sequence[str]: ...


def current_load(tasks: Iterable[Task], load_states: Iterable[str]) -> dict[str, list[str]]:
    """Agent -> ids of the tasks it is primary on, in a state that counts as load."""
    states = set(load_states)
    load: dict[str, list[str]] = {}
    for task in tasks:
        if task.status.value in states and task.assignees:
            load.setdefault(task.assignees[0], []).append(task.id)
    return load


@dataclass(frozen=True, slots=True)
class AgentLoad:
    """One agent's load against its capacity."""

    agent: str
    load: int
    capacity: int
    tasks: tuple[str, ...]

    @property
    def free(self) -> int:
        """Slots left (negative when over capacity)."""
        return self.capacity - self.load

    @property
    def overloaded(self) -> bool:
        """True when the agent holds more tasks than its capacity."""
        return self.load > self.capacity


def load_table(tasks: Iterable[Task], agents: Mapping[str, AgentLike], load_states: Iterable[str]) -> list[AgentLoad]:
    """Every known agent (and any unknown assignee) with its load and capacity, by name."""
    load = current_load(tasks, load_states)
    names = sorted(set(agents) | set(load))
    return [
        AgentLoad(name, len(load.get(name, [])), agents[name].capacity if name in agents else 0,
                  tuple(load.get(name, [])))
        for name in names
    ]


@dataclass(slots=True)
class TrackRecord:
    """First-pass gate success per (agent, task type)."""

    passed: dict[tuple[str, str], int] = field(default_factory=dict)
    runs: dict[tuple[str, str], int] = field(default_factory=dict)

    @classmethod
    def from_events(cls, events: Iterable[Event], task_types: Mapping[str, str]) -> TrackRecord:
        """Build from ``gates.verified`` events; ``task_types`` maps task id -> task type."""
        record = cls()
        seen: set[tuple[str, str]] = set()
        for event in events:
            if event.kind != EventKind.GATES_VERIFIED or event.task_id is None:
                continue
            agent = str(event.payload.get("agent") or "")
            if not agent or (event.task_id, agent) in seen:
                continue
            seen.add((event.task_id, agent))
            task_type = str(event.payload.get("task_type") or task_types.get(event.task_id, ""))
            key = (agent, task_type)
            record.runs[key] = record.runs.get(key, 0) + 1
            if event.payload.get("passed") is True:
                record.passed[key] = record.passed.get(key, 0) + 1
        return record

    def rate(self, agent: str, task_type: str, min_runs: int = 1) -> float | None:
        """First-pass success rate, or None with fewer than ``min_runs`` first passes recorded."""
        runs = self.runs.get((agent, task_type), 0)
        if runs < min_runs:
            return None
        return self.passed.get((agent, task_type), 0) / runs

    def summary(self, agent: str, task_type: str) -> str:
        """``"3/4 first-pass"`` or ``"no record"``."""
        runs = self.runs.get((agent, task_type), 0)
        if not runs:
            return "no record"
        return f"{self.passed.get((agent, task_type), 0)}/{runs} first-pass"


def high_streaks(events: Iterable[Event], threshold: int) -> dict[str, int]:
    """Agent -> how many tasks of complexity >= ``threshold`` the router gave it in a row, most recent last."""
    streaks: dict[str, int] = {}
    for event in events:
        if event.kind != EventKind.TASK_ROUTED:
            continue
        agent = str(event.payload.get("primary") or "")
        complexity = int(event.payload.get("complexity", 0))
        streaks[agent] = streaks.get(agent, 0) + 1 if complexity >= threshold else 0
    return streaks
