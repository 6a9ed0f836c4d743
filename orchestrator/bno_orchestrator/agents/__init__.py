"""Agent definitions: ``agents/NAME.md`` files (YAML front matter + a Jinja2 prompt body).

``load_agents(directory)`` / ``load_agent(path)`` read them strictly; :mod:`.render` renders a body for a
task; :mod:`.interop` imports and exports Claude Code, Roo Code, CrewAI, GitHub Copilot and Gemini CLI
agent files. The loader and the renderer (Jinja2) are imported on first use: commands that only read
rules (``task list``) do not pay for them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from bno_orchestrator.agents.spec import AgentFrontMatter, AgentSpec, ExecutorSpec, ToolPolicy

if TYPE_CHECKING:
    from bno_orchestrator.agents.loader import dump_agent, load_agent, load_agents, validate_paths
    from bno_orchestrator.agents.render import render_body, sample_task

_LAZY = {"dump_agent": "loader", "load_agent": "loader", "load_agents": "loader", "validate_paths": "loader",
         "render_body": "render", "sample_task": "render"}

__all__ = [
    "AgentFrontMatter",
    "AgentSpec",
    "ExecutorSpec",
    "ToolPolicy",
    "dump_agent",
    "load_agent",
    "load_agents",
    "render_body",
    "sample_task",
    "validate_paths",
]


def __getattr__(name: str) -> Any:
    """The loader and renderer, imported on first use."""
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"bno_orchestrator.agents.{_LAZY[name]}"), name)
