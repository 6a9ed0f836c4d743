"""The board's keys, each driven by the Pilot on the shared scenario: `?` help, tab then arrows, add, edit,
delete, undo (of moves, edits, adds and deletes), block and escalate with a reason, workflow moves forward
and back, saved filters, and the board's look without colour and at different widths."""

from __future__ import annotations

import asyncio
import json

from rich.color import Color as RichColor
from textual.binding import Binding
from textual.pilot import Pilot

from bno_orchestrator.tui.app import (
    BoardApp,
    BoardScreen,
    HelpScreen,
    PickScreen,
    PromptScreen,
    TaskFormScreen,
)
from bno_orchestrator.workflow import block_task, move_task, record_verification
from tests.orchestrator.test_board_app import make_app, painted, selected, shown
from tests.orchestrator.test_report_weekly import HUMAN, Scenario


async def settle(pilot: Pilot[None]) -> None:
    await pilot.pause()
    await pilot.pause()


def state_of(app: BoardApp) -> str:
    return app.board_columns[app.col].state


def test_help_lists_every_key(scenario: Scenario) -> None:
    async def run() -> None:
        app = make_app(scenario)
        async with app.run_test(size=(160, 40)) as pilot:
            await pilot.press("question_mark")
            await settle(pilot)
            assert isinstance(app.screen, HelpScreen)
            body = app.screen.help_text().plain
            for binding in BoardScreen.BINDINGS:
                assert isinstance(binding, Binding) and binding.description in body, binding
            for key in ("h / left", "j / down", "tab", "H / shift+left", "?", "/", "ctrl+p", "q"):
                assert key in body, key
            await pilot.press("j")  # the board underneath does not take keys while the help is open
            assert selected(app) == "T-0003"
            await pilot.press("escape")
            await settle(pilot)
            assert not isinstance(app.screen, HelpScreen)
    asyncio.run(run())


def test_tab_changes_column_and_arrows_still_move_the_cursor(scenario: Scenario) -> None:
    async def run() -> None:
        app = make_app(scenario)
        async with app.run_test(size=(160, 40)) as pilot:
            await pilot.press("tab")
            assert state_of(app) == "assigned"
            await pilot.press(*["tab"] * 6)
            assert state_of(app) == "done" and selected(app) == "T-0005"
            await pilot.press("down", "down")
            assert selected(app) == "T-0002"  # arrows move the cursor, they do not scroll a focused widget
            await pilot.press("shift+tab", "right", "up")
            assert state_of(app) == "done" and selected(app) == "T-0001"
            await pilot.press("G")
            assert selected(app) == "T-0002"
            await pilot.press("g")
            assert selected(app) == "T-0005"
    asyncio.run(run())


def test_add_and_edit_with_the_form_and_undo_the_edit_then_the_add(scenario: Scenario) -> None:
    async def run() -> None:
        app = make_app(scenario)
        async with app.run_test(size=(160, 40)) as pilot:
            await pilot.press("a")
            await settle(pilot)
            assert isinstance(app.screen, TaskFormScreen)
            await pilot.press(*"Profile [red]decode[/red]", "tab", "5", "tab", *"perf, kv", "tab", *"code", "enter")
            await settle(pilot)
            task = scenario.store.task("T-0007")
            assert (task.title, task.impact, task.labels, task.assignees) == (
                "Profile [red]decode[/red]", 5, ["perf", "kv"], ["code"])
            assert selected(app) == "T-0007" and state_of(app) == "backlog"  # the cursor is on the new card
            assert "[red]decode[/red]" in painted(app)  # shown as text, not markup
            await pilot.press("e")
            await settle(pilot)
            form = app.screen
            assert isinstance(form, TaskFormScreen) and form.answer() == {
                "title": "Profile [red]decode[/red]", "priority": "5", "labels": "perf, kv", "assignee": "code"}
            form.query_one("#form-title").value = "Profile decode"  # type: ignore[attr-defined]
            form.query_one("#form-priority").value = "9"  # type: ignore[attr-defined]
            await pilot.press("enter")
            await settle(pilot)
            assert "priority '9'" in app.last_message and scenario.store.task("T-0007").impact == 5  # refused
            await pilot.press("e")
            await settle(pilot)
            app.screen.query_one("#form-title").value = "Profile decode"  # type: ignore[attr-defined]
            app.screen.query_one("#form-labels").value = "perf"  # type: ignore[attr-defined]
            await pilot.press("enter")
            await settle(pilot)
            edited = scenario.store.task("T-0007")
            assert (edited.title, edited.labels) == ("Profile decode", ["perf"])
            last = scenario.store.events(task_id="T-0007")[-1]
            assert last.kind == "task.edited" and last.payload["previous"] == {
                "title": "Profile [red]decode[/red]", "labels": ["perf", "kv"]}
            await pilot.press("u")
            await settle(pilot)
            restored = scenario.store.task("T-0007")
            assert (restored.title, restored.labels) == ("Profile [red]decode[/red]", ["perf", "kv"])
            undo = scenario.store.events(task_id="T-0007")[-1]
            assert undo.kind == "task.edited" and undo.reason.startswith("undo of the edit of T-0007")
            await pilot.press("u")  # then the add itself: the task is deleted (a new event)
            await settle(pilot)
            assert scenario.store.find("T-0007") is None
            assert scenario.store.events(task_id="T-0007")[-1].reason == "undo of the add of T-0007"
            await pilot.press("u")
            assert app.last_message == "nothing to undo"
    asyncio.run(run())


def test_block_and_escalate_ask_for_the_reason_and_store_it(scenario: Scenario) -> None:
    async def run() -> None:
        app = make_app(scenario)
        async with app.run_test(size=(160, 40)) as pilot:
            await pilot.press("b")
            await settle(pilot)
            assert isinstance(app.screen, PromptScreen)
            await pilot.press("enter")  # a blank reason is refused where it is typed
            await settle(pilot)
            assert isinstance(app.screen, PromptScreen)
            assert scenario.store.task("T-0003").status.value == "backlog"
            await pilot.press(*"vendor SDK missing", "enter")
            await settle(pilot)
            task = scenario.store.task("T-0003")
            assert task.status.value == "blocked" and task.blocked_reason == "vendor SDK missing"
            assert state_of(app) == "blocked" and selected(app) == "T-0003"
            await pilot.press("E")
            await settle(pilot)
            await pilot.press("escape")  # cancelled: nothing written
            await settle(pilot)
            assert scenario.store.task("T-0003").status.value == "blocked"
            await pilot.press("E")
            await settle(pilot)
            await pilot.press(*"needs the architect", "enter")
            await settle(pilot)
            moved = scenario.store.events(task_id="T-0003")[-1]
            assert (moved.kind, moved.payload["to"], moved.reason) == ("task.moved", "escalated", "needs the architect")
            assert all("moved on the board" not in e.reason for e in scenario.store.events())
    asyncio.run(run())


def test_workflow_moves_forward_back_and_out_of_blocked_and_undo(scenario: Scenario) -> None:
    block_task(scenario.store, scenario.workflow, "T-0003", "waiting", actor=HUMAN)  # blocked from backlog
    move_task(scenario.store, scenario.workflow, "T-0006", "assigned", actor=HUMAN)

    async def run() -> None:
        app = make_app(scenario)
        async with app.run_test(size=(160, 40)) as pilot:
            await pilot.press("l")
            assert selected(app) == "T-0006"
            await pilot.press("L")  # assigned -> in_development
            await settle(pilot)
            assert scenario.store.task("T-0006").status.value == "in_development"
            await pilot.press("L")  # in_development -> review
            await settle(pilot)
            assert scenario.store.task("T-0006").status.value == "review" and state_of(app) == "review"
            await pilot.press("H")  # review -> in_development (the workflow's way back)
            await settle(pilot)
            assert scenario.store.task("T-0006").status.value == "in_development"
            await pilot.press("u")  # undo the move back: review again, written as a new move
            await settle(pilot)
            assert scenario.store.task("T-0006").status.value == "review"
            assert scenario.store.events(task_id="T-0006")[-1].reason.startswith("undo of the move of T-0006")
            for _ in range(5):
                await pilot.press("l")
            assert state_of(app) == "blocked" and selected(app) == "T-0003"
            await pilot.press("H")  # off the main line: no back move, and it says what is allowed
            await settle(pilot)
            assert "off the main line" in app.last_message and "(m)" in app.last_message
            await pilot.press("L")  # forward out of blocked: back where it was blocked from
            await settle(pilot)
            assert scenario.store.task("T-0003").status.value == "backlog" and state_of(app) == "backlog"
    asyncio.run(run())


def test_saved_filters_are_stored_in_the_repo_and_recalled(scenario: Scenario) -> None:
    path = scenario.repo / ".orchestrator" / "board-filters.json"

    async def run() -> None:
        app = make_app(scenario)
        async with app.run_test(size=(160, 40)) as pilot:
            await pilot.press("s")
            assert app.last_message.startswith("nothing to save")
            await pilot.press("slash", *"is:blocked", "enter")
            await settle(pilot)
            assert [c.id for col in app.board_columns for c in col.cards] == ["T-0004"]
            await pilot.press("s")
            await settle(pilot)
            await pilot.press(*"stuck", "enter")
            await settle(pilot)
            assert json.loads(path.read_text()) == {"stuck": "is:blocked"}
            await pilot.press("escape")  # clears the filter
            await settle(pilot)
            assert app.filter_text == "" and sum(len(c.cards) for c in app.board_columns) == 6
            await pilot.press("f")
            await settle(pilot)
            assert isinstance(app.screen, PickScreen)
            await pilot.press("enter")
            await settle(pilot)
            assert app.filter_text == "is:blocked"
            assert [c.id for col in app.board_columns for c in col.cards] == ["T-0004"]
            await pilot.press("f")
            await settle(pilot)
            await pilot.press("d", "escape")
            await settle(pilot)
            assert json.loads(path.read_text()) == {}
    asyncio.run(run())


def test_a_bad_filter_keeps_the_board_and_says_why(scenario: Scenario) -> None:
    async def run() -> None:
        app = make_app(scenario)
        async with app.run_test(size=(160, 40)) as pilot:
            await pilot.press("slash")
            app.query_one("#filter").value = "owner:x"  # type: ignore[attr-defined]  # pasted at once
            await settle(pilot)
            assert sum(len(c.cards) for c in app.board_columns) == 6  # never blank while typing
            assert "unknown filter field 'owner'" in str(app.query_one("#status").render())
    asyncio.run(run())


def test_no_color_draws_cards_without_colour_and_keeps_the_meaning(scenario: Scenario, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("NO_COLOR", "1")

    async def run() -> None:
        app = make_app(scenario)
        async with app.run_test(size=(160, 40)) as pilot:
            await settle(pilot)
            assert app.no_color
            view = app.board_view
            colours = {segment.style.color for y in range(view.size.height) for segment in view.render_line(y)
                       if segment.style is not None and segment.text.strip() and segment.style.color is not None
                       and segment.text.strip() not in "│"}
            base = view.rich_style.color
            assert colours <= {base}  # card text in the one text colour: no meaning carried by colour
            text = painted(app)
            assert "▶T-0003" in text and "blocked @kernel-e" in text
    asyncio.run(run())


def test_columns_use_the_terminal_width_and_titles_never_wrap_past_two_lines(scenario: Scenario) -> None:
    scenario.store.append(scenario.store.events(task_id="T-0003")[0].model_copy(update={
        "id": None, "ts": None, "task_id": "T-0003", "kind": "task.edited",
        "payload": {"changes": {"title": "A very long title " * 6}, "previous": {"title": "Docs pass"}}}))

    async def run() -> None:
        for width in (100, 200):
            app = make_app(scenario)
            async with app.run_test(size=(width, 40)) as pilot:
                await settle(pilot)
                slots = app.board_view.slots
                assert slots[-1].x + slots[-1].width == width  # the columns fill the width
                backlog = next(s for s in slots if app.board_columns[s.index].state == "backlog")
                empty = next(s for s in slots if not app.board_columns[s.index].cards)
                assert backlog.width > empty.width  # columns with cards get the room
                lines = painted(app).splitlines()
                titles = [line[backlog.x: backlog.x + backlog.width] for line in lines[3:5]]
                assert titles[0].strip().startswith("A very long title") and titles[1].rstrip().endswith("…")
                assert lines[5][backlog.x: backlog.x + backlog.width].strip() == "@-"  # the third line: flags
    asyncio.run(run())


def _luminance(color: RichColor) -> float:
    def channel(value: int) -> float:
        scaled = value / 255
        return scaled / 12.92 if scaled <= 0.03928 else ((scaled + 0.055) / 1.055) ** 2.4

    red, green, blue = color.get_truecolor()
    return 0.2126 * channel(red) + 0.7152 * channel(green) + 0.0722 * channel(blue)


def contrast(first: RichColor, second: RichColor) -> float:
    """The WCAG contrast ratio of two colours."""
    high, low = sorted((_luminance(first), _luminance(second)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_text_is_readable_on_dark_and_light_themes(scenario: Scenario) -> None:
    record_verification(scenario.store, "T-0005", run_id="r1", passed=True, agent="code")
    record_verification(scenario.store, "T-0004", run_id="r2", passed=False, agent="kernel-engineer")

    async def run() -> None:
        for theme in ("textual-dark", "textual-light", "solarized-light"):
            app = make_app(scenario)
            async with app.run_test(size=(160, 40)) as pilot:
                app.theme = theme
                await settle(pilot)
                view = app.board_view
                base = view.rich_style
                checked = 0
                for y in range(view.size.height):
                    for segment in view.render_line(y):
                        text = segment.text.strip()
                        if not text or text == "│":
                            continue
                        style = segment.style or base
                        fg, bg = style.color or base.color, style.bgcolor or base.bgcolor
                        assert fg is not None and bg is not None
                        ratio = contrast(fg, bg)
                        # WCAG AA: 4.5 for text, 3 for the verdict symbols (graphics, also told by the detail pane)
                        assert ratio >= (3.0 if text in ("✓", "✗") else 4.5), (theme, text, round(ratio, 2))
                        checked += 1
                assert checked > 20
    asyncio.run(run())


def test_delete_asks_for_the_reason_and_undo_restores_the_card(scenario: Scenario) -> None:
    async def run() -> None:
        app = make_app(scenario)
        async with app.run_test(size=(160, 40)) as pilot:
            assert selected(app) == "T-0003"
            before = scenario.store.task("T-0003")
            count = scenario.store.event_count()
            await pilot.press("x")
            await settle(pilot)
            assert isinstance(app.screen, PromptScreen) and "Delete T-0003" in app.screen.question
            await pilot.press("escape")  # cancelled: nothing written
            await settle(pilot)
            assert scenario.store.event_count() == count and scenario.store.find("T-0003") is not None
            await pilot.press("x")
            await settle(pilot)
            await pilot.press(*"duplicate", "enter")
            await settle(pilot)
            assert scenario.store.find("T-0003") is None
            deleted = scenario.store.events(task_id="T-0003")[-1]
            assert (deleted.kind, deleted.reason, deleted.actor) == ("task.deleted", "duplicate", HUMAN)
            assert "T-0003" not in shown(app)["backlog"] and "T-0003" not in painted(app)
            assert app.last_message == "deleted T-0003 (u undoes it)"
            await pilot.press("u")
            await settle(pilot)
            restored = scenario.store.task("T-0003")
            assert restored.model_dump(exclude={"updated_at"}) == before.model_dump(exclude={"updated_at"})
            last = scenario.store.events(task_id="T-0003")[-1]
            assert last.kind == "task.restored" and last.payload["undoes"] == deleted.id
            assert last.reason == "undo of the delete of T-0003"
            assert "T-0003" in shown(app)["backlog"]
    asyncio.run(run())


def test_undo_of_an_add_deletes_the_new_card(scenario: Scenario) -> None:
    async def run() -> None:
        app = make_app(scenario)
        async with app.run_test(size=(160, 40)) as pilot:
            await pilot.press("a")
            await settle(pilot)
            await pilot.press(*"Short lived", "enter")
            await settle(pilot)
            assert selected(app) == "T-0007" and "T-0007" in shown(app)["backlog"]
            await pilot.press("u")
            await settle(pilot)
            assert scenario.store.find("T-0007") is None and "T-0007" not in shown(app)["backlog"]
            created, deleted = scenario.store.events(task_id="T-0007")
            assert deleted.kind == "task.deleted" and deleted.payload["undoes"] == created.id
            assert app.last_message == "undid the add of T-0007: T-0007 is deleted"
    asyncio.run(run())


def test_delete_of_a_card_others_depend_on_is_refused_on_the_board(scenario: Scenario) -> None:
    from bno_orchestrator.workflow import edit_task

    edit_task(scenario.store, "T-0006", {"depends_on": ["T-0003"]}, actor=HUMAN)

    async def run() -> None:
        app = make_app(scenario)
        async with app.run_test(size=(160, 40)) as pilot:
            assert selected(app) == "T-0003"
            await pilot.press("x")
            await settle(pilot)
            await pilot.press(*"gone", "enter")
            await settle(pilot)
            assert "T-0006 depends on it" in app.last_message and scenario.store.find("T-0003") is not None
            await pilot.press("u")
            assert app.last_message == "nothing to undo"
    asyncio.run(run())
