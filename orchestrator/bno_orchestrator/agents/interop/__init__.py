"""Import and export of other tools' agent formats.

Each format module offers ``import_path(path) -> list[(AgentSpec, Report)]`` and
``export_agents(specs) -> Exported`` (relative file paths -> text, plus one :class:`Report` per agent
listing what the format could not hold).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

from bno_foundation.errors import UserError
from bno_orchestrator.agents.interop.base import Exported, Imported, Note, Report

FORMATS: dict[str, str] = {
    "claude": "bno_orchestrator.agents.interop.claude",
    "roo": "bno_orchestrator.agents.interop.roo",
    "crewai": "bno_orchestrator.agents.interop.crewai",
    "copilot": "bno_orchestrator.agents.interop.copilot",
}
# where an export goes in a repository when no --out is given
DEFAULT_EXPORT_DIRS: dict[str, str] = {
    "claude": ".claude/agents",
    "roo": ".",
    "crewai": "config",
    "copilot": ".github/agents",
}

__all__ = ["DEFAULT_EXPORT_DIRS", "FORMATS", "Exported", "Imported", "Note", "Report", "detect_format", "format_module"]


def format_module(name: str) -> ModuleType:
    """The converter module of a format name."""
    if name not in FORMATS:
        raise UserError(f"unknown agent format {name!r} (known: {', '.join(FORMATS)})")
    return importlib.import_module(FORMATS[name])


def detect_format(path: Path) -> str:
    """Guess the format of ``path`` from its name (``auto`` on the command line)."""
    name = path.name
    if path.is_dir():
        if (path / ".roomodes").is_file():
            return "roo"
        if (path / "agents.yaml").is_file():
            return "crewai"
        if any(path.rglob("*.agent.md")):
            return "copilot"
        return "claude"
    if name == ".roomodes" or name.endswith(".roomodes"):
        return "roo"
    if name.endswith(".agent.md"):
        return "copilot"
    if name.endswith(".md"):
        return "claude"
    if name.endswith((".yaml", ".yml")):
        return "crewai"
    raise UserError(f"{path}: cannot tell the agent format from the name; give it (one of {', '.join(FORMATS)})")
