"""The store refuses what it cannot trust (issue 13, item 7).

* A repository that is not there, is no git repository or was never set up: every command but ``init`` and
  ``doctor`` refuses it (exit 2, saying what to run) and creates nothing.
* A write-protected store (file 0444 or folder 0555) is readable; a write names the file and why (exit 2).
* An emptied, garbage, truncated or newer-schema ``state.db``: one line naming the problem, the file and the
  way out, exit 2, the file byte-identical afterwards, for read and write commands alike; ``doctor`` says
  it is present but damaged (or newer).
* ``store check`` finds a projection that differs from its log's replay; ``store recover`` rebuilds it into a
  new file swapped in (the old kept as ``state.db.bak-*``), and refuses when the log itself is unreadable.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from bno_foundation import sqlite as fsqlite
from bno_orchestrator.cli import main
from bno_orchestrator.errors import UserError
from bno_orchestrator.store import SCHEMA_VERSION, Store
from bno_orchestrator.workflow import create_task
from bno_quality_gates.results import COMPONENT as GATES_COMPONENT
from tests.orchestrator.core_fixtures import FakeClock, init_repo
from tests.orchestrator.pg_server import PgServer, fresh_schema

READ_COMMANDS = (("task", "list"), ("task", "show", "T-0001"), ("status",))
WRITE_COMMANDS = (("task", "add", "a new one"), ("task", "edit", "T-0001", "--title", "renamed"))


def _run(capsys: pytest.CaptureFixture[str], repo: Path | str, *argv: str) -> tuple[int, str, str]:
    code = main(["--repo", str(repo), *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A set-up repository whose store holds two tasks."""
    monkeypatch.setenv("ORCHESTRATOR_ACTOR", "human:tester")
    monkeypatch.delenv("ORCHESTRATOR_STORE_URL", raising=False)
    root = tmp_path / "repo"
    root.mkdir()
    init_repo(root)
    with Store.open(root, clock=FakeClock()) as store:
        create_task(store, {"title": "first task"}, actor="human:a")
        create_task(store, {"title": "second task"}, actor="human:a")
    return root


def _state(repo: Path) -> Path:
    return repo / ".orchestrator" / "state.db"


# ------------------------------------------------------------------------------- repositories not there


@pytest.mark.parametrize("argv", [("task", "list"), ("task", "add", "x"), ("status",), ("route",), ("export",),
                                  ("report", "weekly"), ("store", "info"), ("store", "check"), ("store", "recover"),
                                  ("store", "schema")])
@pytest.mark.parametrize("situation", ["missing", "not git", "never set up"])
def test_a_repository_not_there_not_git_or_never_set_up_is_refused_and_nothing_is_created(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, situation: str,
        argv: tuple[str, ...]) -> None:
    monkeypatch.delenv("ORCHESTRATOR_STORE_URL", raising=False)
    target = tmp_path / "target"
    if situation != "missing":
        target.mkdir()
        (target / "README.md").write_text("hello\n")
    if situation == "never set up":
        (target / ".git").mkdir()
    before = _tree(tmp_path)
    code, _, err = _run(capsys, target, *argv)
    assert code == 2, err
    expected = {"missing": "no such directory", "not git": "is not a git repository",
                "never set up": "is not set up for the orchestrator"}[situation]
    assert expected in err and str(target) in err
    assert "orchestrator init" in err
    assert _tree(tmp_path) == before  # nothing created: no .orchestrator, no state.db


def test_store_open_refuses_a_repository_that_is_not_there(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no such repository"):
        Store.open(tmp_path / "nowhere")
    assert not (tmp_path / "nowhere").exists()


def test_init_refuses_a_folder_that_is_not_there(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, tmp_path / "typo", "init")
    assert code == 2 and "no such directory" in err
    assert list(tmp_path.iterdir()) == []


def test_a_missing_store_file_is_not_created_when_creating_was_not_asked(tmp_path: Path) -> None:
    with pytest.raises(fsqlite.MissingStoreError, match="no store here"):
        Store(tmp_path / "state.db", create=False)
    assert list(tmp_path.iterdir()) == []


def test_init_and_doctor_still_work_where_nothing_is_set_up(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ORCHESTRATOR_STORE_URL", raising=False)
    target = tmp_path / "fresh"
    target.mkdir()
    main(["--repo", str(target), "doctor", "--quick", "--json"])
    store_row = next(c for c in json.loads(capsys.readouterr().out)["checks"] if c["name"] == "store")
    assert store_row["status"] == "warn" and "is not a git repository" in store_row["detail"]
    assert _tree(target) == []  # the doctor created nothing
    (target / ".git").mkdir()
    code, _, err = _run(capsys, target, "init", "--profile", "shipped", "--json")
    assert code == 0, err
    assert _state(target).is_file()
    code, out, _ = _run(capsys, target, "task", "list", "--json")
    assert code == 0 and json.loads(out)["tasks"] == []


# ------------------------------------------------------------------------------------- read-only stores


@pytest.fixture(params=["file", "folder"])
def read_only_repo(request: pytest.FixtureRequest, repo: Path) -> Iterator[tuple[Path, str]]:
    """The repository with its store write-protected (the file 0444, or its folder 0555)."""
    target = _state(repo) if request.param == "file" else _state(repo).parent
    mode = 0o444 if request.param == "file" else 0o555
    original = target.stat().st_mode & 0o777
    os.chmod(target, mode)
    try:
        yield repo, f"{mode:04o}"
    finally:
        os.chmod(target, original)


@pytest.mark.parametrize("argv", [*READ_COMMANDS, ("report", "weekly", "--json")])
def test_a_read_only_store_is_readable(read_only_repo: tuple[Path, str], capsys: pytest.CaptureFixture[str],
                                       argv: tuple[str, ...]) -> None:
    repo, _ = read_only_repo
    before = _digest(_state(repo))
    code, out, err = _run(capsys, repo, *argv)
    assert code == 0, err
    if argv[0] == "task":
        assert "first task" in out
    elif argv[0] == "status":
        assert "2 tasks, 2 events" in out
    else:  # the report also opens the gate records, which this file never held: they read as empty
        assert json.loads(out)["last_event_id"] == 2
    assert _digest(_state(repo)) == before


@pytest.mark.parametrize("argv", WRITE_COMMANDS)
def test_a_write_to_a_read_only_store_names_the_file_and_why(read_only_repo: tuple[Path, str],
                                                             capsys: pytest.CaptureFixture[str],
                                                             argv: tuple[str, ...]) -> None:
    repo, mode = read_only_repo
    before = _digest(_state(repo))
    code, _, err = _run(capsys, repo, *argv)
    assert code == 2, err
    assert str(_state(repo)) in err and "read-only" in err and f"mode {mode}" in err
    assert "internal error" not in err and err.count("\n") == 1
    assert _digest(_state(repo)) == before
    with Store(_state(repo), create=False) as store:  # still both tasks, unchanged
        assert [t.title for t in store.tasks()] == ["first task", "second task"]


# --------------------------------------------------------------------------------------- damaged stores


def _damage(repo: Path, how: str) -> str:
    """Damage the store ``how``; returns a phrase the message must hold."""
    path = _state(repo)
    if how == "emptied":
        path.write_bytes(b"")
        return "empty (0 bytes)"
    if how == "garbage":
        path.write_bytes(bytes(range(256)) * 40)
        return "not a SQLite database"
    if how == "truncated":
        data = path.read_bytes()
        assert len(data) > 3 * 4096
        path.write_bytes(data[: len(data) // 3])
        return "truncated"
    conn = sqlite3.connect(path)
    conn.execute("UPDATE schema_version SET version = ? WHERE component = 'orchestrator'", (SCHEMA_VERSION + 7,))
    conn.commit()
    conn.close()
    return f"schema version {SCHEMA_VERSION + 7}"


DAMAGE = ["emptied", "garbage", "truncated", "newer"]


@pytest.mark.parametrize("argv", [*READ_COMMANDS, *WRITE_COMMANDS, ("store", "info"), ("report", "weekly")])
@pytest.mark.parametrize("how", DAMAGE)
def test_a_damaged_or_newer_store_gives_one_clear_line_exit_2_and_is_left_byte_identical(
        repo: Path, capsys: pytest.CaptureFixture[str], how: str, argv: tuple[str, ...]) -> None:
    said = _damage(repo, how)
    before = _digest(_state(repo))
    code, out, err = _run(capsys, repo, *argv)
    assert code == 2, err
    assert err.count("\n") == 1 and "internal error" not in err
    assert said in err and str(_state(repo)) in err
    assert ("upgrade" in err) if how == "newer" else ("store recover" in err and "left as it is" in err)
    assert "T-0001" not in out
    assert _digest(_state(repo)) == before


def test_an_emptied_store_never_restarts_at_t_0001(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _damage(repo, "emptied")
    for _ in range(2):  # a second try is refused the same way: nothing was made of the empty file
        code, out, err = _run(capsys, repo, "task", "add", "would be T-0001", "--json")
        assert code == 2 and "empty (0 bytes)" in err and out == ""
    assert _state(repo).stat().st_size == 0


@pytest.mark.parametrize("how", DAMAGE)
def test_doctor_says_the_store_is_present_but_damaged_or_newer_and_how_to_recover(
        repo: Path, capsys: pytest.CaptureFixture[str], how: str) -> None:
    said = _damage(repo, how)
    before = _digest(_state(repo))
    code = main(["--repo", str(repo), "doctor", "--quick", "--json"])
    report = json.loads(capsys.readouterr().out)
    row = next(c for c in report["checks"] if c["name"] == "store")
    assert code == 1 and not report["ok"]
    state = "present, of a newer schema" if how == "newer" else "present but damaged"
    assert state in row["detail"] and said in row["detail"] and "not created yet" not in row["detail"]
    assert ("upgrade" in row["fix"]) if how == "newer" else ("store recover" in row["fix"])
    assert _digest(_state(repo)) == before


# --------------------------------------------------------------------------------- check and recover


def _tamper_projection(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("UPDATE tasks SET data = replace(data, 'first task', 'forged') WHERE id = 'T-0001'")
    conn.execute("DELETE FROM tasks WHERE id = 'T-0002'")
    conn.commit()
    conn.close()


def test_store_check_reports_a_sound_store(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, repo, "store", "check", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["ok"] and {f["name"] for f in report["findings"]} == {"file", "integrity", "schema", "event log",
                                                                        "projection"}
    assert all(f["ok"] for f in report["findings"])


def test_store_check_finds_a_projection_that_is_not_the_replay_and_recover_rebuilds_it(
        repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from bno_quality_gates.results import ResultsDB

    with ResultsDB(_state(repo)):  # the gate records share the file: recover must keep them
        pass
    gate_tables = {"gate_runs", "gate_results", "gate_cache"}
    _tamper_projection(_state(repo))
    tampered = _digest(_state(repo))
    code, out, _ = _run(capsys, repo, "store", "check", "--json")
    report = json.loads(out)
    assert code == 1 and not report["ok"]
    projection = next(f for f in report["findings"] if f["name"] == "projection")
    assert not projection["ok"] and "T-0001, T-0002" in projection["detail"]
    assert _digest(_state(repo)) == tampered  # check changes nothing

    code, out, err = _run(capsys, repo, "store", "recover", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["recovered"] and result["events"] == 2 and result["tasks"] == 2 and result["left_out"] == []
    backup = Path(result["backup"])
    assert backup.name.startswith("state.db.bak-") and _digest(backup) == tampered
    code, out, _ = _run(capsys, repo, "store", "check", "--json")
    assert code == 0 and json.loads(out)["ok"]
    code, out, _ = _run(capsys, repo, "task", "list", "--json")
    assert [t["title"] for t in sorted(json.loads(out)["tasks"], key=lambda t: t["id"])] == ["first task", "second task"]
    conn = sqlite3.connect(_state(repo))
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    components = {r[0] for r in conn.execute("SELECT component FROM schema_version")}
    conn.close()
    assert gate_tables <= tables and components == {"orchestrator", GATES_COMPONENT}
    code, out, _ = _run(capsys, repo, "task", "add", "third task", "--json")
    assert code == 0 and json.loads(out)["id"] == "T-0003"  # ids go on after the recovered log
    code, out, _ = _run(capsys, repo, "store", "recover")
    assert code == 0 and "nothing to recover" in out


def test_a_corrupt_projection_page_is_refused_then_recovered_from_the_intact_log(
        repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _state(repo)
    conn = sqlite3.connect(path)
    root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'tasks'").fetchone()[0]
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.close()
    with path.open("r+b") as fh:  # the projection's root page overwritten: the log's pages are intact
        fh.seek((root - 1) * page_size)
        fh.write(b"\xff" * page_size)
    corrupt = _digest(path)
    for argv in (("task", "list"), ("task", "add", "x")):
        code, _, err = _run(capsys, repo, *argv)
        assert code == 2 and "the database is damaged" in err and "store recover" in err and err.count("\n") == 1
    assert _digest(path) == corrupt
    code, out, _ = _run(capsys, repo, "store", "check", "--json")
    findings = {f["name"]: f for f in json.loads(out)["findings"]}
    assert code == 1 and not findings["integrity"]["ok"] and not findings["projection"]["ok"]
    assert findings["event log"]["ok"] and findings["event log"]["detail"] == "2 events, all readable"
    code, out, err = _run(capsys, repo, "store", "recover", "--json")
    assert code == 0, err
    assert _digest(Path(json.loads(out)["backup"])) == corrupt
    code, out, _ = _run(capsys, repo, "task", "list", "--json")
    assert code == 0 and sorted(t["title"] for t in json.loads(out)["tasks"]) == ["first task", "second task"]


@pytest.mark.parametrize("how", ["emptied", "garbage"])
def test_store_recover_refuses_when_the_log_itself_is_unreadable(repo: Path, capsys: pytest.CaptureFixture[str],
                                                                 how: str) -> None:
    _damage(repo, how)
    before = _digest(_state(repo))
    code, out, _ = _run(capsys, repo, "store", "check")
    assert code == 1 and "PROBLEM" in out and "store recover" in out
    code, _, err = _run(capsys, repo, "store", "recover")
    assert code == 2 and "the event log itself is unreadable" in err and "nothing was changed" in err
    assert _digest(_state(repo)) == before
    assert sorted(p.name for p in _state(repo).parent.glob("state.db*")) == ["state.db"]  # no backup, no new file


def test_store_check_and_recover_on_postgresql(pg_server: PgServer, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    import psycopg

    url = fresh_schema(pg_server)
    with Store.connect(url, clock=FakeClock(), repo=tmp_path) as store:
        create_task(store, {"title": "first task"}, actor="human:a")
        create_task(store, {"title": "second task"}, actor="human:a")
    with psycopg.connect(url, autocommit=True) as pg:
        pg.execute(b"DELETE FROM tasks WHERE id = 'T-0002'")
    code, out, _ = _run(capsys, tmp_path, "store", "check", "--url", url, "--json")
    report = json.loads(out)
    assert code == 1 and "T-0002" in next(f["detail"] for f in report["findings"] if f["name"] == "projection")
    code, out, err = _run(capsys, tmp_path, "store", "recover", "--url", url, "--json")
    assert code == 0, err
    assert json.loads(out)["tasks"] == 2
    code, out, _ = _run(capsys, tmp_path, "store", "check", "--url", url, "--json")
    assert code == 0 and json.loads(out)["ok"]


def test_a_newer_postgresql_store_is_a_user_error_and_doctor_says_so(
        pg_server: PgServer, repo: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    import psycopg

    url = fresh_schema(pg_server)
    Store.connect(url, repo=repo).close()
    with psycopg.connect(url, autocommit=True) as pg:
        pg.execute(f"UPDATE schema_version SET version = {SCHEMA_VERSION + 1} WHERE component = 'orchestrator'"
                   .encode())
    monkeypatch.setenv("ORCHESTRATOR_STORE_URL", url)
    code, _, err = _run(capsys, repo, "task", "list")
    assert code == 2 and f"schema version {SCHEMA_VERSION + 1}" in err and "upgrade" in err
    main(["--repo", str(repo), "doctor", "--quick", "--json"])
    row = next(c for c in json.loads(capsys.readouterr().out)["checks"] if c["name"] == "store")
    assert row["status"] == "missing" and "reachable, of a newer schema" in row["detail"]
    assert row["fix"] == "upgrade bitnet-orchestrator"
