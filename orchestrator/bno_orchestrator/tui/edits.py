"""What the board's add and edit forms change, and how the board undoes its own last action.

:func:`form_fields` turns the form's text fields (title, priority, labels, assignee) into task fields;
:func:`add_from_form` and :func:`edit_from_form` write them through :mod:`bno_orchestrator.workflow`
(so the store's rules and events apply as for the CLI); :func:`delete_from_board` deletes a card with the
reason given. Each board action that changes the store leaves an :class:`UndoEntry`; :func:`undo` writes
the inverse as a new event (the log is append-only: an undo is recorded, never erased): a move back, the
previous values, a delete of an added task, a restore of a deleted one. No Textual here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bno_orchestrator.errors import UserError
from bno_orchestrator.tui.data import MoveResult, move_card
from bno_orchestrator.workflow import Workflow, create_task, delete_task, edit_task, restore_task

if TYPE_CHECKING:
    from bno_orchestrator.models import Task
    from bno_orchestrator.store import Store

FORM_FIELDS: tuple[str, ...] = ("title", "priority", "labels", "assignee")
PRIORITY_FIELD = "impact"  # the form's priority (1..5) is the task's impact, the main term of every scorer


def form_values(task: Task | None) -> dict[str, str]:
    """The form's text fields for ``task`` (empty ones for a new task)."""
    if task is None:
        return dict.fromkeys(FORM_FIELDS, "")
    priority = getattr(task, PRIORITY_FIELD)
    return {"title": task.title, "priority": "" if priority is None else str(priority),
            "labels": ", ".join(task.labels), "assignee": task.assignees[0] if task.assignees else ""}


def form_fields(values: Mapping[str, str]) -> dict[str, Any]:
    """Task fields from the form's text: a title (required), a priority 1..5 (blank: the scoring default),
    labels separated by commas, one assignee (blank: none). UserError names the bad field."""
    title = " ".join(values.get("title", "").split())
    if not title:
        raise UserError("a task needs a title")
    raw = values.get("priority", "").strip()
    if raw and not (raw.isdigit() and 1 <= int(raw) <= 5):
        raise UserError(f"priority {raw!r}: a whole number 1..5, or blank for the default")
    labels = [label.strip() for label in values.get("labels", "").split(",") if label.strip()]
    assignee = values.get("assignee", "").strip()
    return {"title": title, PRIORITY_FIELD: int(raw) if raw else None, "labels": labels,
            "assignees": [assignee] if assignee else []}


@dataclass(frozen=True, slots=True)
class UndoEntry:
    """A board action that can be undone: ``kind`` ``move`` (``data``: the state it left), ``edit``
    (``data``: the fields' previous values), ``add`` or ``delete`` (``data``: ``event``, the id of the
    event that created or deleted the task, which the undo names)."""

    kind: str
    task_id: str
    label: str
    data: Mapping[str, Any] = field(default_factory=dict)


def add_from_form(store: Store, values: Mapping[str, str], *, actor: str,
                  known_types: set[str] | None = None) -> Task:
    """Create a task from the add form."""
    return create_task(store, form_fields(values), actor=actor, reason="added on the board", known_types=known_types)


def add_entry(store: Store, task: Task) -> UndoEntry:
    """The entry that undoes the creation of ``task`` (a delete naming its ``task.created`` event)."""
    from bno_orchestrator.events import EventKind

    created = store.events(task_id=task.id, kind=EventKind.TASK_CREATED.value)
    return UndoEntry("add", task.id, f"add of {task.id}", {"event": created[-1].id if created else None})


def delete_from_board(store: Store, task: Task, reason: str, *, actor: str) -> tuple[MoveResult, UndoEntry | None]:
    """Delete ``task`` with ``reason`` (refused, saying why, when other tasks depend on it: the board never
    forces); the result and the entry that undoes it (a restore)."""
    if not reason.strip():
        return MoveResult(False, "a delete needs a reason"), None
    try:
        event = delete_task(store, task.id, actor=actor, reason=reason.strip())
    except UserError as exc:
        return MoveResult(False, str(exc)), None
    entry = UndoEntry("delete", task.id, f"delete of {task.id}", {"event": event.id})
    return MoveResult(True, f"deleted {task.id} (u undoes it)"), entry


def edit_from_form(store: Store, task: Task, values: Mapping[str, str], *, actor: str) -> tuple[Task, UndoEntry | None]:
    """Apply the edit form to ``task``; the edited task and the entry that undoes the edit (None when
    nothing changed)."""
    fields = form_fields(values)
    before = task.model_dump(mode="json")
    changes = {key: value for key, value in fields.items() if before.get(key) != value}
    if not changes:
        return task, None
    edited = edit_task(store, task.id, changes, actor=actor, reason="edited on the board")
    entry = UndoEntry("edit", task.id, f"edit of {task.id} ({', '.join(sorted(changes))})",
                      {key: before.get(key) for key in changes})
    return edited, entry


def undo(store: Store, workflow: Workflow, entry: UndoEntry, *, actor: str) -> MoveResult:
    """Write the inverse of ``entry`` as a new event: a move back to the state it left (through the
    workflow, so a move the workflow does not allow back is refused and says why) or the previous values."""
    reason = f"undo of the {entry.label}"
    if entry.kind == "move":
        result = move_card(store, workflow, entry.task_id, str(entry.data["from"]), actor=actor, reason=reason)
        if result.ok:
            return MoveResult(True, f"undid the {entry.label}: {entry.task_id} is back in {entry.data['from']}",
                              result.task)
        return MoveResult(False, f"cannot undo the {entry.label}: {result.message}")
    if entry.kind == "edit":
        try:
            task = edit_task(store, entry.task_id, dict(entry.data), actor=actor, reason=reason)
        except UserError as exc:
            return MoveResult(False, f"cannot undo the {entry.label}: {exc}")
        return MoveResult(True, f"undid the {entry.label}", task)
    undoes = entry.data.get("event")
    undoes = undoes if isinstance(undoes, int) else None
    if entry.kind == "add":
        try:
            delete_task(store, entry.task_id, actor=actor, reason=reason, undoes=undoes)
        except UserError as exc:
            return MoveResult(False, f"cannot undo the {entry.label}: {exc}")
        return MoveResult(True, f"undid the {entry.label}: {entry.task_id} is deleted")
    if entry.kind == "delete":
        try:
            task = restore_task(store, entry.task_id, actor=actor, reason=reason, undoes=undoes)
        except UserError as exc:
            return MoveResult(False, f"cannot undo the {entry.label}: {exc}")
        return MoveResult(True, f"undid the {entry.label}: {entry.task_id} is back in {task.status.value}", task)
    raise ValueError(f"unknown undo entry kind {entry.kind!r}")
