"""The orchestrator's store: an event log and a task projection, on SQLite or PostgreSQL.

* ``events`` is an append-only log (the database refuses UPDATE and DELETE): every change to a task is an
  event (id, ts in UTC, actor, kind, task id, JSON payload, reason).
* ``tasks`` is a projection: the current state of each task, updated by :func:`apply_event` in the same
  transaction that appends the event, so the two never disagree. :func:`replay` rebuilds it from the log.
* ``schema_version`` holds one row per component sharing the database; migrations
  (:mod:`bno_orchestrator.store_schema`) are versioned per engine and a newer database is refused.
* The engine is chosen by a URL (:mod:`bno_orchestrator.store_url`): the embedded SQLite file
  ``REPO/.orchestrator/state.db`` by default (:mod:`.store_sqlite`), or a PostgreSQL database a team shares
  (:mod:`.store_postgres`, loaded only then). Writers are serialised by the engine, so the CLI, the board,
  git hooks and workers on many machines can write at the same time without losing anything.

Time comes from an injectable ``clock`` so tests of time-based rules never sleep.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bno_orchestrator.errors import NotFoundError
from bno_orchestrator.events import PROJECTED_KINDS, EventKind
from bno_orchestrator.models import Event, Task, TaskStatus, as_utc, utcnow
from bno_orchestrator.paths import store_path
from bno_orchestrator.store_engine import Engine, Rows
from bno_orchestrator.store_schema import COMPONENT, SCHEMA_VERSION, SQLITE_MIGRATIONS
from bno_orchestrator.store_sqlite import BUSY_TIMEOUT_MS, SqliteEngine

Clock = Callable[[], dt.datetime]
MIGRATIONS = SQLITE_MIGRATIONS  # the embedded engine's schema steps (PostgreSQL's twins: store_schema)
__all__ = ["BUSY_TIMEOUT_MS", "COMPONENT", "MIGRATIONS", "SCHEMA_VERSION", "Clock", "Store", "Transaction",
           "apply_event", "replay"]


# ------------------------------------------------------------------------------------------- projection


def apply_event(task: Task | None, event: Event) -> Task | None:
    """The projection: the task after ``event`` (``None`` for events that concern no task).

    Pure and deterministic, so replaying the log gives the stored projection exactly. Only the
    :data:`~bno_orchestrator.events.PROJECTED_KINDS` change a task; every other kind (task.deferred,
    gates.verified, other components' events) leaves it as it is. ``task.deleted`` takes the task out of
    the projection (``None``); ``task.restored`` brings it back with the fields its payload recorded.
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
    if kind == EventKind.TASK_RESTORED:
        assert task is None, f"task {event.task_id} restored while it exists (event {event.id})"
        return Task.model_validate({**payload["task"], "updated_at": ts})
    if task is None:
        return None
    if kind == EventKind.TASK_DELETED:
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
        else:  # a deleted task (or an event about no task: nothing to take out)
            tasks.pop(event.task_id, None)
    return tasks


# ---------------------------------------------------------------------------------------------- the store


def _ts_text(value: dt.datetime) -> str:
    return as_utc(value).isoformat(timespec="microseconds")


def _row_to_event(row: Any) -> Event:
    return Event(
        id=row[0], ts=dt.datetime.fromisoformat(row[1]), actor=row[2], kind=row[3], task_id=row[4],
        payload=json.loads(row[5]), reason=row[6],
    )


_EVENT_COLUMNS = "id, ts, actor, kind, task_id, payload, reason"
EVENT_COLUMNS = _EVENT_COLUMNS  # the event log's columns, in the order event_from_row reads them


def event_from_row(row: Any) -> Event:
    """An event from a raw ``events`` row (:data:`EVENT_COLUMNS`); a ValueError or pydantic's
    ValidationError when the row does not hold one (what ``orchestrator store check`` looks for)."""
    return _row_to_event(row)


_AUTO_ID_RE = re.compile(r"^T-(\d+)$")
WriteGuard = Callable[["Transaction"], None]


class Transaction:
    """Reads and appends inside one serialised write transaction (see :meth:`Store.write`)."""

    def __init__(self, store: Store, conn: Engine) -> None:
        self._store = store
        self._conn = conn
        self.appended: list[Event] = []
        # tasks read or written in this transaction: writers are serialised and every change to the
        # projection inside it goes through append, so what was read stays true until the commit
        self._seen: dict[str, Task | None] = {}

    def now(self) -> dt.datetime:
        """The store's clock."""
        return self._store.now()

    def task(self, task_id: str) -> Task:
        """The current state of ``task_id`` (NotFoundError when there is none)."""
        task = self.find(task_id)
        if task is None:
            raise NotFoundError(f"no task {task_id!r} (see `orchestrator task list`)")
        return task

    def find(self, task_id: str) -> Task | None:
        """The current state of ``task_id``, or None."""
        if task_id not in self._seen:
            self._seen[task_id] = self._store._find(self._conn, task_id)
        return self._seen[task_id]

    def tasks(self, status: Iterable[str] | None = None) -> list[Task]:
        """Every task (optionally only those in ``status``), ordered by id."""
        return self._store._tasks(self._conn, status)

    def events(self, task_id: str | None = None, kind: str | None = None, *, since: int | None = None) -> list[Event]:
        """The log (optionally filtered; ``since``: only ids above it), oldest first."""
        return self._store._events(self._conn, task_id, kind, since)

    def execute(self, sql: str, params: Iterable[object] = ()) -> Rows:
        """One statement (``?`` placeholders) on the store's companion tables (``leases``) inside this
        transaction. The event log and the projection are written only through :meth:`append`."""
        return self._conn.execute(sql, tuple(params))

    def next_task_id(self) -> str:
        """``T-NNNN``, one past the highest automatic id in use or held by a deleted task (a deleted task
        can be restored, so its id is never given to another)."""
        highest = 0
        for (task_id,) in self._conn.execute(
                "SELECT id FROM tasks WHERE id LIKE 'T-%' UNION "
                "SELECT task_id FROM events WHERE kind = ? AND task_id LIKE 'T-%'", (EventKind.TASK_DELETED.value,)):
            match = _AUTO_ID_RE.match(task_id)
            if match:
                highest = max(highest, int(match.group(1)))
        return f"T-{highest + 1:04d}"

    def append(self, event: Event) -> Event:
        """Append ``event`` and update the projection; returns the event with its id and ts."""
        stamped = event.model_copy(update={"ts": event.ts or self.now()})
        row = self._conn.execute(
            "INSERT INTO events (ts, actor, kind, task_id, payload, reason) VALUES (?, ?, ?, ?, ?, ?) "
            f"RETURNING {_EVENT_COLUMNS}",
            (
                _ts_text(stamped.ts or self.now()), stamped.actor, stamped.kind, stamped.task_id,
                json.dumps(stamped.payload, sort_keys=True, default=_json_default), stamped.reason,
            ),
        ).fetchone()
        assert row is not None, "the database returned no row for an inserted event"
        # what the projection sees must be what a replay reads back from the log: the stored row itself
        stamped = _row_to_event(row)
        if stamped.task_id is not None and stamped.kind in PROJECTED_KINDS:
            before = self.find(stamped.task_id)
            if before is None and stamped.kind not in (EventKind.TASK_CREATED, EventKind.TASK_RESTORED):
                raise NotFoundError(f"no task {stamped.task_id}")
            if before is not None and stamped.kind in (EventKind.TASK_CREATED, EventKind.TASK_RESTORED):
                from bno_orchestrator.errors import UserError

                raise UserError(f"task {stamped.task_id} already exists")
            after = apply_event(before, stamped)
            if after is None:  # task.deleted: the projection's row goes (the log keeps every event)
                self._conn.execute("DELETE FROM tasks WHERE id = ?", (stamped.task_id,))
                self._seen[stamped.task_id] = None
            elif after is not before:
                self._store._put(self._conn, after, stamped.id or 0)
                self._seen[stamped.task_id] = after
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
    """The event log and the task projection, in a SQLite file or a PostgreSQL database.

    ``Store(path)`` opens the SQLite file ``path`` (creating it unless ``create=False``); :meth:`open` opens
    the store a repository is configured to use and :meth:`connect` the one a URL names. ``path`` is always
    the repository-local SQLite file: with PostgreSQL it still holds this machine's gate-run records.

    A file that cannot be trusted is refused before anything is written to it, with an error that is both a
    ``StoreError`` and a ``UserError`` (exit 2) naming the file and how to recover: emptied, garbage,
    truncated or corrupt (:class:`~bno_foundation.sqlite.DamagedStoreError`), a newer schema
    (:class:`~bno_foundation.sqlite.NewerStoreError`). A write-protected file is opened read-only: reads
    work, writes raise :class:`~bno_foundation.sqlite.ReadOnlyStoreError`.
    """

    def __init__(self, path: Path, *, clock: Clock | None = None, engine: Engine | None = None,
                 create: bool = True) -> None:
        self.path = Path(path)
        self.clock: Clock = clock or utcnow
        self.guard: WriteGuard | None = None  # run at the start of every write; raising refuses the write
        if engine is None:
            engine = SqliteEngine(self.path, create=create)
        self._conn: Engine = engine
        try:
            self._migrate()
        except BaseException:
            engine.close()
            raise

    @classmethod
    def open(cls, repo: Path, *, clock: Clock | None = None, create: bool = True) -> Store:
        """The store of the repository ``repo``: the URL of ``$ORCHESTRATOR_STORE_URL`` or the repository's
        ``workflows/store.yaml``, else its SQLite file (created on first use when ``create``, else a
        :class:`~bno_foundation.sqlite.MissingStoreError`). A ``repo`` that is no directory is refused: no
        store is ever made for a repository that is not there."""
        from bno_orchestrator.errors import UserError
        from bno_orchestrator.store_url import resolve

        if not Path(repo).is_dir():
            raise UserError(f"{repo}: no such repository (point --repo at a git repository; `orchestrator init` "
                            "sets one up)")
        target = resolve(Path(repo))
        if target.path is not None:
            return cls(target.path, clock=clock, create=create)
        return cls.connect(target.url, clock=clock, repo=Path(repo))

    @classmethod
    def connect(cls, url: str, *, clock: Clock | None = None, repo: Path | None = None, create: bool = True) -> Store:
        """The store the URL names (``sqlite:///PATH`` or ``postgresql://...``); ``repo`` places the local
        gate records (default: the working directory's). ``create=False``: a missing SQLite file is refused."""
        from bno_orchestrator.store_url import parse

        local = store_path(Path(repo) if repo is not None else Path.cwd())
        target = parse(url, repo)
        if target.path is not None:
            return cls(target.path, clock=clock, create=create)
        from bno_orchestrator.store_postgres import PostgresEngine

        return cls(local, clock=clock, engine=PostgresEngine(target.url))

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

    @property
    def engine(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self._conn.kind

    @property
    def location(self) -> str:
        """Where the store is, as messages show it: the file, or the URL without its password."""
        return self._conn.location

    @property
    def read_only(self) -> str | None:
        """Why this store was opened read-only (a write-protected SQLite file), or None."""
        return getattr(self._conn, "read_only", None)

    # -------------------------------------------------------------------------------------- schema

    def _migrate(self) -> None:
        self._conn.migrate(lambda: self._rebuild(self._conn))

    def schema_version(self) -> int:
        """The orchestrator's schema version in this database."""
        return self._conn.schema_version()

    # -------------------------------------------------------------------------------- transactions

    @contextmanager
    def write(self) -> Iterator[Transaction]:
        """A write transaction: everything appended inside it commits together or not at all. Writers are
        serialised, so what is read inside it stays true until it commits. The :attr:`guard` (a worker's
        lease check) runs first."""
        with self._conn.write():
            tx = Transaction(self, self._conn)
            if self.guard is not None:
                self.guard(tx)
            yield tx

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

    def last_event_id(self) -> int:
        """The highest event id (0 for an empty log)."""
        return int(self._conn.execute("SELECT COALESCE(MAX(id), 0) FROM events").fetchone()[0])

    def wait_for_change(self, after_event_id: int, timeout: float) -> int:
        """Block until an event above ``after_event_id`` is in the log, or ``timeout`` seconds pass; returns
        the highest event id at that moment (so ``> after_event_id`` means: something changed, reload).

        PostgreSQL: LISTEN/NOTIFY, woken by the commit itself. SQLite: a cheap poll of the highest id.
        """
        return self._conn.wait_for_change(after_event_id, timeout)

    def snapshot(self) -> tuple[list[Task], list[Event]]:
        """Tasks and events read in one read transaction (a consistent view)."""
        with self._conn.read():
            return self._tasks(self._conn, None), self._events(self._conn, None, None)

    def _find(self, conn: Engine, task_id: str) -> Task | None:
        row = conn.execute("SELECT data FROM tasks WHERE id = ?", (task_id,)).fetchone()
        return None if row is None else Task.model_validate_json(row[0])

    def _task(self, conn: Engine, task_id: str) -> Task:
        task = self._find(conn, task_id)
        if task is None:
            raise NotFoundError(f"no task {task_id!r} (see `orchestrator task list`)")
        return task

    def _tasks(self, conn: Engine, status: Iterable[str] | None) -> list[Task]:
        if status is None:
            rows = conn.execute("SELECT data FROM tasks ORDER BY id").fetchall()
        else:
            wanted = [str(s) for s in status]
            marks = ",".join("?" * len(wanted))
            rows = conn.execute(f"SELECT data FROM tasks WHERE status IN ({marks}) ORDER BY id", wanted).fetchall()
        return [Task.model_validate_json(row[0]) for row in rows]

    def _events(self, conn: Engine, task_id: str | None, kind: str | None,
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

    def _put(self, conn: Engine, task: Task, event_id: int) -> None:
        conn.execute(
            "INSERT INTO tasks (id, status, type, data, last_event_id) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT(id) DO UPDATE SET status = excluded.status, type = excluded.type, "
            "data = excluded.data, last_event_id = excluded.last_event_id",
            (task.id, task.status.value, task.type, task.model_dump_json(), event_id),
        )

    # ------------------------------------------------------------------------------------ replay

    def rebuild(self) -> int:
        """Rebuild the task projection from the event log; returns the number of tasks."""
        with self._conn.write():
            return self._rebuild(self._conn)

    def _rebuild(self, conn: Engine) -> int:
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

    def restore_log(self, rows: Iterable[tuple[object, ...]]) -> tuple[int, int]:
        """Load raw event rows (``id, ts, actor, kind, task_id, payload, reason``, as another store's file held
        them) into this empty store, rebuild the projection from them and verify, before committing, that
        the log reads back unchanged. Returns (events, tasks). What ``orchestrator store recover`` builds its
        new file with; a non-empty store is refused."""
        from bno_orchestrator.errors import StoreError, UserError

        wanted = [tuple(row) for row in rows]
        with self._conn.write():
            if int(self._conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]):
                raise UserError(f"{self.location} already holds events: a log is restored into an empty store only")
            for row in wanted:
                self._conn.execute(f"INSERT INTO events ({_EVENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)", row)
            self._conn.reset_event_ids()
            tasks = self._rebuild(self._conn)
            copied = [tuple(row) for row in self._conn.execute(f"SELECT {_EVENT_COLUMNS} FROM events ORDER BY id")]
            if copied != wanted:
                raise StoreError(f"{self.location}: the restored log does not read back as written; nothing was kept")
        return len(wanted), tasks

    # ------------------------------------------------------------------------------------ copying

    def copy_log_from(self, source: Store) -> tuple[int, int]:
        """Copy every event of ``source`` into this empty store (ids, timestamps and payload bytes unchanged),
        rebuild the projection from the copy, and verify, before committing, that the copied log reads back
        equal to the source's and that its replay equals the source's projection. Returns (events, tasks).

        A non-empty target is refused; any mismatch raises StoreError and rolls the whole copy back.
        """
        from bno_orchestrator.errors import StoreError, UserError

        with source._conn.read():
            rows = [tuple(row) for row in source._conn.execute(f"SELECT {_EVENT_COLUMNS} FROM events ORDER BY id")]
            expected = source._tasks(source._conn, None)
        with self._conn.write():
            if int(self._conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]):
                raise UserError(f"{self.location} already holds events: the copy goes into an empty store only")
            for row in rows:
                self._conn.execute(f"INSERT INTO events ({_EVENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)", row)
            self._conn.reset_event_ids()
            tasks = self._rebuild(self._conn)
            copied = [tuple(row) for row in self._conn.execute(f"SELECT {_EVENT_COLUMNS} FROM events ORDER BY id")]
            if copied != rows:
                where = next((str(a[0]) for a, b in zip(copied, rows, strict=False) if a != b), "the end")
                raise StoreError(f"{self.location}: the copied log differs from {source.location} at event "
                                 f"{where}; nothing was copied")
            replayed = replay(_row_to_event(row) for row in copied)
            stored = {task.id: task for task in self._tasks(self._conn, None)}
            differing = sorted(task.id for task in expected if replayed.get(task.id) != task or stored.get(task.id) != task)
            if differing or len(replayed) != len(expected) or len(stored) != len(expected):
                raise StoreError(f"{self.location}: the replay of the copied log differs from the projection of "
                                 f"{source.location} (tasks {', '.join(differing[:5]) or 'added'}); nothing was copied")
        return len(rows), tasks
