"""Fixtures shared by the orchestrator tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.orchestrator.pg_server import new_store_url, pg_server  # noqa: F401  (the store suite's fixtures)
from tests.orchestrator.test_report_weekly import Scenario, build_scenario


@pytest.fixture
def scenario(tmp_path: Path) -> Iterator[Scenario]:
    """The two-week sprint of :func:`build_scenario` in a fresh repo; the store is closed afterwards."""
    built = build_scenario(tmp_path / "repo")
    yield built
    built.store.close()
