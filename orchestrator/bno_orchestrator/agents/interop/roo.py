"""Roo Code custom modes: a ``.roomodes`` file (YAML or JSON) with a ``customModes`` list of modes
(``slug``, ``name``, ``roleDefinition``, ``whenToUse``, ``description``, ``groups``, ``customInstructions``,
``source``). A published variant is a bare top-level list without the ``customModes`` key: it is read and
the repair reported.

Mapping: ``slug`` <-> name, ``name`` <-> role, ``whenToUse`` (else ``description``) <-> description,
``roleDefinition`` + ``customInstructions`` <-> the body (the instructions under a
``## Custom instructions`` heading), tool groups <-> tools (``read`` = Read/Glob/Grep, ``edit`` = Edit/Write,
``command`` = Bash, ``browser`` = WebFetch, ``mcp``, ``modes`` = Task).
A group with options (``[edit, {fileRegex: ...}]``) cannot be held by our tool policy: the groups are kept
verbatim under ``extensions.roo.groups`` and an export to Roo writes them back.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bno_foundation.errors import ConfigError
from bno_foundation.yamlio import Located, parse_yaml
from bno_orchestrator.agents.frontmatter import read_text
from bno_orchestrator.agents.interop.base import (
    ROUTING_FIELDS,
    Exported,
    Imported,
    Report,
    as_text,
    build_spec,
    dump_yaml,
    export_body,
    keep_unknown,
    report_unrepresentable,
    routing_defaults,
    slugify,
)
from bno_orchestrator.agents.interop.claude import import_body
from bno_orchestrator.agents.spec import AgentSpec

FORMAT = "roo"
INSTRUCTIONS_HEADING = "## Custom instructions"
# the tools an imported group grants
GROUP_TOOLS: dict[str, tuple[str, ...]] = {
    "read": ("Read", "Glob", "Grep"),
    "edit": ("Edit", "Write"),
    "command": ("Bash",),
    "browser": ("WebFetch",),
    "mcp": ("mcp",),
    "modes": ("Task",),
}
# the group an exported tool needs
TOOL_GROUP: dict[str, str] = {
    **{tool: group for group, tools in GROUP_TOOLS.items() for tool in tools},
    "LS": "read", "NotebookRead": "read", "MultiEdit": "edit", "NotebookEdit": "edit",
    "BashOutput": "command", "KillShell": "command", "WebSearch": "browser",
}  # fmt: skip
KNOWN_KEYS = ("slug", "name", "roleDefinition", "whenToUse", "description", "groups", "customInstructions")


def _parse(text: str, path: Path) -> tuple[Any, Located | None]:
    stripped = text.lstrip()
    if stripped.startswith(("{", "[")) and not stripped.startswith("[-"):
        try:
            return json.loads(text), None
        except json.JSONDecodeError as exc:
            try:
                located = parse_yaml(text, path)
            except ConfigError:
                raise ConfigError(f"invalid JSON: {exc.msg}", path=path, line=exc.lineno, column=exc.colno) from None
            return located.data, located
    located = parse_yaml(text, path)
    return located.data, located


def read_modes(path: Path, report: Report) -> tuple[list[Any], tuple[str | int, ...], Located | None]:
    """The list of modes in a ``.roomodes`` file, the key path of that list, and positions (YAML only)."""
    text = read_text(path)
    if text.startswith("\ufeff"):
        text = text[1:]
        report.add("repaired", "removed a byte-order mark", line=1)
    if "\r\n" in text:
        text = text.replace("\r\n", "\n")
        report.add("repaired", "converted CRLF line endings to LF")
    data, located = _parse(text, path)
    if isinstance(data, list):
        report.add("repaired", "a bare list of modes with no 'customModes' key: read as customModes", line=1)
        return data, (), located
    if isinstance(data, dict) and isinstance(data.get("customModes"), list):
        for key in data:
            if key != "customModes":
                report.add("dropped", "top-level key other than customModes: not an agent, ignored", str(key))
        return data["customModes"], ("customModes",), located
    line = located.where(())[0] if located else 1
    raise ConfigError("not a .roomodes file: expected a 'customModes' list", path=path, line=line, field="customModes")


def groups_to_tools(groups: Any, report: Report, line: int | None) -> tuple[list[str], bool]:
    """Tools for a list of Roo groups, and whether some group carries options our policy cannot hold."""
    tools: list[str] = []
    with_options = False
    for item in groups or []:
        group = item
        if isinstance(item, list) and item:
            group = item[0]
            if len(item) > 1:
                with_options = True
        name = as_text(group)
        if name not in GROUP_TOOLS:
            tools.append(name)
            report.add("converted", f"unknown Roo group {name!r} kept as a tool name", "groups", line)
            continue
        tools.extend(GROUP_TOOLS[name])
    return list(dict.fromkeys(tools)), with_options


def import_mode(mode: Any, index: int, path: Path, prefix: tuple[str | int, ...], located: Located | None) -> tuple[AgentSpec, Report]:
    """One mode as an agent."""
    report = Report(FORMAT, str(path))

    def line(key: str | None = None) -> int | None:
        keys = (*prefix, index) if key is None else (*prefix, index, key)
        return located.where(keys)[0] if located is not None else None

    if not isinstance(mode, dict):
        raise ConfigError(f"mode {index} is a {type(mode).__name__}, not a mapping", path=path, line=line())
    raw_slug = as_text(mode.get("slug") or "").strip()
    if not raw_slug:
        raw_slug = slugify(as_text(mode.get("name") or f"mode-{index}"))
        report.add("derived", f"no slug: made {raw_slug!r} from the name", "slug", line())
    name = slugify(raw_slug)
    if name != raw_slug:
        report.add("converted", f"slug {raw_slug!r} written as the id {name!r}", "slug", line("slug"))
    out: dict[str, Any] = {"name": name}
    role = as_text(mode.get("name") or "").strip()
    if not role:
        role = raw_slug
        report.add("derived", "no name: the slug is the role", "name", line())
    out["role"] = role
    when = as_text(mode.get("whenToUse") or "").strip()
    short = as_text(mode.get("description") or "").strip()
    extra: dict[str, Any] = {}
    if when:
        out["description"] = when
        if short:
            extra["description"] = mode["description"]
            report.add("kept", "whenToUse is our description; Roo's short description kept under extensions.roo", "description", line("description"))
    elif short:
        out["description"] = short
        report.add("derived", "no whenToUse: the description is used", "description", line("description"))
    else:
        definition = as_text(mode.get("roleDefinition") or role).strip()
        out["description"] = definition.split("\n")[0][:200]
        report.add("derived", "no whenToUse or description: first line of roleDefinition used", "description", line())
    tools, with_options = groups_to_tools(mode.get("groups"), report, line("groups"))
    out["tools"] = {"allow": tools}
    if with_options:
        extra["groups"] = mode["groups"]
        report.add(
            "kept",
            "a group restricted by fileRegex cannot be held by our tool policy: groups kept verbatim under extensions.roo",
            "groups",
            line("groups"),
        )
    extra.update(keep_unknown(mode, KNOWN_KEYS, report, FORMAT, line))
    if extra:
        out["extensions"] = {FORMAT: extra}
    definition = as_text(mode.get("roleDefinition") or "").strip()
    instructions = as_text(mode.get("customInstructions") or "").strip()
    if not definition:
        report.add("default", "no roleDefinition: the body starts empty", "roleDefinition", line())
    body = definition + "\n"
    if instructions:
        body += f"\n{INSTRUCTIONS_HEADING}\n\n{instructions}\n"
    routing_defaults(report)
    spec = build_spec(out, import_body(body.lstrip("\n"), report), path, report)
    return spec, report


def import_path(path: Path) -> Imported:
    """Every mode of a ``.roomodes`` file (or of ``DIR/.roomodes``)."""
    path = Path(path)
    if path.is_dir():
        path = path / ".roomodes"
    report = Report(FORMAT, str(path))
    modes, prefix, located = read_modes(path, report)
    if not modes:
        raise ConfigError("the file defines no modes", path=path, field="customModes")
    out: Imported = []
    for index, mode in enumerate(modes):
        spec, mode_report = import_mode(mode, index, path, prefix, located)
        mode_report.notes[:0] = report.notes  # file-level repairs concern every mode
        out.append((spec, mode_report))
    return out


def tools_to_groups(spec: AgentSpec, report: Report) -> list[Any]:
    """Roo groups for our tool policy (kept groups from an import win)."""
    kept = spec.extensions.get(FORMAT, {}).get("groups")
    if kept is not None:
        report.add("info", "groups restored verbatim from extensions.roo", "groups")
        return list(kept)
    if not spec.tools.allow:
        report.add("converted", "no tool allow-list (the executor's default): all groups granted", "groups")
        return ["read", "edit", "command", "browser", "mcp"]
    groups: list[str] = []
    for tool in spec.tools.allow:
        group = TOOL_GROUP.get(tool, "mcp" if tool.startswith("mcp") else None)
        if group is None:
            report.add("unrepresentable", f"tool {tool!r} belongs to no Roo group", "tools.allow")
        elif group not in groups:
            groups.append(group)
    partial = [
        g for g in groups if any(t not in spec.tools.allow for t in GROUP_TOOLS[g]) and g not in ("mcp",)
    ]
    if partial:
        report.add("converted", f"Roo grants whole groups: {', '.join(partial)} give more tools than the allow-list", "tools.allow")
    return groups


def export_mode(spec: AgentSpec, report: Report) -> dict[str, Any]:
    """One ``customModes`` entry for ``spec``."""
    kept = dict(spec.extensions.get(FORMAT, {}))
    body = export_body(spec, report)
    definition, _, instructions = body.partition(f"\n{INSTRUCTIONS_HEADING}\n")
    mode: dict[str, Any] = {"slug": spec.name, "name": spec.role, "roleDefinition": definition.strip() + "\n"}
    mode["whenToUse"] = spec.description
    if "description" in kept:
        mode["description"] = kept.pop("description")
    mode["groups"] = tools_to_groups(spec, report)
    kept.pop("groups", None)
    if instructions.strip():
        mode["customInstructions"] = instructions.strip() + "\n"
    for key, value in kept.items():
        mode.setdefault(key, value)
        report.add("info", "restored from extensions.roo", key)
    report_unrepresentable(spec, (*ROUTING_FIELDS, "model", "max_turns", "tools.deny"), report, FORMAT)
    return mode


def export_agents(specs: Iterable[AgentSpec]) -> Exported:
    """One ``.roomodes`` (YAML) holding every agent as a mode."""
    reports: list[Report] = []
    modes: list[dict[str, Any]] = []
    for spec in specs:
        report = Report(FORMAT, ".roomodes", spec.name)
        modes.append(export_mode(spec, report))
        reports.append(report)
    return Exported({Path(".roomodes"): dump_yaml({"customModes": modes})}, reports)
