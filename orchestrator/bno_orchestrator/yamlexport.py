"""``orchestrator export`` / ``import``: the tasks as one YAML file, for review in git.

Export writes the current state of every task (fields left at their defaults are omitted, so diffs stay
small) and optionally the event log. Import validates the whole file first (errors name file, line,
column and field), checks dependencies (unknown ids, cycles), assignees (known agents only) and status
changes (they must be legal workflow moves), then appends every event in ONE transaction: nothing is
half-imported. Tasks absent from the file are left as they are, and so are the fields a task entry leaves
out: an entry naming only ``id`` and ``priority`` changes the priority and nothing else. A new task starts
in the workflow's initial state; a different ``status`` is then one workflow move, checked like any other
(an import cannot create a task straight in ``done``).
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field

from bno_foundation.atomic import atomic_write
from bno_foundation.yamlio import Located, load_yaml, validate
from bno_orchestrator.errors import TransitionError
from bno_orchestrator.events import TaskCreated, TaskEdited, TaskMoved
from bno_orchestrator.models import Event, Task, TaskStatus
from bno_orchestrator.store import Store
from bno_orchestrator.workflow import Workflow, find_cycle, pipeline_guard

FORMAT_VERSION = 1
_NOT_EXPORTED = {"updated_at", "status_since"}
_NOT_EDITED = {"id", "status", "created_at", "updated_at", "status_since", "blocked_from", "blocked_reason",
               "escalation_level"}


class ExportFile(BaseModel):
    """The top level of an export file."""

    model_config = ConfigDict(extra="forbid")

    version: int = Field(FORMAT_VERSION, ge=1, le=FORMAT_VERSION)
    exported_at: dt.datetime | None = None
    tasks: list[dict[str, Any]] = Field(default_factory=list)
    events: list[dict[str, Any]] = Field(default_factory=list)


def task_to_yaml_dict(task: Task) -> dict[str, Any]:
    """The task as written to the export: JSON types, defaults and volatile timestamps left out."""
    defaults = Task(id=task.id, title=task.title).model_dump(mode="json")
    data = task.model_dump(mode="json")
    out: dict[str, Any] = {"id": data["id"], "title": data["title"]}
    for key, value in data.items():
        if key in out or key in _NOT_EXPORTED:
            continue
        if key in ("status", "type", "complexity") or value != defaults.get(key):
            out[key] = value
    return out


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dump_export(tasks: list[Task], events: list[Event] | None = None, *, now: dt.datetime | None = None) -> str:
    """The export text for ``tasks`` (and ``events`` when given)."""
    doc: dict[str, Any] = {"version": FORMAT_VERSION}
    if now is not None:
        doc["exported_at"] = now.isoformat()
    doc["tasks"] = [task_to_yaml_dict(t) for t in sorted(tasks, key=lambda t: t.id)]
    if events is not None:
        doc["events"] = [e.model_dump(mode="json") for e in events]
    header = "# Tasks of the BitNet Orchestrator store (orchestrator export). Edit, then `orchestrator import`.\n"
    return header + yaml.dump(doc, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=110)


def export_tasks(store: Store, path: Path, *, include_events: bool = False) -> int:
    """Write the store's tasks (and events) to ``path``; returns the number of tasks."""
    tasks, events = store.snapshot()
    # no timestamp in the header: exporting an unchanged store gives a byte-identical file (clean git diffs)
    atomic_write(path, dump_export(tasks, events if include_events else None))
    return len(tasks)


@dataclass
class ImportReport:
    """What an import did (or would do, in a dry run)."""

    created: list[str] = field(default_factory=list)
    edited: dict[str, dict[str, tuple[Any, Any]]] = field(default_factory=dict)  # id -> field -> (old, new)
    moved: dict[str, tuple[str, str]] = field(default_factory=dict)
    unchanged: list[str] = field(default_factory=list)
    events: int = 0

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready dict (``edited``: task -> field -> ``{"old", "new"}``)."""
        return {"created": self.created,
                "edited": {task_id: {name: {"old": old, "new": new} for name, (old, new) in fields.items()}
                           for task_id, fields in self.edited.items()},
                "moved": {k: list(v) for k, v in self.moved.items()}, "unchanged": self.unchanged,
                "events": self.events}

    def lines(self) -> list[str]:
        """One line per change, for people: each created task, each field's old and new value, each move."""
        out = [f"create {task_id}" for task_id in self.created]
        for task_id, fields in self.edited.items():
            out += [f"edit {task_id} {name}: {old!r} -> {new!r}" for name, (old, new) in fields.items()]
        out += [f"move {task_id}: {old} -> {new}" for task_id, (old, new) in self.moved.items()]
        return out


def import_tasks(store: Store, workflow: Workflow, path: Path, *, actor: str, dry_run: bool = False,
                 known_types: set[str] | None = None, known_components: set[str] | None = None,
                 known_agents: set[str] | None = None) -> ImportReport:
    """Apply an export file to the store: all of it, or (on any error) nothing."""
    located = load_yaml(path)
    doc = validate(ExportFile, located)
    entries: list[tuple[Task, set[str]]] = []  # the task as the file gives it, and the fields it names
    where: dict[str, int] = {}
    for index, raw in enumerate(doc.tasks):
        task = validate(Task, located, key_path=("tasks", index), data=raw)
        if task.id in where:
            raise located.error(f"task {task.id} appears twice (first as item {where[task.id]})",
                                ("tasks", index, "id"))
        _check_names(located, index, task, known_types, known_components, known_agents)
        where[task.id] = index
        entries.append((task, set(raw)))
    report = ImportReport()
    reason = f"imported from {path.name}"
    with store.write() as tx:
        current = {t.id: t for t in tx.tasks()}
        merged = dict(current)
        for task, named in entries:
            old = current.get(task.id)
            merged[task.id] = task if old is None else _overlay(old, task, named)
        for task, _ in entries:
            for j, dep in enumerate(merged[task.id].depends_on):
                if dep not in merged:
                    raise located.error(f"depends on unknown task {dep!r}", ("tasks", where[task.id], "depends_on", j))
        cycle = find_cycle({task_id: t.depends_on for task_id, t in merged.items()})
        if cycle is not None:
            first = next((c for c in cycle if c in where), cycle[0])
            raise located.error(f"dependency cycle: {' -> '.join(cycle)}", ("tasks", where.get(first, 0), "depends_on"))
        events: list[Event] = []
        for task, _ in entries:
            old = current.get(task.id)
            status_path = ("tasks", where[task.id], "status")
            if old is None:
                start = task.model_copy(update={"status": TaskStatus(workflow.spec.initial)})
                snapshot = start.model_dump(mode="json", exclude={"updated_at", "status_since"})
                if snapshot.get("created_at") is None:
                    snapshot.pop("created_at")
                events.append(Event.of(TaskCreated(snapshot), actor=actor, task_id=task.id, reason=reason))
                report.created.append(task.id)
                old, target = start, task
            else:
                target = merged[task.id]
                before = old.model_dump(mode="json")
                after = target.model_dump(mode="json")
                diff = {k: after[k] for k in after if k not in _NOT_EDITED and before[k] != after[k]}
                if diff:
                    events.append(Event.of(TaskEdited(diff, {k: before[k] for k in diff}), actor=actor,
                                           task_id=task.id, reason=reason))
                    report.edited[task.id] = {k: (before[k], after[k]) for k in sorted(diff)}
                elif old.status == target.status:
                    report.unchanged.append(task.id)
            if old.status != target.status:
                try:
                    workflow.check(old, target.status.value, actor)
                    pipeline_guard(workflow, old, target.status.value, functools.partial(tx.events, task_id=task.id))
                except TransitionError as exc:
                    raise located.error(str(exc), status_path) from None
                blocked_reason = target.blocked_reason if target.status == TaskStatus.BLOCKED else None
                events.append(Event.of(TaskMoved(old.status.value, target.status.value), actor=actor,
                                       task_id=task.id, reason=blocked_reason or reason))
                report.moved[task.id] = (old.status.value, target.status.value)
        report.events = len(events)
        if not dry_run:
            for event in events:
                tx.append(event)
    return report


def _overlay(old: Task, given: Task, named: set[str]) -> Task:
    """``old`` with the fields the file names (``named``) taken from ``given``; the rest stay as they are."""
    update = {name: getattr(given, name) for name in named if name in Task.model_fields and name != "id"}
    return old.model_copy(update=update)


def _check_names(located: Located, index: int, task: Task, known_types: set[str] | None,
                 known_components: set[str] | None, known_agents: set[str] | None) -> None:
    """Refuse a task type, component or agent the configuration does not know, naming the field."""
    if known_types is not None and task.type not in known_types:
        raise located.error(f"unknown task type {task.type!r}; known: {', '.join(sorted(known_types))}",
                            ("tasks", index, "type"))
    if known_components is not None:
        for j, component in enumerate(task.components):
            if component not in known_components:
                raise located.error(f"unknown component {component!r}", ("tasks", index, "components", j))
    if known_agents is not None:
        for key in ("assignees", "support"):
            for j, agent in enumerate(getattr(task, key)):
                if agent not in known_agents:
                    raise located.error(f"unknown agent {agent!r}; the agents are: {', '.join(sorted(known_agents))}",
                                        ("tasks", index, key, j))
