"""User text reaches the terminal as text (issue 13, item 4): a task title, description, reason or gate output
holding Rich markup (``[/]``, ``[link=...]``), an emoji code and terminal control (an OSC retitle, BEL, NUL)
goes through the real CLIs without a crash, no raw ESC, BEL or NUL reaches stdout or stderr, and the
markup characters are shown as typed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bno_foundation.terminal import visible
from bno_orchestrator.cli import main
from tests.orchestrator.dispatch_helpers import add_routed_task, make_repo

HOSTILE = "fix [/] now [link=https://x]y[/link] :smile: \x1b]0;t\x07 \x00"
SHOWN = visible(HOSTILE)  # what a reader sees: the markup as typed, the controls as pictures
RAW_CONTROLS = ("\x1b", "\x00", "\x07", "\x9b")

# a gate that fails and prints markup, an emoji code and escape sequences (built with chr(): the file stays text)
GATES = """version: 1
defaults: {workers: 1, term_grace: 1}
gates:
  check:
    command: [python, -c, "import sys; print('out [/] [link=https://x]y[/link] :smile: ' + chr(27) + ']0;t' + chr(7) + ' ' + chr(27) + '[2J ' + chr(0) + ' end'); sys.exit(1)"]
    inputs: ["mod.txt"]
    timeout: 60
"""
GATE_SHOWN = "out [/] [link=https://x]y[/link] :smile: \\x1b]0;t\\x07 \\x1b[2J \\x00 end"  # the gate-log convention


def assert_inert(text: str) -> None:
    """No terminal control went out raw."""
    leaked = [repr(c) for c in RAW_CONTROLS if c in text]
    assert not leaked, f"raw control characters {leaked} in the output:\n{text!r}"


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A git repository with ``orchestrator init``, the hostile task routed to its agent."""
    monkeypatch.setenv("ORCHESTRATOR_ACTOR", "human:tester")
    monkeypatch.setenv("COLUMNS", "400")  # one line per row: the title is not wrapped
    path = make_repo(tmp_path / "repo")
    add_routed_task(path, "T-1", title=HOSTILE, description=f"desc {HOSTILE}")
    yield path


def run(repo: Path, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["--repo", str(repo), *argv])
    captured = capsys.readouterr()
    assert_inert(captured.out)
    assert_inert(captured.err)
    return code, captured.out, captured.err


def test_status_and_route_show_the_hostile_task_without_leaking(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(repo, capsys, "status")
    assert code == 0, err
    assert "1 tasks" in out and "T-1" in out  # the agents table lists the task its agent holds
    from bno_orchestrator.store import Store
    from bno_orchestrator.workflow import create_task

    with Store.open(repo) as store:  # a task type no rule knows: the router's reason quotes it
        create_task(store, {"id": "T-3", "title": "odd type", "type": HOSTILE}, actor="human:tester")
    code, out, err = run(repo, capsys, "route", "--dry-run", "--all")
    assert code == 0, err
    assert "routing (dry run: nothing recorded)" in out
    assert f"deferred: no rule or agent for type {HOSTILE!r}" in out  # markup as typed, controls as escapes


def test_explain_shows_the_title_as_typed(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(repo, capsys, "task", "explain", "T-1")
    assert code == 0, err
    assert SHOWN in out


def test_dispatch_dry_run_shows_title_and_prompt_as_typed(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(repo, capsys, "dispatch", "T-1", "--dry-run")
    assert code == 0, err
    assert f"T-1 {SHOWN}: " in out  # the head line: id, title, agent
    assert "(dry run: nothing recorded)" in out
    prompt = out.split("  prompt:", 1)[1]
    assert SHOWN in prompt  # the prompt quotes the title (and the description) as typed
    assert f"desc {SHOWN}" in prompt


def test_weekly_report_on_the_terminal_shows_controls_as_pictures(repo: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(repo, capsys, "report", "weekly")
    assert code == 0, err
    # the title, Markdown-escaped (brackets), with its controls visible
    assert "| T-1 | fix \\[/\\] now \\[link=https://x\\]y\\[/link\\] :smile: ␛\\]0;t␇ ␀ |" in out


def test_orchestrator_gates_run_status_and_history(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (repo / "workflows" / "gates.yaml").write_text(GATES, encoding="utf-8")
    code, out, err = run(repo, capsys, "gates", "run", "--all", "--no-cache")
    assert code == 1  # the gate failed: reported, not crashed
    assert GATE_SHOWN in err  # the failing gate's tail
    code, out, err = run(repo, capsys, "gates", "status")
    assert code == 0, err
    assert "check" in out and "failed" in out
    code, out, err = run(repo, capsys, "gates", "history", "--run", "latest")
    assert code == 0, err
    assert "check" in out and "failed" in out
    code, out, err = run(repo, capsys, "gates", "history", "--gate", "check")
    assert code == 0, err
    assert "failed" in out


def test_quality_gates_run_shows_gate_output_as_text(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from bno_quality_gates.cli import main as quality_gates

    config = repo / "gates.yaml"
    config.write_text(GATES, encoding="utf-8")
    code = quality_gates(["--repo", str(repo), "run", "--all", "--no-cache", "--config", str(config)])
    captured = capsys.readouterr()
    assert_inert(captured.out)
    assert_inert(captured.err)
    assert code == 1
    assert "check" in captured.out and "FAILED" in captured.out
    assert GATE_SHOWN in captured.err


# ------------------------------------------------------------------------------------- the Textual board


def test_board_and_detail_pane_show_title_description_and_reason_as_typed(repo: Path) -> None:
    import asyncio

    from bno_orchestrator.config import load_config
    from bno_orchestrator.store import Store
    from bno_orchestrator.tui.app import BoardApp
    from bno_orchestrator.workflow import create_task, move_task

    config = load_config(repo)
    actor = "human:lead"
    with Store.open(repo) as store:
        create_task(store, {"id": "T-2", "title": "blocked one", "description": f"first\n{HOSTILE}"}, actor=actor)
        move_task(store, config.workflow, "T-2", "blocked", actor=actor, reason=f"why {HOSTILE}")

        async def run() -> None:
            app = BoardApp(store, config.workflow, config.scoring, actor=actor, poll_interval=0.0,
                           progress_interval=0.0)
            async with app.run_test(size=(220, 50), notifications=True) as pilot:
                view = app.board_view
                board = "\n".join(view.render_line(y).text for y in range(view.size.height))
                assert_inert(board)
                assert "│ fix [/] now " in board and "│ [link=https://x]y[/link] :smile:… " in board  # cut to fit
                app.go_to_column([c.state for c in app.board_columns].index("assigned"))
                await pilot.pause()
                card = app.selected_card()
                assert card is not None and card.id == "T-1"
                await pilot.press("enter")  # the detail pane
                await pilot.pause()
                body = app.query_one("#detail-body").render()
                assert_inert(str(body))
                assert f"T-1: {SHOWN}" in str(body) and f"    desc {SHOWN}" in str(body)
                lines = [strip.text for strip in app.query_one("#detail-body").render_lines(
                    app.query_one("#detail-body").region.reset_offset)]  # what the terminal gets
                assert_inert("\n".join(lines))
                assert any("T-1: fix [/] now [link=https://x]y[/link] :smile: ␛]0;t␇ ␀" in line for line in lines)
                app.go_to_column([c.state for c in app.board_columns].index("blocked"))
                await pilot.pause()
                body = app.query_one("#detail-body").render()
                assert f"blocked: why {SHOWN}" in str(body) and f"    {SHOWN}" in str(body)  # reason, description
                assert f"(why {SHOWN})" in str(body)  # the move event and its reason
                app.notify(f"refused: {HOSTILE}", markup=True)  # a message quoting user text: never markup
                await pilot.pause()
                from textual.widgets._toast import Toast

                toasts = [str(toast.render()) for toast in app.screen.query(Toast)]
                assert any(f"refused: {SHOWN}" in toast for toast in toasts), toasts

        asyncio.run(run())


def test_command_palette_entries_are_text() -> None:
    import asyncio

    from textual.fuzzy import Matcher

    from bno_orchestrator.tui.app import highlighted

    async def run() -> None:
        content = highlighted(Matcher("fx"), visible("[/] f[b]x \x1b[2J"))
        assert content.plain == "[/] f[b]x ␛[2J"
        assert [(span.start, span.end) for span in content.spans] == [(4, 5), (8, 9)]  # the f and the x

    asyncio.run(run())


# ----------------------------------------------------------------------------- agent output and tool output


def test_dispatch_progress_lines_show_agent_output_as_typed(capsys: pytest.CaptureFixture[str],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import datetime as dt

    from bno_orchestrator.commands.dispatch import _progress_printer
    from bno_orchestrator.dispatch.progress import Progress

    monkeypatch.setenv("COLUMNS", "400")
    record = Progress(dt.datetime(2026, 1, 5, 9, tzinfo=dt.UTC), "tool", f"ran {HOSTILE}")
    _progress_printer(json_output=False)(record)  # on the console
    _progress_printer(json_output=True)(record)  # on stderr, beside a --json document on stdout
    captured = capsys.readouterr()
    assert_inert(captured.out)
    assert_inert(captured.err)
    assert captured.out.rstrip("\n").endswith(f"tool    ran {SHOWN}")
    assert captured.err.rstrip("\n").endswith(f"tool    ran {SHOWN}")


def test_doctor_table_shows_tool_output_as_typed(capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from bno_foundation.toolchain import MISSING, OK, Check, render_table

    monkeypatch.setenv("COLUMNS", "400")
    render_table("x doctor", [Check("git", OK, f"git version {HOSTILE}"),
                              Check("ruff", MISSING, "not found", fix="[bold]pip install ruff[/bold]")])
    out = capsys.readouterr().out
    assert_inert(out)
    assert f"git version {SHOWN}" in out and "[bold]pip install ruff[/bold]" in out and "MISSING" in out
