"""The embedded engine: one SQLite file (WAL), the default store of a repository.

Writers take ``BEGIN IMMEDIATE`` (one writer at a time, readers never blocked) with a busy timeout, so the
CLI, the board, git hooks and local workers can write at the same time without losing anything.
:meth:`SqliteEngine.wait_for_change` polls the highest event id (an index lookup) every
:data:`POLL_INTERVAL_S` seconds: SQLite has no notifications between processes.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from bno_foundation import sqlite
from bno_orchestrator.store_engine import Rows
from bno_orchestrator.store_schema import COMPONENT, SQLITE_MIGRATIONS

BUSY_TIMEOUT_MS = 60_000
POLL_INTERVAL_S = 0.2


class SqliteEngine:
    """A store's SQLite file."""

    kind = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.location = str(self.path)
        self.conn = sqlite.connect(self.path, busy_timeout_ms=BUSY_TIMEOUT_MS)

    def execute(self, sql: str, params: Sequence[object] = ()) -> Rows:
        """Run one statement."""
        return self.conn.execute(sql, tuple(params))

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
        self.conn.execute("BEGIN")
        try:
            yield
        finally:
            self.conn.execute("COMMIT")

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
