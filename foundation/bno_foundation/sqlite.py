"""SQLite opening and schema migrations, the same for every store of the project.

:func:`connect` opens a database in autocommit mode (transactions are explicit ``BEGIN IMMEDIATE``),
in WAL mode with one busy timeout. :func:`migrate` brings one component's tables to the newest schema:
each component (the orchestrator's store, the gate records) keeps its own row in ``schema_version``, so
several components share one file without knowing each other.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from bno_foundation.errors import StoreError

BUSY_TIMEOUT_MS = 30_000


@dataclass(frozen=True)
class Migration:
    """One schema step of a component: the statements that take it from ``version - 1`` to ``version``.

    ``rebuild`` asks the caller's rebuild hook to run once after all pending steps (e.g. to recompute a
    projection from an event log after a table changed shape).
    """

    version: int
    description: str
    statements: tuple[str, ...]
    rebuild: bool = False


def connect(path: Path, *, busy_timeout_ms: int = BUSY_TIMEOUT_MS, row_factory: bool = False) -> sqlite3.Connection:
    """Open (creating if needed) the SQLite file ``path``: autocommit, WAL, ``synchronous=NORMAL``.

    Raises :class:`StoreError` naming the file when it is not a usable database.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        conn = sqlite3.connect(
            str(path), timeout=busy_timeout_ms / 1000, isolation_level=None, check_same_thread=False
        )
        if row_factory:
            conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{path}: {exc}") from exc
    return conn


@contextlib.contextmanager
def immediate(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A ``BEGIN IMMEDIATE`` transaction: committed on success, rolled back on any exception."""
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        raise StoreError(f"cannot start a write transaction: {exc}") from exc
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def schema_version(conn: sqlite3.Connection, component: str) -> int:
    """The schema version recorded for ``component`` (0 when it has none yet)."""
    try:
        row = conn.execute("SELECT version FROM schema_version WHERE component = ?", (component,)).fetchone()
    except sqlite3.OperationalError:  # no schema_version table yet
        return 0
    return int(row[0]) if row else 0


def migrate(
    conn: sqlite3.Connection,
    component: str,
    migrations: Sequence[Migration],
    *,
    path: Path | str,
    program: str = "bitnet-orchestrator",
    rebuild: Callable[[sqlite3.Connection], object] | None = None,
) -> int:
    """Apply the pending ``migrations`` of ``component`` in one transaction; returns the new version.

    A database whose recorded version is newer than the newest migration is refused with a
    :class:`StoreError` (it was written by a newer release). The common case (already current) takes no
    write lock.
    """
    newest = max((m.version for m in migrations), default=0)
    if schema_version(conn, component) == newest:
        return newest
    try:
        with immediate(conn):
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_version (component TEXT PRIMARY KEY, version INTEGER NOT NULL)"
            )
            current = schema_version(conn, component)
            if current > newest:
                raise StoreError(
                    f"{path}: schema version {current} of {component!r} is newer than this release knows "
                    f"({newest}); upgrade {program}"
                )
            needs_rebuild = False
            for migration in sorted(migrations, key=lambda m: m.version):
                if migration.version <= current:
                    continue
                for statement in migration.statements:
                    conn.execute(statement)
                needs_rebuild = needs_rebuild or migration.rebuild
                current = migration.version
            if needs_rebuild and rebuild is not None:
                rebuild(conn)
            conn.execute(
                "INSERT INTO schema_version (component, version) VALUES (?, ?) "
                "ON CONFLICT(component) DO UPDATE SET version = excluded.version",
                (component, current),
            )
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{path}: {exc}") from exc
    return current
