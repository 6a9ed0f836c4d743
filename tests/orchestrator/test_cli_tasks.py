"""The CLI end to end: init, task add/list/show/edit/move/block/unblock/explain, route, status,
escalate, export/import; --json everywhere; user errors exit 2 with a clear message."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bno_orchestrator.cli import main


class Cli:
    def __init__(self, repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.repo = repo
        self.capsys = capsys

    def run(self, *argv: str) -> tuple[int, str, str]:
        code = main(["--repo", str(self.repo), *argv])
        out = self.capsys.readouterr()
        return code, out.out, out.err

    def json(self, *argv: str) -> Any:
        code, out, err = self.run(*argv, "--json")
        assert code == 0, err
        return json.loads(out)


@pytest.fixture
def cli(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.setenv("ORCHESTRATOR_ACTOR", "human:tester")
    (tmp_path / ".git").mkdir()
    return Cli(tmp_path, capsys)


def test_init_writes_config_and_store_and_keeps_existing_files(cli: Cli) -> None:
    report = cli.json("init")
    assert "workflows/routing.yaml" in report["created"] and "agents/architect.md" in report["created"]
    assert Path(report["store"]).is_file() and report["schema_version"] >= 1
    assert ".orchestrator/" in (cli.repo / ".gitignore").read_text()
    routing = cli.repo / "workflows" / "routing.yaml"
    routing.write_text(routing.read_text() + "\n# local change\n")
    again = cli.json("init")
    assert again["created"] == [] and "workflows/routing.yaml" in again["kept"]
    assert "# local change" in routing.read_text()
    forced = cli.json("init", "--force")
    assert forced["overwritten"] == ["workflows/routing.yaml"]
    assert "# local change" not in routing.read_text()


def test_task_lifecycle_through_the_cli(cli: Cli) -> None:
    cli.json("init", "--profile", "shipped")
    a = cli.json("task", "add", "Design the engine API", "--type", "architecture", "--component", "architecture",
                 "--complexity", "high", "--impact", "5")
    assert a["id"] == "T-0001" and a["complexity"] == 3
    b = cli.json("task", "add", "KV cache", "--type", "inference", "--component", "bitnet-inference",
                 "--depends-on", "T-0001", "--due", "2026-12-01")
    assert b["depends_on"] == ["T-0001"] and b["due"].startswith("2026-12-01")
    listed = cli.json("task", "list")
    assert [t["id"] for t in listed["tasks"]] == ["T-0001", "T-0002"]
    assert listed["tasks"][1]["blocked_by"] == ["T-0001"] and listed["tasks"][0]["blocks"] == ["T-0002"]
    explained = cli.json("task", "explain", "T-0001")
    terms = {t["name"]: t for t in explained["terms"]}
    assert terms["impact"]["source"] == "task" and terms["urgency"]["source"] == "default"
    assert terms["dependencies"]["source"] == "derived" and explained["value"] == pytest.approx(5 * 3 * 2 / 4)
    assert cli.json("task", "explain", "T-0001", "--scorer", "wsjf")["scorer"] == "wsjf"
    code, out, _ = cli.run("task", "explain", "T-0001")
    assert code == 0 and "scoring.yaml default for urgency" in out

    edited = cli.json("task", "edit", "T-0002", "--title", "KV cache (paged)", "--set", "labels=[perf, api]")
    assert edited["title"] == "KV cache (paged)" and edited["labels"] == ["perf", "api"]

    routed = cli.json("route")
    outcomes = {d["task_id"]: d for d in routed["decisions"]}
    assert outcomes["T-0001"]["primary"] == "architect" and outcomes["T-0002"]["outcome"] == "blocked"
    assert cli.json("route", "--dry-run")["decisions"][0]["outcome"] == "blocked"

    moved = cli.json("task", "move", "T-0001", "in_development", "--reason", "starting")
    assert moved["from"] == "assigned" and moved["to"] == "in_development"
    assert cli.json("task", "block", "T-0001", "--reason", "needs a decision")["to"] == "blocked"
    assert cli.json("task", "unblock", "T-0001")["to"] == "in_development"

    shown = cli.json("task", "show", "T-0001")
    kinds = [e["kind"] for e in shown["events"]]
    assert kinds == ["task.created", "task.routed", "task.moved", "task.moved", "task.moved"]
    assert shown["events"][0]["actor"] == "human:tester" and "review" in shown["allowed_moves"]
    code, out, _ = cli.run("task", "show", "T-0001")
    assert code == 0 and "history" in out

    status = cli.json("status")
    assert status["tasks"] == 2 and status["states"]["in_development"] == 1 and status["states"]["backlog"] == 1
    architect = next(a for a in status["agents"] if a["agent"] == "architect")
    assert architect["load"] == 1 and architect["tasks"] == ["T-0001"] and architect["capacity"] >= 1
    assert status["waiting_on_dependencies"] == ["T-0002"]
    code, out, _ = cli.run("status")
    assert code == 0 and "load vs capacity" in out

    assert cli.json("escalate", "--dry-run")["escalations"] == []
    assert cli.json("task", "list", "--status", "backlog")["tasks"][0]["id"] == "T-0002"


def test_user_errors_exit_2_with_a_clear_message(cli: Cli) -> None:
    cli.json("init")
    cli.json("task", "add", "one")
    code, _, err = cli.run("task", "move", "T-0001", "done")
    assert code == 2 and "illegal transition backlog -> done" in err and "assigned (human/router)" in err
    code, _, err = cli.run("task", "show", "T-0099")
    assert code == 2 and "no task 'T-0099'" in err
    code, _, err = cli.run("task", "add", "x", "--component", "warp-drive")
    assert code == 2 and "unknown component 'warp-drive'" in err
    code, _, err = cli.run("task", "add", "x", "--impact", "8")
    assert code == 2 and "field 'impact'" in err
    cli.json("task", "add", "two", "--depends-on", "T-0001")
    code, _, err = cli.run("task", "edit", "T-0001", "--depends-on", "T-0002")
    assert code == 2 and "cycle: T-0001 -> T-0002 -> T-0001" in err
    code, _, err = cli.run("task", "edit", "T-0001")
    assert code == 2 and "nothing to change" in err
    (cli.repo / "workflows" / "scoring.yaml").write_text("scorer: best\n")
    code, _, err = cli.run("task", "list")
    assert code == 2 and "scoring.yaml:1:1: field 'scorer'" in err


def test_export_and_import_commands(cli: Cli) -> None:
    cli.json("init")
    cli.json("task", "add", "one", "--label", "x")
    exported = cli.json("export")
    path = Path(exported["path"])
    assert path == cli.repo / "tasks.yaml" and exported["tasks"] == 1
    path.write_text(path.read_text().replace("title: one", "title: one, edited"))
    dry = cli.json("import", str(path), "--dry-run")
    assert dry["edited"] == {"T-0001": {"title": {"old": "one", "new": "one, edited"}}}
    code, out, _ = cli.run("import", str(path), "--dry-run")
    assert code == 0 and "edit T-0001 title: 'one' -> 'one, edited'" in out
    assert cli.json("task", "show", "T-0001")["task"]["title"] == "one"
    cli.json("import", str(path))
    assert cli.json("task", "show", "T-0001")["task"]["title"] == "one, edited"
    code, out, _ = cli.run("export", "-o", "-", "--events")
    assert code == 0 and "events:" in out and "task.edited" in out


def test_task_list_table_is_one_line_per_task_and_fits_the_width(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    cli.json("init")
    long_title = "Make the ternary GEMV kernel fast on every GPU we ship " * 3
    cli.json("task", "add", long_title, "--impact", "5")
    cli.json("task", "add", "[b]x[/b]", "--label", "x")
    code, out, _ = cli.run("task", "list")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "tasks (scorer: priority): 2"
    assert lines[1].split() == ["id", "title", "type", "status", "score", "cx", "assignees", "blocked", "by"]
    rows = lines[3:]
    assert [row.split()[0] for row in rows] == [t["id"] for t in cli.json("task", "list")["tasks"]]
    assert all(len(line) <= 80 for line in lines) and len(rows) == 2  # no wrapped rows
    assert "Make the ter" in rows[0] and "…" in rows[0]  # the title cut to what the width leaves
    assert "[b]x[/b]" in rows[1]  # text, never markup


def test_text_table_aligns_and_cuts_wide_cells() -> None:
    from bno_orchestrator.commands.tasks import fit_cell, text_table

    table = text_table(("id", "title", "n"), [("A-1", "short", "7"), ("B-22", "日本語のタイトル", "10")],
                       width=24, flex=1, right=("n",))
    assert table.splitlines() == [
        "id    title            n",
        "────  ──────────────  ──",
        "A-1   short            7",
        "B-22  日本語のタイ…   10",  # 14 cells for the title: 13 of it, the ellipsis; right-aligned numbers
    ]
    assert fit_cell("日本語のタイトル", 7) == "日本語…" and fit_cell("日本語のタイトル", 8) == "日本語… "
    assert fit_cell("tab\there", 8) == "tab here"


def test_task_delete_restore_and_undo_through_the_cli(cli: Cli) -> None:
    cli.json("init")
    cli.json("task", "add", "base")
    cli.json("task", "add", "top", "--depends-on", "T-0001")
    code, _, err = cli.run("task", "delete", "T-0001", "--reason", "not needed")
    assert code == 2 and "T-0002 depends on it" in err and "--force" in err
    deleted = cli.json("task", "delete", "T-0001", "--reason", "not needed", "--force")
    assert deleted["detached"] == ["T-0002"] and deleted["event"]["reason"] == "not needed"
    assert deleted["event"]["actor"] == "human:tester" and deleted["event"]["kind"] == "task.deleted"
    assert [t["id"] for t in cli.json("task", "list")["tasks"]] == ["T-0002"]
    assert cli.json("task", "add", "next")["id"] == "T-0003"  # the deleted id is not reused
    last = cli.json("task", "show", "T-0002")["events"][-1]  # the dependency edit names why
    assert last["kind"] == "task.edited" and last["reason"] == "T-0001 deleted"

    restored = cli.json("task", "restore", "T-0001")
    assert restored["id"] == "T-0001" and restored["title"] == "base" and restored["status"] == "backlog"
    code, out, _ = cli.run("task", "delete", "T-0003")
    assert code == 0 and "deleted T-0003" in out and "task restore T-0003" in out

    code, _, err = cli.run("task", "show", "T-0003")
    assert code == 2 and "T-0003 was deleted (event" in err and "task restore T-0003" in err
    undone = cli.json("task", "undo")  # the delete of T-0003
    assert undone["undone"]["kind"] == "task.deleted" and undone["event"]["kind"] == "task.restored"
    assert undone["task"]["id"] == "T-0003" and undone["event"]["payload"]["undoes"] == undone["undone"]["id"]
    code, out, _ = cli.run("task", "undo")  # then the restore of T-0001: deleted again
    assert code == 0 and "deleted T-0001 (undo of its task.restored)" in out
    code, _, err = cli.run("task", "undo", "--actor", "human:nobody")
    assert code == 2 and "nothing to undo for human:nobody" in err
    code, _, err = cli.run("task", "restore", "T-0002")
    assert code == 2 and "T-0002 is not deleted" in err


def test_task_undo_refuses_when_another_actor_changed_the_task(cli: Cli) -> None:
    cli.json("init")
    cli.json("task", "add", "one")
    cli.json("task", "edit", "T-0001", "--title", "two", "--actor", "human:other")
    code, _, err = cli.run("task", "undo")
    assert code == 2
    assert "cannot undo event 1 (task.created of T-0001): T-0001 changed since (event 2, task.edited by human:other)" in err
    assert cli.json("task", "show", "T-0001")["task"]["title"] == "two"


def test_task_edit_adds_and_removes_list_items(cli: Cli) -> None:
    cli.json("init")
    cli.json("task", "add", "base")
    cli.json("task", "add", "x", "--label", "a", "--label", "b", "--assignee", "architect")
    edited = cli.json("task", "edit", "T-0002", "--add-label", "c", "--remove-label", "a",
                      "--add-depends-on", "T-0001", "--add-assignee", "code", "--remove-assignee", "architect")
    assert edited["labels"] == ["b", "c"] and edited["depends_on"] == ["T-0001"] and edited["assignees"] == ["code"]
    edited = cli.json("task", "edit", "T-0002", "--remove-depends-on", "T-0001")
    assert edited["depends_on"] == []
    code, _, err = cli.run("task", "edit", "T-0002", "--remove-label", "zzz")
    assert code == 2 and "field 'labels' holds no 'zzz' to remove (it holds: b, c)" in err
    code, _, err = cli.run("task", "edit", "T-0002", "--label", "q", "--add-label", "r")
    assert code == 2 and "field 'labels': give either the whole list or items to add/remove" in err
    with pytest.raises(SystemExit) as done:
        cli.run("task", "edit", "--help")
    helped = " ".join(cli.capsys.readouterr().out.split())
    assert done.value.code == 0 and "(repeat for several; replaces the list: --add-/--remove-..." in helped
    assert "--add-label LABEL add one item to labels" in helped


def test_unknown_assignees_are_refused_with_the_known_agents(cli: Cli) -> None:
    cli.json("init")
    code, _, err = cli.run("task", "add", "x", "--assignee", "ghost")
    assert code == 2 and "field 'assignees': unknown agent 'ghost'; known agents: " in err and "architect" in err
    cli.json("task", "add", "x")
    for flags in (("--assignee", "ghost"), ("--add-assignee", "ghost"), ("--set", "assignees=[ghost]")):
        code, _, err = cli.run("task", "edit", "T-0001", *flags)
        assert code == 2 and "unknown agent 'ghost'" in err, flags
    assert cli.json("task", "show", "T-0001")["task"]["assignees"] == []


HOSTILE_TITLE = "fix [/] and [link=https://evil.example]docs[/link] \x1b]0;x\x07 and NUL \x00 end"


def test_a_hostile_title_prints_as_visible_text(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    cli.json("init")
    code, out, err = cli.run("task", "add", HOSTILE_TITLE)
    assert code == 0, err
    assert "[/]" in out and "[link=https://evil.example]" in out and "␛]0;x␇" in out and "␀" in out
    assert "\x1b" not in out and "\x07" not in out and "\x00" not in out
    for argv in (("task", "list"), ("task", "show", "T-0001"), ("task", "explain", "T-0001"),
                 ("task", "delete", "T-0001"), ("task", "undo")):
        code, out, err = cli.run(*argv)
        assert code == 0, (argv, err)
        assert "\x1b" not in out and "\x07" not in out and "\x00" not in out, argv
    code, out, _ = cli.run("task", "list")
    assert "fix [/] and [link=https://evil.example]docs[/link] ␛]0;x␇ and NUL ␀ end" in out
    code, out, _ = cli.run("task", "show", "T-0001")
    assert "[/]" in " ".join(out.split()) and "␛]0;x␇" in out
    assert cli.json("task", "show", "T-0001")["task"]["title"] == HOSTILE_TITLE  # stored as given
