"""Shared helpers for the orchestrator-core tests: a fake clock, agents, rules and an initialised repo."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

from bno_orchestrator.agents import AgentSpec
from bno_orchestrator.config import Config, load_config, load_routing, load_workflow
from bno_orchestrator.paths import data_root
from bno_orchestrator.rules import RoutingRules
from bno_orchestrator.workflow import Workflow

START = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.UTC)


class FakeClock:
    """A clock the test moves by hand (no sleeping)."""

    def __init__(self, start: dt.datetime = START) -> None:
        self.now = start

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += dt.timedelta(**kwargs)


def agent(name: str, *, task_types: Sequence[str] = (), components: Sequence[str] = (),
          complexity: tuple[int, int] = (1, 4), capacity: int = 2, secondary: Sequence[str] = ()) -> AgentSpec:
    """A real AgentSpec with only the routing fields set."""
    return AgentSpec(name=name, description=f"{name} agent", role=name, task_types=list(task_types),
                     components=list(components), complexity=complexity, capacity=capacity,
                     secondary=list(secondary))


def shipped_rules() -> RoutingRules:
    """The shipped workflows/routing.yaml (no cross-check)."""
    return load_routing(data_root() / "workflows" / "routing.yaml")


def shipped_workflow() -> Workflow:
    """The shipped workflows/development.yaml."""
    return load_workflow(data_root() / "workflows" / "development.yaml")


def init_repo(path: Path) -> Config:
    """``orchestrator init`` into ``path`` and load its configuration."""
    from bno_orchestrator.commands.init import init_repo as do_init

    (path / ".git").mkdir(exist_ok=True)
    do_init(path, profile="shipped")
    return load_config(path)
