"""Agent definitions: ``agents/NAME.md`` files (YAML front matter + a Jinja2 prompt body).

``load_agents(directory)`` / ``load_agent(path)`` read them strictly; :mod:`.render` renders a body for a
task; :mod:`.interop` imports and exports Claude Code, Roo Code, CrewAI and GitHub Copilot agent files.
"""

from __future__ import annotations

from bno_orchestrator.agents.loader import (
    dump_agent,
    load_agent,
    load_agents,
    validate_paths,
)
from bno_orchestrator.agents.render import render_body, sample_task
from bno_orchestrator.agents.spec import AgentFrontMatter, AgentSpec, ExecutorSpec, ToolPolicy

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
