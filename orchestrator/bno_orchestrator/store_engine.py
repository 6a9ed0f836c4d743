"""What the store needs of a database engine: the one interface the SQLite and PostgreSQL backends share.

The store writes its SQL once, with ``?`` placeholders; an engine runs it (PostgreSQL's backend translates
the placeholders). Write transactions are serialised per store (SQLite: ``BEGIN IMMEDIATE``; PostgreSQL:
a transaction-scoped advisory lock), so a read-decide-write inside one never loses an update and event ids
are assigned in commit order (a reader polling ``id > N`` never misses one).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol


class Rows(Protocol):
    """A cursor's result rows (tuples)."""

    def fetchone(self) -> Any:
        """The next row, or None."""

    def fetchall(self) -> list[Any]:
        """Every remaining row."""

    def __iter__(self) -> Iterator[Any]:
        """The remaining rows."""


class Engine(Protocol):
    """One open connection to a store's database."""

    kind: str  # "sqlite" | "postgresql"
    location: str  # what messages show: the file, or the URL without its password

    def execute(self, sql: str, params: Sequence[object] = ()) -> Rows:
        """Run one statement (``?`` placeholders)."""

    def write(self) -> AbstractContextManager[None]:
        """A serialised write transaction: committed on success, rolled back on any exception."""

    def read(self) -> AbstractContextManager[None]:
        """A read transaction that sees one consistent state."""

    def migrate(self, rebuild: Callable[[], object]) -> int:
        """Bring the schema to the newest version (``rebuild`` recomputes the projection when asked)."""

    def schema_version(self) -> int:
        """The recorded schema version (0: none)."""

    def reset_event_ids(self) -> None:
        """After events were inserted with their ids: the next automatic id follows the highest one."""

    def wait_for_change(self, after_event_id: int, timeout: float) -> int:
        """Block until the log holds an event above ``after_event_id`` or ``timeout`` seconds pass; returns
        the highest event id then (equal to ``after_event_id`` or lower when nothing came)."""

    def close(self) -> None:
        """Close the connection."""
