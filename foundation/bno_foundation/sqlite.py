"""SQLite opening and schema migrations, the same for every store of the project.

:func:`connect` opens a database in autocommit mode (transactions are explicit ``BEGIN IMMEDIATE``),
in WAL mode with one busy timeout. :func:`migrate` brings one component's tables to the newest schema:
each component (the orchestrator's store, the gate records) keeps its own row in ``schema_version``, so
several components share one file without knowing each other.

A file is trusted only as far as it can be: :func:`inspect_file` reads its header without opening it, and
:func:`connect` refuses an emptied (0-byte), garbage or truncated file with a :class:`DamagedStoreError`
before SQLite touches it (SQLite would take a 0-byte file for a new database and start it afresh). A
write-protected file or folder (by permission bits, even for root, or a read-only file system) is opened
read-only: reads work, a write raises :class:`ReadOnlyStoreError`. A newer schema raises
:class:`NewerStoreError` before any lock is taken. These three are both a ``StoreError`` (the store is
unusable) and a ``UserError`` (the user can act on it: exit 2, one line); the file is never changed.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import sqlite3
import stat
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from bno_foundation.errors import StoreError, UserError

BUSY_TIMEOUT_MS = 30_000
HEADER_MAGIC = b"SQLite format 3\x00"
HEADER_SIZE = 100
EMPTY, NOT_A_DATABASE, TRUNCATED, CORRUPT = "empty", "not a database", "truncated", "corrupt"
_CORRUPT_CODES = {"SQLITE_CORRUPT", "SQLITE_NOTADB"}
_TEMPORARY = re.compile(r"^(\s*CREATE)\s+(TABLE|TRIGGER|VIEW)\b", re.IGNORECASE)  # indexes follow their table


class UnusableStoreError(StoreError, UserError):
    """A store file this program will not use as asked; the file is left exactly as it was.

    ``path``: the file; ``problem``: what is wrong, in words; ``hint``: how to recover. Exit code 2 (the user
    can act on it), and still a :class:`StoreError` for code that catches those.
    """

    def __init__(self, path: Path | str, problem: str, hint: str = "") -> None:
        self.path = Path(path)
        self.problem = problem
        self.hint = hint
        super().__init__(f"{path}: {problem}" + (f"; {hint}" if hint else ""))


class DamagedStoreError(UnusableStoreError):
    """The file is emptied, not a database, truncated or corrupt (``kind``: :data:`EMPTY`,
    :data:`NOT_A_DATABASE`, :data:`TRUNCATED` or :data:`CORRUPT`)."""

    def __init__(self, path: Path | str, kind: str, problem: str, hint: str = "") -> None:
        self.kind = kind
        super().__init__(path, problem, hint)


class NewerStoreError(UnusableStoreError):
    """The file holds a schema version newer than this release knows."""


class ReadOnlyStoreError(UnusableStoreError):
    """A write was asked of a store that is write-protected."""


def inspect_file(path: Path) -> DamagedStoreError | None:
    """What is wrong with the SQLite file ``path`` as far as its size and 100-byte header tell, without
    opening it (None: nothing seen; a missing file is None too). Truncation is judged by the page count the
    header declares, unless a non-empty ``-wal`` beside it may still hold the missing pages."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            header = fh.read(HEADER_SIZE)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StoreError(f"{path}: cannot be read: {exc.strerror or exc}") from exc
    if size == 0:
        return DamagedStoreError(path, EMPTY, "the file is empty (0 bytes): the history it held is gone")
    if not header.startswith(HEADER_MAGIC):
        return DamagedStoreError(path, NOT_A_DATABASE, f"not a SQLite database ({size} bytes of something else)")
    if len(header) < HEADER_SIZE:
        return DamagedStoreError(path, TRUNCATED, f"truncated: {size} bytes, less than a database header")
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    header_valid = pages > 0 and header[24:28] == header[92:96]
    wal = Path(f"{path}-wal")
    wal_pending = wal.is_file() and wal.stat().st_size > 0
    if header_valid and size < pages * page_size and not wal_pending:
        return DamagedStoreError(path, TRUNCATED,
                                 f"truncated: {size} bytes of the {pages * page_size} its header declares")
    return None


def write_protection(path: Path) -> str | None:
    """Why ``path`` (an existing file) may not be written, or None. Permission bits count even for root (a
    0444 file is the owner's way of saying "read only"), so do the user's rights and a read-only mount."""
    path = Path(path)
    return _protection(path, "the file") or _protection(path.parent, "its folder")


def _protection(target: Path, what: str) -> str | None:
    mode = target.stat().st_mode
    if not mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH):
        return f"{what} is write-protected (mode {stat.S_IMODE(mode):04o})"
    if not os.access(target, os.W_OK):
        return f"{what} is not writable by this user or is on a read-only file system"
    return None


def database_error(exc: sqlite3.Error, path: Path | str, *, hint: str = "") -> StoreError:
    """The project's error for a SQLite error on the file ``path``: corruption -> :class:`DamagedStoreError`,
    a refused write -> :class:`ReadOnlyStoreError`, anything else (busy, I/O) -> :class:`StoreError`."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    text = str(exc)
    if name.startswith(tuple(_CORRUPT_CODES)) or "malformed" in text or "not a database" in text:
        return DamagedStoreError(path, CORRUPT, f"the database is damaged ({text})", hint)
    if name.startswith("SQLITE_READONLY") or "readonly database" in text:
        return ReadOnlyStoreError(path, f"the store is read-only ({text})", "make it writable to change it")
    return StoreError(f"{path}: {text}")


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


class MissingStoreError(UnusableStoreError):
    """The file was asked for and is not there (and creating it was not asked for)."""


class TrustedConnection(sqlite3.Connection):
    """A connection that knows its file and whether it was opened read-only (``read_only``: why, or None)."""

    path: Path
    read_only: str | None = None
    hint: str = ""


def connect(path: Path, *, busy_timeout_ms: int = BUSY_TIMEOUT_MS, row_factory: bool = False, create: bool = True,
            hint: str = "") -> TrustedConnection:
    """Open the SQLite file ``path``: autocommit, WAL, ``synchronous=NORMAL``.

    A missing file is created (atomically: made beside it, then linked into place, so no reader ever sees
    a 0-byte file) when ``create``, else refused with :class:`MissingStoreError`. An existing file is
    checked first (:func:`inspect_file`: a :class:`DamagedStoreError`) and opened read-only when it is
    write-protected (:func:`write_protection`). ``hint`` (how to recover) ends every message about the file.
    """
    path = Path(path)
    if not path.exists():
        if not create:
            raise MissingStoreError(path, "no store here", hint)
        _create(path, hint)
    damaged = inspect_file(path)
    if damaged is not None:
        raise DamagedStoreError(path, damaged.kind, damaged.problem, hint)
    protection = write_protection(path)
    conn: TrustedConnection | None = None
    try:
        if protection is None:
            conn = _open(str(path), busy_timeout_ms, uri=False)
        else:
            wal = Path(f"{path}-wal")
            # a write-protected folder cannot hold the -shm file a WAL reader needs: read the file as it is
            # (unless a -wal beside it may hold committed pages: SQLite must read those through it)
            folder_protected = _protection(path.parent, "its folder") is not None
            immutable = folder_protected and not (wal.is_file() and wal.stat().st_size > 0)
            uri = f"file:{quote(str(path.absolute()))}?mode=ro" + ("&immutable=1" if immutable else "")
            conn = _open(uri, busy_timeout_ms, uri=True)
        conn.path, conn.read_only, conn.hint = path, protection, hint
        if row_factory:
            conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()  # reads page 1: a damaged file fails here
        if protection is None:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
    except sqlite3.Error as exc:
        if conn is not None:
            conn.close()
        raise database_error(exc, path, hint=hint) from exc
    return conn


def _open(target: str, busy_timeout_ms: int, *, uri: bool) -> TrustedConnection:
    conn = sqlite3.connect(target, timeout=busy_timeout_ms / 1000, isolation_level=None, check_same_thread=False,
                           uri=uri, factory=TrustedConnection)
    assert isinstance(conn, TrustedConnection)
    return conn


def _create(path: Path, hint: str) -> None:
    """A new, empty WAL database at ``path``, made under a temporary name and linked into place (a file that
    appeared meanwhile is kept: whoever made it made the same)."""
    temporary = path.with_name(f".{path.name}.new-{os.getpid()}-{secrets.token_hex(4)}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(temporary), isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode = WAL")
        finally:
            conn.close()
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
    except (OSError, sqlite3.Error) as exc:
        raise UnusableStoreError(path, f"the store cannot be created: {exc}", hint) from exc
    finally:
        for leftover in (temporary, Path(f"{temporary}-wal"), Path(f"{temporary}-shm")):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()


def _path_of(conn: sqlite3.Connection) -> str:
    return str(getattr(conn, "path", "the database"))


@contextlib.contextmanager
def immediate(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A ``BEGIN IMMEDIATE`` transaction: committed on success, rolled back on any exception. A connection
    opened read-only refuses it with :class:`ReadOnlyStoreError` (nothing is tried)."""
    read_only = getattr(conn, "read_only", None)
    if read_only:
        raise ReadOnlyStoreError(_path_of(conn), f"this command writes and the store is read-only: {read_only}",
                                 "make it writable (chmod u+w on the file and its folder) or use read commands")
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.Error as exc:
        error = database_error(exc, _path_of(conn), hint=getattr(conn, "hint", ""))
        if type(error) is StoreError:
            raise StoreError(f"cannot start a write transaction: {exc}") from exc
        raise error from exc
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
    hint = getattr(conn, "hint", "")
    try:
        found = schema_version(conn, component)
    except sqlite3.Error as exc:
        raise database_error(exc, path, hint=hint) from exc
    if found == newest:
        return newest
    if found > newest:
        raise NewerStoreError(path, f"schema version {found} of {component!r} is newer than this release knows "
                                    f"({newest})", f"upgrade {program}; the file was left as it is")
    read_only = getattr(conn, "read_only", None)
    if read_only and found == 0:
        # a component that never wrote to this read-only file reads as empty: its tables are made in the
        # connection's own TEMP schema, which lives and dies with the connection; the file is untouched
        try:
            for migration in sorted(migrations, key=lambda m: m.version):
                for statement in migration.statements:
                    conn.execute(_TEMPORARY.sub(r"\1 TEMP \2", statement, count=1))
        except sqlite3.Error as exc:
            raise database_error(exc, path, hint=hint) from exc
        return newest
    if read_only:
        raise ReadOnlyStoreError(path, f"the schema of {component!r} needs migrating from version {found} to "
                                       f"{newest} and the store is read-only: {read_only}", "make it writable once")
    try:
        with immediate(conn):
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_version (component TEXT PRIMARY KEY, version INTEGER NOT NULL)"
            )
            current = schema_version(conn, component)
            if current > newest:
                raise NewerStoreError(path, f"schema version {current} of {component!r} is newer than this release "
                                            f"knows ({newest})", f"upgrade {program}; the file was left as it is")
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
    except sqlite3.Error as exc:
        raise database_error(exc, path, hint=hint) from exc
    return current
