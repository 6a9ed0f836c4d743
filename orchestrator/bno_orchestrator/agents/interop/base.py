"""What every agent-format converter shares: the report of what an import or export changed, and helpers.

A field a format can't hold is never dropped silently: an import keeps foreign fields under
``extensions.<format>`` (an export to the same format restores them) and says so; an export lists every
field of ours the target format has no place for. Each format describes its mapping in a
:class:`FormatTable` (shown in docs/agent-formats.md); :class:`OriginRecorder` and :class:`WriteBack`
keep what an exact round trip needs (file name, key order, source forms of converted values); wrong types
are ConfigErrors naming file, line and field (:func:`expect_text`, :func:`expect_int`, :func:`name_list`);
"no tool" is :func:`no_tools_policy`, never an empty allow-list (which means the executor's default set).
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
from bno_orchestrator.agents.spec import AgentFrontMatter, AgentOrigin, AgentSpec

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


Handling = Literal["carried", "converted", "extension", "unrepresentable"]


@dataclass(frozen=True)
class FieldRule:
    """How one field crosses between a format and our schema (one row of the mapping table).

    ``field`` is the format's field (``(body)`` for a Markdown body, ``(any other)`` for the fields kept
    as an extension, None for one of ours the format has no place for); ``ours`` our field; ``handling``
    one of carried (the same value), converted (changed in a stated way, reported), extension (kept under
    ``extensions.<format>`` and written back) or unrepresentable (lost on export, reported); ``how`` the
    rule in words.
    """

    field: str | None
    ours: str | None
    handling: Handling
    how: str


@dataclass(frozen=True)
class FormatTable:
    """A format's mapping table: the importer and exporter follow it, docs/agent-formats.md shows it."""

    format: str
    title: str
    rules: tuple[FieldRule, ...]

    def known_keys(self) -> tuple[str, ...]:
        """The format's fields that map onto ours (every other field is kept as an extension)."""
        return tuple(
            rule.field
            for rule in self.rules
            if rule.field is not None and not rule.field.startswith("(") and rule.handling != "extension"
        )

    def markdown(self) -> str:
        """The table as a Markdown table (what the documentation must contain, verbatim)."""
        lines = [
            f"| {self.title} field | Our field | Handling | How |",
            "| --- | --- | --- | --- |",
        ]
        for rule in self.rules:
            cells = (
                f"`{rule.field}`" if rule.field and not rule.field.startswith("(") else (rule.field or "-"),
                f"`{rule.ours}`" if rule.ours else "-",
                rule.handling,
                rule.how.replace("|", "\\|"),
            )
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n"


def routing_rule(fmt_title: str) -> FieldRule:
    """The row shared by every format: our routing and execution fields have no place there."""
    return FieldRule(
        None,
        ", ".join(ROUTING_FIELDS),
        "unrepresentable",
        f"{fmt_title} has no routing or executor settings: each one set is reported on export; "
        "an import leaves them at their defaults and says so",
    )


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


def type_name(value: Any) -> str:
    """``a list``, ``a mapping``, ``a bool``...: what a wrong value is, for an error message."""
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return f"a {type(value).__name__}"


def expect_text(value: Any, path: str | Path, field: str, line: int | None, report: Report) -> str | None:
    """A field that must be text: None stays None, a number or boolean becomes text (noted), a list or a
    mapping is a ConfigError naming the file, line and field (never a Python repr)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        text = str(value).lower() if isinstance(value, bool) else str(value)
        report.add("converted", f"YAML read {value!r} as a {type(value).__name__}: taken as the text {text!r}", field, line)
        return text
    raise ConfigError(f"expected text, got {type_name(value)}", path=path, line=line, field=field)


def expect_int(value: Any, path: str | Path, field: str, line: int | None) -> int | None:
    """A field that must be a whole number (``"12"`` is accepted); anything else is a ConfigError."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ConfigError(f"expected a whole number, got {type_name(value)}", path=path, line=line, field=field)
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"expected a whole number, got {value!r}", path=path, line=line, field=field) from None


def name_list(value: Any, path: str | Path, field: str, line: int | None) -> list[str]:
    """A list of names given as a YAML list or a comma-separated text; items must be text."""
    if value is None:
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, list):
        out: list[str] = []
        for index, item in enumerate(value):
            if not isinstance(item, str | int | float) or isinstance(item, bool):
                raise ConfigError(f"item {index} is {type_name(item)}, expected a name", path=path, line=line, field=field)
            if str(item).strip():
                out.append(str(item).strip())
        return out
    raise ConfigError(f"expected a list or comma-separated text, got {type_name(value)}", path=path, line=line, field=field)


def no_tools_policy() -> dict[str, list[str]]:
    """Our narrowest tool policy: no tool at all (every tool denied; an empty allow-list alone would mean
    the executor's default set)."""
    return {"allow": [], "deny": list(CLAUDE_TOOLS)}


def grants_no_tools(spec: AgentSpec) -> bool:
    """Whether ``spec`` may use no tool (nothing allowed, every tool denied)."""
    return not spec.tools.allow and set(CLAUDE_TOOLS) <= set(spec.tools.deny)


# the white space recorded around text fields, and its letters in ``origin.ends`` (plain YAML scalars)
_ENDS = " \t\r\n"
_END_LETTERS = {" ": "s", "\t": "t", "\r": "r", "\n": "n"}
_LETTER_ENDS = {letter: char for char, letter in _END_LETTERS.items()}


def encode_ends(text: str) -> str:
    """White space as letters: a line break is ``n``, a space ``s``, a tab ``t``, a carriage return ``r``."""
    return "".join(_END_LETTERS[char] for char in text)


def decode_ends(letters: str) -> str:
    """The white space :func:`encode_ends` wrote (other letters are ignored)."""
    return "".join(_LETTER_ENDS.get(letter, "") for letter in letters)


class OriginRecorder:
    """Collects, during an import, what an export to the same format needs to write the source back."""

    def __init__(self, fmt: str, file: str, keys: Iterable[str], syntax: Literal["yaml", "json"] | None = None) -> None:
        self.fmt, self.file, self.keys, self.syntax = fmt, file, [str(k) for k in keys], syntax
        self.raw: dict[str, Any] = {}
        self.derived: dict[str, Any] = {}
        self.ends: dict[str, tuple[str, str]] = {}

    def text(self, key: str, value: str) -> str:
        """``value`` stripped of spaces, tabs and line breaks; what was around it is recorded to be restored."""
        stripped = value.strip(_ENDS)
        if stripped and stripped != value:
            start = value.index(stripped)
            self.ends[key] = (encode_ends(value[:start]), encode_ends(value[start + len(stripped):]))
        return stripped

    def build(self) -> dict[str, Any]:
        """The ``origin`` mapping of the imported agent."""
        return {
            "format": self.fmt, "file": self.file, "keys": self.keys, "raw": self.raw,
            "derived": self.derived, "ends": self.ends, "syntax": self.syntax,
        }  # fmt: skip


class WriteBack:
    """During an export, what the agent's origin says about writing it back to the format it came from.

    Everything is a no-op for an agent imported from another format (or written by hand).
    """

    def __init__(self, spec: AgentSpec, fmt: str, report: Report) -> None:
        self.origin: AgentOrigin | None = spec.origin if spec.origin and spec.origin.format == fmt else None
        self.report = report

    def text(self, key: str, value: str, default_end: str = "") -> str:
        """``value`` with the white space the source had around it (else ``default_end`` after it)."""
        if self.origin and key in self.origin.ends:
            lead, trail = self.origin.ends[key]
            return decode_ends(lead) + value + decode_ends(trail)
        if self.origin and key in self.origin.keys:
            return value
        return value + default_end

    def raw(self, key: str, current: Any, convert: Callable[[Any], Any]) -> tuple[bool, Any]:
        """(True, the source value) when ``convert`` of it still gives ``current``; else (False, None)."""
        if self.origin and key in self.origin.raw:
            value = self.origin.raw[key]
            if convert(value) == current:
                return True, value
            self.report.add("info", "changed since the import: the source's form is not written back", key)
        return False, None

    def unchanged_derived(self, key: str, current: Any) -> bool:
        """Whether ``current`` is a value the import made up (the source had no ``key``) and is unchanged."""
        if self.origin and key in self.origin.derived and self.origin.derived[key] == current:
            self.report.add("info", "the source had no such field and the value made on import is unchanged: not written", key)
            return True
        return False

    def order(self, data: dict[str, Any]) -> dict[str, Any]:
        """``data`` with the source's keys first, in the source's order."""
        if not self.origin or not self.origin.keys:
            return data
        first = {key: data[key] for key in self.origin.keys if key in data}
        return {**first, **{key: value for key, value in data.items() if key not in first}}

    def file(self, default: str) -> str:
        """The source's file name, else ``default``."""
        return self.origin.file if self.origin else default


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


def origin_of(spec: AgentSpec, fmt: str) -> AgentOrigin | None:
    """The origin of ``spec`` when it was imported from ``fmt``."""
    return spec.origin if spec.origin and spec.origin.format == fmt else None


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


def export_files(
    specs: Iterable[AgentSpec], export_agent: Callable[[AgentSpec], tuple[str, str, Report]]
) -> Exported:
    """One file per agent, named as ``export_agent`` says (relative paths: the caller picks the folder).

    Two agents wanting the same file name (two imported ``AGENT.md`` files) fall back to ``NAME<suffix>``,
    with a note; ``export_agent`` returns (file name, text, report) and ``Report.path`` is updated.
    """
    files: dict[Path, str] = {}
    reports: list[Report] = []
    for spec in specs:
        name, text, report = export_agent(spec)
        if Path(name) in files:
            fallback = f"{spec.name}.md" if not name.endswith(".agent.md") else f"{spec.name}.agent.md"
            report.add("converted", f"another agent is written to {name}: written to {fallback}", "origin.file")
            name = fallback
        report.path = name
        files[Path(name)] = text
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
