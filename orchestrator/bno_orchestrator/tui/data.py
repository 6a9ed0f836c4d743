"""The sprint board's data layer: pure functions over the store's tasks and events (no Textual here).

A :class:`Snapshot` is read from the store in one go; :func:`columns` lays its cards out in one column per
workflow state (best score first) under a filter; :func:`detail` explains one task (fields, score terms,
the routing decision, allowed moves, events, gate history); :func:`move_card` moves a task through
:mod:`bno_orchestrator.workflow`, so an illegal move is refused with the allowed moves in the message.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bno_orchestrator.errors import UserError
from bno_orchestrator.events import EventKind
from bno_orchestrator.models import Event, Task, TaskStatus
from bno_orchestrator.rules import ScoringConfig
from bno_orchestrator.scoring import Score, explain_lines, rank, score_tasks
from bno_orchestrator.workflow import Workflow, move_task
from bno_quality_gates.status import GateStatus
from bno_quality_gates.summary import status_counts

if TYPE_CHECKING:
    from bno_orchestrator.store import Store

NO_GATE = "none"  # no gates.verified event yet
GATE_BADGES: dict[str, str] = {GateStatus.PASSED: "✓", GateStatus.FAILED: "✗", NO_GATE: "·"}
GATE_STYLES: dict[str, str] = {GateStatus.PASSED: "green", GateStatus.FAILED: "bold red"}  # else dim
FILTER_FIELDS: tuple[str, ...] = ("agent", "label", "type", "component", "state", "gate", "is")


@dataclass(frozen=True, slots=True)
class Card:
    """One task as the board shows it."""

    id: str
    title: str
    status: str
    score: float
    agent: str
    support: tuple[str, ...]
    gate: str  # passed | failed | none: the latest gates.verified verdict
    gate_run: str
    waiting_on: tuple[str, ...]
    labels: tuple[str, ...]
    components: tuple[str, ...]
    type: str
    escalation_level: int

    @property
    def blocked(self) -> bool:
        """In the blocked state or waiting on unfinished dependencies."""
        return self.status == TaskStatus.BLOCKED.value or bool(self.waiting_on)


@dataclass(frozen=True, slots=True)
class Column:
    """One workflow state and its cards (after the filter); ``total`` counts them before it."""

    state: str
    cards: tuple[Card, ...]
    total: int


@dataclass(frozen=True, slots=True)
class Section:
    """A titled block of the detail pane."""

    title: str
    lines: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Detail:
    """Everything the detail pane shows about one task."""

    task_id: str
    title: str
    sections: tuple[Section, ...]

    def text(self) -> str:
        """Plain text (the pane renders the same lines)."""
        out = [f"{self.task_id}: {self.title}"]
        for section in self.sections:
            out.append("")
            out.append(f"{section.title}")
            out.extend(f"  {line}" for line in section.lines)
        return "\n".join(out)


@dataclass(frozen=True)
class Snapshot:
    """The board's view of the store at one moment."""

    states: tuple[str, ...]
    tasks: Mapping[str, Task]
    events: tuple[Event, ...]
    scores: Mapping[str, Score]
    gate_runs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @property
    def last_event_id(self) -> int:
        """The id of the newest event read (0 for an empty log)."""
        return max((e.id or 0 for e in self.events), default=0)

    def task_events(self, task_id: str) -> list[Event]:
        """The log entries of one task, oldest first."""
        return [e for e in self.events if e.task_id == task_id]


def build_snapshot(tasks: Iterable[Task], events: Iterable[Event], workflow: Workflow, scoring: ScoringConfig,
                   *, now: dt.datetime, gate_runs: Mapping[str, Mapping[str, Any]] | None = None) -> Snapshot:
    """A snapshot from tasks and events already read (pure)."""
    by_id = {t.id: t for t in tasks}
    return Snapshot(tuple(workflow.states), by_id, tuple(sorted(events, key=lambda e: e.id or 0)),
                    score_tasks(by_id.values(), scoring, now=now), dict(gate_runs or {}))


def gate_run_index(path: Path | None, limit: int = 200) -> dict[str, dict[str, Any]]:
    """The latest gate runs by id (``ResultsDB.runs``), or nothing when there is no store file."""
    if path is None or not Path(path).is_file():
        return {}
    from bno_quality_gates.results import ResultsDB

    with ResultsDB(path) as db:
        return {str(run["run_id"]): run for run in db.runs(limit)}


def load_snapshot(store: Store, workflow: Workflow, scoring: ScoringConfig) -> Snapshot:
    """Read tasks, events and gate runs from ``store`` and build the snapshot."""
    tasks, events = store.snapshot()
    return build_snapshot(tasks, events, workflow, scoring, now=store.now(), gate_runs=gate_run_index(store.path))


# ---------------------------------------------------------------------------------------------- cards


def _verdict(event: Event) -> str:
    """``passed`` or ``failed``: the verdict of a ``gates.verified`` event."""
    return GateStatus.PASSED.value if event.payload.get("passed") else GateStatus.FAILED.value


def _latest_gate(events: Sequence[Event]) -> dict[str, tuple[str, str]]:
    out: dict[str, tuple[str, str]] = {}
    for event in events:
        if event.kind == EventKind.GATES_VERIFIED and event.task_id is not None:
            out[event.task_id] = (_verdict(event), str(event.payload.get("run_id", "")))
    return out


def cards(snapshot: Snapshot) -> list[Card]:
    """Every task as a card, best score first (blocked last), ties by id."""
    gates = _latest_gate(snapshot.events)
    out: list[Card] = []
    for task_id in rank(snapshot.scores):
        task = snapshot.tasks[task_id]
        score = snapshot.scores[task_id]
        gate, run = gates.get(task_id, (NO_GATE, ""))
        out.append(Card(
            id=task.id, title=task.title, status=task.status.value, score=score.value,
            agent=task.assignees[0] if task.assignees else "", support=tuple(task.support), gate=gate,
            gate_run=run, waiting_on=score.blocked_by, labels=tuple(task.labels),
            components=tuple(task.components), type=task.type, escalation_level=task.escalation_level,
        ))
    return out


@dataclass(frozen=True, slots=True)
class Filter:
    """A parsed filter: ``field:value`` terms (all must hold) and words matched in the id or title."""

    fields: tuple[tuple[str, str], ...] = ()
    words: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        """True when it lets every card through."""
        return not self.fields and not self.words


def parse_filter(query: str) -> Filter:
    """``"agent:code label:perf kv"`` -> a Filter (``comp:`` is short for ``component:``).

    A ``field:value`` term with an unknown field raises UserError naming the known fields.
    """
    fields: list[tuple[str, str]] = []
    words: list[str] = []
    for term in query.split():
        name, sep, value = term.partition(":")
        if sep and name:
            name = {"comp": "component", "status": "state"}.get(name.lower(), name.lower())
            if name not in FILTER_FIELDS:
                raise UserError(f"unknown filter field {name!r}; fields: {', '.join(FILTER_FIELDS)}")
            fields.append((name, value.lower()))
        else:
            words.append(term.lower())
    return Filter(tuple(fields), tuple(words))


def matches(card: Card, flt: Filter) -> bool:
    """Whether ``card`` passes ``flt`` (case-insensitive; values match as substrings)."""
    for name, value in flt.fields:
        if name == "agent":
            pool: tuple[str, ...] = (card.agent, *card.support)
        elif name == "label":
            pool = card.labels
        elif name == "component":
            pool = card.components
        elif name == "type":
            pool = (card.type,)
        elif name == "state":
            pool = (card.status,)
        elif name == "gate":
            pool = (card.gate,)
        else:  # "is"
            pool = tuple(flag for flag, on in (("blocked", card.blocked), ("waiting", bool(card.waiting_on)),
                                                ("escalated", card.escalation_level > 0),
                                                ("unassigned", not card.agent)) if on)
        if not any(value in item.lower() for item in pool):
            return False
    haystack = f"{card.id} {card.title}".lower()
    return all(word in haystack for word in flt.words)


def columns(snapshot: Snapshot, query: str = "") -> tuple[Column, ...]:
    """One column per workflow state, in the workflow's order, with the cards that pass ``query``."""
    flt = parse_filter(query)
    everything = cards(snapshot)
    out = []
    for state in snapshot.states:
        in_state = [c for c in everything if c.status == state]
        out.append(Column(state, tuple(c for c in in_state if matches(c, flt)), len(in_state)))
    return tuple(out)


# --------------------------------------------------------------------------------------------- detail


def describe_event(event: Event) -> str:
    """One line for an event: ``#12 2026-01-05 10:00 human:ann task.moved backlog -> assigned (why)``."""
    payload = event.payload
    what = ""
    if event.kind == EventKind.TASK_MOVED:
        what = f"{payload.get('from')} -> {payload.get('to')}"
    elif event.kind == EventKind.TASK_ROUTED:
        what = f"-> {payload.get('primary')}" + (f" + {', '.join(payload.get('secondary', []))}"
                                                  if payload.get("secondary") else "")
    elif event.kind == EventKind.TASK_EDITED:
        what = ", ".join(sorted(payload.get("changes", {})))
    elif event.kind == EventKind.TASK_ESCALATED:
        what = f"{payload.get('rule')} level {payload.get('level')}"
    elif event.kind == EventKind.GATES_VERIFIED:
        what = f"run {payload.get('run_id')} {_verdict(event)}"
    when = event.ts.strftime("%Y-%m-%d %H:%M") if event.ts else "-"
    reason = f" ({event.reason})" if event.reason and event.kind != EventKind.TASK_ROUTED else ""
    return f"#{event.id} {when} {event.actor} {event.kind} {what}".rstrip() + reason


def routing_lines(events: Sequence[Event]) -> tuple[str, ...]:
    """The latest routing decision of a task (reasons and candidates), from its events."""
    decision = next((e for e in reversed(events) if e.kind in (EventKind.TASK_ROUTED, EventKind.TASK_DEFERRED)), None)
    if decision is None:
        return ("not routed yet",)
    payload = decision.payload
    head = (f"{payload.get('outcome', 'routed')} by event #{decision.id}: primary {payload.get('primary') or '-'}, "
            f"strategy {payload.get('strategy') or '-'}")
    lines = [head, *(str(r) for r in payload.get("reasons", []))]
    for cand in payload.get("candidates", []):
        excluded = f" - {cand.get('excluded')}" if cand.get("excluded") else ""
        lines.append(f"candidate {cand.get('agent')}: {cand.get('points'):g} points, "
                     f"record {cand.get('record_text')}, load {cand.get('load')}/{cand.get('capacity')}{excluded}")
    if payload.get("escalation_path"):
        lines.append(f"escalation path: {' -> '.join(payload['escalation_path'])}")
    return tuple(lines)


def gate_lines(snapshot: Snapshot, events: Sequence[Event]) -> tuple[str, ...]:
    """The task's gate verifications, newest first, with the recorded run's gate statuses when known."""
    lines: list[str] = []
    for event in reversed(events):
        if event.kind != EventKind.GATES_VERIFIED:
            continue
        run_id = str(event.payload.get("run_id", ""))
        line = f"run {run_id}: {_verdict(event)} (agent {event.payload.get('agent', '-')}, event #{event.id})"
        run = snapshot.gate_runs.get(run_id)
        if run is not None:
            statuses = status_counts(run.get("statuses", {}))
            line += f" - gates: {statuses or 'none'}"
        lines.append(line)
    return tuple(lines) or ("no gate run verified this task yet",)


def detail(snapshot: Snapshot, task_id: str, workflow: Workflow, actor: str) -> Detail:
    """The detail pane of ``task_id`` as seen by ``actor`` (KeyError when there is no such task)."""
    task = snapshot.tasks[task_id]
    score = snapshot.scores[task_id]
    events = snapshot.task_events(task_id)
    fields = [f"status {task.status.value}", f"type {task.type}, complexity {task.complexity_name}"]
    if task.assignees or task.support:
        fields.append(f"agents {', '.join(task.assignees) or '-'}; support {', '.join(task.support) or '-'}")
    if task.components:
        fields.append(f"components {', '.join(task.components)}")
    if task.labels:
        fields.append(f"labels {', '.join(task.labels)}")
    if task.depends_on:
        fields.append(f"depends on {', '.join(task.depends_on)}")
    if task.blocked_reason:
        fields.append(f"blocked: {task.blocked_reason}")
    if task.due:
        fields.append(f"due {task.due:%Y-%m-%d %H:%M}")
    allowed = workflow.allowed(task, actor)
    moves = workflow.targets(task.status.value)
    move_lines = [f"{actor} may move it to: {', '.join(allowed) or 'nowhere'}"]
    move_lines += [f"{target}: {'/'.join(roles)}" for target, roles in moves.items()]
    return Detail(task.id, task.title, (
        Section("Task", tuple(fields)),
        Section("Score", tuple(explain_lines(task, score)[1:])),
        Section("Routing", routing_lines(events)),
        Section("Moves", tuple(move_lines)),
        Section("Gate history", gate_lines(snapshot, events)),
        Section("Events", tuple(describe_event(e) for e in events)),
    ))


# ----------------------------------------------------------------------------------------------- moves


@dataclass(frozen=True, slots=True)
class MoveResult:
    """What a move did: ``ok`` and a message (the refusal lists the allowed moves)."""

    ok: bool
    message: str
    task: Task | None = None


def adjacent_state(states: Sequence[str], current: str, step: int) -> str | None:
    """The state ``step`` columns away from ``current`` in board order (None past either end)."""
    index = states.index(current) + step
    return states[index] if 0 <= index < len(states) else None


def move_card(store: Store, workflow: Workflow, task_id: str, to: str, *, actor: str, reason: str = "") -> MoveResult:
    """Move through :func:`bno_orchestrator.workflow.move_task`; a refusal comes back as a message naming the
    moves ``actor`` is allowed to make instead."""
    try:
        task = move_task(store, workflow, task_id, to, actor=actor, reason=reason or "moved on the board")
    except UserError as exc:
        current = store.find(task_id)
        allowed = workflow.allowed(current, actor) if current is not None else []
        return MoveResult(False, f"{exc} | you may move {task_id} to: {', '.join(allowed) or 'nowhere'}")
    return MoveResult(True, f"{task_id} moved to {task.status.value}", task)
