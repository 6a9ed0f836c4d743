"""The embedded engine: one SQLite file (WAL), the default store of a repository.

Writers take ``BEGIN IMMEDIATE`` (one writer at a time, readers never blocked) with a busy timeout, so the
CLI, the board, git hooks and local workers can write at the same time without losing anything. A file that
cannot be trusted is refused by :func:`bno_foundation.sqlite.connect` before it is touched, and a damaged
page met later, on any row read, becomes the same one-line user error naming the file and
:data:`RECOVERY_HINT`; a write-protected file is read-only.
:meth:`SqliteEngine.wait_for_change` polls the highest event id (an index lookup) every
:data:`POLL_INTERVAL_S` seconds: SQLite has no notifications between processes.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from bno_foundation import sqlite
from bno_orchestrator.store_engine import Rows
from bno_orchestrator.store_schema import COMPONENT, SQLITE_MIGRATIONS

BUSY_TIMEOUT_MS = 60_000
POLL_INTERVAL_S = 0.2
RECOVERY_HINT = ("the file was left as it is: `orchestrator store check` says what is wrong, `orchestrator store "
                 "recover` rebuilds it from its event log where that is intact, else restore a copy "
                 "(docs/store-recovery.md)")


class _CheckedRows:
    """A cursor whose reads turn SQLite's errors into the project's (a damaged page can surface on any row)."""

    def __init__(self, cursor: sqlite3.Cursor, path: Path) -> None:
        self._cursor = cursor
        self._path = path

    def fetchone(self) -> Any:
        """The next row, or None."""
        try:
            return self._cursor.fetchone()
        except sqlite3.Error as exc:
            raise sqlite.database_error(exc, self._path, hint=RECOVERY_HINT) from exc

    def fetchall(self) -> list[Any]:
        """Every remaining row."""
        try:
            return self._cursor.fetchall()
        except sqlite3.Error as exc:
            raise sqlite.database_error(exc, self._path, hint=RECOVERY_HINT) from exc

    def __iter__(self) -> Iterator[Any]:
        """The remaining rows."""
        return iter(self.fetchall())


class SqliteEngine:
    """A store's SQLite file."""

    kind = "sqlite"

    def __init__(self, path: Path, *, create: bool = True) -> None:
        self.path = Path(path)
        self.location = str(self.path)
        self.conn = sqlite.connect(self.path, busy_timeout_ms=BUSY_TIMEOUT_MS, create=create, hint=RECOVERY_HINT)

    @property
    def read_only(self) -> str | None:
        """Why the file was opened read-only (None: it is writable)."""
        return self.conn.read_only

    def execute(self, sql: str, params: Sequence[object] = ()) -> Rows:
        """Run one statement; a damaged page met on the way is a :class:`~bno_foundation.sqlite.DamagedStoreError`
        naming the file and how to recover, whenever the rows are read."""
        try:
            return _CheckedRows(self.conn.execute(sql, tuple(params)), self.path)
        except sqlite3.Error as exc:
            raise sqlite.database_error(exc, self.path, hint=RECOVERY_HINT) from exc

    def write(self) -> contextlib.AbstractContextManager[None]:
        """``BEGIN IMMEDIATE``: one writer at a time."""
        return self._write()

    @contextlib.contextmanager
    def _write(self) -> Iterator[None]:
        with sqlite.immediate(self.conn):
            yield

    @contextlib.contextmanager
    def read(self) -> Iterator[None]:
        """A deferred read transaction (WAL: one snapshot, writers not blocked)."""
        self.execute("BEGIN")
        try:
            yield
        finally:
            self.execute("COMMIT")

    def migrate(self, rebuild: Callable[[], object]) -> int:
        """The pending SQLite migrations, in one transaction."""
        def on_rebuild(_conn: sqlite3.Connection) -> object:
            return rebuild()

        return sqlite.migrate(self.conn, COMPONENT, SQLITE_MIGRATIONS, path=self.path, rebuild=on_rebuild)

    def schema_version(self) -> int:
        """The orchestrator's schema version in this file."""
        return sqlite.schema_version(self.conn, COMPONENT)

    def reset_event_ids(self) -> None:
        """Nothing to do: an AUTOINCREMENT table's counter follows explicit ids by itself."""

    def wait_for_change(self, after_event_id: int, timeout: float) -> int:
        """Poll the highest event id until it passes ``after_event_id`` or ``timeout`` seconds pass."""
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            latest = int(self.conn.execute("SELECT COALESCE(MAX(id), 0) FROM events").fetchone()[0])
            remaining = deadline - time.monotonic()
            if latest > after_event_id or remaining <= 0:
                return latest
            time.sleep(min(POLL_INTERVAL_S, remaining))

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()
