"""Claude Code subagents: ``.claude/agents/NAME.md`` (front matter ``name``, ``description``, ``tools``,
``disallowedTools``, ``model``, ``maxTurns`` + the system prompt as body).

Import reads published files leniently (see :func:`bno_orchestrator.agents.frontmatter.parse_front_matter_lenient`)
and reports each repair; other fields (``color``, ``permissionMode``, ``skills``, ...) are kept under
``extensions.claude`` and written back on export. Export writes one file per agent and lists what Claude Code cannot hold
(routing fields, the executor, budget, ...).
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
    ROUTING_FIELDS,
    Exported,
    Imported,
    Report,
    as_text,
    build_spec,
    canonical_tool,
    description_from_body,
    export_body,
    export_files,
    import_files,
    keep_unknown,
    key_line,
    report_unrepresentable,
    restore_kept,
    routing_defaults,
    slugify,
    title_from_name,
)
from bno_orchestrator.agents.render import protect_literal, uses_template_syntax
from bno_orchestrator.agents.spec import AgentSpec

FORMAT = "claude"
KNOWN_KEYS = ("name", "description", "tools", "model", "disallowedTools", "maxTurns")


def tool_list(value: Any, key: str, report: Report, line: int | None, *, canonical: bool = True) -> list[str]:
    """A ``tools`` value (comma string, single name or list) as a list of names, noting conversions."""
    if value is None:
        return []
    if isinstance(value, str):
        items = [part.strip() for part in value.split(",") if part.strip()]
        if "," in value:
            report.add("converted", "comma-separated string read as a list", key, line)
    elif isinstance(value, list):
        items = [as_text(v).strip() for v in value if as_text(v).strip()]
    else:
        raise ConfigError(f"expected a list or comma-separated string, got {type(value).__name__}", field=key)
    if not canonical:
        return list(dict.fromkeys(items))
    renamed = [(item, canonical_tool(item)) for item in items]
    changed = [f"{a} -> {b}" for a, b in renamed if a != b]
    if changed:
        report.add("converted", f"tool names in Claude Code's spelling: {', '.join(changed)}", key, line)
    return list(dict.fromkeys(b for _, b in renamed))


def common_fields(
    data: dict[str, Any], body: str, path: Path, located: Located | None, report: Report
) -> dict[str, Any]:
    """name, description, role and body handling shared by the Markdown agent formats."""
    out: dict[str, Any] = {}
    raw_name = as_text(data.get("name") or "").strip()
    if not raw_name:
        raw_name = path.name.removesuffix(".md").removesuffix(".agent")
        report.add("derived", f"no name: taken from the file name ({raw_name!r})", "name")
    name = slugify(raw_name)
    if name != raw_name:
        report.add("converted", f"name {raw_name!r} written as the id {name!r}", "name", key_line(located, "name"))
    out["name"] = name
    description = as_text(data.get("description") or "").strip()
    if not description:
        description = description_from_body(body)
        report.add("derived", "no description: taken from the first line of the body", "description")
    out["description"] = description
    out["role"] = title_from_name(name)
    report.add("derived", f"role {out['role']!r} made from the name (the format has no role)", "role")
    return out


def import_body(body: str, report: Report, line: int | None = None) -> str:
    """The body as our template: text with Jinja2 delimiters is wrapped so it renders verbatim."""
    if uses_template_syntax(body):
        report.add("converted", "the body contains '{{', '{%' or '{#': wrapped in {% raw %} so it renders verbatim", "body", line)
        return protect_literal(body)
    return body


def import_file(path: Path) -> tuple[AgentSpec, Report]:
    """Read one Claude Code subagent file."""
    report = Report(FORMAT, str(path))
    result = parse_front_matter_lenient(read_text(path), path)
    report.add_repairs(result.repairs)
    data, located = result.data, result.located
    out = common_fields(data, result.body, path, located, report)
    allow = tool_list(data.get("tools"), "tools", report, key_line(located, "tools"))
    deny = tool_list(data.get("disallowedTools"), "disallowedTools", report, key_line(located, "disallowedTools"))
    out["tools"] = {"allow": allow, "deny": deny}
    if data.get("model") is not None:
        out["model"] = as_text(data["model"]).strip()
    if data.get("maxTurns") is not None:
        out["max_turns"] = data["maxTurns"]
    extra = keep_unknown(data, KNOWN_KEYS, report, FORMAT, lambda key: key_line(located, key))
    if extra:
        out["extensions"] = {FORMAT: extra}
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


def export_agent(spec: AgentSpec) -> tuple[str, Report]:
    """One subagent file's text for ``spec``, and what it could not hold."""
    report = Report(FORMAT, f"{spec.name}.md", spec.name)
    data: dict[str, Any] = {"name": spec.name, "description": spec.description}
    if spec.tools.allow:
        data["tools"] = ", ".join(spec.tools.allow)
    if spec.tools.deny:
        data["disallowedTools"] = ", ".join(spec.tools.deny)
    if spec.model:
        data["model"] = spec.model
    if spec.max_turns is not None:
        data["maxTurns"] = spec.max_turns
    restore_kept(data, spec.extensions.get(FORMAT, {}), report, FORMAT)
    report.add("unrepresentable", f"Claude Code has no role field (role = {spec.role!r})", "role")
    report_unrepresentable(spec, ROUTING_FIELDS, report, FORMAT)
    body = export_body(spec, report)
    return front_matter_text(data) + body, report


def export_agents(specs: Iterable[AgentSpec]) -> Exported:
    """``NAME.md`` per agent (relative paths; the caller picks the folder, by default ``.claude/agents``)."""
    return export_files(specs, ".md", export_agent)
