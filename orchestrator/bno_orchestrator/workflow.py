"""The development workflow as a state machine, and the task operations that go through it.

``workflows/development.yaml`` lists the states (backlog, assigned, in_development, review, integration,
qa, testing, done; blocked and escalated on the side), the moves out of each state and the roles that may
make each move. Every operation here reads the task and appends its event inside one write transaction,
so two writers can never both make a move from the same state, and a refused operation writes nothing.

The pipeline cannot be skipped, by any actor (:func:`pipeline_guard`): moving on from a pipeline state that
names gates (review, integration, qa, testing) needs a passing ``gates.verified`` of that stage since the
task last entered it, and a task coming back from a side state (blocked, escalated) may re-enter the
pipeline beyond development only where it left it, and must pass that stage's gates again to move on.

Deleting a task records ``task.deleted`` with every field it had; ``task.restored`` brings it back as it
was. A task other tasks depend on is not deleted unless forced, and a forced delete first removes those
dependency edges with ``task.edited`` events on each dependent (a restore does not put them back: the
events say which tasks they were). :func:`undo_last` inverts an actor's last create, edit, move, delete
or restore with a new event that names the one it undoes (``"undoes": ID``), so undo after undo walks
further back and the log is never rewritten.
"""

from __future__ import annotations

import getpass
import itertools
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from bno_orchestrator.errors import NotFoundError, TransitionError, UserError
from bno_orchestrator.events import (
    PROJECTED_KINDS,
    UNDOABLE_KINDS,
    UNDOES_KEY,
    EventKind,
    GatesVerified,
    TaskCreated,
    TaskDeleted,
    TaskEdited,
    TaskMoved,
    TaskRestored,
)
from bno_orchestrator.models import EDITABLE_FIELDS, Event, Task, TaskStatus, unfinished_dependencies
from bno_orchestrator.rules import WorkflowSpec
from bno_orchestrator.store import Store, Transaction

REQUIRED_STATES: tuple[str, ...] = tuple(s.value for s in TaskStatus)


def default_actor() -> str:
    """``$ORCHESTRATOR_ACTOR``, else ``human:<login name>``."""
    env = os.environ.get("ORCHESTRATOR_ACTOR")
    if env:
        return env
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"human:{user}"


def actor_role(actor: str) -> tuple[str, str]:
    """``"agent:code"`` -> ``("agent", "code")``; ``"router"`` -> ``("router", "")``."""
    role, _, name = actor.partition(":")
    return role, name


@dataclass(frozen=True)
class Workflow:
    """The state machine of ``development.yaml``."""

    spec: WorkflowSpec

    @property
    def states(self) -> list[str]:
        """All states, in file order."""
        return list(self.spec.states)

    def load_states(self) -> set[str]:
        """States whose tasks count against the agent's capacity."""
        return {name for name, state in self.spec.states.items() if state.load}

    def targets(self, state: str) -> dict[str, list[str]]:
        """The moves out of ``state``: target -> roles allowed."""
        return dict(self.spec.states[state].next)

    def allowed(self, task: Task, actor: str) -> list[str]:
        """The states ``actor`` may move ``task`` to now."""
        return [to for to in self.targets(task.status.value) if self._may(task, to, actor)]

    def _may(self, task: Task, to: str, actor: str) -> bool:
        roles = self.spec.states[task.status.value].next.get(to)
        if roles is None:
            return False
        role, name = actor_role(actor)
        if role not in roles:
            return False
        return role != "agent" or name in task.assignees or name in task.support

    def initial_allowed(self, task: Task, actor: str) -> bool:
        """Whether ``actor`` may send ``task`` back to the initial state (the backlog)."""
        return self.spec.initial in self.allowed(task, actor)

    def check(self, task: Task, to: str, actor: str) -> None:
        """Raise TransitionError (listing the allowed moves) unless ``actor`` may move ``task`` to ``to``."""
        if to not in self.spec.states:
            raise TransitionError(f"unknown state {to!r}; the states are: {', '.join(self.states)}")
        if self._may(task, to, actor):
            return
        current = task.status.value
        moves = self.targets(current)
        if to in moves:
            role, name = actor_role(actor)
            who = ", ".join(moves[to])
            extra = ""
            if role == "agent" and role in moves[to]:
                extra = f" (agent {name} is not assigned to {task.id})"
            raise TransitionError(
                f"{task.id}: {actor} may not move {current} -> {to}{extra}; that move is for: {who}"
            )
        allowed = ", ".join(f"{target} ({'/'.join(roles)})" for target, roles in moves.items()) or "none"
        raise TransitionError(f"{task.id}: illegal transition {current} -> {to}; allowed from {current}: {allowed}")


def validate_workflow(spec: WorkflowSpec) -> list[tuple[tuple[str | int, ...], str]]:
    """Semantic problems of a workflow spec as (key path, message) pairs (empty when it is sound)."""
    problems: list[tuple[tuple[str | int, ...], str]] = []
    for name in REQUIRED_STATES:
        if name not in spec.states:
            problems.append((("states",), f"state {name!r} is missing (the orchestrator needs it)"))
    for name in spec.states:
        if name not in REQUIRED_STATES:
            problems.append((("states", name), f"unknown state {name!r}; states are {', '.join(REQUIRED_STATES)}"))
    if spec.initial not in spec.states:
        problems.append((("initial",), f"initial state {spec.initial!r} is not a state"))
    for index, name in enumerate(spec.terminal):
        if name not in spec.states:
            problems.append((("terminal", index), f"terminal state {name!r} is not a state"))
    for name, state in spec.states.items():
        for target, roles in state.next.items():
            if target not in spec.states:
                problems.append((("states", name, "next", target), f"unknown target state {target!r}"))
            for index, role in enumerate(roles):
                if spec.roles and role not in spec.roles:
                    problems.append(
                        (("states", name, "next", target, index),
                         f"unknown role {role!r}; roles are {', '.join(spec.roles)}")
                    )
    problems += _pipeline_problems(spec)
    return problems


def _pipeline_problems(spec: WorkflowSpec) -> list[tuple[tuple[str | int, ...], str]]:
    """The pipeline must be states in order, each move forward (and back to development) open to the gates."""
    problems: list[tuple[tuple[str | int, ...], str]] = []
    pipeline = spec.pipeline
    for index, name in enumerate(pipeline):
        if name not in spec.states:
            problems.append((("pipeline", index), f"pipeline state {name!r} is not a state"))
            return problems
    for index, (here, there) in enumerate(itertools.pairwise(pipeline)):
        roles = spec.states[here].next.get(there)
        if roles is None or "gates" not in roles:
            problems.append((("pipeline", index + 1),
                             f"the pipeline moves {here} -> {there}, which states.{here}.next does not allow "
                             "the role 'gates'"))
        if index > 0 and "gates" not in spec.states[here].next.get(pipeline[0], []):
            problems.append((("states", here, "next"),
                             f"a failed gate sends a task in {here} back to {pipeline[0]}: allow the role "
                             f"'gates' to move {here} -> {pipeline[0]}"))
    if pipeline and pipeline[-1] not in spec.terminal:
        problems.append((("pipeline", len(pipeline) - 1),
                         f"the pipeline ends in {pipeline[-1]!r}, which is not a terminal state"))
    return problems


# ------------------------------------------------------------------------------------------ operations


def find_cycle(edges: Mapping[str, Iterable[str]]) -> list[str] | None:
    """A dependency cycle in ``task -> depends_on`` edges as a closed path, or None."""
    import networkx as nx

    graph: nx.DiGraph[str] = nx.DiGraph()
    for task_id, deps in edges.items():
        graph.add_node(task_id)
        for dep in deps:
            graph.add_edge(task_id, dep)
    try:
        cycle = nx.find_cycle(graph)
    except nx.NetworkXNoCycle:
        return None
    path = [str(edge[0]) for edge in cycle]
    return [*path, path[0]]


def check_dependencies(tasks: Mapping[str, Task], changed: Task) -> None:
    """Refuse unknown dependencies and cycles that ``changed`` (new or edited) would create."""
    for dep in changed.depends_on:
        if dep not in tasks and dep != changed.id:
            raise NotFoundError(f"{changed.id}: depends on unknown task {dep!r}")
    edges = {task_id: task.depends_on for task_id, task in tasks.items()}
    edges[changed.id] = changed.depends_on
    cycle = find_cycle(edges)
    if cycle is not None:
        raise UserError(f"{changed.id}: refused, the dependencies would form a cycle: {' -> '.join(cycle)}")


def _build_task(fields: Mapping[str, Any]) -> Task:
    try:
        return Task.model_validate(dict(fields))
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "task"
        raise UserError(f"field '{field}': {first['msg']}") from None


def _snapshot_fields(task: Task) -> dict[str, Any]:
    return task.model_dump(mode="json", exclude={"created_at", "updated_at", "status_since"})


def create_task(
    store: Store, fields: Mapping[str, Any], *, actor: str | None = None, reason: str = "",
    known_types: Iterable[str] | None = None, known_components: Iterable[str] | None = None,
    known_agents: Iterable[str] | None = None,
) -> Task:
    """Add a task (id ``T-NNNN`` unless ``fields`` has one) in the workflow's initial state. The ``known_*``
    vocabularies, when given, refuse an unknown type, component or assignee (naming the known ones); the
    id of a deleted task is refused (it can be restored)."""
    unknown = set(fields) - set(EDITABLE_FIELDS) - {"id"}
    if unknown:
        raise UserError(f"cannot set {', '.join(sorted(unknown))} on a new task")
    with store.write() as tx:
        data = dict(fields)
        data.setdefault("id", tx.next_task_id())
        task = _build_task(data)
        if tx.find(task.id) is not None:
            raise UserError(f"task {task.id} already exists")
        deleted = _last_deletion(tx, task.id)
        if deleted is not None:
            raise UserError(f"task {task.id} was deleted (event {deleted.id}); its id stays reserved: "
                            f"`orchestrator task restore {task.id}` brings it back")
        _check_vocabulary(task, known_types, known_components, known_agents)
        # no existing task can depend on a new id (unknown dependencies are refused), so no cycle can form
        for dep in task.depends_on:
            if tx.find(dep) is None:
                raise NotFoundError(f"{task.id}: depends on unknown task {dep!r}")
        event = tx.append(Event.of(TaskCreated(_snapshot_fields(task)), actor=actor or default_actor(),
                                   task_id=task.id, reason=reason))
        assert event.id is not None, "the store did not assign an event id"
        return tx.task(task.id)


def _check_vocabulary(task: Task, known_types: Iterable[str] | None, known_components: Iterable[str] | None,
                      known_agents: Iterable[str] | None = None) -> None:
    if known_agents is not None:
        agents = set(known_agents)
        for agent in task.assignees:
            if agent not in agents:
                raise UserError(f"{task.id}: field 'assignees': unknown agent {agent!r}; known agents: "
                                f"{', '.join(sorted(agents)) or 'none'}")
    if known_types is not None:
        types = set(known_types)
        if task.type not in types:
            raise UserError(f"{task.id}: unknown task type {task.type!r}; known: {', '.join(sorted(types))}")
    if known_components is not None:
        components = set(known_components)
        for component in task.components:
            if component not in components:
                raise UserError(
                    f"{task.id}: unknown component {component!r}; known: {', '.join(sorted(components))}"
                )


LIST_FIELDS: tuple[str, ...] = ("components", "assignees", "depends_on", "labels")  # fields --add/--remove edit


def edit_task(
    store: Store, task_id: str, changes: Mapping[str, Any], *, actor: str | None = None, reason: str = "",
    known_types: Iterable[str] | None = None, known_components: Iterable[str] | None = None,
    known_agents: Iterable[str] | None = None, add: Mapping[str, Iterable[str]] | None = None,
    remove: Mapping[str, Iterable[str]] | None = None,
) -> Task:
    """Change fields of a task (not its status: that is :func:`move_task`). ``changes`` replaces fields;
    ``add`` and ``remove`` change the list fields (:data:`LIST_FIELDS`) item by item, applied to the value
    read inside the write transaction (so a concurrent edit is never lost). Removing an item the list does
    not hold is refused, naming it. Only assignees added or set are checked against ``known_agents``."""
    with store.write() as tx:
        return _edit_in(tx, task_id, changes, actor=actor or default_actor(), reason=reason, known_types=known_types,
                        known_components=known_components, known_agents=known_agents, add=add or {},
                        remove=remove or {})


def _list_changes(task: Task, changes: Mapping[str, Any], add: Mapping[str, Iterable[str]],
                  remove: Mapping[str, Iterable[str]]) -> dict[str, Any]:
    """``changes`` with the list fields that ``add``/``remove`` name computed from ``task``'s values."""
    out = dict(changes)
    for name in sorted({*add, *remove}):
        if name not in LIST_FIELDS:
            raise UserError(f"cannot add to or remove from {name!r}; list fields: {', '.join(LIST_FIELDS)}")
        if name in changes:
            raise UserError(f"field '{name}': give either the whole list or items to add/remove, not both")
        current: list[str] = list(getattr(task, name))
        dropping = list(remove.get(name, ()))
        missing = [item for item in dropping if item not in current]
        if missing:
            raise UserError(f"{task.id}: field '{name}' holds no {', '.join(repr(m) for m in missing)} to remove "
                            f"(it holds: {', '.join(current) or 'nothing'})")
        kept = [item for item in current if item not in dropping]
        out[name] = list(dict.fromkeys([*kept, *add.get(name, ())]))
    return out


def _edit_in(tx: Transaction, task_id: str, changes: Mapping[str, Any], *, actor: str, reason: str = "",
             known_types: Iterable[str] | None = None, known_components: Iterable[str] | None = None,
             known_agents: Iterable[str] | None = None, add: Mapping[str, Iterable[str]] | None = None,
             remove: Mapping[str, Iterable[str]] | None = None, undoes: int | None = None) -> Task:
    """:func:`edit_task` inside an open transaction."""
    unknown = set(changes) - set(EDITABLE_FIELDS)
    if unknown:
        hint = " (use `task move` for the status)" if "status" in unknown else ""
        raise UserError(f"cannot edit {', '.join(sorted(unknown))}{hint}; editable: {', '.join(EDITABLE_FIELDS)}")
    task = tx.task(task_id)
    changes = _list_changes(task, changes, add or {}, remove or {})
    updated = _build_task({**task.model_dump(), **changes})
    newly_assigned = [a for a in updated.assignees if a not in task.assignees]
    _check_vocabulary(updated.model_copy(update={"assignees": newly_assigned}), known_types, known_components,
                      known_agents)
    if "depends_on" in changes:
        check_dependencies({t.id: t for t in tx.tasks()}, updated)
    before = task.model_dump(mode="json")
    after = updated.model_dump(mode="json")
    diff = {key: after[key] for key in changes if before[key] != after[key]}
    if not diff:
        return task
    tx.append(Event.of(TaskEdited(diff, {key: before[key] for key in diff}, undoes), actor=actor,
                       task_id=task_id, reason=reason))
    return tx.task(task_id)


def pipeline_guard(workflow: Workflow, task: Task, to: str, history: Callable[[], Iterable[Event]]) -> None:
    """Refuse a move that would skip the pipeline's gates (TransitionError saying what is missing).

    ``history`` gives the task's events, oldest first (read only for a move the guard applies to). Moves into or within development are not guarded (the
    gates of the first stage after it decide there); the rest is (see the module docstring).
    """
    pipeline = workflow.spec.pipeline
    if to not in pipeline or pipeline.index(to) <= 1:
        return
    current = task.status.value
    entered, left_pipeline_at = 0, None
    events = list(history())
    for event in events:
        if event.kind != TaskMoved.KIND.value:
            continue
        if event.payload.get("to") == current:
            entered = event.id or 0
        source = event.payload.get("from")
        if source in pipeline and event.payload.get("to") not in pipeline:
            left_pipeline_at = source
        elif event.payload.get("to") in pipeline:
            left_pipeline_at = None
    if current not in pipeline:  # back from blocked or escalated: only where the task left the pipeline
        if to != left_pipeline_at:
            where = f"it left the pipeline at {left_pipeline_at}" if left_pipeline_at else "it never reached it"
            raise TransitionError(f"{task.id}: {current} -> {to} would skip the pipeline's gates ({where}); "
                                  f"it may go back to {left_pipeline_at or pipeline[0]}")
        return
    stage = workflow.spec.states[current]
    if pipeline.index(to) <= pipeline.index(current) or not stage.gates:
        return
    passed = any(event.kind == GatesVerified.KIND.value and (event.id or 0) > entered and event.payload.get("passed")
                 and event.payload.get("stage", "in_development") == current for event in events)
    if not passed:
        raise TransitionError(f"{task.id}: {current} -> {to} needs the {current} gates to pass first "
                              f"(`orchestrator advance {task.id}` runs them)")


def move_in(tx: Transaction, workflow: Workflow, task_id: str, to: str, *, actor: str, reason: str = "",
            undoes: int | None = None) -> Task:
    """Move a task inside an open transaction (checks the workflow, the pipeline's gates and the
    dependencies)."""
    task = tx.task(task_id)
    if task.status.value == to:
        raise TransitionError(f"{task_id} is already {to}")
    workflow.check(task, to, actor)
    pipeline_guard(workflow, task, to, lambda: tx.events(task_id=task_id))
    if to not in (TaskStatus.BACKLOG.value, TaskStatus.BLOCKED.value, TaskStatus.ESCALATED.value):
        deps = {dep: found for dep in task.depends_on if (found := tx.find(dep)) is not None}
        waiting = unfinished_dependencies(task, deps)
        if waiting:
            raise TransitionError(f"{task_id} is blocked by unfinished {', '.join(waiting)}; it cannot move to {to}")
    tx.append(Event.of(TaskMoved(task.status.value, to, undoes), actor=actor, task_id=task_id, reason=reason))
    return tx.task(task_id)


def move_task(store: Store, workflow: Workflow, task_id: str, to: str, *, actor: str | None = None,
              reason: str = "") -> Task:
    """Move a task to ``to`` if the workflow allows ``actor`` that move (TransitionError otherwise)."""
    with store.write() as tx:
        return move_in(tx, workflow, task_id, to, actor=actor or default_actor(), reason=reason)


def block_task(store: Store, workflow: Workflow, task_id: str, reason: str, *, actor: str | None = None) -> Task:
    """Move a task to ``blocked`` with the reason recorded (``unblock`` returns it where it was)."""
    if not reason.strip():
        raise UserError("a block needs a reason (--reason)")
    return move_task(store, workflow, task_id, TaskStatus.BLOCKED.value, actor=actor, reason=reason)


def unblock_task(store: Store, workflow: Workflow, task_id: str, *, actor: str | None = None,
                 reason: str = "", to: str | None = None) -> Task:
    """Move a blocked task back to the state it was blocked from (or ``to``)."""
    with store.write() as tx:
        task = tx.task(task_id)
        if task.status != TaskStatus.BLOCKED:
            raise TransitionError(f"{task_id} is {task.status.value}, not blocked")
        target = to or (task.blocked_from.value if task.blocked_from else workflow.spec.initial)
        return move_in(tx, workflow, task_id, target, actor=actor or default_actor(), reason=reason)


def record_verification(store: Store, task_id: str, *, run_id: str, passed: bool, agent: str,
                        actor: str = "gates", reason: str = "", stage: str = "in_development") -> Event:
    """Append a ``gates.verified`` event (the router's track record and escalation read these); ``stage`` is
    the workflow state whose gates ran."""
    with store.write() as tx:
        task = tx.task(task_id)
        return tx.append(Event.of(GatesVerified(run_id, passed, agent, task.type, stage), actor=actor,
                                  task_id=task_id,
                                  reason=reason or f"gate run {run_id} {'passed' if passed else 'failed'}"))


# ------------------------------------------------------------------------------ delete, restore, undo


def _last_deletion(tx: Transaction, task_id: str) -> Event | None:
    """The ``task.deleted`` event that removed ``task_id`` (None when it exists or never was deleted)."""
    if tx.find(task_id) is not None:
        return None
    deletions = tx.events(task_id=task_id, kind=EventKind.TASK_DELETED.value)
    return deletions[-1] if deletions else None


def _delete_in(tx: Transaction, task_id: str, *, actor: str, reason: str, force: bool,
               undoes: int | None = None) -> Event:
    task = tx.task(task_id)
    dependents = [other for other in tx.tasks() if task_id in other.depends_on]
    if dependents and not force:
        names = ", ".join(other.id for other in dependents)
        raise UserError(f"{task_id}: refused, {names} depend{'s' if len(dependents) == 1 else ''} on it; remove "
                        f"the dependency first (`task edit ID --remove-depends-on {task_id}`) or delete with "
                        "--force, which removes it from their dependencies")
    for other in dependents:  # a forced delete: each dependency edge goes by its own recorded edit
        kept = [dep for dep in other.depends_on if dep != task_id]
        tx.append(Event.of(TaskEdited({"depends_on": kept}, {"depends_on": list(other.depends_on)}), actor=actor,
                           task_id=other.id, reason=f"{task_id} deleted"))
    fields = task.model_dump(mode="json", exclude={"updated_at"})
    return tx.append(Event.of(TaskDeleted(fields, [other.id for other in dependents], undoes), actor=actor,
                              task_id=task_id, reason=reason))


def delete_task(store: Store, task_id: str, *, actor: str | None = None, reason: str = "",
                force: bool = False, undoes: int | None = None) -> Event:
    """Delete a task: a ``task.deleted`` event holding every field it had, so :func:`restore_task` can bring
    it back. A task others depend on is refused, naming them, unless ``force`` (see the module docstring).
    ``undoes``: the event this delete inverts (the board's undo of an add). Returns the event."""
    with store.write() as tx:
        return _delete_in(tx, task_id, actor=actor or default_actor(), reason=reason, force=force, undoes=undoes)


def _restore_in(tx: Transaction, task_id: str, *, actor: str, reason: str, undoes: int | None = None) -> Task:
    if tx.find(task_id) is not None:
        raise UserError(f"{task_id} is not deleted (it is on the board)")
    deleted = _last_deletion(tx, task_id)
    if deleted is None or deleted.id is None:
        raise NotFoundError(f"no deleted task {task_id!r} (see `orchestrator task list`)")
    fields = dict(deleted.payload["task"])
    missing = [dep for dep in fields.get("depends_on", []) if tx.find(dep) is None]
    if missing:
        raise UserError(f"{task_id}: refused, it depends on {', '.join(missing)}, which no longer exist; restore "
                        f"{'it' if len(missing) == 1 else 'them'} first")
    tx.append(Event.of(TaskRestored(fields, deleted.id, undoes), actor=actor, task_id=task_id, reason=reason))
    return tx.task(task_id)


def restore_task(store: Store, task_id: str, *, actor: str | None = None, reason: str = "",
                 undoes: int | None = None) -> Task:
    """Bring a deleted task back exactly as it was deleted (status, fields and history); refused while a task
    it depends on is still deleted. ``undoes``: the event this restore inverts (an undo of a delete)."""
    with store.write() as tx:
        return _restore_in(tx, task_id, actor=actor or default_actor(), reason=reason, undoes=undoes)


@dataclass(frozen=True, slots=True)
class Undone:
    """What :func:`undo_last` did: the event it inverted, the new event, and the task after it (None when
    the undo deleted the task)."""

    undone: Event
    event: Event
    task: Task | None
    summary: str


def undo_target(events: Iterable[Event], actor: str) -> Event | None:
    """The last event of ``actor`` that ``task undo`` can invert: undoable kinds only, skipping undos
    themselves and the events they already undid (so repeated undos walk further back)."""
    undone: set[int] = set()
    ordered = sorted(events, key=lambda e: e.id or 0)
    for event in ordered:
        target = event.payload.get(UNDOES_KEY)
        if isinstance(target, int):
            undone.add(target)
    for event in reversed(ordered):
        if event.actor != actor or event.task_id is None or event.kind not in UNDOABLE_KINDS:
            continue
        if event.id in undone or isinstance(event.payload.get(UNDOES_KEY), int):
            continue
        return event
    return None


def _changed_since(tx: Transaction, target: Event) -> Event | None:
    """The first event after ``target`` that changed its task, not counting undone pairs."""
    assert target.task_id is not None, "an undoable event names a task"
    later = [e for e in tx.events(task_id=target.task_id) if (e.id or 0) > (target.id or 0)]
    undone = {e.payload[UNDOES_KEY] for e in tx.events(task_id=target.task_id)
              if isinstance(e.payload.get(UNDOES_KEY), int)}
    for event in later:
        if event.kind not in PROJECTED_KINDS or event.id in undone:
            continue
        if isinstance(event.payload.get(UNDOES_KEY), int) and event.payload[UNDOES_KEY] in undone:
            continue
        return event
    return None


def undo_last(store: Store, workflow: Workflow, *, actor: str | None = None) -> Undone:
    """Invert ``actor``'s last create, edit, move, delete or restore with a new event (create -> delete,
    edit -> the previous values, move -> back through the workflow, delete -> restore, restore -> delete).

    Refused (UserError, nothing written) when there is nothing to undo, when the task changed since that
    event (naming the change), or when the workflow refuses the move back or a task now depends on it.
    """
    who = actor or default_actor()
    with store.write() as tx:
        candidates = [e for e in tx.events() if e.actor == who or isinstance(e.payload.get(UNDOES_KEY), int)]
        target = undo_target(candidates, who)
        if target is None or target.id is None or target.task_id is None:
            raise UserError(f"nothing to undo for {who}: no task created, edited, moved, deleted or restored "
                            "by this actor is left to undo")
        task_id = target.task_id
        label = f"event {target.id} ({target.kind} of {task_id})"
        later = _changed_since(tx, target)
        if later is not None:
            raise UserError(f"cannot undo {label}: {task_id} changed since (event {later.id}, {later.kind} by "
                            f"{later.actor})")
        reason = f"undo of event {target.id}"
        try:
            if target.kind == EventKind.TASK_CREATED or target.kind == EventKind.TASK_RESTORED:
                event = _delete_in(tx, task_id, actor=who, reason=reason, force=False, undoes=target.id)
                return Undone(target, event, None, f"deleted {task_id} (undo of its {target.kind})")
            if target.kind == EventKind.TASK_DELETED:
                task = _restore_in(tx, task_id, actor=who, reason=reason, undoes=target.id)
                return Undone(target, tx.appended[-1], task, f"restored {task_id}")
            if target.kind == EventKind.TASK_EDITED:
                previous = dict(target.payload.get("previous", {}))
                count = len(tx.appended)
                task = _edit_in(tx, task_id, previous, actor=who, reason=reason, undoes=target.id)
                if len(tx.appended) == count:
                    raise UserError(f"{task_id} already holds the values it had before")
                return Undone(target, tx.appended[-1], task,
                              f"{task_id}: {', '.join(sorted(previous))} back to the previous values")
            source = str(target.payload["from"])
            task = move_in(tx, workflow, task_id, source, actor=who, reason=reason, undoes=target.id)
            return Undone(target, tx.appended[-1], task, f"{task_id} moved back to {source}")
        except UserError as exc:
            raise type(exc)(f"cannot undo {label}: {exc}") from None
