"""The orchestrator's store: SQLite (WAL) at ``REPO/.orchestrator/state.db``.

* ``events`` is an append-only log (triggers refuse UPDATE and DELETE): every change to a task is an
  event (id, ts in UTC, actor, kind, task id, JSON payload, reason).
* ``tasks`` is a projection: the current state of each task, updated by :func:`apply_event` in the same
  transaction that appends the event, so the two never disagree. :func:`replay` rebuilds it from the log.
* ``schema_version`` holds one row per component sharing the file (``orchestrator`` here; the quality
  gates keep their own row and tables). Migrations are an ordered list; a newer file is refused.
* Writers take ``BEGIN IMMEDIATE`` (one writer at a time, readers never blocked) with a busy timeout, so
  the CLI, the board and git hooks can write at the same time without losing anything.

Time comes from an injectable ``clock`` so tests of time-based rules never sleep.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bno_foundation import sqlite
from bno_foundation.sqlite import Migration
from bno_orchestrator.errors import NotFoundError
from bno_orchestrator.events import PROJECTED_KINDS, EventKind
from bno_orchestrator.models import Event, Task, TaskStatus, as_utc, utcnow
from bno_orchestrator.paths import store_path

Clock = Callable[[], dt.datetime]
COMPONENT = "orchestrator"
BUSY_TIMEOUT_MS = 60_000


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "append-only event log",
        (
            """CREATE TABLE IF NOT EXISTS events (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                ts TEXT NOT NULL,
                actor TEXT NOT NULL,
                kind TEXT NOT NULL,
                task_id TEXT,
                payload TEXT NOT NULL DEFAULT '{}',
                reason TEXT NOT NULL DEFAULT ''
            )""",
            "CREATE INDEX IF NOT EXISTS events_task ON events(task_id, id)",
            "CREATE INDEX IF NOT EXISTS events_kind ON events(kind, id)",
            """CREATE TRIGGER IF NOT EXISTS events_no_update BEFORE UPDATE ON events
               BEGIN SELECT RAISE(ABORT, 'events are append-only'); END""",
            """CREATE TRIGGER IF NOT EXISTS events_no_delete BEFORE DELETE ON events
               BEGIN SELECT RAISE(ABORT, 'events are append-only'); END""",
        ),
    ),
    Migration(
        2,
        "task projection (current state of each task)",
        (
            """CREATE TABLE IF NOT EXISTS tasks (
                id TEXT PRIMARY KEY,
                status TEXT NOT NULL,
                type TEXT NOT NULL,
                data TEXT NOT NULL,
                last_event_id INTEGER NOT NULL
            )""",
            "CREATE INDEX IF NOT EXISTS tasks_status ON tasks(status)",
        ),
        rebuild=True,
    ),
)
SCHEMA_VERSION = MIGRATIONS[-1].version


# ------------------------------------------------------------------------------------------- projection


def apply_event(task: Task | None, event: Event) -> Task | None:
    """The projection: the task after ``event`` (``None`` for events that concern no task).

    Pure and deterministic, so replaying the log gives the stored projection exactly. Only the
    :data:`~bno_orchestrator.events.PROJECTED_KINDS` change a task; every other kind (task.deferred,
    gates.verified, other components' events) leaves it as it is.
    """
    kind = event.kind
    if kind not in PROJECTED_KINDS:
        return task
    payload = event.payload
    ts = event.ts
    if kind == EventKind.TASK_CREATED:
        assert task is None, f"task {event.task_id} created twice (event {event.id})"
        data = dict(payload["task"])
        data.setdefault("created_at", ts)
        data.setdefault("status_since", ts)
        data["updated_at"] = ts
        return Task.model_validate(data)
    if task is None:
        return None
    updates: dict[str, Any] = {"updated_at": ts}
    if kind == EventKind.TASK_EDITED:
        updates.update(payload["changes"])
    elif kind == EventKind.TASK_MOVED:
        updates.update(_status_change(task, TaskStatus(payload["to"]), event))
    elif kind == EventKind.TASK_ROUTED:
        updates["assignees"] = [payload["primary"]]
        updates["support"] = list(payload.get("secondary", []))
        updates["strategy"] = payload.get("strategy")
        if payload.get("to"):
            updates.update(_status_change(task, TaskStatus(payload["to"]), event))
    elif kind == EventKind.TASK_ESCALATED:
        updates["escalation_level"] = max(task.escalation_level, int(payload.get("level", 0)))
        if payload.get("action") == "redistribute":
            updates["assignees"] = []
            updates["support"] = []
            updates["strategy"] = None
        else:
            updates["support"] = list(dict.fromkeys([*task.support, *payload.get("agents", [])]))
        if payload.get("to"):
            updates.update(_status_change(task, TaskStatus(payload["to"]), event))
    else:
        return task
    return Task.model_validate({**task.model_dump(), **updates})


def _status_change(task: Task, to: TaskStatus, event: Event) -> dict[str, Any]:
    changes: dict[str, Any] = {"status": to, "status_since": event.ts}
    if to == TaskStatus.BLOCKED:
        changes["blocked_from"] = task.status
        changes["blocked_reason"] = event.reason or None
    elif task.status == TaskStatus.BLOCKED:
        changes["blocked_from"] = None
        changes["blocked_reason"] = None
    return changes


def replay(events: Iterable[Event]) -> dict[str, Task]:
    """Rebuild every task's current state from the log, in event order."""
    tasks: dict[str, Task] = {}
    for event in events:
        if event.task_id is None:
            continue
        result = apply_event(tasks.get(event.task_id), event)
        if result is not None:
            tasks[event.task_id] = result
    return tasks


# ---------------------------------------------------------------------------------------------- the store


def _ts_text(value: dt.datetime) -> str:
    return as_utc(value).isoformat(timespec="microseconds")


def _row_to_event(row: sqlite3.Row | tuple[Any, ...]) -> Event:
    return Event(
        id=row[0], ts=dt.datetime.fromisoformat(row[1]), actor=row[2], kind=row[3], task_id=row[4],
        payload=json.loads(row[5]), reason=row[6],
    )


_EVENT_COLUMNS = "id, ts, actor, kind, task_id, payload, reason"
_AUTO_ID_RE = re.compile(r"^T-(\d+)$")


class Transaction:
    """Reads and appends inside one ``BEGIN IMMEDIATE`` transaction (see :meth:`Store.write`)."""

    def __init__(self, store: Store, conn: sqlite3.Connection) -> None:
        self._store = store
        self._conn = conn
        self.appended: list[Event] = []

    def now(self) -> dt.datetime:
        """The store's clock."""
        return self._store.now()

    def task(self, task_id: str) -> Task:
        """The current state of ``task_id`` (NotFoundError when there is none)."""
        return self._store._task(self._conn, task_id)

    def find(self, task_id: str) -> Task | None:
        """The current state of ``task_id``, or None."""
        return self._store._find(self._conn, task_id)

    def tasks(self, status: Iterable[str] | None = None) -> list[Task]:
        """Every task (optionally only those in ``status``), ordered by id."""
        return self._store._tasks(self._conn, status)

    def events(self, task_id: str | None = None, kind: str | None = None, *, since: int | None = None) -> list[Event]:
        """The log (optionally filtered; ``since``: only ids above it), oldest first."""
        return self._store._events(self._conn, task_id, kind, since)

    def next_task_id(self) -> str:
        """``T-NNNN``, one past the highest automatic id in use."""
        highest = 0
        for (task_id,) in self._conn.execute("SELECT id FROM tasks WHERE id GLOB 'T-[0-9]*'"):
            match = _AUTO_ID_RE.match(task_id)
            if match:
                highest = max(highest, int(match.group(1)))
        return f"T-{highest + 1:04d}"

    def append(self, event: Event) -> Event:
        """Append ``event`` and update the projection; returns the event with its id and ts."""
        stamped = event.model_copy(update={"ts": event.ts or self.now()})
        cursor = self._conn.execute(
            f"INSERT INTO events ({_EVENT_COLUMNS}) VALUES (NULL, ?, ?, ?, ?, ?, ?)",
            (
                _ts_text(stamped.ts or self.now()), stamped.actor, stamped.kind, stamped.task_id,
                json.dumps(stamped.payload, sort_keys=True, default=_json_default), stamped.reason,
            ),
        )
        assert cursor.lastrowid is not None, "sqlite returned no row id for an insert"
        stamped = stamped.model_copy(update={"id": cursor.lastrowid})
        # what the projection sees must be what a replay reads back from the log
        stamped = _row_to_event(
            self._conn.execute(f"SELECT {_EVENT_COLUMNS} FROM events WHERE id = ?", (stamped.id,)).fetchone()
        )
        if stamped.task_id is not None and stamped.kind in PROJECTED_KINDS:
            before = self._store._find(self._conn, stamped.task_id)
            if before is None and stamped.kind != EventKind.TASK_CREATED:
                raise NotFoundError(f"no task {stamped.task_id}")
            after = apply_event(before, stamped)
            if after is not None and after is not before:
                self._store._put(self._conn, after, stamped.id or 0)
        self.appended.append(stamped)
        return stamped


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return _ts_text(value)
    if isinstance(value, TaskStatus):
        return value.value
    if isinstance(value, set | frozenset | tuple):
        return sorted(value) if isinstance(value, set | frozenset) else list(value)
    raise TypeError(f"cannot store {type(value).__name__} in an event payload")


class Store:
    """The event log and the task projection in one SQLite file."""

    def __init__(self, path: Path, *, clock: Clock | None = None) -> None:
        self.path = Path(path)
        self.clock: Clock = clock or utcnow
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite.connect(self.path, busy_timeout_ms=BUSY_TIMEOUT_MS)
        self._migrate()

    @classmethod
    def open(cls, repo: Path, *, clock: Clock | None = None) -> Store:
        """The store of the repository ``repo`` (created on first use)."""
        return cls(store_path(Path(repo)), clock=clock)

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def now(self) -> dt.datetime:
        """The current time by this store's clock (UTC)."""
        return as_utc(self.clock())

    # -------------------------------------------------------------------------------------- schema

    def _migrate(self) -> None:
        sqlite.migrate(self._conn, COMPONENT, MIGRATIONS, path=self.path, rebuild=self._rebuild)

    def schema_version(self) -> int:
        """The orchestrator's schema version in this file."""
        return sqlite.schema_version(self._conn, COMPONENT)

    # -------------------------------------------------------------------------------- transactions

    @contextmanager
    def write(self) -> Iterator[Transaction]:
        """A write transaction: everything appended inside it commits together or not at all."""
        with sqlite.immediate(self._conn):
            yield Transaction(self, self._conn)

    def append(self, event: Event) -> Event:
        """Append one event (and update the projection) in its own transaction."""
        with self.write() as tx:
            return tx.append(event)

    # -------------------------------------------------------------------------------------- reads

    def task(self, task_id: str) -> Task:
        """The current state of ``task_id`` (NotFoundError when there is none)."""
        return self._task(self._conn, task_id)

    def find(self, task_id: str) -> Task | None:
        """The current state of ``task_id``, or None."""
        return self._find(self._conn, task_id)

    def tasks(self, status: Iterable[str] | None = None) -> list[Task]:
        """Every task (optionally only those in ``status``), ordered by id."""
        return self._tasks(self._conn, status)

    def events(self, task_id: str | None = None, kind: str | None = None, *, since: int | None = None) -> list[Event]:
        """The log, oldest first: optionally one task's or one kind's events, or only ids above ``since``
        (what a board polls for)."""
        return self._events(self._conn, task_id, kind, since)

    def event_count(self) -> int:
        """How many events the log holds."""
        return int(self._conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])

    def snapshot(self) -> tuple[list[Task], list[Event]]:
        """Tasks and events read in one read transaction (a consistent view)."""
        conn = self._conn
        conn.execute("BEGIN")
        try:
            return self._tasks(conn, None), self._events(conn, None, None)
        finally:
            conn.execute("COMMIT")

    def _find(self, conn: sqlite3.Connection, task_id: str) -> Task | None:
        row = conn.execute("SELECT data FROM tasks WHERE id = ?", (task_id,)).fetchone()
        return None if row is None else Task.model_validate_json(row[0])

    def _task(self, conn: sqlite3.Connection, task_id: str) -> Task:
        task = self._find(conn, task_id)
        if task is None:
            raise NotFoundError(f"no task {task_id!r} (see `orchestrator task list`)")
        return task

    def _tasks(self, conn: sqlite3.Connection, status: Iterable[str] | None) -> list[Task]:
        if status is None:
            rows = conn.execute("SELECT data FROM tasks ORDER BY id").fetchall()
        else:
            wanted = [str(s) for s in status]
            marks = ",".join("?" * len(wanted))
            rows = conn.execute(f"SELECT data FROM tasks WHERE status IN ({marks}) ORDER BY id", wanted).fetchall()
        return [Task.model_validate_json(row[0]) for row in rows]

    def _events(self, conn: sqlite3.Connection, task_id: str | None, kind: str | None,
                since: int | None = None) -> list[Event]:
        clauses: list[str] = []
        params: list[object] = []
        if since is not None:
            clauses.append("id > ?")
            params.append(since)
        if task_id is not None:
            clauses.append("task_id = ?")
            params.append(task_id)
        if kind is not None:
            clauses.append("kind = ?")
            params.append(kind)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = conn.execute(f"SELECT {_EVENT_COLUMNS} FROM events{where} ORDER BY id", params).fetchall()
        return [_row_to_event(row) for row in rows]

    def _put(self, conn: sqlite3.Connection, task: Task, event_id: int) -> None:
        conn.execute(
            "INSERT INTO tasks (id, status, type, data, last_event_id) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT(id) DO UPDATE SET status = excluded.status, type = excluded.type, "
            "data = excluded.data, last_event_id = excluded.last_event_id",
            (task.id, task.status.value, task.type, task.model_dump_json(), event_id),
        )

    # ------------------------------------------------------------------------------------ replay

    def rebuild(self) -> int:
        """Rebuild the task projection from the event log; returns the number of tasks."""
        with sqlite.immediate(self._conn):
            return self._rebuild(self._conn)

    def _rebuild(self, conn: sqlite3.Connection) -> int:
        events = self._events(conn, None, None)
        last: dict[str, int] = {}
        for event in events:
            if event.task_id is not None and event.id is not None:
                last[event.task_id] = event.id
        tasks = replay(events)
        conn.execute("DELETE FROM tasks")
        for task in tasks.values():
            self._put(conn, task, last[task.id])
        return len(tasks)

    def projection(self) -> dict[str, Task]:
        """The stored projection, by task id (compare with ``replay(store.events())``)."""
        return {task.id: task for task in self.tasks()}
