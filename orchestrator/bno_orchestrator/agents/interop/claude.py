"""Claude Code subagents: ``.claude/agents/NAME.md`` (front matter ``name``, ``description``, ``tools``,
``disallowedTools``, ``model``, ``maxTurns`` + the system prompt as body).

:data:`TABLE` is the mapping, field by field; the importer and exporter below follow it and
docs/agent-formats.md shows it. Import reads published files leniently (see
:func:`bno_orchestrator.agents.frontmatter.parse_front_matter_lenient`) and reports each repair; a value of
the wrong type (a list where text is expected) is an error naming file, line and field. Other fields
(``color``, ``permissionMode``, ``skills``, ...) are kept under ``extensions.claude``. The agent's
``origin`` records the file name, key order and the source form of converted values, so an export back to
Claude Code writes the same fields, types and file name.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from bno_foundation.errors import ConfigError
from bno_foundation.yamlio import Located
from bno_orchestrator.agents.frontmatter import parse_front_matter_lenient, read_text
from bno_orchestrator.agents.interop.base import (
    CLAUDE_TOOLS,
    ROUTING_FIELDS,
    Exported,
    FieldRule,
    FormatTable,
    Imported,
    OriginRecorder,
    Report,
    WriteBack,
    build_spec,
    canonical_tool,
    description_from_body,
    expect_int,
    expect_text,
    export_body,
    export_files,
    grants_no_tools,
    import_files,
    keep_unknown,
    key_line,
    name_list,
    no_tools_policy,
    report_unrepresentable,
    restore_kept,
    routing_defaults,
    routing_rule,
    slugify,
    title_from_name,
)
from bno_orchestrator.agents.render import protect_literal, uses_template_syntax
from bno_orchestrator.agents.spec import AgentSpec

FORMAT = "claude"
TITLE = "Claude Code"
NAME_RULE = (
    "kebab-case id; another spelling (`Code Reviewer`) becomes the id `code-reviewer` and is written back as "
    "it was while the id is unchanged; none: made from the file name and not written back"
)
BODY_RULE = (
    "the prompt; text containing `{{`, `{%` or `{#` has each delimiter-opening `{` escaped so it stays verbatim data; an export "
    "renders our templates without a task"
)
TABLE = FormatTable(
    FORMAT,
    TITLE,
    (
        FieldRule("name", "name", "converted", NAME_RULE),
        FieldRule(
            "description",
            "description",
            "carried",
            "text (a list or mapping is an error); none: the body's first line, not written back",
        ),
        FieldRule(
            "tools",
            "tools.allow",
            "converted",
            "comma-separated text or YAML list, in Claude Code's spelling (`read` -> `Read`); written back in the "
            "source's form; absent: the executor's default set; empty: no tool at all (every tool denied)",
        ),
        FieldRule("disallowedTools", "tools.deny", "converted", "as `tools`"),
        FieldRule("model", "model", "carried", "text (a list is an error)"),
        FieldRule("maxTurns", "max_turns", "carried", "whole number"),
        FieldRule("(body)", "body", "converted", BODY_RULE),
        FieldRule(
            "(any other)",
            f"extensions.{FORMAT}",
            "extension",
            "`color`, `permissionMode`, `skills`, `hooks`, `mcpServers`, ...: kept and written back",
        ),
        FieldRule(None, "role", "unrepresentable", "made from the name on import; reported on export"),
        routing_rule(TITLE),
    ),
)
KNOWN_KEYS = TABLE.known_keys()


def canonical_names(value: Any) -> list[str]:
    """Tool names of a ``tools`` value in Claude Code's spelling (duplicates removed)."""
    return list(dict.fromkeys(canonical_tool(item) for item in name_list(value, "", "tools", None)))


def tool_list(value: Any, key: str, path: Path, report: Report, line: int | None, *, canonical: bool = True) -> list[str]:
    """A ``tools`` value (comma text, single name or list) as a list of names, noting conversions."""
    items = name_list(value, path, key, line)
    if isinstance(value, str) and "," in value:
        report.add("converted", "comma-separated text read as a list (written back as text)", key, line)
    if not canonical:
        return list(dict.fromkeys(items))
    renamed = [(item, canonical_tool(item)) for item in items]
    changed = [f"{a} -> {b}" for a, b in renamed if a != b]
    if changed:
        report.add("converted", f"tool names in Claude Code's spelling: {', '.join(changed)}", key, line)
    return list(dict.fromkeys(b for _, b in renamed))


def is_empty_tools(data: dict[str, Any], key: str) -> bool:
    """Whether ``key`` is present and names no tool (``tools: []`` or ``tools: ""``)."""
    return key in data and data[key] is not None and not name_list(data[key], "", key, None)


def common_fields(
    data: dict[str, Any], body: str, path: Path, located: Located | None, report: Report, origin: OriginRecorder
) -> dict[str, Any]:
    """name, description and role, shared by the Markdown agent formats."""
    out: dict[str, Any] = {}
    raw_name = (expect_text(data.get("name"), path, "name", key_line(located, "name"), report) or "").strip()
    if not raw_name:
        raw_name = path.name.removesuffix(".md").removesuffix(".agent")
        report.add("derived", f"no name: taken from the file name ({raw_name!r})", "name")
        origin.derived["name"] = slugify(raw_name)
    name = slugify(raw_name)
    if not name:
        raise ConfigError(f"the name {raw_name!r} has no letter or digit to make an id from", path=path, line=key_line(located, "name"), field="name")
    if name != raw_name and "name" not in origin.derived:
        report.add("converted", f"name {raw_name!r} written as the id {name!r} (restored on export)", "name", key_line(located, "name"))
        origin.raw["name"] = data["name"]
    out["name"] = name
    description = expect_text(data.get("description"), path, "description", key_line(located, "description"), report)
    if description is None or not description.strip():
        description = description_from_body(body)
        report.add("derived", "no description: taken from the first line of the body", "description")
        origin.derived["description"] = description
    else:
        description = origin.text("description", description)
    out["description"] = description
    out["role"] = origin.derived["role"] = title_from_name(name)
    report.add("derived", f"role {out['role']!r} made from the name (the format has no role)", "role")
    return out


def import_body(body: str, report: Report, line: int | None = None) -> str:
    """The body as our template: text with Jinja2 delimiters is wrapped so it renders verbatim."""
    if uses_template_syntax(body):
        report.add("converted", "the body contains '{{', '{%' or '{#': each delimiter-opening '{' escaped so it renders verbatim and runs nothing", "body", line)
        return protect_literal(body)
    return body


def import_file(path: Path) -> tuple[AgentSpec, Report]:
    """Read one Claude Code subagent file."""
    if not path.name.endswith(".md"):
        raise ConfigError("not a Claude Code agent file (a Markdown file, NAME.md)", path=path, line=1)
    report = Report(FORMAT, str(path))
    result = parse_front_matter_lenient(read_text(path), path)
    report.add_repairs(result.repairs)
    data, located = result.data, result.located
    origin = OriginRecorder(FORMAT, path.name, data)
    out = common_fields(data, result.body, path, located, report, origin)
    allow = tool_list(data.get("tools"), "tools", path, report, key_line(located, "tools"))
    deny = tool_list(data.get("disallowedTools"), "disallowedTools", path, report, key_line(located, "disallowedTools"))
    for key, names in (("tools", allow), ("disallowedTools", deny)):
        if key in data and (data[key] != ", ".join(names) or not names):
            origin.raw[key] = data[key]
    if is_empty_tools(data, "tools"):
        report.add("converted", "an empty tools list: the agent may use no tool (every tool denied)", "tools", key_line(located, "tools"))
        deny = list(dict.fromkeys([*no_tools_policy()["deny"], *deny]))
        if "disallowedTools" in data:  # merged into the deny-list: its own form is kept to be written back
            origin.raw["disallowedTools"] = data["disallowedTools"]
    out["tools"] = {"allow": allow, "deny": deny}
    model = expect_text(data.get("model"), path, "model", key_line(located, "model"), report)
    if model is not None:
        out["model"] = model.strip()
    max_turns = expect_int(data.get("maxTurns"), path, "maxTurns", key_line(located, "maxTurns"))
    if max_turns is not None:
        out["max_turns"] = max_turns
    extra = keep_unknown(data, KNOWN_KEYS, report, FORMAT, lambda key: key_line(located, key))
    if extra:
        out["extensions"] = {FORMAT: extra}
    out["origin"] = origin.build()
    routing_defaults(report)
    body = import_body(result.body, report, result.body_line)
    return build_spec(out, body, path, report), report


def import_path(path: Path) -> Imported:
    """Import a subagent file, or every ``*.md`` under a directory (sorted)."""
    return import_files(path, "*.md", import_file, "*.md agent files")


def front_matter_text(data: dict[str, Any]) -> str:
    """YAML front matter (between fences) for a foreign Markdown format."""
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)
    return f"---\n{text}---\n\n"


def export_name(spec: AgentSpec, back: WriteBack, data: dict[str, Any]) -> None:
    """``name`` as the source spelled it (or not at all when the import made it up)."""
    if back.unchanged_derived("name", spec.name):
        return
    restored, raw = back.raw("name", spec.name, lambda value: slugify(str(value)))
    data["name"] = raw if restored else spec.name


def export_description(spec: AgentSpec, back: WriteBack, data: dict[str, Any], key: str = "description") -> None:
    """``description`` with the source's white space (or not at all when the import made it up)."""
    if not back.unchanged_derived("description", spec.description):
        data[key] = back.text("description", spec.description)


def export_tools(spec: AgentSpec, back: WriteBack, data: dict[str, Any], report: Report) -> None:
    """``tools`` and ``disallowedTools``: the narrowest equivalent, in the source's form when unchanged."""
    if grants_no_tools(spec):
        restored, raw = back.raw("tools", [], canonical_names)
        if restored:
            data["tools"] = raw
            restored, raw = back.raw("disallowedTools", True, lambda v: set(canonical_names(v)) <= set(spec.tools.deny))
            if restored:
                data["disallowedTools"] = raw
            return
        report.add("converted", "the agent may use no tool: every Claude Code tool is listed in disallowedTools", "tools")
        data["disallowedTools"] = ", ".join(dict.fromkeys([*CLAUDE_TOOLS, *spec.tools.deny]))
        return
    for key, names in (("tools", spec.tools.allow), ("disallowedTools", spec.tools.deny)):
        if names:
            restored, raw = back.raw(key, names, canonical_names)
            data[key] = raw if restored else ", ".join(names)


def export_agent(spec: AgentSpec) -> tuple[str, str, Report]:
    """The file name and text of one subagent file for ``spec``, and what it could not hold."""
    report = Report(FORMAT, f"{spec.name}.md", spec.name)
    back = WriteBack(spec, FORMAT, report)
    data: dict[str, Any] = {}
    export_name(spec, back, data)
    export_description(spec, back, data)
    export_tools(spec, back, data, report)
    if spec.model:
        data["model"] = spec.model
    if spec.max_turns is not None:
        data["maxTurns"] = spec.max_turns
    restore_kept(data, spec.extensions.get(FORMAT, {}), report, FORMAT)
    if not back.unchanged_derived("role", spec.role):
        report.add("unrepresentable", f"Claude Code has no role field (role = {spec.role!r})", "role")
    report_unrepresentable(spec, ROUTING_FIELDS, report, FORMAT)
    body = export_body(spec, report)
    return back.file(f"{spec.name}.md"), front_matter_text(back.order(data)) + body, report


def export_agents(specs: Iterable[AgentSpec]) -> Exported:
    """One file per agent (``NAME.md``, or the file it was imported from; by default in ``.claude/agents``)."""
    return export_files(specs, export_agent)
