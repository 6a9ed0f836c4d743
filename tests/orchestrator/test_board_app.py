"""The Textual board driven by a Pilot: vim keys and arrows, moving cards (legal and refused), the move
menu, the `/` filter, the detail pane (with the last dispatch and the live progress of a running attempt),
the command palette and live refresh from the store."""

from __future__ import annotations

import asyncio

from textual.pilot import Pilot

from bno_orchestrator.config import load_config
from bno_orchestrator.tui.app import BoardApp, MoveScreen, PromptScreen, detail_text
from bno_orchestrator.tui.data import detail, load_snapshot
from bno_orchestrator.workflow import create_task
from tests.orchestrator.test_board_data import progress_line, running_attempt
from tests.orchestrator.test_report_weekly import HOSTILE, HUMAN, Scenario, add_dispatches, at, finish_attempt


def make_app(s: Scenario, poll: float = 0.0, progress: float = 0.0) -> BoardApp:
    return BoardApp(s.store, s.workflow, load_config(s.repo).scoring, actor=HUMAN, poll_interval=poll,
                    progress_interval=progress)


def detail_body(app: BoardApp) -> str:
    return str(app.query_one("#detail-body").render())


def selected(app: BoardApp) -> str | None:
    card = app.selected_card()
    return None if card is None else card.id


def shown(app: BoardApp) -> dict[str, list[str]]:
    """The cards each column of the board widget draws."""
    return {column.state: [card.id for card in column.cards] for column in app.board_view.columns}


def painted(app: BoardApp) -> str:
    """The board widget's lines as drawn (only the cards in sight)."""
    view = app.board_view
    return "\n".join(view.render_line(y).text for y in range(view.size.height))


def test_navigation_with_vim_keys_and_arrows(scenario: Scenario) -> None:
    async def run() -> None:
        app = make_app(scenario)
        async with app.run_test(size=(160, 40)) as pilot:
            assert len(app.board_view.slots) == 10 and shown(app)["backlog"] == ["T-0003", "T-0006"]
            assert selected(app) == "T-0003"
            await pilot.press("j")
            assert selected(app) == "T-0006"
            await pilot.press("k", "up")
            assert selected(app) == "T-0003"
            for _ in range(7):
                await pilot.press("l")
            assert app.board_columns[app.col].state == "done" and selected(app) == "T-0005"
            await pilot.press("down", "down", "down")
            assert selected(app) == "T-0002"  # stops at the last card
            await pilot.press("right")
            assert selected(app) == "T-0004"
            await pilot.press("h", "left")
            assert app.board_columns[app.col].state == "testing" and selected(app) is None
            assert "▶" not in painted(app)  # an empty column: no card carries the cursor mark
            await pilot.press("left", "left", "left", "left", "left", "left", "left")
            assert selected(app) == "T-0003"
            marked = [line for line in painted(app).splitlines() if "▶" in line]
            assert len(marked) == 1 and "▶T-0003" in marked[0]
    asyncio.run(run())


def test_moving_cards_with_keys_and_the_refusal_lists_allowed_moves(scenario: Scenario) -> None:
    async def run() -> None:
        app = make_app(scenario)
        async with app.run_test(size=(160, 40)) as pilot:
            await pilot.press("L")  # backlog -> assigned
            await pilot.pause()
            assert scenario.store.task("T-0003").status.value == "assigned"
            assert selected(app) == "T-0003" and app.board_columns[app.col].state == "assigned"
            assert shown(app)["assigned"] == ["T-0003"]
            await pilot.press("shift+right")  # assigned -> in_development
            await pilot.pause()
            assert scenario.store.task("T-0003").status.value == "in_development"
            await pilot.press("H")  # back through the workflow: in_development -> assigned is no move, backlog is
            await pilot.pause()
            assert scenario.store.task("T-0003").status.value == "backlog"
            assert selected(app) == "T-0003" and app.board_columns[app.col].state == "backlog"
            await pilot.press("H")  # nothing before the backlog: refused, saying why, nothing written
            await pilot.pause()
            assert app.last_message == f"T-0003: no back move from backlog for {HUMAN}; allowed: assigned, blocked, escalated"
            moves = [e for e in scenario.store.events(task_id="T-0003") if e.kind == "task.moved"]
            assert [(e.payload["from"], e.payload["to"], e.actor, e.reason) for e in moves] == [
                ("backlog", "assigned", HUMAN, ""), ("assigned", "in_development", HUMAN, ""),
                ("in_development", "backlog", HUMAN, "")]
    asyncio.run(run())


def test_move_menu_offers_only_allowed_moves(scenario: Scenario) -> None:
    async def run() -> None:
        app = make_app(scenario)
        async with app.run_test(size=(160, 40)) as pilot:
            await pilot.press("m")
            await pilot.pause()
            screen = app.screen
            assert isinstance(screen, MoveScreen) and screen.allowed == ["assigned", "blocked", "escalated"]
            await pilot.press("down", "enter")  # the second option: blocked, which asks why
            await pilot.pause()
            assert isinstance(app.screen, PromptScreen)
            assert scenario.store.task("T-0003").status.value == "backlog"  # nothing written before the reason
            await pilot.press(*"waiting on [b]ops[/b]", "enter")
            await pilot.pause()
            assert not isinstance(app.screen, MoveScreen | PromptScreen)
            task = scenario.store.task("T-0003")
            assert task.status.value == "blocked" and task.blocked_reason == "waiting on [b]ops[/b]"
            assert scenario.store.events(task_id="T-0003")[-1].reason == "waiting on [b]ops[/b]"
            assert selected(app) == "T-0003" and app.board_columns[app.col].state == "blocked"
            for _ in range(2):
                await pilot.press("left")
            assert app.board_columns[app.col].state == "testing"
            await pilot.press("left", "m")  # qa column: no card, nothing to offer
            assert not isinstance(app.screen, MoveScreen)
    asyncio.run(run())


def test_filter_and_detail_pane(scenario: Scenario) -> None:
    async def run() -> None:
        app = make_app(scenario)
        async with app.run_test(size=(160, 40)) as pilot:
            await pilot.press("slash")
            await pilot.press(*"agent:code")
            await pilot.press("enter")
            await pilot.pause()
            assert app.filter_text == "agent:code"
            assert {s: ids for s, ids in shown(app).items() if ids} == {"done": ["T-0005"]}
            assert selected(app) is None or selected(app) == "T-0005"
            await pilot.press("escape")
            await pilot.pause()
            assert app.filter_text == "" and shown(app)["backlog"] == ["T-0003", "T-0006"]
            await pilot.press("enter")
            await pilot.pause()
            assert app.query_one("#detail").display
            body = str(app.query_one("#detail-body").render())
            assert "T-0003: Docs pass" in body and "Routing" in body and "not routed yet" in body
            assert "Gate history" in body and "task.created" in body
            await pilot.press("j")
            assert "T-0006: Release | notes *draft*" in str(app.query_one("#detail-body").render())
            await pilot.press("escape")
            assert not app.query_one("#detail").display
    asyncio.run(run())


def test_live_refresh_from_the_store(scenario: Scenario) -> None:
    async def run() -> None:
        app = make_app(scenario, poll=0.05)
        async with app.run_test(size=(160, 40)) as pilot:
            before = app.snapshot.last_event_id if app.snapshot else 0
            scenario.clock.now = at(16, 12)
            create_task(scenario.store, {"title": "Arrived from elsewhere", "impact": 5}, actor="human:other")
            for _ in range(40):
                await pilot.pause(0.05)
                if "T-0007" in shown(app)["backlog"]:
                    break
            assert shown(app)["backlog"][0] == "T-0007"
            assert app.snapshot is not None and app.snapshot.last_event_id == before + 1
            assert selected(app) == "T-0003"  # the cursor stays on its card
    asyncio.run(run())


def test_command_palette_moves_the_selected_card(scenario: Scenario) -> None:
    async def run() -> None:
        app = make_app(scenario)
        async with app.run_test(size=(160, 40)) as pilot:
            await pilot.press("ctrl+p")
            await pilot.pause()
            await pilot.press(*"Move T-0003 to escalated")
            for _ in range(20):
                await pilot.pause(0.05)
            await pilot.press("enter")
            for _ in range(20):
                await pilot.pause(0.05)
                if isinstance(app.screen, PromptScreen):
                    break
            assert isinstance(app.screen, PromptScreen)  # escalating asks why
            await pilot.press(*"needs a design call", "enter")
            for _ in range(10):
                await pilot.pause(0.05)
                if scenario.store.task("T-0003").status.value == "escalated":
                    break
            assert scenario.store.task("T-0003").status.value == "escalated"
            assert scenario.store.events(task_id="T-0003")[-1].reason == "needs a design call"
    asyncio.run(run())


def test_detail_text_never_reads_markup(scenario: Scenario) -> None:
    add_dispatches(scenario)
    snapshot = load_snapshot(scenario.store, scenario.workflow, load_config(scenario.repo).scoring)
    text = detail_text(detail(snapshot, "T-0005", scenario.workflow, HUMAN))
    assert f"  {HOSTILE}\n" in text.plain and "<script>alert(1)</script>" in text.plain  # title and message verbatim
    start = text.plain.index(HOSTILE)
    assert all(span.end <= start or span.start >= start + len(HOSTILE) or span.style == ""
               for span in text.spans)  # no style from the message's "[bold]"


def test_detail_pane_follows_a_running_attempt(scenario: Scenario) -> None:
    path = running_attempt(scenario)
    path.write_text("".join(progress_line(n) for n in range(1, 4)))

    async def wait_for(pilot: Pilot[None], app: BoardApp, needle: str) -> str:
        for _ in range(60):
            await pilot.pause(0.05)
            if needle in detail_body(app):
                break
        return detail_body(app)

    async def run() -> None:
        app = make_app(scenario, poll=0.05, progress=0.05)
        async with app.run_test(size=(160, 40)) as pilot:
            await pilot.press("l", "l", "enter")
            await pilot.pause()
            assert selected(app) == "T-0003" and app.query_one("#detail").display
            body = detail_body(app)
            assert "Last dispatch" in body and "attempt 1: code (claude executor), started 2026-01-16 12:00" in body
            assert "outcome: running" in body and "progress (last 3, live):" in body
            assert "12:03:00 tool    step 3" in body
            assert app.progress_file == path
            # the agent writes on: the pane shows the new tail (the last 8 lines), a half-written line not yet
            with path.open("a") as fh:
                fh.writelines(progress_line(n) for n in range(4, 12))
                fh.write(progress_line(12, "edit")[:30])
            body = await wait_for(pilot, app, "step 11")
            assert "step 11" in body and "progress (last 8, live):" in body
            assert "step 3\n" not in body and "step 4" in body and "step 12" not in body
            with path.open("a") as fh:
                fh.write(progress_line(12, "edit")[30:])
            body = await wait_for(pilot, app, "step 12")
            assert "12:12:00 edit    step 12" in body and "step 4" not in body
            # the attempt ends: the board re-reads the log, shows the outcome and stops following the file
            finish_attempt(scenario, at(16, 13), "T-0003", "code", "claude", 1, cost=0.42, tokens=(1200, 340),
                           turns=9, session_id="sess-live", final_message=HOSTILE, started=True)
            body = await wait_for(pilot, app, "outcome: ok")
            assert "outcome: ok (exit 0)" in body and "cost $0.42, tokens 1,200 in / 340 out, turns 9" in body
            assert "session sess-live" in body and HOSTILE in body  # the final message as text, not markup
            assert "progress (last" not in body and app.progress_file is None
    asyncio.run(run())
