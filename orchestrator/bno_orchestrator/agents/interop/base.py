"""What every agent-format converter shares: the report of what an import or export changed, and helpers.

A field a format can't hold is never dropped silently: an import keeps foreign fields under
``extensions.<format>`` (an export to the same format restores them) and says so; an export lists every
field of ours the target format has no place for.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import ValidationError

from bno_foundation.errors import ConfigError
from bno_foundation.yamlio import Located
from bno_orchestrator.agents.frontmatter import Repair
from bno_orchestrator.agents.render import build_variables, render_template, template_variables
from bno_orchestrator.agents.spec import AgentFrontMatter, AgentSpec

NoteKind = Literal["repaired", "converted", "derived", "kept", "dropped", "unrepresentable", "default", "info"]


@dataclass(frozen=True)
class Note:
    """One thing a conversion changed or could not carry over."""

    kind: NoteKind
    message: str
    field: str | None = None
    line: int | None = None

    def as_text(self) -> str:
        """``kind: line N: field 'x': message``."""
        where = f"line {self.line}: " if self.line is not None else ""
        name = f"field '{self.field}': " if self.field else ""
        return f"{self.kind}: {where}{name}{self.message}"

    def as_json(self) -> dict[str, Any]:
        """The ``--json`` form."""
        return {"kind": self.kind, "message": self.message, "field": self.field, "line": self.line}


@dataclass
class Report:
    """The notes of converting one agent (``agent``) from or to one file (``path``) in ``format``."""

    format: str
    path: str
    agent: str | None = None
    notes: list[Note] = field(default_factory=list)

    def add(self, kind: NoteKind, message: str, field: str | None = None, line: int | None = None) -> None:
        """Append a note."""
        self.notes.append(Note(kind, message, field, line))

    def add_repairs(self, repairs: list[Repair]) -> None:
        """Record the lenient parser's repairs."""
        for repair in repairs:
            self.add("repaired", repair.message, repair.field, repair.line)

    def kinds(self) -> set[str]:
        """The kinds of note present."""
        return {note.kind for note in self.notes}

    def as_json(self) -> dict[str, Any]:
        """The ``--json`` form."""
        return {
            "format": self.format,
            "path": self.path,
            "agent": self.agent,
            "notes": [note.as_json() for note in self.notes],
        }


Imported = list[tuple[AgentSpec, Report]]


@dataclass
class Exported:
    """The files an export would write (path relative to the output folder -> text) and its reports."""

    files: dict[Path, str]
    reports: list[Report]


# Our canonical tool names are Claude Code's; other formats map onto them.
CLAUDE_TOOLS: tuple[str, ...] = (
    "Read", "Glob", "Grep", "LS", "NotebookRead", "Edit", "MultiEdit", "Write", "NotebookEdit",
    "Bash", "BashOutput", "KillShell", "WebFetch", "WebSearch", "TodoWrite", "Task", "SlashCommand",
)  # fmt: skip
_CANONICAL = {name.lower(): name for name in CLAUDE_TOOLS}


def canonical_tool(name: str) -> str:
    """``read`` -> ``Read`` for Claude Code's tool names; anything else unchanged."""
    return _CANONICAL.get(name.strip().lower(), name.strip())


def slugify(text: str) -> str:
    """A kebab-case id: ``Code_Reviewer v2`` -> ``code-reviewer-v2``."""
    slug = re.sub(r"[^a-z0-9]+", "-", text.strip().lower()).strip("-")
    return slug


def title_from_name(name: str) -> str:
    """``regex-pattern-expert`` -> ``Regex Pattern Expert``."""
    return " ".join(part.capitalize() for part in re.split(r"[-_\s]+", name) if part)


def description_from_body(body: str) -> str:
    """The first prose line of a prompt (headings and markup stripped), at most 200 characters."""
    for line in body.split("\n"):
        text = line.strip().lstrip("#").strip().strip("*_").strip()
        if text and not text.startswith(("---", "```", "<", "|")):
            return text if len(text) <= 200 else text[:197].rstrip() + "..."
    return "Imported agent (no description in the source file)"


def as_text(value: Any) -> str:
    """A scalar as text (YAML may have parsed ``yes`` or ``1.0``)."""
    return value if isinstance(value, str) else str(value)


def build_spec(data: dict[str, Any], body: str, path: str | Path, report: Report) -> AgentSpec:
    """Validate an imported agent; a value our schema rejects is a ConfigError naming the file and field."""
    try:
        front = AgentFrontMatter.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        name = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"cannot import: {first['msg']}", path=path, field=name or None) from None
    spec = AgentSpec(**dict(front), body=body)
    report.agent = spec.name
    return spec


def routing_defaults(report: Report) -> None:
    """Note that an imported agent has no routing fields yet."""
    report.add(
        "default",
        "no task_types or components in this format: the router will not pick this agent until they are set",
        "task_types",
    )


def export_body(spec: AgentSpec, report: Report) -> str:
    """The body as plain text for a foreign format: the template rendered with no task.

    Our bodies put the task-specific part under ``{% if task.title %}``; rendered with an empty task it
    disappears, leaving the standing instructions (the foreign tool passes the task as its own prompt).
    """
    used = sorted(template_variables(spec.body))
    try:
        text = render_template(spec.body, build_variables(spec, {}))
    except ConfigError as exc:
        report.add("unrepresentable", f"the body template does not render without a task ({exc.reason}): exported as template text", "body")
        return spec.body
    if used:
        report.add(
            "converted",
            f"the body is a Jinja2 template (reads {', '.join(used)}): exported rendered without a task; "
            "the task section is left out",
            "body",
        )
    return text.strip("\n") + "\n" if text.strip() else ""


# Our fields that foreign formats generally lack, and the defaults that need no report.
ROUTING_FIELDS: tuple[str, ...] = (
    "task_types", "components", "complexity", "capacity", "secondary", "gates", "executor", "budget",
)  # fmt: skip


def report_unrepresentable(spec: AgentSpec, fields: tuple[str, ...], report: Report, fmt: str) -> None:
    """Add an ``unrepresentable`` note for each of ``fields`` that is set to a non-default value."""
    defaults = AgentFrontMatter(name="x", description="x", role="x").model_dump(mode="json")
    data = spec.model_dump(mode="json")
    for key in fields:
        if key.startswith("tools."):
            value = data["tools"][key.split(".", 1)[1]]
            default: Any = []
        else:
            value, default = data[key], defaults.get(key)
        if value not in (default, None, [], {}):
            report.add("unrepresentable", f"{fmt} has no place for {key} = {value!r}", key)
    for other, values in sorted(spec.extensions.items()):
        if other != fmt and values:
            report.add("unrepresentable", f"fields kept from {other}: {', '.join(sorted(values))}", f"extensions.{other}")


def key_line(located: Located | None, key: str) -> int | None:
    """The line of top-level ``key`` in a parsed source, or None when the source has no positions."""
    return located.where((key,))[0] if located is not None else None


def keep_unknown(
    data: Mapping[str, Any], known: Iterable[str], report: Report, fmt: str, line: Callable[[str], int | None]
) -> dict[str, Any]:
    """The fields of ``data`` our schema has no place for (to keep under ``extensions.<fmt>``), each noted."""
    known = set(known)
    extra = {key: value for key, value in data.items() if key not in known}
    for key in extra:
        report.add("kept", f"no such field in our schema: kept under extensions.{fmt}", key, line(key))
    return extra


def restore_kept(data: dict[str, Any], kept: Mapping[str, Any], report: Report, fmt: str) -> None:
    """Write back the fields an import kept under ``extensions.<fmt>`` that ``data`` does not already set."""
    for key, value in kept.items():
        if key not in data:
            data[key] = value
            report.add("info", f"restored from extensions.{fmt}", key)


def import_files(path: Path, pattern: str, import_file: Callable[[Path], tuple[AgentSpec, Report]], what: str) -> Imported:
    """Import one file, or every file matching ``pattern`` under a directory (sorted); ``what`` names them
    in the error for a directory that holds none."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.rglob(pattern) if p.is_file())
        if not files:
            raise ConfigError(f"no {what} in this directory", path=path)
        return [import_file(p) for p in files]
    return [import_file(path)]


def export_files(specs: Iterable[AgentSpec], suffix: str, export_agent: Callable[[AgentSpec], tuple[str, Report]]) -> Exported:
    """One ``NAME<suffix>`` file per agent (relative paths: the caller picks the folder)."""
    files: dict[Path, str] = {}
    reports: list[Report] = []
    for spec in specs:
        text, report = export_agent(spec)
        files[Path(f"{spec.name}{suffix}")] = text
        reports.append(report)
    return Exported(files, reports)


_TRAILING_SPACE = re.compile(r"[ \t]\n")


class _BlockDumper(yaml.SafeDumper):
    """Multi-line strings as literal blocks, like the published agents.yaml and .roomodes files."""


def _block_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    # a literal block cannot hold trailing spaces: such text is written quoted, losslessly
    if "\n" in value.rstrip("\n") and not _TRAILING_SPACE.search(value):
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


_BlockDumper.add_representer(str, _block_str)


def dump_yaml(data: Any) -> str:
    """YAML for a foreign agents file: keys in insertion order, multi-line text as literal blocks."""
    return yaml.dump(data, Dumper=_BlockDumper, sort_keys=False, allow_unicode=True, width=100)
