"""Layout of the board, compared with SVG snapshots (pytest-textual-snapshot): the columns with their
cards and badges, and the detail pane of a blocked task. Update with ``--snapshot-update`` after
checking the new SVG by eye."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from bno_orchestrator.config import load_config
from bno_orchestrator.tui.app import BoardApp
from bno_orchestrator.workflow import record_verification
from tests.orchestrator.test_report_weekly import HUMAN, Scenario

SIZE = (160, 40)


@pytest.fixture
def scenario(scenario: Scenario) -> Scenario:
    """The shared scenario (tests/orchestrator/conftest.py) with one passed and one failed gate verification."""
    record_verification(scenario.store, "T-0005", run_id="20260115-ccc", passed=True, agent="code")
    record_verification(scenario.store, "T-0004", run_id="20260113-bbb", passed=False, agent="kernel-engineer")
    return scenario


def app_for(s: Scenario) -> BoardApp:
    return BoardApp(s.store, s.workflow, load_config(s.repo).scoring, actor=HUMAN, poll_interval=0)


def test_board_layout(scenario: Scenario, snap_compare: Callable[..., bool]) -> None:
    assert snap_compare(app_for(scenario), terminal_size=SIZE, press=["j"])


def test_detail_pane_of_a_blocked_task(scenario: Scenario, snap_compare: Callable[..., bool]) -> None:
    async def open_detail(pilot: Any) -> None:
        await pilot.press(*["l"] * 8, "enter")
        await pilot.pause()

    assert snap_compare(app_for(scenario), terminal_size=SIZE, run_before=open_detail)
