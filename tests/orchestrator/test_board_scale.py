"""The board over a generated 2,000-task store (bulk insert in one transaction), driven by the Pilot:
it opens with every card, keys move the cursor and scroll the column, the filter applies in place, an
event appended through another connection shows up, and only the cards in sight are drawn. No timing is
asserted here: ``python -m bno_orchestrator.tui.bench`` measures."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bno_orchestrator.config import load_config
from bno_orchestrator.store import Store
from bno_orchestrator.tui.app import CARD_HEIGHT, HEADER_LINES, BoardApp, BoardView
from bno_orchestrator.tui.bench import make_repo
from bno_orchestrator.workflow import move_task

TASKS = 2000


def test_two_thousand_tasks(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    repo = make_repo(tmp_path / "repo", TASKS)
    config = load_config(repo)
    drawn: list[str] = []
    original = BoardView.card_strips

    def counting(self: BoardView, card, width: int, selected: bool):  # type: ignore[no-untyped-def]
        drawn.append(card.id)
        return original(self, card, width, selected)

    monkeypatch.setattr(BoardView, "card_strips", counting)

    async def run() -> None:
        with Store.open(repo) as store, Store.open(repo) as other:
            app = BoardApp(store, config.workflow, config.scoring, actor="human:test", poll_interval=0.05)
            async with app.run_test(size=(200, 50)) as pilot:
                await pilot.pause()
                assert sum(c.total for c in app.board_columns) == TASKS
                backlog = app.board_columns[0]
                assert backlog.state == "backlog" and len(backlog.cards) > 600
                in_sight = (50 - 2 - HEADER_LINES) // CARD_HEIGHT + 1  # the app's status and footer lines
                assert len(set(drawn)) <= in_sight * len(app.board_columns)  # never every card
                for _ in range(30):
                    await pilot.press("j")
                assert app.rows["backlog"] == 30 and app.board_view.offsets["backlog"] > 0  # scrolled
                await pilot.press("G")
                assert app.selected_card() == backlog.cards[-1]
                await pilot.press("slash", *"label:perf", "enter")
                await pilot.pause()
                assert app.filter_text == "label:perf"
                assert all("perf" in c.labels for col in app.board_columns for c in col.cards)
                await pilot.press("escape")
                await pilot.pause()
                target = other.tasks(["backlog"])[0].id
                move_task(other, config.workflow, target, "blocked", actor="human:other", reason="from elsewhere")
                for _ in range(100):
                    await pilot.pause(0.05)
                    if any(c.id == target for c in app.board_columns[-2].cards):
                        break
                assert any(c.id == target for c in app.board_columns[-2].cards)
                assert all(c.id != target for c in app.board_columns[0].cards)
                assert len(set(drawn)) < TASKS // 4
    asyncio.run(run())
