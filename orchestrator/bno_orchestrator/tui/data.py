"""The sprint board's data layer: pure functions over the store's tasks and events (no Textual here).

A :class:`Snapshot` is read from the store in one go and kept up to date by :func:`refresh_snapshot`
(only the events appended since, the tasks they name and their dependency neighbours are read or scored
again); :class:`BoardModel` keeps the cards in one column per workflow state (best score first) under a
filter and updates only the cards a change touched; :func:`columns` is the one-shot form of it;
:func:`detail` explains one task (fields, score terms, the routing decision, allowed moves, events, gate
history, the last dispatch attempt); :func:`move_card`
moves a task through :mod:`bno_orchestrator.workflow`, so an illegal move is refused with the allowed moves
in the message; :func:`step_target` finds the workflow move one step forward or back along the main line.

:func:`last_dispatch` pairs a task's ``dispatch.started`` and ``dispatch.finished`` events into one
:class:`DispatchInfo` (outcome, cost, tokens, turns, session, final message); while an attempt runs,
:func:`running_progress_file` names its live progress file and :func:`read_progress_tail` reads only the
end of it (a half-written last line is skipped), so polling the selected task stays cheap.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bno_orchestrator.errors import UserError
from bno_orchestrator.events import EventKind
from bno_orchestrator.models import Event, Task, TaskStatus
from bno_orchestrator.money import usd
from bno_orchestrator.rules import ScoringConfig
from bno_orchestrator.scoring import Score, explain_lines, rank, score_tasks
from bno_orchestrator.workflow import Workflow, move_task
from bno_quality_gates.status import GateStatus
from bno_quality_gates.summary import status_counts

if TYPE_CHECKING:
    from bno_orchestrator.store import Store

PROGRESS_LINES = 8  # progress entries the detail pane shows of a running attempt
PROGRESS_SUFFIX = ".progress.jsonl"
FINAL_MESSAGE_LINES = 30  # lines of an agent's final message the detail pane shows
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
class DispatchInfo:
    """One dispatch attempt of a task, from its ``dispatch.started`` and ``dispatch.finished`` events.

    ``state``: ``running`` (started, no end recorded, task in development), ``unfinished`` (no end recorded
    but the task left development), ``ok``, ``error`` (the CLI's ``error_kind``), ``failed`` (a non-zero exit
    without an error kind), ``timed_out``, ``interrupted`` or ``handoff`` (a manual executor). Every number is
    None where the executor did not report it."""

    attempt: int | None
    agent: str
    executor: str
    state: str
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    exit_code: int | None = None
    error_kind: str | None = None
    error: str | None = None
    cost_usd: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    turns: int | None = None
    session_id: str | None = None
    duration: float | None = None
    final_message: str | None = None
    log_file: str | None = None
    changed_files: int | None = None
    events: tuple[int, ...] = ()

    @property
    def running(self) -> bool:
        """Started, no end recorded, the task still in development."""
        return self.state == "running"

    @property
    def outcome(self) -> str:
        """One line: ``ok``, ``error network: message``, ``timed out``, ``interrupted``, ``running`` ..."""
        if self.state == "error":
            return f"error {self.error_kind}" + (f": {_one_line(self.error)}" if self.error else "")
        if self.state == "failed":
            return f"failed (exit {self.exit_code})"
        if self.state == "timed_out":
            return "timed out" + (f" after {self.duration:.0f}s" if self.duration is not None else "")
        if self.state == "unfinished":
            return "no end recorded (the task left development)"
        if self.state == "handoff":
            return "handed off to a person"
        if self.state == "ok" and self.exit_code is not None:
            return f"ok (exit {self.exit_code})"
        return self.state


@dataclass(frozen=True, slots=True)
class ProgressEntry:
    """One line of an attempt's live progress file."""

    t: str  # ISO-8601 UTC as written
    kind: str  # turn | tool | edit | message | error
    text: str

    @property
    def clock(self) -> str:
        """``HH:MM:SS`` of ``t`` (the raw text when it does not parse)."""
        try:
            return dt.datetime.fromisoformat(self.t.replace("Z", "+00:00")).strftime("%H:%M:%S")
        except ValueError:
            return self.t[:19]

    def line(self, width: int = 200) -> str:
        """``10:00:05 tool  Read src/a.py`` (one line, cut to ``width`` characters of text)."""
        text = _one_line(self.text)
        if len(text) > width:
            text = text[: width - 1] + "…"
        return f"{self.clock} {self.kind:<7} {text}"


@dataclass(frozen=True, slots=True)
class Detail:
    """Everything the detail pane shows about one task."""

    task_id: str
    title: str
    sections: tuple[Section, ...]
    dispatch: DispatchInfo | None = None
    status: str = ""

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
    """The board's view of the store at one moment (``events`` in id order)."""

    states: tuple[str, ...]
    tasks: Mapping[str, Task]
    events: tuple[Event, ...]
    scores: Mapping[str, Score]
    gate_runs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @cached_property
    def last_event_id(self) -> int:
        """The id of the newest event read (0 for an empty log; ``events`` are in id order)."""
        return (self.events[-1].id or 0) if self.events else 0

    @cached_property
    def _events_by_task(self) -> dict[str, list[Event]]:
        index: dict[str, list[Event]] = {}
        for event in self.events:
            if event.task_id is not None:
                index.setdefault(event.task_id, []).append(event)
        return index

    def task_events(self, task_id: str) -> list[Event]:
        """The log entries of one task, oldest first (from an index built once per snapshot)."""
        return list(self._events_by_task.get(task_id, ()))


def build_snapshot(tasks: Iterable[Task], events: Iterable[Event], workflow: Workflow, scoring: ScoringConfig,
                   *, now: dt.datetime, gate_runs: Mapping[str, Mapping[str, Any]] | None = None) -> Snapshot:
    """A snapshot from tasks and events already read (pure)."""
    by_id = {t.id: t for t in tasks}
    return Snapshot(tuple(workflow.states), by_id, tuple(sorted(events, key=lambda e: e.id or 0)),
                    score_tasks(by_id.values(), scoring, now=now), dict(gate_runs or {}))


@dataclass(frozen=True, slots=True)
class Refresh:
    """A snapshot brought up to date, and the tasks whose card may look different (changed, or rescored:
    a move can unblock the tasks that wait on it)."""

    snapshot: Snapshot
    changed: frozenset[str]


def _dependents(tasks: Mapping[str, Task]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for task in tasks.values():
        for dep in task.depends_on:
            out.setdefault(dep, set()).add(task.id)
    return out


def _neighbours(ids: Iterable[str], tasks: Iterable[Mapping[str, Task]], dependents: Mapping[str, set[str]]) -> set[str]:
    """``ids`` with the tasks they depend on (in any of ``tasks``) and the tasks that depend on them."""
    out = set(ids)
    for task_id in list(out):
        out |= dependents.get(task_id, set())
        for mapping in tasks:
            task = mapping.get(task_id)
            if task is not None:
                out.update(task.depends_on)
    return out


def refresh_snapshot(store: Store, snapshot: Snapshot, scoring: ScoringConfig) -> Refresh | None:
    """``snapshot`` brought up to date with the events appended since it was read, or None when there are
    none. Only the tasks those events name are read again, and only they and their dependency neighbours
    are scored again (their ``blocked by`` and ``blocks`` may change); gate runs are re-read only after a
    ``gates.verified``."""
    new = store.events(since=snapshot.last_event_id)
    if not new:
        return None
    tasks = dict(snapshot.tasks)
    named = {e.task_id for e in new if e.task_id is not None}
    for task_id in named:
        task = store.find(task_id)
        if task is None:
            tasks.pop(task_id, None)
        else:
            tasks[task_id] = task
    dependents = _dependents(tasks)
    affected = _neighbours(named, (tasks, snapshot.tasks), dependents) & tasks.keys()
    scope = _neighbours(affected, (tasks,), dependents) & tasks.keys()
    fresh = score_tasks((tasks[i] for i in scope), scoring, now=store.now())
    scores = {i: v for i, v in snapshot.scores.items() if i in tasks}
    scores.update({i: fresh[i] for i in affected})
    gate_runs = snapshot.gate_runs
    if any(e.kind == EventKind.GATES_VERIFIED for e in new):
        gate_runs = gate_run_index(store.path)
    changed = {i for i in affected if snapshot.scores.get(i) != scores[i]} | named
    return Refresh(Snapshot(snapshot.states, tasks, (*snapshot.events, *new), scores, gate_runs), frozenset(changed))


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


def make_card(snapshot: Snapshot, task_id: str, gate: tuple[str, str] = (NO_GATE, "")) -> Card:
    """The card of one task (``gate``: its latest verdict and run id)."""
    task = snapshot.tasks[task_id]
    score = snapshot.scores[task_id]
    return Card(
        id=task.id, title=task.title, status=task.status.value, score=score.value,
        agent=task.assignees[0] if task.assignees else "", support=tuple(task.support), gate=gate[0],
        gate_run=gate[1], waiting_on=score.blocked_by, labels=tuple(task.labels),
        components=tuple(task.components), type=task.type, escalation_level=task.escalation_level,
    )


def rank_key(card: Card) -> tuple[bool, float, str]:
    """Board order: unblocked before blocked, then by score (high first), then by id (as :func:`rank`)."""
    return (card.blocked, -card.score, card.id)


def cards(snapshot: Snapshot) -> list[Card]:
    """Every task as a card, best score first (blocked last), ties by id."""
    gates = _latest_gate(snapshot.events)
    return [make_card(snapshot, task_id, gates.get(task_id, (NO_GATE, ""))) for task_id in rank(snapshot.scores)]


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
    return BoardModel(snapshot, query).columns


def _by_state(states: Sequence[str], ranked: Iterable[Card]) -> dict[str, tuple[Card, ...]]:
    groups: dict[str, list[Card]] = {state: [] for state in states}
    for card in ranked:
        if card.status in groups:
            groups[card.status].append(card)
    return {state: tuple(group) for state, group in groups.items()}


class BoardModel:
    """The board's columns under a filter, kept between changes (no Textual here).

    Built once from a snapshot; :meth:`set_filter` re-filters the cards already built (no store read) and
    :meth:`update` takes a :class:`Refresh`, rebuilding only the changed cards and re-sorting only the
    columns they left or entered. Both return the states whose shown cards changed, so the view redraws
    only those columns. :meth:`locate` finds a card's column and row from an index built once per change,
    so a cursor key costs no pass over the tasks."""

    def __init__(self, snapshot: Snapshot, query: str = "") -> None:
        self.snapshot = snapshot
        self.query = query
        self.filter = parse_filter(query)
        self._gates = _latest_gate(snapshot.events)
        everything = cards(snapshot)
        self._cards = {card.id: card for card in everything}
        self._all = _by_state(snapshot.states, everything)
        self._columns: dict[str, Column] = {}
        self.columns = self._filtered(self._all)
        self._where: dict[str, tuple[int, int]] | None = None

    def _filtered(self, states: Iterable[str]) -> tuple[Column, ...]:
        flt = self.filter
        for state in states:
            group = self._all[state]
            self._columns[state] = Column(state, group if flt.empty else tuple(c for c in group if matches(c, flt)),
                                          len(group))
        return tuple(self._columns[state] for state in self._all)

    def _replace(self, columns: tuple[Column, ...]) -> set[str]:
        changed = {new.state for old, new in zip(self.columns, columns, strict=True) if old is not new and old != new}
        self.columns = columns
        if changed:
            self._where = None
        return changed

    def set_filter(self, query: str) -> set[str]:
        """Show only the cards that pass ``query`` (UserError for a bad query, the filter unchanged)."""
        flt = parse_filter(query)
        self.query, self.filter = query, flt
        return self._replace(self._filtered(self._all))

    def update(self, refresh: Refresh) -> set[str]:
        """Take a newer snapshot; the states whose shown cards (or totals) changed."""
        old = self.snapshot
        snapshot = self.snapshot = refresh.snapshot
        for event in snapshot.events[len(old.events):]:
            if event.kind == EventKind.GATES_VERIFIED and event.task_id is not None:
                self._gates[event.task_id] = (_verdict(event), str(event.payload.get("run_id", "")))
        touched: dict[str, list[Card]] = {}
        for task_id in refresh.changed:
            before = self._cards.pop(task_id, None)
            if before is not None:
                touched.setdefault(before.status, [])
            if task_id in snapshot.tasks:
                card = self._cards[task_id] = make_card(snapshot, task_id, self._gates.get(task_id, (NO_GATE, "")))
                touched.setdefault(card.status, []).append(card)
        for state, arrived in touched.items():
            if state not in self._all:
                continue
            kept = [c for c in self._all[state] if c.id not in refresh.changed]
            self._all[state] = tuple(sorted([*kept, *arrived], key=rank_key))
        return self._replace(self._filtered(touched.keys() & self._all.keys()))

    @property
    def shown(self) -> int:
        """How many cards pass the filter."""
        return sum(len(c.cards) for c in self.columns)

    def locate(self, card_id: str) -> tuple[int, int] | None:
        """(column index, row) of a shown card, or None."""
        if self._where is None:
            self._where = {card.id: (index, row) for index, column in enumerate(self.columns)
                           for row, card in enumerate(column.cards)}
        return self._where.get(card_id)


def truncate(text: str, width: int, lines: int = 1) -> tuple[str, ...]:
    """``text`` (on one line: newlines and runs of spaces fold) wrapped at word boundaries into at most
    ``lines`` lines of ``width`` characters; what does not fit ends the last line with ``…``."""
    words = " ".join(text.split())
    if width <= 0 or lines <= 0:
        return ()
    out: list[str] = []
    rest = words
    while rest and len(out) < lines:
        if len(rest) <= width:
            out.append(rest)
            rest = ""
            break
        if len(out) == lines - 1:
            out.append(rest[: width - 1].rstrip() + "…")
            rest = ""
            break
        cut = rest.rfind(" ", 0, width + 1)
        if cut <= 0:
            cut = width
        out.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    return tuple(out) or ("",)


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
    if task.description.strip():
        fields += ["description:", *(f"  {line}" for line in task.description.strip("\n").splitlines())]
    allowed = workflow.allowed(task, actor)
    moves = workflow.targets(task.status.value)
    move_lines = [f"{actor} may move it to: {', '.join(allowed) or 'nowhere'}"]
    move_lines += [f"{target}: {'/'.join(roles)}" for target, roles in moves.items()]
    dispatch = last_dispatch(events, status=task.status.value)
    sections = [Section("Task", tuple(fields))]
    if dispatch is not None:
        sections.append(Section(DISPATCH_SECTION, dispatch_lines(dispatch)))
    sections += [
        Section("Score", tuple(explain_lines(task, score)[1:])),
        Section("Routing", routing_lines(events)),
        Section("Moves", tuple(move_lines)),
        Section("Gate history", gate_lines(snapshot, events)),
        Section("Events", tuple(describe_event(e) for e in events)),
    ]
    return Detail(task.id, task.title, tuple(sections), dispatch, task.status.value)


# ------------------------------------------------------------------------------------------- dispatch

DISPATCH_SECTION = "Last dispatch"
_DISPATCH_KINDS = frozenset({EventKind.DISPATCH_STARTED.value, EventKind.DISPATCH_FINISHED.value,
                             EventKind.DISPATCH_HANDOFF.value, "dispatch.interrupted"})


def _one_line(value: object) -> str:
    return " ".join(str(value).split())


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if value == value else None  # NaN: unknown


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def _finished_state(payload: Mapping[str, Any], interrupted_kind: bool) -> str:
    if interrupted_kind or payload.get("interrupted"):
        return "interrupted"
    if payload.get("handoff"):
        return "handoff"
    if payload.get("timed_out"):
        return "timed_out"
    if payload.get("error_kind"):
        return "error"
    exit_code = _int(payload.get("exit_code"))
    return "failed" if exit_code not in (0, None) else "ok"


def last_dispatch(events: Sequence[Event], *, status: str | None = None) -> DispatchInfo | None:
    """The task's latest dispatch attempt, from its events (oldest first), or None when it was never
    dispatched. An attempt with ``dispatch.started`` and no end is ``running`` while ``status`` is
    in_development (or ``status`` is None), else ``unfinished``. A ``dispatch.finished`` with
    ``interrupted: true`` (or a ``dispatch.interrupted`` event) ends an attempt as ``interrupted``."""
    starts: dict[int | None, Event] = {}
    ends: dict[int | None, Event] = {}
    latest: int | None = None
    seen = False
    for event in events:
        if event.kind not in _DISPATCH_KINDS:
            continue
        attempt = _int(event.payload.get("attempt"))
        if event.kind == EventKind.DISPATCH_STARTED:
            starts[attempt] = event
            ends.pop(attempt, None)  # a restarted attempt number: its old end no longer applies
        else:
            ends[attempt] = event
        latest, seen = attempt, True
    if not seen:
        return None
    start, end = starts.get(latest), ends.get(latest)
    started = start.payload if start is not None else {}
    if end is None:
        in_development = status is None or status == TaskStatus.IN_DEVELOPMENT.value
        state = "running" if in_development else "unfinished"
        return DispatchInfo(
            attempt=latest, agent=str(started.get("agent") or ""), executor=str(started.get("executor") or ""),
            state=state, started_at=start.ts if start is not None else None,
            log_file=_str(started.get("log_file")), events=tuple(e.id for e in (start,) if e and e.id is not None),
        )
    done = end.payload
    if end.kind == EventKind.DISPATCH_HANDOFF:
        state = "handoff"
    else:
        state = _finished_state(done, end.kind == "dispatch.interrupted")
    changed = done.get("changed_files")
    return DispatchInfo(
        attempt=latest, agent=str(done.get("agent") or started.get("agent") or ""),
        executor=str(done.get("kind") or done.get("executor") or started.get("executor") or ""), state=state,
        started_at=start.ts if start is not None else None, finished_at=end.ts,
        exit_code=_int(done.get("exit_code")), error_kind=_str(done.get("error_kind")), error=_str(done.get("error")),
        cost_usd=_float(done.get("cost_usd")), input_tokens=_int(done.get("input_tokens")),
        output_tokens=_int(done.get("output_tokens")), turns=_int(done.get("turns")),
        session_id=_str(done.get("session_id")), duration=_float(done.get("duration")),
        final_message=_str(done.get("final_message")),
        log_file=_str(done.get("log_file") or started.get("log_file")),
        changed_files=len(changed) if isinstance(changed, list) else None,
        events=tuple(e.id for e in (start, end) if e is not None and e.id is not None),
    )


def _unknown(value: object | None, fmt: str = "{}") -> str:
    return "unknown" if value is None else fmt.format(value)


def dispatch_lines(info: DispatchInfo) -> tuple[str, ...]:
    """The detail pane's lines for one attempt (plain text; the final message last, one line per line)."""
    when = f", started {info.started_at:%Y-%m-%d %H:%M} UTC" if info.started_at else ""
    lines = [f"attempt {_unknown(info.attempt)}: {info.agent or '-'} ({info.executor or '-'} executor){when}",
             f"outcome: {info.outcome}"]
    if info.state not in ("running", "unfinished", "handoff"):
        tokens = (f"{_unknown(info.input_tokens, '{:,}')} in / {_unknown(info.output_tokens, '{:,}')} out"
                  if info.input_tokens is not None or info.output_tokens is not None else "unknown")
        lines.append(f"cost {usd(info.cost_usd)}, tokens {tokens}, turns {_unknown(info.turns)}")
        lines.append(f"duration {_unknown(info.duration, '{:.1f}s')}"
                     + (f", {info.changed_files} file(s) changed" if info.changed_files is not None else ""))
    if info.session_id:
        lines.append(f"session {info.session_id}")
    if info.events:
        lines.append(f"source: {', '.join(f'#{i}' for i in info.events)}")
    if info.final_message:
        message = info.final_message.splitlines() or [""]
        lines.append("final message:")
        lines += [f"  {line}" for line in message[:FINAL_MESSAGE_LINES]]
        if len(message) > FINAL_MESSAGE_LINES:
            lines.append(f"  … {len(message) - FINAL_MESSAGE_LINES} more line(s)")
    return tuple(lines)


def progress_path(log_file: str | Path, root: Path | None = None) -> Path:
    """The live progress file of the attempt logging to ``log_file`` (relative paths from ``root``)."""
    path = Path(log_file)
    if not path.is_absolute() and root is not None:
        path = root / path
    return path.with_suffix(PROGRESS_SUFFIX)


def running_progress_file(info: DispatchInfo | None, root: Path | None = None) -> Path | None:
    """The progress file to follow: that of a running attempt with a log file, else None."""
    if info is None or not info.running or not info.log_file:
        return None
    return progress_path(info.log_file, root)


def _parse_progress(raw: bytes) -> ProgressEntry | None:
    try:
        item = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None  # a half-written (or damaged) line
    if not isinstance(item, dict):
        return None
    return ProgressEntry(str(item.get("t") or ""), str(item.get("kind") or "?"), str(item.get("text") or ""))


def read_progress_tail(path: Path, lines: int = PROGRESS_LINES, *, chunk: int = 8192,
                       max_bytes: int = 262_144) -> tuple[ProgressEntry, ...]:
    """The last ``lines`` entries of a progress file, reading only its end (``chunk`` bytes, doubled until
    enough lines are in, at most ``max_bytes``). A missing file gives nothing; a line that is not JSON (the
    last one half-written while the agent appends) is skipped."""
    if lines <= 0:
        return ()
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed below; the file may vanish between stat and open
    except OSError:
        return ()
    with handle:
        size = os.fstat(handle.fileno()).st_size
        want = min(chunk, size)
        while True:
            start = size - want
            handle.seek(start)
            data = handle.read(want)
            pieces = data.split(b"\n")
            if start > 0:
                pieces = pieces[1:]  # the first piece may be the end of an earlier line
            complete = [p for p in pieces if p.strip()]
            if len(complete) > lines or start == 0 or want >= max_bytes:
                break
            want = min(size, want * 2, max_bytes)
    entries = [entry for entry in (_parse_progress(p) for p in complete) if entry is not None]
    return tuple(entries[-lines:])


def task_progress(snapshot: Snapshot, task_id: str, root: Path | None = None,
                  lines: int = PROGRESS_LINES) -> tuple[DispatchInfo | None, tuple[ProgressEntry, ...]]:
    """The latest attempt of ``task_id`` and, while it runs, the tail of its progress file (only this
    task's file is read)."""
    task = snapshot.tasks.get(task_id)
    info = last_dispatch(snapshot.task_events(task_id), status=task.status.value if task else None)
    path = running_progress_file(info, root)
    return info, (read_progress_tail(path, lines) if path is not None else ())


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


def main_line(workflow: Workflow) -> tuple[str, ...]:
    """The workflow's forward line: its states in file order up to the last terminal state (the states after
    it, blocked and escalated in the shipped workflow, are side states)."""
    states = workflow.states
    ends = [states.index(t) for t in workflow.spec.terminal if t in states]
    return tuple(states[: max(ends) + 1]) if ends else tuple(states)


REASON_STATES: frozenset[str] = frozenset({TaskStatus.BLOCKED.value, TaskStatus.ESCALATED.value})


def needs_reason(state: str) -> bool:
    """Whether a move to ``state`` asks for a reason (block and escalate: the reason goes in the event)."""
    return state in REASON_STATES


def step_target(workflow: Workflow, task: Task, actor: str, step: int) -> tuple[str | None, str]:
    """The workflow move one step forward (``step`` > 0) or back along the main line for ``actor``:
    forward is the nearest allowed later state, back the nearest allowed earlier one; from a side state
    forward returns to where the task was blocked from. Returns ``(state, "")`` or ``(None, why not)``."""
    line = main_line(workflow)
    current = task.status.value
    allowed = workflow.allowed(task, actor)
    listed = ", ".join(allowed) or "nowhere"
    if current not in line:
        origin = task.blocked_from.value if task.blocked_from is not None else None
        if step > 0 and origin in allowed:
            return origin, ""
        return None, (f"{task.id} is {current}, off the main line: no {'forward' if step > 0 else 'back'} move; "
                      f"{actor} may move it to: {listed} (m)")
    here = line.index(current)
    candidates = [s for s in allowed if s in line and (line.index(s) > here if step > 0 else line.index(s) < here)]
    if not candidates:
        direction = "forward" if step > 0 else "back"
        return None, f"{task.id}: no {direction} move from {current} for {actor}; allowed: {listed}"
    return (min if step > 0 else max)(candidates, key=line.index), ""


def move_card(store: Store, workflow: Workflow, task_id: str, to: str, *, actor: str, reason: str = "") -> MoveResult:
    """Move through :func:`bno_orchestrator.workflow.move_task`; a refusal comes back as a message naming the
    moves ``actor`` is allowed to make instead. A move to blocked or escalated needs a ``reason``."""
    if needs_reason(to) and not reason.strip():
        current = store.find(task_id)
        if current is not None and to in workflow.allowed(current, actor):  # else the workflow's refusal says why
            return MoveResult(False, f"{task_id}: a move to {to} needs a reason (it is recorded in the event)")
    try:
        task = move_task(store, workflow, task_id, to, actor=actor, reason=reason)
    except UserError as exc:
        current = store.find(task_id)
        allowed = workflow.allowed(current, actor) if current is not None else []
        return MoveResult(False, f"{exc} | you may move {task_id} to: {', '.join(allowed) or 'nowhere'}")
    return MoveResult(True, f"{task_id} moved to {task.status.value}", task)
