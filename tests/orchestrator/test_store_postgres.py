"""The team store: choosing it by URL, the writer role, PostgreSQL migrations, the SQLite -> PostgreSQL copy
verified by replay, two boards on one store, and what ``orchestrator doctor`` and ``store info`` say.

Tests taking ``pg_server`` run on the real server the session starts; tests taking ``new_store_url`` run
on both engines.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import psycopg
import pytest

from bno_orchestrator.cli import main
from bno_orchestrator.errors import ConfigError, StoreError
from bno_orchestrator.models import Event, TaskStatus
from bno_orchestrator.rules import ScoringConfig
from bno_orchestrator.store import SCHEMA_VERSION, Store, replay
from bno_orchestrator.store_schema import POSTGRES_MIGRATIONS
from bno_orchestrator.store_url import ENV_VAR, POSTGRES, SQLITE, has_password, redact, resolve, scrub
from bno_orchestrator.tui.data import load_snapshot, move_card
from bno_orchestrator.workflow import block_task, create_task, edit_task, move_task, unblock_task
from tests.orchestrator.core_fixtures import FakeClock, init_repo, shipped_workflow
from tests.orchestrator.pg_server import NewStoreUrl, PgServer, fresh_schema

_roles = itertools.count(1)


def _with_password(url: str, password: str) -> str:
    return url.replace("postgresql://postgres@", f"postgresql://postgres:{password}@", 1)


# ------------------------------------------------------------------------------------------ choosing


def test_the_url_is_chosen_from_the_environment_then_the_config_then_sqlite(tmp_path: Path) -> None:
    default = resolve(tmp_path, environ={})
    assert (default.engine, default.path, default.source) == (SQLITE, tmp_path / ".orchestrator" / "state.db",
                                                              "default")
    (tmp_path / "workflows").mkdir()
    config = tmp_path / "workflows" / "store.yaml"
    config.write_text("url: postgresql://team@db.example/orchestrator\n", encoding="utf-8")
    team = resolve(tmp_path, environ={})
    assert (team.engine, team.url, team.source) == (POSTGRES, "postgresql://team@db.example/orchestrator",
                                                    str(config))
    mine = resolve(tmp_path, environ={ENV_VAR: "sqlite:local/state.db"})
    assert (mine.engine, mine.path, mine.source) == (SQLITE, tmp_path / "local" / "state.db", f"${ENV_VAR}")
    config.write_text("# the team's store\nurl: postgresql://team:hunter2@db.example/orchestrator\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"store.yaml:2:\d+.*'url'.*pgpass") as refused:
        resolve(tmp_path, environ={})
    assert "hunter2" not in str(refused.value)
    config.write_text("url: mysql://db.example/x\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"store.yaml:1:\d+.*neither sqlite:// nor postgresql://"):
        resolve(tmp_path, environ={})
    config.write_text("uri: postgresql://db.example/x\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"store\.yaml"):
        resolve(tmp_path, environ={})


def test_a_password_is_never_shown() -> None:
    url = "postgresql://ann:s3cr%40t@db.example:5432/orch?sslmode=require&password=other"
    shown = redact(url)
    assert "s3cr" not in shown and "other" not in shown
    assert shown.startswith("postgresql://ann:***@db.example:5432/orch?") and "sslmode=require" in shown
    assert has_password(url) and not has_password("postgresql://ann@db.example/orch")
    assert scrub(f"cannot reach {url}: bad password s3cr%40t", url) == f"cannot reach {shown}: bad password ***"


# ---------------------------------------------------------------------------------- the database itself


def test_the_writer_role_may_append_but_never_rewrite_the_log(pg_server: PgServer, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    owner_url = fresh_schema(pg_server)
    role = f"bno_writer_{next(_roles)}"
    with psycopg.connect(owner_url, autocommit=True) as owner:
        owner.execute(f"CREATE ROLE {role} LOGIN".encode())
    assert main(["--repo", str(tmp_path), "store", "grant", role, "--url", owner_url]) == 0
    assert f"role {role} may read, append events" in capsys.readouterr().out
    writer_url = owner_url.replace("postgresql://postgres@", f"postgresql://{role}@", 1)
    with Store.connect(writer_url, repo=tmp_path) as store:
        task = create_task(store, {"title": "written by the writer role"}, actor="human:ann")
        move_task(store, shipped_workflow(), task.id, "assigned", actor="human:ann")
        assert store.event_count() == 2
    with psycopg.connect(owner_url, autocommit=True) as owner:  # even without the trigger...
        owner.execute(b"DROP TRIGGER events_no_update ON events")
        owner.execute(b"DROP TRIGGER events_no_truncate ON events")
    with psycopg.connect(writer_url, autocommit=True) as writer:  # ...the role may not rewrite the log
        for statement in (b"UPDATE events SET actor = 'mallory'", b"DELETE FROM events", b"TRUNCATE events"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                writer.execute(statement)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            writer.execute(b"DROP TABLE events")
        assert writer.execute(b"SELECT COUNT(*) FROM events").fetchone() == (2,)


def test_a_postgres_store_at_version_1_is_migrated_and_its_projection_rebuilt(pg_server: PgServer) -> None:
    url = fresh_schema(pg_server)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(b"CREATE TABLE schema_version (component TEXT PRIMARY KEY, version INTEGER NOT NULL)")
        for statement in POSTGRES_MIGRATIONS[0].statements:
            conn.execute(statement.encode())
        conn.execute(b"INSERT INTO schema_version VALUES ('orchestrator', 1)")
        conn.execute(b"INSERT INTO events (ts, actor, kind, task_id, payload, reason) VALUES "
                     b"('2026-01-05T09:00:00.000000+00:00', 'human:a', 'task.created', 'T-0001', "
                     b"'{\"task\": {\"id\": \"T-0001\", \"title\": \"old\"}}', '')")
    with Store.connect(url) as store:
        assert store.schema_version() == SCHEMA_VERSION
        assert store.task("T-0001").title == "old"
        assert create_task(store, {"title": "new"}, actor="human:a").id == "T-0002"


def test_an_unreachable_server_is_a_store_error_without_the_password(tmp_path: Path) -> None:
    url = f"postgresql://ann:hunter2@/orch?host={tmp_path}/nowhere&connect_timeout=2"
    with pytest.raises(StoreError, match="cannot connect") as failed:
        Store.connect(url)
    assert "hunter2" not in str(failed.value) and "ann:***@" in str(failed.value)


# ------------------------------------------------------------------------------------------- migrating


def _busy_history(store: Store) -> None:
    """Tasks created, moved, edited, blocked and unblocked, other components' events in between."""
    clock = store.clock
    assert isinstance(clock, FakeClock)
    workflow = shipped_workflow()
    for i in range(6):
        clock.advance(minutes=7)
        create_task(store, {"title": f"task {i}", "impact": 1 + i % 5, "labels": [f"l{i % 2}"]}, actor="human:a")
    for i in range(1, 5):
        clock.advance(minutes=3)
        move_task(store, workflow, f"T-{i:04d}", "assigned", actor="router")
        edit_task(store, f"T-{i:04d}", {"complexity": 1 + i % 4}, actor="human:a")
    block_task(store, workflow, "T-0002", "waiting for the kernel", actor="human:a")
    store.append(Event(actor="gates", kind="gates.verified", task_id="T-0003",
                       payload={"run_id": "r1", "passed": True, "agent": "code", "note": "ünïcödé ✓"}))
    clock.advance(hours=2)
    unblock_task(store, workflow, "T-0002", actor="human:a")


def test_migrate_sqlite_to_postgres_is_verified_by_replay_equality(pg_server: PgServer, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    init_repo(repo)
    with Store.open(repo, clock=FakeClock()) as source:
        _busy_history(source)
        source_events, source_projection = source.events(), source.projection()
    url = fresh_schema(pg_server)
    assert main(["--repo", str(repo), "store", "migrate", "sqlite-to-postgres", "--to", url, "--json"]) == 0
    said = json.loads(capsys.readouterr().out)
    assert said["events"] == len(source_events) and said["tasks"] == 6 and len(source_events) > 12
    with Store.connect(url, clock=FakeClock()) as copied:
        assert copied.engine == "postgresql"
        assert copied.events() == source_events  # ids, timestamps, actors, payloads: the same
        assert replay(copied.events()) == source_projection == copied.projection()
        assert create_task(copied, {"title": "after the move"}, actor="human:a").id == "T-0007"
        assert copied.events()[-1].id == (source_events[-1].id or 0) + 1  # ids go on after the copied ones
    # a store that already holds events is never overwritten
    assert main(["--repo", str(repo), "store", "migrate", "sqlite-to-postgres", "--to", url]) == 2
    assert "already holds events" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------- live boards


def test_two_boards_on_one_store_see_each_other_s_moves(new_store_url: NewStoreUrl) -> None:
    url = new_store_url()
    workflow = shipped_workflow()
    scoring = ScoringConfig()
    with Store.connect(url) as ann_store, Store.connect(url) as bob_store:
        stores = {"ann": ann_store, "bob": bob_store}
        create_task(ann_store, {"title": "shared card", "assignees": ["code"]}, actor="human:setup")
        boards = {name: load_snapshot(store, workflow, scoring) for name, store in stores.items()}
        assert boards["ann"].tasks["T-0001"].status == boards["bob"].tasks["T-0001"].status == TaskStatus.BACKLOG
        for mover, watcher, to in (("ann", "bob", "assigned"), ("bob", "ann", "in_development")):
            seen = boards[watcher].last_event_id
            assert stores[watcher].wait_for_change(seen, 0.05) == seen  # nothing new yet: the wait times out
            result = move_card(stores[mover], workflow, "T-0001", to, actor=f"human:{mover}")
            assert result.ok, result.message
            assert stores[watcher].wait_for_change(seen, 30) > seen  # woken by the other board's move
            boards = {name: load_snapshot(store, workflow, scoring) for name, store in stores.items()}
            assert boards[watcher].tasks["T-0001"].status.value == to
        assert boards["ann"].tasks == boards["bob"].tasks
        assert [e.actor for e in ann_store.events(kind="task.moved")] == ["human:ann", "human:bob"]


# ---------------------------------------------------------------------------------------- what it says


def test_doctor_and_store_info_name_the_store_and_never_the_password(
        pg_server: PgServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    init_repo(repo)
    url = _with_password(fresh_schema(pg_server), "s3cret-pw")  # trust auth: the password is not checked
    monkeypatch.setenv(ENV_VAR, url)
    main(["--repo", str(repo), "doctor", "--quick", "--json"])
    out = capsys.readouterr().out
    assert "s3cret-pw" not in out
    store_row = next(c for c in json.loads(out)["checks"] if c["name"] == "store")
    assert store_row["status"] == "ok", store_row
    assert f"postgresql {redact(url)} (from ${ENV_VAR}): reachable, schema {SCHEMA_VERSION}" in store_row["detail"]
    assert main(["--repo", str(repo), "store", "info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["engine"] == "postgresql" and "s3cret-pw" not in json.dumps(info) and ":***@" in info["location"]
    assert main(["--repo", str(repo), "store", "schema", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"location": redact(url), "schema_version": SCHEMA_VERSION}
    monkeypatch.setenv(ENV_VAR, f"postgresql://ann:s3cret-pw@/orch?host={tmp_path}/nowhere&connect_timeout=2")
    main(["--repo", str(repo), "doctor", "--quick", "--json"])
    out = capsys.readouterr().out
    assert "s3cret-pw" not in out
    store_row = next(c for c in json.loads(out)["checks"] if c["name"] == "store")
    assert store_row["status"] == "missing" and "unreachable" in store_row["detail"]
