"""Import and export of other tools' agent formats.

Each format module offers ``TABLE`` (its field-by-field mapping, shown in docs/agent-formats.md),
``import_path(path) -> list[(AgentSpec, Report)]`` and ``export_agents(specs) -> Exported`` (relative file
paths -> text, plus one :class:`Report` per agent listing what the format could not hold).
:func:`collect_sources` picks the files of a folder that an import reads, and says why it skips the others.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from bno_foundation.errors import ConfigError, UserError
from bno_orchestrator.agents.interop.base import Exported, FormatTable, Imported, Note, Report

FORMATS: dict[str, str] = {
    "claude": "bno_orchestrator.agents.interop.claude",
    "roo": "bno_orchestrator.agents.interop.roo",
    "crewai": "bno_orchestrator.agents.interop.crewai",
    "copilot": "bno_orchestrator.agents.interop.copilot",
    "gemini": "bno_orchestrator.agents.interop.gemini",
}
# where an export goes in a repository when no --out is given
DEFAULT_EXPORT_DIRS: dict[str, str] = {
    "claude": ".claude/agents",
    "roo": ".",
    "crewai": "config",
    "copilot": ".github/agents",
    "gemini": ".gemini/agents",
}

__all__ = [
    "DEFAULT_EXPORT_DIRS", "FORMATS", "Exported", "Imported", "Note", "Report", "Skipped", "collect_sources",
    "detect_format", "file_format", "format_module", "format_table",
]  # fmt: skip
# hidden folders where agent files live (every other hidden folder, such as .git, is not searched)
_SEARCHED_HIDDEN = (".claude", ".github", ".gemini")
# file names in an agents folder that are documentation, never agents
_NOT_AGENTS = {"readme.md", "changelog.md", "contributing.md", "license.md", "agents.md", "claude.md", "gemini.md"}


@dataclass(frozen=True)
class Skipped:
    """A file an import of a folder did not read, and why."""

    path: str
    reason: str

    def as_json(self) -> dict[str, str]:
        """The ``--json`` form."""
        return {"path": self.path, "reason": self.reason}


def format_table(name: str) -> FormatTable:
    """The mapping table of a format."""
    table: FormatTable = format_module(name).TABLE
    return table


def format_module(name: str) -> ModuleType:
    """The converter module of a format name."""
    if name not in FORMATS:
        raise UserError(f"unknown agent format {name!r} (known: {', '.join(FORMATS)})")
    return importlib.import_module(FORMATS[name])


# Gemini CLI built-in tool names: a Markdown agent whose front matter names one is a Gemini CLI subagent
_GEMINI_FRONT = re.compile(
    r"^(kind:|tools:.*\b(read_file|grep_search|run_shell_command|search_file_content|write_file|list_directory|google_web_search)\b)"
    r"|^\s*-\s*['\"]?(read_file|grep_search|run_shell_command|search_file_content|list_directory|google_web_search)\b",
    re.MULTILINE,
)


def _is_gemini_agent(path: Path) -> bool:
    """A Markdown agent in a ``.gemini`` folder, or whose front matter has ``kind:`` or Gemini tool names."""
    if ".gemini" in path.parts:
        return True
    try:
        text = path.read_text(encoding="utf-8", errors="replace")[:65536]
    except OSError:
        return False
    if not text.lstrip("\ufeff").startswith("---"):
        return False
    front = text.lstrip("\ufeff").split("\n---", 1)[0]
    return bool(_GEMINI_FRONT.search(front))


def file_format(path: Path) -> tuple[str | None, str]:
    """The format of one file from its name and, for JSON or YAML, its top-level shape: (format, "") or
    (None, why it is not an agent file)."""
    name = path.name
    lower = name.lower()
    if lower in _NOT_AGENTS:
        return None, f"{name} is documentation, not an agent definition"
    if name == ".roomodes" or name.endswith(".roomodes"):
        return "roo", ""
    if name.endswith(".agent.md"):
        return "copilot", ""
    if lower.endswith(".md"):
        return ("gemini" if _is_gemini_agent(path) else "claude"), ""
    if lower.endswith((".yaml", ".yml", ".json")):
        try:
            head = path.read_text(encoding="utf-8", errors="replace")[:65536]
        except OSError as exc:
            return None, f"cannot read it: {exc.strerror or exc}"
        if "customModes" in head:
            return "roo", ""
        if lower.endswith(".json"):
            return None, "a JSON file without customModes: not an agent format we read"
        if "tasks.yaml" in lower or "tasks.yml" in lower:
            return None, "a CrewAI tasks file (tasks are not agents)"
        if "role:" in head and "goal:" in head:
            return "crewai", ""
        return None, "a YAML file without CrewAI agents (role, goal) or Roo customModes"
    return None, "not a file type any agent format uses (.md, .agent.md, .roomodes, agents.yaml)"


def collect_sources(path: Path, fmt: str) -> tuple[list[tuple[str, Path]], list[Skipped]]:
    """The (format, file) pairs an import of ``path`` reads, and every file it skips with the reason.

    ``fmt`` is a format name, or ``auto``; a file of another format than ``fmt`` is skipped (a single file
    given explicitly is refused instead: a ConfigError naming it). Hidden folders (``.git``) are not
    searched (each is listed once as skipped), but ``.roomodes`` files and ``.claude``/``.github``/
    ``.gemini`` folders are.
    """
    path = Path(path)
    if not path.is_dir():
        found, why = file_format(path)
        if fmt == "auto":
            if found is None:
                raise UserError(f"{path}: cannot import: {why}")
            return [(found, path)], []
        markdown = {"claude", "copilot", "gemini"}
        if found is not None and found != fmt and not {found, fmt} <= markdown:
            raise ConfigError(f"this is a {found} file, not a {fmt} one: import it as {found} (or auto)", path=path, line=1)
        return [(fmt, path)], []
    chosen: list[tuple[str, Path]] = []
    skipped: list[Skipped] = []
    hidden: set[Path] = set()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        parts = file.relative_to(path).parts
        folders = [i for i, part in enumerate(parts[:-1]) if part.startswith(".") and part not in _SEARCHED_HIDDEN]
        if folders:
            hidden.add(path.joinpath(*parts[: folders[0] + 1]))
            continue
        found, why = file_format(file)
        if found is None:
            skipped.append(Skipped(str(file), why))
        elif fmt not in ("auto", found):
            skipped.append(Skipped(str(file), f"a {found} file, not {fmt} (import it as {found}, or auto)"))
        else:
            chosen.append((found, file))
    skipped.extend(Skipped(str(folder), "a hidden folder: not searched") for folder in sorted(hidden))
    if not chosen:
        wanted = "agent" if fmt == "auto" else fmt
        raise ConfigError(f"no {wanted} files in this directory ({len(skipped)} other file(s) skipped)", path=path)
    return chosen, skipped


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
        return "gemini" if _is_gemini_agent(path) else "claude"
    if name.endswith((".yaml", ".yml")):
        return "crewai"
    raise UserError(f"{path}: cannot tell the agent format from the name; give it (one of {', '.join(FORMATS)})")
