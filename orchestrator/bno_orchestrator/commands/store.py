"""``orchestrator store``: which store this clone uses, its schema, the move to a team's PostgreSQL, roles.

* ``store info``: the engine, where it is (a URL never shows its password), where the choice came from,
  the schema version and how many events and tasks it holds.
* ``store schema``: bring the schema to this release's version (on PostgreSQL: as the database owner,
  before the team's writer role gets its grants).
* ``store migrate sqlite-to-postgres --to URL``: copy the repository's SQLite log into an empty PostgreSQL
  store, verified by replay equality before it commits (:meth:`~bno_orchestrator.store.Store.copy_log_from`).
* ``store grant ROLE``: give a PostgreSQL role what clones and workers need, and no UPDATE, DELETE or
  TRUNCATE on the event log.
* ``store check``: is the store sound? SQLite's ``PRAGMA integrity_check``, a known schema version, every
  event of the log readable, and the projection equal to a replay of the log. Read-only (a SQLite file is
  opened with ``mode=ro``), so it works on a damaged or write-protected file; exit 1 with the findings.
* ``store recover``: rebuild the projection from the event log where the log is intact. SQLite: a new file
  is built beside the old one (the log copied row for row, the projection replayed, the gate records and
  leases copied where readable), verified, and swapped in atomically; the old file stays as
  ``state.db.bak-TIMESTAMP``. PostgreSQL: the projection is rebuilt in one transaction. Refused when the
  log itself is unreadable (restore a copy then: docs/store-recovery.md).

Everything is printed through :func:`bno_foundation.terminal.safe_console`: a path or a finding is text.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import sqlite3

from bno_foundation.cli import print_json
from bno_orchestrator.commands import add_json_flag, repo_from_args

EXIT_FINDINGS = 1
INTEGRITY_LINES = 20  # PRAGMA integrity_check reports at most this many problems
_STORE_TABLES = ("events", "tasks", "leases", "schema_version", "sqlite_sequence")


def _target(args: argparse.Namespace) -> Any:
    from bno_orchestrator.store_url import parse, resolve

    if getattr(args, "url", None):
        return parse(args.url, repo_from_args(args), source="--url")
    from bno_orchestrator.commands.core_support import require_repository

    repo = repo_from_args(args)
    require_repository(repo)
    return resolve(repo)


def _console() -> Any:
    import sys

    from bno_foundation.terminal import safe_console

    return safe_console(file=sys.stdout, soft_wrap=True)  # paths stay whole, to copy


# ------------------------------------------------------------------------------------------------ check


@dataclass
class Finding:
    """One thing ``store check`` looked at: its name, whether it is sound, and what was seen."""

    name: str
    ok: bool
    detail: str


@dataclass
class Inspection:
    """What ``store check`` saw: the findings, and the raw event rows when the whole log was readable."""

    location: str
    findings: list[Finding] = field(default_factory=list)
    log_rows: list[tuple[Any, ...]] | None = None
    log_readable: bool = False

    @property
    def ok(self) -> bool:
        """Whether every finding is sound."""
        return all(f.ok for f in self.findings)

    def add(self, name: str, ok: bool, detail: str) -> None:
        """Record one finding."""
        self.findings.append(Finding(name, ok, detail))

    def as_json(self) -> dict[str, Any]:
        """The inspection as ``--json`` prints it."""
        return {"location": self.location, "ok": self.ok,
                "findings": [{"name": f.name, "ok": f.ok, "detail": f.detail} for f in self.findings]}


def _open_salvage(path: Path) -> sqlite3.Connection:

    """``path`` opened strictly read-only, without the checks that refuse damaged files (what check and
    recover read): ``immutable`` unless a pending ``-wal`` beside it may hold committed pages."""
    import sqlite3
    from urllib.parse import quote

    wal = Path(f"{path}-wal")
    pending = wal.is_file() and wal.stat().st_size > 0
    uri = f"file:{quote(str(path.absolute()))}?mode=ro" + ("" if pending else "&immutable=1")
    return sqlite3.connect(uri, uri=True, isolation_level=None)


def _check_log(inspection: Inspection, rows: list[tuple[Any, ...]], task_rows: list[tuple[Any, ...]] | None) -> None:
    """The log's rows parse into events, and the stored projection equals their replay."""
    from bno_orchestrator.models import Task
    from bno_orchestrator.store import event_from_row, replay

    events = []
    for row in rows:
        try:
            events.append(event_from_row(row))
        except (ValueError, TypeError) as exc:
            inspection.add("event log", False, f"event {row[0]} cannot be read: {str(exc).splitlines()[0]}")
            return
    inspection.log_rows = rows
    inspection.log_readable = True
    inspection.add("event log", True, f"{len(events)} events, all readable")
    if task_rows is None:
        return
    try:
        replayed = replay(events)
    except (AssertionError, KeyError, ValueError, TypeError) as exc:
        inspection.log_readable = False
        inspection.add("replay", False, f"the log does not replay: {str(exc).splitlines()[0]}")
        return
    stored: dict[str, Any] = {}
    unreadable = []
    for task_id, data in task_rows:
        try:
            stored[str(task_id)] = Task.model_validate_json(data)
        except ValueError:
            unreadable.append(str(task_id))
    differing = sorted(set(unreadable) | {i for i in set(stored) | set(replayed) if stored.get(i) != replayed.get(i)})
    if differing:
        shown = ", ".join(differing[:10]) + (f" and {len(differing) - 10} more" if len(differing) > 10 else "")
        inspection.add("projection", False, f"{len(differing)} task(s) differ from a replay of the log: {shown}")
    else:
        inspection.add("projection", True, f"{len(stored)} tasks, equal to a replay of the log")


def inspect_sqlite(path: Path) -> Inspection:

    """Check the SQLite store file ``path`` without changing it (see the module docstring)."""
    import sqlite3

    from bno_foundation.sqlite import EMPTY, NOT_A_DATABASE, inspect_file
    from bno_orchestrator.store import EVENT_COLUMNS
    from bno_orchestrator.store_schema import COMPONENT, SCHEMA_VERSION

    inspection = Inspection(str(path))
    if not path.exists():
        inspection.add("file", False, "no store file here (`orchestrator init` creates one)")
        return inspection
    damaged = inspect_file(path)
    if damaged is not None:
        inspection.add("file", False, damaged.problem)
        if damaged.kind in (EMPTY, NOT_A_DATABASE):
            return inspection
    else:
        inspection.add("file", True, f"{path.stat().st_size} bytes, a SQLite database")
    try:
        conn = _open_salvage(path)
    except sqlite3.Error as exc:
        inspection.add("open", False, f"cannot be opened: {exc}")
        return inspection
    try:
        try:
            said = [str(r[0]) for r in conn.execute(f"PRAGMA integrity_check({INTEGRITY_LINES})")]
        except sqlite3.Error as exc:
            said = [str(exc)]
        if said == ["ok"]:
            inspection.add("integrity", True, "PRAGMA integrity_check: ok")
        else:
            inspection.add("integrity", False, "PRAGMA integrity_check: " + "; ".join(said))
        try:
            row = conn.execute("SELECT version FROM schema_version WHERE component = ?", (COMPONENT,)).fetchone()
            version = int(row[0]) if row else 0
            known = version <= SCHEMA_VERSION
            detail = (f"version {version}" + ("" if version == SCHEMA_VERSION else " (the next write migrates it)")
                      if known else f"schema version {version} is newer than this release knows ({SCHEMA_VERSION})")
            inspection.add("schema", known, detail)
        except sqlite3.Error as exc:
            inspection.add("schema", False, f"cannot be read: {exc}")
        try:
            rows = [tuple(r) for r in conn.execute(f"SELECT {EVENT_COLUMNS} FROM events ORDER BY id")]
        except sqlite3.Error as exc:
            inspection.add("event log", False, f"cannot be read: {exc}")
            return inspection
        try:
            task_rows: list[tuple[Any, ...]] | None = [tuple(r) for r in conn.execute("SELECT id, data FROM tasks")]
        except sqlite3.Error as exc:
            inspection.add("projection", False, f"cannot be read: {exc}")
            task_rows = None
        _check_log(inspection, rows, task_rows)
    finally:
        conn.close()
    return inspection


def inspect_store(store: Any) -> Inspection:
    """Check an open store (PostgreSQL): a known schema, the log readable, the projection equal to its replay.
    (The server checks its own pages: there is no integrity_check to run.)"""
    from bno_orchestrator.store import EVENT_COLUMNS
    from bno_orchestrator.store_schema import SCHEMA_VERSION

    inspection = Inspection(store.location)
    inspection.add("integrity", True, "kept by the database server (no file-level check applies)")
    version = store.schema_version()
    inspection.add("schema", version <= SCHEMA_VERSION, f"version {version}")
    with store._conn.read():
        rows = [tuple(r) for r in store._conn.execute(f"SELECT {EVENT_COLUMNS} FROM events ORDER BY id")]
        task_rows = [tuple(r) for r in store._conn.execute("SELECT id, data FROM tasks")]
    _check_log(inspection, rows, task_rows)
    return inspection


def _print_inspection(inspection: Inspection, args: argparse.Namespace) -> None:
    if args.json:
        print_json(inspection.as_json())
        return
    from rich.text import Text

    out = _console()
    out.print(Text(f"store {inspection.location}: " + ("sound" if inspection.ok else "problems found")))
    for f in inspection.findings:
        out.print(Text.assemble(("  ok      " if f.ok else "  PROBLEM ", "green" if f.ok else "red"),
                                f"{f.name}: {f.detail}"))


def check(args: argparse.Namespace) -> int:
    """Handle ``store check``: exit 0 when sound, 1 with the findings otherwise."""
    target = _target(args)
    if target.path is not None:
        inspection = inspect_sqlite(target.path)
    else:
        from bno_orchestrator.store import Store

        with Store.connect(target.url, repo=repo_from_args(args)) as store:
            inspection = inspect_store(store)
    _print_inspection(inspection, args)
    if not inspection.ok and not args.json:
        _console().print("  recover: `orchestrator store recover` (docs/store-recovery.md)")
    return 0 if inspection.ok else EXIT_FINDINGS


# ---------------------------------------------------------------------------------------------- recover


def _backup_name(path: Path, now: dt.datetime) -> Path:
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    candidate = path.with_name(f"{path.name}.bak-{stamp}")
    number = 1
    while candidate.exists():
        candidate = path.with_name(f"{path.name}.bak-{stamp}-{number}")
        number += 1
    return candidate


def _copy_other_tables(old: sqlite3.Connection, new: Path) -> list[str]:

    """Copy every table but the store's own (the gate records of other components, their schema rows) and the
    leases from ``old`` into the file ``new``; returns what could not be copied."""
    import sqlite3

    from bno_orchestrator.store_schema import COMPONENT

    left_out: list[str] = []
    conn = sqlite3.connect(str(new), isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            objects = old.execute("SELECT type, name, tbl_name, sql FROM sqlite_master WHERE sql IS NOT NULL "
                                  "AND name NOT LIKE 'sqlite_%' ORDER BY type = 'table' DESC").fetchall()
        except sqlite3.Error as exc:
            conn.execute("COMMIT")
            return [f"the table list ({exc})"]
        for kind, name, table, statement in objects:
            if table in _STORE_TABLES and table != "leases":
                continue
            try:
                if table != "leases":
                    conn.execute(statement)
                if kind == "table":
                    rows = old.execute(f'SELECT * FROM "{name}"').fetchall()
                    if rows:
                        marks = ",".join("?" * len(rows[0]))
                        conn.executemany(f'INSERT OR REPLACE INTO "{name}" VALUES ({marks})', rows)
            except sqlite3.Error as exc:
                left_out.append(f"{kind} {name} ({exc})")
        try:
            versions = old.execute("SELECT component, version FROM schema_version WHERE component != ?",
                                   (COMPONENT,)).fetchall()
            conn.executemany("INSERT OR REPLACE INTO schema_version (component, version) VALUES (?, ?)", versions)
        except sqlite3.Error as exc:
            left_out.append(f"other components' schema versions ({exc})")
        conn.execute("COMMIT")
    finally:
        conn.close()
    return left_out


def recover_sqlite(path: Path, *, now: dt.datetime) -> dict[str, Any]:
    """Rebuild the SQLite store ``path`` from its event log into a new file, swapped in atomically; the old
    file is kept as ``state.db.bak-TIMESTAMP``. Refused (UserError) when the log is unreadable."""
    from bno_foundation.sqlite import write_protection
    from bno_orchestrator.errors import UserError
    from bno_orchestrator.store import Store

    inspection = inspect_sqlite(path)
    if inspection.ok:
        return {"location": str(path), "recovered": False, "detail": "the store is sound: nothing to recover"}
    if not inspection.log_readable or inspection.log_rows is None:
        said = "; ".join(f"{f.name}: {f.detail}" for f in inspection.findings if not f.ok)
        raise UserError(f"{path}: the event log itself is unreadable ({said}): nothing was changed; restore a copy "
                        "of the file (docs/store-recovery.md)")
    schema = next(f for f in inspection.findings if f.name == "schema")
    if not schema.ok:
        raise UserError(f"{path}: {schema.detail}: upgrade bitnet-orchestrator instead; nothing was changed")
    protection = write_protection(path)
    if protection:
        raise UserError(f"{path}: {protection}: make it writable to recover it; nothing was changed")
    new = path.with_name(f".{path.name}.recover-{os.getpid()}")
    for leftover in (new, Path(f"{new}-wal"), Path(f"{new}-shm")):
        with contextlib.suppress(FileNotFoundError):
            leftover.unlink()
    try:
        with Store(new, create=True) as rebuilt:
            events, tasks = rebuilt.restore_log(inspection.log_rows)
        with contextlib.closing(_open_salvage(path)) as old:
            left_out = _copy_other_tables(old, new)
        after = inspect_sqlite(new)
        if not after.ok:
            raise UserError(f"{path}: the rebuilt file does not check out ({after.findings}); nothing was changed")
        os.chmod(new, path.stat().st_mode & 0o7777)
        with open(new, "rb") as fh:
            os.fsync(fh.fileno())
        backup = _backup_name(path, now)
        os.link(path, backup)
        old_wal = Path(f"{path}-wal")
        if old_wal.exists():  # its frames belong to the old file: they go with the backup, never onto the new one
            os.replace(old_wal, Path(f"{backup}-wal"))
        with contextlib.suppress(FileNotFoundError):
            Path(f"{path}-shm").unlink()
        os.replace(new, path)
        _fsync_dir(path.parent)
    finally:
        for leftover in (new, Path(f"{new}-wal"), Path(f"{new}-shm")):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()
    return {"location": str(path), "recovered": True, "events": events, "tasks": tasks, "backup": str(backup),
            "left_out": left_out, "detail": f"rebuilt {tasks} tasks from {events} events"}


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def recover_store(store: Any) -> dict[str, Any]:
    """PostgreSQL: rebuild the projection from the log in one transaction (under the write lock)."""
    from bno_orchestrator.errors import UserError

    inspection = inspect_store(store)
    if inspection.ok:
        return {"location": store.location, "recovered": False, "detail": "the store is sound: nothing to recover"}
    if not inspection.log_readable:
        said = "; ".join(f"{f.name}: {f.detail}" for f in inspection.findings if not f.ok)
        raise UserError(f"{store.location}: the event log itself is unreadable ({said}): nothing was changed")
    tasks = store.rebuild()
    return {"location": store.location, "recovered": True, "tasks": tasks, "events": store.event_count(),
            "detail": f"rebuilt {tasks} tasks from the log in one transaction"}


def recover(args: argparse.Namespace) -> int:
    """Handle ``store recover``."""
    from rich.text import Text

    from bno_orchestrator.models import utcnow

    target = _target(args)
    if target.path is not None:
        result = recover_sqlite(target.path, now=utcnow())
    else:
        from bno_orchestrator.store import Store

        with Store.connect(target.url, repo=repo_from_args(args)) as store:
            result = recover_store(store)
    if args.json:
        print_json(result)
        return 0
    out = _console()
    out.print(Text(f"{result['location']}: {result['detail']}"))
    if result.get("backup"):
        out.print(Text(f"  the old file is kept as {result['backup']}"))
    for what in result.get("left_out", []):
        out.print(Text(f"  not copied (it stays in the backup): {what}"))
    return 0



def info(args: argparse.Namespace) -> int:
    """Handle ``store info``."""
    from rich.text import Text

    from bno_orchestrator.store import Store

    target = _target(args)
    repo = repo_from_args(args)
    with Store.connect(target.url, repo=repo, create=False) as store:
        data = {"engine": store.engine, "location": store.location, "source": target.source,
                "schema_version": store.schema_version(), "events": store.event_count(), "tasks": len(store.tasks())}
    if args.json:
        print_json(data)
        return 0
    out = _console()
    for key, value in data.items():
        out.print(Text(f"{key.replace('_', ' ')}: {value}"))
    return 0


def schema(args: argparse.Namespace) -> int:
    """Handle ``store schema``: opening a store migrates it; say to which version."""
    from rich.text import Text

    from bno_orchestrator.store import Store

    target = _target(args)
    with Store.connect(target.url, repo=repo_from_args(args)) as store:
        data = {"location": store.location, "schema_version": store.schema_version()}
    if args.json:
        print_json(data)
    else:
        _console().print(Text(f"{data['location']}: schema version {data['schema_version']}"))
    return 0


def migrate(args: argparse.Namespace) -> int:
    """Handle ``store migrate sqlite-to-postgres``."""
    from pathlib import Path

    from rich.text import Text

    from bno_orchestrator.errors import UserError
    from bno_orchestrator.paths import store_path
    from bno_orchestrator.store import Store
    from bno_orchestrator.store_url import POSTGRES, parse, redact

    repo = repo_from_args(args)
    source_path = Path(args.source) if args.source else store_path(repo)
    if not source_path.is_file():
        raise UserError(f"{source_path}: no SQLite store to copy (--from names another file)")
    target = parse(args.to, repo, source="--to")
    if target.engine != POSTGRES:
        raise UserError(f"--to {redact(args.to)!r} is no postgresql:// URL")
    with Store(source_path) as source, Store.connect(target.url, repo=repo) as dest:
        events, tasks = dest.copy_log_from(source)
        data = {"from": source.location, "to": dest.location, "events": events, "tasks": tasks,
                "verified": "replay of the copied log equals the source projection"}
    if args.json:
        print_json(data)
    else:
        _console().print(Text(f"copied {events} events ({tasks} tasks) from {data['from']} to {data['to']}; "
                             f"verified: {data['verified']}"))
        _console().print(Text(f"point every clone and worker at it: export ORCHESTRATOR_STORE_URL='{data['to']}' "
                             "(or url: in workflows/store.yaml)"))
    return 0


def grant(args: argparse.Namespace) -> int:
    """Handle ``store grant ROLE``."""
    from rich.text import Text

    from bno_orchestrator.errors import UserError
    from bno_orchestrator.store import Store
    from bno_orchestrator.store_postgres import PostgresEngine
    from bno_orchestrator.store_url import POSTGRES

    target = _target(args)
    if target.engine != POSTGRES:
        raise UserError(f"{target.display} is a SQLite file: roles are a PostgreSQL matter")
    with Store.connect(target.url, repo=repo_from_args(args)) as store:  # migrates first, as the owner
        engine = store._conn
        assert isinstance(engine, PostgresEngine)
        engine.grant_writer(args.role)
        location = store.location
    _console().print(Text(f"{location}: role {args.role} may read, append events and keep tasks and leases; "
                         "it may not update, delete or truncate events"))
    return 0


def register(sub: Any) -> None:
    parser = sub.add_parser("store", help="the store this clone uses: info, schema, migrate to PostgreSQL, roles")
    actions = parser.add_subparsers(title="actions", metavar="ACTION", required=True)

    show = actions.add_parser("info", help="engine, location (no password), schema version, counts")
    show.add_argument("--url", default=None, help="a store URL (default: the repository's store)")
    add_json_flag(show)
    show.set_defaults(handler=info)

    upgrade = actions.add_parser("schema", help="bring the store's schema to this release's version")
    upgrade.add_argument("--url", default=None, help="a store URL (default: the repository's store)")
    add_json_flag(upgrade)
    upgrade.set_defaults(handler=schema)

    move = actions.add_parser("migrate", help="copy this repository's SQLite store into a team's PostgreSQL")
    kinds = move.add_subparsers(title="migrations", metavar="MIGRATION", required=True)
    to_pg = kinds.add_parser("sqlite-to-postgres", help="copy the log into an empty PostgreSQL store, verified "
                                                        "by replay equality")
    to_pg.add_argument("--to", required=True, metavar="URL", help="postgresql://USER@HOST/DB (password: ~/.pgpass "
                                                                  "or PGPASSWORD)")
    to_pg.add_argument("--from", dest="source", default=None, metavar="FILE",
                       help="the SQLite file (default: REPO/.orchestrator/state.db)")
    add_json_flag(to_pg)
    to_pg.set_defaults(handler=migrate)

    checking = actions.add_parser("check", help="integrity, schema version, the log readable, the projection equal "
                                                "to its replay (read-only; exit 1 with the findings)")
    checking.add_argument("--url", default=None, help="a store URL (default: the repository's store)")
    add_json_flag(checking)
    checking.set_defaults(handler=check)

    mending = actions.add_parser("recover", help="rebuild the projection from the event log where the log is intact "
                                                 "(SQLite: a new file swapped in, the old kept as state.db.bak-*)")
    mending.add_argument("--url", default=None, help="a store URL (default: the repository's store)")
    add_json_flag(mending)
    mending.set_defaults(handler=recover)

    roles = actions.add_parser("grant", help="grant a PostgreSQL role a writer's rights (never UPDATE/DELETE on "
                                             "events)")
    roles.add_argument("role", help="an existing role (CREATE ROLE ... LOGIN first)")
    roles.add_argument("--url", default=None, help="the store URL, connecting as its owner (default: the "
                                                   "repository's store)")
    roles.set_defaults(handler=grant)
