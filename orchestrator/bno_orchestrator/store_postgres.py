"""The team engine: a PostgreSQL database that every clone and worker of a team shares (psycopg 3).

This module is imported only when a ``postgresql://`` URL is used, so the CLI's start path never loads
psycopg. The store's SQL is written once with ``?`` placeholders; :func:`to_pyformat` turns them into
psycopg's ``%s`` (a literal ``%`` is escaped). Write transactions take one transaction-scoped advisory lock
(:data:`WRITE_LOCK`), the PostgreSQL twin of SQLite's ``BEGIN IMMEDIATE``: a read-decide-write inside
a transaction never loses an update, and event ids are committed in order. Reads never wait for it.

:meth:`PostgresEngine.wait_for_change` LISTENs on :data:`~bno_orchestrator.store_schema.CHANNEL` on a
second connection (the insert trigger NOTIFYs each new id on commit), so a board wakes when a move lands
instead of polling.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import psycopg
from psycopg import sql

from bno_foundation.sqlite import NewerStoreError
from bno_orchestrator.errors import StoreError, UserError
from bno_orchestrator.store_engine import Rows
from bno_orchestrator.store_schema import CHANNEL, COMPONENT, POSTGRES_MIGRATIONS, WRITER_GRANTS
from bno_orchestrator.store_url import redact, scrub

WRITE_LOCK = 0x626E6F5F73746F  # pg_advisory_xact_lock key of the store's writers ("bno_sto")
CONNECT_TIMEOUT_S = 10
PROGRAM = "bitnet-orchestrator"


@functools.lru_cache(maxsize=512)
def to_pyformat(statement: str) -> str:
    """``?`` placeholders -> ``%s`` (and ``%`` -> ``%%``) for psycopg."""
    return statement.replace("%", "%%").replace("?", "%s")


def connect(url: str) -> psycopg.Connection[Any]:
    """An autocommit connection to ``url``; a StoreError naming the URL (without its password) otherwise."""
    try:
        return psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S,
                               application_name="bitnet-orchestrator")
    except psycopg.Error as exc:
        raise StoreError(f"{redact(url)}: cannot connect: {scrub(str(exc).strip(), url)}") from None


class PostgresEngine:
    """A store's PostgreSQL database."""

    kind = "postgresql"

    def __init__(self, url: str) -> None:
        self.url = url
        self.location = redact(url)
        self.conn = connect(url)
        self._listener: psycopg.Connection[Any] | None = None

    def execute(self, statement: str, params: Sequence[object] = ()) -> Rows:
        """Run one statement (``?`` placeholders)."""
        try:
            return self.conn.execute(to_pyformat(statement).encode(), tuple(params))
        except psycopg.errors.RaiseException as exc:
            raise StoreError(f"{self.location}: {exc.diag.message_primary or exc}") from exc
        except psycopg.OperationalError as exc:
            raise StoreError(f"{self.location}: {str(exc).strip()}") from exc

    def write(self) -> contextlib.AbstractContextManager[None]:
        """A transaction holding the store's write lock until it ends."""
        return self._write()

    @contextlib.contextmanager
    def _write(self) -> Iterator[None]:
        # BEGIN and the lock in one round trip (a write is a handful of short statements: each one counts)
        self._run(f"BEGIN; SELECT pg_advisory_xact_lock({WRITE_LOCK})")
        try:
            yield
        except BaseException:
            with contextlib.suppress(psycopg.Error):  # a lost connection has nothing left to roll back
                self.conn.execute(b"ROLLBACK")
            raise
        self._run("COMMIT")

    def _run(self, statement: str) -> None:
        try:
            self.conn.execute(statement.encode())
        except psycopg.OperationalError as exc:
            raise StoreError(f"{self.location}: {str(exc).strip()}") from exc

    @contextlib.contextmanager
    def read(self) -> Iterator[None]:
        """A read-only REPEATABLE READ transaction: one snapshot for every read inside it."""
        with self.conn.transaction():
            self.conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            yield

    def schema_version(self) -> int:
        """The orchestrator's schema version in this database (0: none yet)."""
        exists = self.conn.execute("SELECT to_regclass('schema_version') IS NOT NULL").fetchone()
        if not exists or not exists[0]:
            return 0
        row = self.conn.execute("SELECT version FROM schema_version WHERE component = %s", (COMPONENT,)).fetchone()
        return int(row[0]) if row else 0

    def migrate(self, rebuild: Callable[[], object]) -> int:
        """Apply the pending PostgreSQL migrations in one transaction (under the write lock, so two processes
        starting at once migrate once). A database of a newer release is refused."""
        newest = POSTGRES_MIGRATIONS[-1].version
        if self.schema_version() == newest:
            return newest
        try:
            with self._write():
                self.conn.execute("CREATE TABLE IF NOT EXISTS schema_version "
                                  "(component TEXT PRIMARY KEY, version INTEGER NOT NULL)")
                current = self.schema_version()
                if current > newest:  # a user error (exit 2), and nothing was changed
                    raise NewerStoreError(self.location, f"schema version {current} of {COMPONENT!r} is newer than "
                                                         f"this release knows ({newest})", f"upgrade {PROGRAM}")
                needs_rebuild = False
                for migration in POSTGRES_MIGRATIONS:
                    if migration.version <= current:
                        continue
                    for statement in migration.statements:
                        self.conn.execute(statement.encode())
                    needs_rebuild = needs_rebuild or migration.rebuild
                    current = migration.version
                if needs_rebuild:
                    rebuild()
                self.conn.execute("INSERT INTO schema_version (component, version) VALUES (%s, %s) "
                                  "ON CONFLICT (component) DO UPDATE SET version = excluded.version",
                                  (COMPONENT, current))
        except psycopg.errors.InsufficientPrivilege as exc:
            raise StoreError(f"{self.location}: the schema needs migrating to version {newest} and this role may "
                             f"not: run `orchestrator store schema` as the database owner ({exc})") from exc
        return current

    def reset_event_ids(self) -> None:
        """Move the identity sequence of ``events.id`` past the highest id (after a copy with explicit ids)."""
        self.conn.execute("SELECT setval(pg_get_serial_sequence('events', 'id'), "
                          "GREATEST((SELECT MAX(id) FROM events), 1), (SELECT COUNT(*) > 0 FROM events))")

    def wait_for_change(self, after_event_id: int, timeout: float) -> int:
        """LISTEN for new events; returns the highest event id once it passes ``after_event_id`` or when
        ``timeout`` seconds have passed."""
        if self._listener is None:
            self._listener = connect(self.url)
            self._listener.execute(sql.SQL("LISTEN {}").format(sql.Identifier(CHANNEL)))
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            # after LISTEN, so an event committed between this read and the wait still wakes us
            row = self.conn.execute("SELECT COALESCE(MAX(id), 0) FROM events").fetchone()
            latest = int(row[0]) if row else 0
            remaining = deadline - time.monotonic()
            if latest > after_event_id or remaining <= 0:
                return latest
            for _ in self._listener.notifies(timeout=remaining, stop_after=1):
                pass

    def grant_writer(self, role: str) -> None:
        """Give ``role`` what a clone or worker needs and nothing more: no UPDATE, DELETE or TRUNCATE on the
        event log (the database itself keeps it append-only, whatever the trigger)."""
        exists = self.conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
        if not exists:
            raise UserError(f"{self.location}: there is no role {role!r} (CREATE ROLE {role} LOGIN PASSWORD ... "
                            "first, as an administrator)")
        schema_row = self.conn.execute("SELECT current_schema()").fetchone()
        schema = str(schema_row[0]) if schema_row else "public"
        with self.conn.transaction():
            for template in WRITER_GRANTS:
                statement = sql.SQL(template).format(schema=sql.Identifier(schema), role=sql.Identifier(role))
                self.conn.execute(statement)

    def close(self) -> None:
        """Close both connections."""
        if self._listener is not None:
            self._listener.close()
        self.conn.close()
