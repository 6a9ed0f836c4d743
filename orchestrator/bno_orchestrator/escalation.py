"""Escalation: the escalation levels and triggers, evaluated from the event log.

* Levels (``level_states``, e.g. blocked): a task climbs level 1 (individual, < 2 h), 2 (team, < 1 day),
  3 (cross-team, < 3 days), 4 (architecture review) as its time in the state grows.
* ``time_in_state`` triggers: e.g. blocked for more than a day -> architect.
* ``failed_gates`` triggers: N failed ``gates.verified`` runs -> truth-validator oversight, then architect.
* ``overload``: an agent over capacity gets its lowest-priority not-yet-started tasks sent back to the
  backlog for the router to redistribute.

Time in a state, failed runs and the rules already fired all come from the log; every level and trigger
fires at most once per task (its ``task.escalated`` event names the rule), so evaluating again is a no-op.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bno_orchestrator.events import STATUS_KINDS, EventKind, TaskEscalated
from bno_orchestrator.models import Event, Task, TaskStatus, as_utc
from bno_orchestrator.rules import EscalationRules, format_duration
from bno_orchestrator.scoring import Score
from bno_orchestrator.workflow import Workflow
from bno_orchestrator.workload import AgentLike, current_load

if TYPE_CHECKING:
    from bno_orchestrator.config import Config
    from bno_orchestrator.store import Store

ACTOR = "escalation"


@dataclass(frozen=True, slots=True)
class Escalation:
    """One rule firing for one task."""

    task_id: str
    rule: str
    level: int
    action: str
    agents: tuple[str, ...]
    to: str | None
    reason: str

    def event_payload(self) -> TaskEscalated:
        """The typed payload of the ``task.escalated`` event."""
        return TaskEscalated(self.rule, self.level, self.action, self.agents, self.to)

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"task_id": self.task_id, **self.event_payload().payload(), "reason": self.reason}


@dataclass(slots=True)
class LogFacts:
    """What escalation needs from the log, per task."""

    status_since: dict[str, dt.datetime]
    failed_runs: dict[str, int]
    fired: set[tuple[str, str]]

    @classmethod
    def from_events(cls, events: Iterable[Event]) -> LogFacts:
        """One pass over the log."""
        since: dict[str, dt.datetime] = {}
        status: dict[str, str] = {}
        failed: dict[str, int] = {}
        fired: set[tuple[str, str]] = set()
        for event in events:
            task_id = event.task_id
            if task_id is None or event.ts is None:
                continue
            if event.kind in STATUS_KINDS:
                if event.kind == EventKind.TASK_CREATED:
                    new = str(event.payload.get("task", {}).get("status", TaskStatus.BACKLOG.value))
                else:
                    new = str(event.payload.get("to") or status.get(task_id, ""))
                if new and new != status.get(task_id):
                    status[task_id] = new
                    since[task_id] = event.ts
                if event.kind == EventKind.TASK_ESCALATED:
                    fired.add((task_id, str(event.payload.get("rule"))))
            elif event.kind == EventKind.GATES_VERIFIED and event.payload.get("passed") is False:
                failed[task_id] = failed.get(task_id, 0) + 1
        return cls(since, failed, fired)


def _agents_for(add: Iterable[str], task: Task) -> tuple[str, ...]:
    out: list[str] = []
    for name in add:
        for agent in (task.support if name == "secondary" else [name]):
            if agent not in out and agent not in task.assignees:
                out.append(agent)
    return tuple(out)


def evaluate(
    tasks: Iterable[Task],
    events: Iterable[Event],
    rules: EscalationRules,
    workflow: Workflow,
    *,
    now: dt.datetime,
    agents: Mapping[str, AgentLike] | None = None,
    scores: Mapping[str, Score] | None = None,
) -> list[Escalation]:
    """The escalations due now (none that already fired), ordered by task id then rule."""
    now = as_utc(now)
    facts = LogFacts.from_events(events)
    terminal = set(workflow.spec.terminal)
    by_id = {task.id: task for task in tasks}
    due: list[Escalation] = []

    def status_to(task: Task, wanted: str | None) -> str | None:
        if wanted is None or wanted == task.status.value:
            return None
        return wanted if wanted in workflow.allowed(task, ACTOR) else None

    for task_id in sorted(by_id):
        task = by_id[task_id]
        if task.status.value in terminal:
            continue
        since = facts.status_since.get(task_id, task.status_since or now)
        in_state = now - since
        if task.status.value in rules.level_states:
            for level in rules.levels:
                key = f"level-{level.level}-{level.name}"
                if in_state < level.after or (task_id, key) in facts.fired:
                    continue
                limit = f", to resolve within {format_duration(level.within)}" if level.within else ""
                due.append(Escalation(
                    task_id, key, level.level, "add_agents" if level.add else "notify",
                    _agents_for(level.add, task), status_to(task, level.status),
                    f"{task.status.value} for {format_duration(in_state)}: level {level.level} {level.name}{limit}",
                ))
        for trigger in rules.triggers:
            if (task_id, trigger.id) in facts.fired or trigger.kind == "overload":
                continue
            if trigger.kind == "time_in_state":
                assert trigger.after is not None, "validated by EscalationTrigger"
                if task.status.value not in trigger.states or in_state < trigger.after:
                    continue
                why = f"{task.status.value} for {format_duration(in_state)} (> {format_duration(trigger.after)})"
            else:
                failed = facts.failed_runs.get(task_id, 0)
                assert trigger.count is not None, "validated by EscalationTrigger"
                if failed < trigger.count:
                    continue
                why = f"{failed} failed gate runs (>= {trigger.count})"
            due.append(Escalation(
                task_id, trigger.id, 0, trigger.action, _agents_for(trigger.add, task),
                status_to(task, trigger.status), f"{why}: {trigger.description or trigger.id}",
            ))
    if agents is not None:
        due.extend(_overload(by_id, rules, workflow, agents, scores or {}, facts))
    return due


def _overload(tasks: Mapping[str, Task], rules: EscalationRules, workflow: Workflow,
              agents: Mapping[str, AgentLike], scores: Mapping[str, Score], facts: LogFacts) -> list[Escalation]:
    out: list[Escalation] = []
    triggers = [t for t in rules.triggers if t.kind == "overload"]
    if not triggers:
        return out
    load = current_load(tasks.values(), workflow.load_states())
    for trigger in triggers:
        for agent in sorted(load):
            spec = agents.get(agent)
            if spec is None or len(load[agent]) <= spec.capacity:
                continue
            excess = len(load[agent]) - spec.capacity
            # only work not yet started can move; the lowest priority goes first
            movable = [tasks[t] for t in load[agent] if tasks[t].status == TaskStatus.ASSIGNED
                       and (t, trigger.id) not in facts.fired and workflow.initial_allowed(tasks[t], ACTOR)]
            movable.sort(key=lambda t: (scores[t.id].value if t.id in scores else 0.0, t.id))
            for task in movable[:excess]:
                out.append(Escalation(
                    task.id, trigger.id, 0, "redistribute", (), workflow.spec.initial,
                    f"{agent} holds {len(load[agent])} tasks, capacity {spec.capacity}: "
                    f"{trigger.description or 'redistribute'}",
                ))
    return out


def escalation_events(escalations: Iterable[Escalation]) -> list[Event]:
    """The ``task.escalated`` events recording ``escalations``."""
    return [Event.of(e.event_payload(), actor=ACTOR, task_id=e.task_id, reason=e.reason) for e in escalations]


def escalate_now(store: Store, config: Config, *, dry_run: bool = False) -> list[Escalation]:
    """Evaluate the rules against the store now; unless ``dry_run``, record each firing (one transaction)."""
    from bno_orchestrator.scoring import score_tasks

    with store.write() as tx:
        tasks = tx.tasks()
        events = tx.events()
        now = tx.now()
        scores = score_tasks(tasks, config.scoring, now=now)
        due = evaluate(tasks, events, config.escalation, config.workflow, now=now, agents=config.agents,
                       scores=scores)
        if not dry_run:
            for event in escalation_events(due):
                tx.append(event)
        return due
