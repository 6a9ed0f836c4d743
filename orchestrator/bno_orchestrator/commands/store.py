"""``orchestrator store``: which store this clone uses, its schema, the move to a team's PostgreSQL, roles.

* ``store info``: the engine, where it is (a URL never shows its password), where the choice came from,
  the schema version and how many events and tasks it holds.
* ``store schema``: bring the schema to this release's version (on PostgreSQL: as the database owner,
  before the team's writer role gets its grants).
* ``store migrate sqlite-to-postgres --to URL``: copy the repository's SQLite log into an empty PostgreSQL
  store, verified by replay equality before it commits (:meth:`~bno_orchestrator.store.Store.copy_log_from`).
* ``store grant ROLE``: give a PostgreSQL role what clones and workers need, and no UPDATE, DELETE or
  TRUNCATE on the event log.
"""

from __future__ import annotations

import argparse
from typing import Any

from bno_foundation.cli import print_json
from bno_orchestrator.commands import add_json_flag, repo_from_args


def _target(args: argparse.Namespace) -> Any:
    from bno_orchestrator.store_url import parse, resolve

    repo = repo_from_args(args)
    return parse(args.url, repo, source="--url") if getattr(args, "url", None) else resolve(repo)


def info(args: argparse.Namespace) -> int:
    """Handle ``store info``."""
    from rich.text import Text

    from bno_orchestrator.commands.core_support import console
    from bno_orchestrator.store import Store

    target = _target(args)
    repo = repo_from_args(args)
    with Store.connect(target.url, repo=repo) as store:
        data = {"engine": store.engine, "location": store.location, "source": target.source,
                "schema_version": store.schema_version(), "events": store.event_count(), "tasks": len(store.tasks())}
    if args.json:
        print_json(data)
        return 0
    out = console()
    for key, value in data.items():
        out.print(Text(f"{key.replace('_', ' ')}: {value}"))
    return 0


def schema(args: argparse.Namespace) -> int:
    """Handle ``store schema``: opening a store migrates it; say to which version."""
    from rich.text import Text

    from bno_orchestrator.commands.core_support import console
    from bno_orchestrator.store import Store

    target = _target(args)
    with Store.connect(target.url, repo=repo_from_args(args)) as store:
        data = {"location": store.location, "schema_version": store.schema_version()}
    if args.json:
        print_json(data)
    else:
        console().print(Text(f"{data['location']}: schema version {data['schema_version']}"))
    return 0


def migrate(args: argparse.Namespace) -> int:
    """Handle ``store migrate sqlite-to-postgres``."""
    from pathlib import Path

    from rich.text import Text

    from bno_orchestrator.commands.core_support import console
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
        console().print(Text(f"copied {events} events ({tasks} tasks) from {data['from']} to {data['to']}; "
                             f"verified: {data['verified']}"))
        console().print(Text(f"point every clone and worker at it: export ORCHESTRATOR_STORE_URL='{data['to']}' "
                             "(or url: in workflows/store.yaml)"))
    return 0


def grant(args: argparse.Namespace) -> int:
    """Handle ``store grant ROLE``."""
    from rich.text import Text

    from bno_orchestrator.commands.core_support import console
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
    console().print(Text(f"{location}: role {args.role} may read, append events and keep tasks and leases; "
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

    roles = actions.add_parser("grant", help="grant a PostgreSQL role a writer's rights (never UPDATE/DELETE on "
                                             "events)")
    roles.add_argument("role", help="an existing role (CREATE ROLE ... LOGIN first)")
    roles.add_argument("--url", default=None, help="the store URL, connecting as its owner (default: the "
                                                   "repository's store)")
    roles.set_defaults(handler=grant)
