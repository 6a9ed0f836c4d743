"""Roo Code custom modes: a ``.roomodes`` file (YAML or JSON) with a ``customModes`` list of modes
(``slug``, ``name``, ``roleDefinition``, ``whenToUse``, ``description``, ``groups``, ``customInstructions``,
``source``). A published variant is a bare top-level list without the ``customModes`` key: it is read and
the repair reported.

:data:`TABLE` is the mapping. Tool groups map to the narrowest equivalent: a group gives its tools
(:data:`GROUP_TOOLS`); ``groups: []`` (or none) gives no tool at all; a group restricted to some files
(``[edit, {fileRegex: ...}]``) gives none of its tools, since our tool policy cannot restrict by file, and
the groups are kept verbatim under ``extensions.roo.groups`` to be written back. On export a group is
granted only when every tool it gives is allowed and none is denied. A JSON file is written back as JSON,
with the same file name, key order and white space around the text fields.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from bno_foundation.errors import ConfigError
from bno_foundation.yamlio import Located, parse_yaml
from bno_orchestrator.agents.frontmatter import read_text
from bno_orchestrator.agents.interop.base import (
    ROUTING_FIELDS,
    Exported,
    FieldRule,
    FormatTable,
    Imported,
    OriginRecorder,
    Report,
    WriteBack,
    build_spec,
    dump_yaml,
    expect_text,
    export_body,
    grants_no_tools,
    keep_unknown,
    no_tools_policy,
    origin_of,
    report_unrepresentable,
    routing_defaults,
    routing_rule,
    slugify,
)
from bno_orchestrator.agents.interop.claude import import_body
from bno_orchestrator.agents.spec import AgentSpec

FORMAT = "roo"
TITLE = "Roo Code"
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
# what "the executor's default set of tools" is in Roo
ALL_GROUPS: tuple[str, ...] = ("read", "edit", "command", "browser", "mcp")
TABLE = FormatTable(
    FORMAT,
    TITLE,
    (
        FieldRule("slug", "name", "converted", "an id; another spelling becomes a kebab-case id and is written back while the id is unchanged"),
        FieldRule("name", "role", "carried", "text"),
        FieldRule("whenToUse", "description", "carried", "text"),
        FieldRule(
            "description",
            "description",
            "converted",
            "our description when there is no `whenToUse` (written back as `description`); beside a "
            "`whenToUse`: kept under `extensions.roo` and written back; neither: the first line of "
            "`roleDefinition`, not written back",
        ),
        FieldRule(
            "groups",
            "tools.allow",
            "converted",
            "each group gives its tools (`read` = Read, Glob, Grep; `edit` = Edit, Write; `command` = Bash; "
            "`browser` = WebFetch; `mcp`; `modes` = Task); `[]` or none: no tool at all (every tool denied); "
            "a group restricted by `fileRegex` gives none of its tools and the groups are kept under "
            "`extensions.roo` to be written back; on export a group is given only when all its tools are allowed",
        ),
        FieldRule("roleDefinition", "body", "converted", "the body's first part (white space around it kept for a write-back)"),
        FieldRule("customInstructions", "body", "converted", f"the body after a `{INSTRUCTIONS_HEADING}` heading"),
        FieldRule("(any other)", f"extensions.{FORMAT}", "extension", "`source`, `iconName`, ...: kept and written back"),
        FieldRule(None, "model", "unrepresentable", "Roo keeps a model per mode in its settings, not in `.roomodes`"),
        FieldRule(None, "max_turns", "unrepresentable", "reported on export"),
        FieldRule(None, "tools.deny", "unrepresentable", "a group that would give a denied tool is left out"),
        routing_rule(TITLE),
    ),
)
KNOWN_KEYS = TABLE.known_keys()


def _parse(text: str, path: Path) -> tuple[Any, Located | None, Literal["yaml", "json"]]:
    stripped = text.lstrip()
    if stripped.startswith(("{", "[")) and not stripped.startswith("[-"):
        try:
            return json.loads(text), None, "json"
        except json.JSONDecodeError as exc:
            try:
                located = parse_yaml(text, path)
            except ConfigError:
                raise ConfigError(f"invalid JSON: {exc.msg}", path=path, line=exc.lineno, column=exc.colno) from None
            return located.data, located, "yaml"
    located = parse_yaml(text, path)
    return located.data, located, "yaml"


def read_modes(path: Path, report: Report) -> tuple[list[Any], tuple[str | int, ...], Located | None, Literal["yaml", "json"]]:
    """The list of modes in a ``.roomodes`` file, the key path of that list, positions (YAML only) and
    the file's syntax."""
    text = read_text(path)
    if text.startswith("\ufeff"):
        text = text[1:]
        report.add("repaired", "removed a byte-order mark", line=1)
    if "\r\n" in text:
        text = text.replace("\r\n", "\n")
        report.add("repaired", "converted CRLF line endings to LF")
    data, located, syntax = _parse(text, path)
    if isinstance(data, list):
        report.add("repaired", "a bare list of modes with no 'customModes' key: read as customModes (written with the key)", line=1)
        return data, (), located, syntax
    if isinstance(data, dict) and isinstance(data.get("customModes"), list):
        for key in data:
            if key != "customModes":
                report.add("dropped", "top-level key other than customModes: not an agent, ignored", str(key))
        return data["customModes"], ("customModes",), located, syntax
    line = located.where(())[0] if located else 1
    raise ConfigError("not a .roomodes file: expected a 'customModes' list", path=path, line=line, field="customModes")


def _group_name(item: Any, path: Path, line: int | None) -> tuple[str, bool]:
    """A group entry's name and whether it carries options (``[edit, {fileRegex: ...}]``)."""
    if isinstance(item, list) and item:
        return _group_name(item[0], path, line)[0], len(item) > 1
    if isinstance(item, str):
        return item, False
    raise ConfigError(f"a group must be a name or [name, options], got {item!r}", path=path, line=line, field="groups")


def groups_to_tools(groups: Any, path: Path, report: Report, line: int | None) -> tuple[dict[str, list[str]], bool]:
    """Our tool policy for a list of Roo groups (the narrowest equivalent), and whether some group
    carries options our policy cannot hold."""
    if groups is None or groups == []:
        why = "no groups" if groups is None else "groups: []"
        report.add("converted", f"{why}: the agent may use no tool (every tool denied)", "groups", line)
        return no_tools_policy(), False
    if not isinstance(groups, list):
        raise ConfigError(f"groups must be a list, got {type(groups).__name__}", path=path, line=line, field="groups")
    tools: list[str] = []
    with_options = False
    for item in groups:
        name, options = _group_name(item, path, line)
        if options:
            with_options = True
            report.add(
                "converted",
                f"group {name!r} is restricted by options ({json.dumps(item[1], ensure_ascii=False)}) our tool policy "
                f"cannot hold: none of its tools is given; the groups are kept under extensions.roo",
                "groups",
                line,
            )
            continue
        if name not in GROUP_TOOLS:
            tools.append(name)
            report.add("converted", f"unknown Roo group {name!r} kept as a tool name", "groups", line)
            continue
        tools.extend(GROUP_TOOLS[name])
    if not tools:
        return no_tools_policy(), with_options
    return {"allow": list(dict.fromkeys(tools)), "deny": []}, with_options


def import_mode(
    mode: Any, index: int, path: Path, prefix: tuple[str | int, ...], located: Located | None, syntax: Literal["yaml", "json"]
) -> tuple[AgentSpec, Report]:
    """One mode as an agent."""
    report = Report(FORMAT, str(path))

    def line(key: str | None = None) -> int | None:
        keys = (*prefix, index) if key is None else (*prefix, index, key)
        return located.where(keys)[0] if located is not None else None

    def text(key: str) -> str | None:
        return expect_text(mode.get(key), path, ".".join(str(k) for k in (*prefix, index, key)), line(key), report)

    if not isinstance(mode, dict):
        raise ConfigError(f"mode {index} is a {type(mode).__name__}, not a mapping", path=path, line=line())
    origin = OriginRecorder(FORMAT, path.name, mode, syntax)
    raw_slug = (text("slug") or "").strip()
    if not raw_slug:
        raw_slug = slugify(text("name") or f"mode-{index}")
        report.add("derived", f"no slug: made {raw_slug!r} from the name", "slug", line())
        origin.derived["name"] = raw_slug
    name = slugify(raw_slug)
    if name != raw_slug and "name" not in origin.derived:
        report.add("converted", f"slug {raw_slug!r} written as the id {name!r} (restored on export)", "slug", line("slug"))
        origin.raw["slug"] = mode["slug"]
    out: dict[str, Any] = {"name": name}
    role = text("name")
    if role is None or not role.strip():
        role = raw_slug
        report.add("derived", "no name: the slug is the role", "name", line())
        origin.derived["role"] = role
    else:
        role = origin.text("name", role)
    out["role"] = role
    when, short = text("whenToUse"), text("description")
    extra: dict[str, Any] = {}
    if when and when.strip():
        out["description"] = origin.text("whenToUse", when)
        if short is not None:
            extra["description"] = mode["description"]
            report.add("kept", "whenToUse is our description; Roo's short description kept under extensions.roo", "description", line("description"))
    elif short and short.strip():
        out["description"] = origin.text("description", short)
        report.add("converted", "no whenToUse: the description is our description (written back as description)", "description", line("description"))
    else:
        definition = (text("roleDefinition") or role).strip()
        out["description"] = origin.derived["description"] = definition.split("\n")[0][:200]
        report.add("derived", "no whenToUse or description: first line of roleDefinition used", "description", line())
    out["tools"], with_options = groups_to_tools(mode.get("groups"), path, report, line("groups"))
    if with_options:
        extra["groups"] = mode["groups"]
    extra.update(keep_unknown(mode, KNOWN_KEYS, report, FORMAT, line))
    if extra:
        out["extensions"] = {FORMAT: extra}
    definition = origin.text("roleDefinition", text("roleDefinition") or "")
    instructions = origin.text("customInstructions", text("customInstructions") or "")
    if not definition:
        report.add("default", "no roleDefinition: the body starts empty", "roleDefinition", line())
    body = definition + "\n"
    if instructions:
        body += f"\n{INSTRUCTIONS_HEADING}\n\n{instructions}\n"
    out["origin"] = origin.build()
    routing_defaults(report)
    spec = build_spec(out, import_body(body.lstrip("\n"), report), path, report)
    return spec, report


def import_path(path: Path) -> Imported:
    """Every mode of a ``.roomodes`` file (or of ``DIR/.roomodes``)."""
    path = Path(path)
    if path.is_dir():
        path = path / ".roomodes"
    if path.name.endswith(".md"):
        raise ConfigError("not a Roo Code .roomodes file (a Markdown agent: import it as claude or copilot)", path=path, line=1)
    report = Report(FORMAT, str(path))
    modes, prefix, located, syntax = read_modes(path, report)
    if not modes:
        raise ConfigError("the file defines no modes", path=path, field="customModes")
    out: Imported = []
    for index, mode in enumerate(modes):
        spec, mode_report = import_mode(mode, index, path, prefix, located, syntax)
        mode_report.notes[:0] = report.notes  # file-level repairs concern every mode
        out.append((spec, mode_report))
    return out


def _policy_of_groups(groups: Any) -> tuple[list[str], list[str]]:
    """The (allow, deny) an import gives for ``groups`` (to tell whether kept groups still apply)."""
    policy, _ = groups_to_tools(groups, Path(""), Report(FORMAT, ""), None)
    return policy["allow"], policy["deny"]


def tools_to_groups(spec: AgentSpec, report: Report) -> list[Any]:
    """The narrowest Roo groups for our tool policy (groups kept from an import win while they still
    give the same tools)."""
    kept = spec.extensions.get(FORMAT, {}).get("groups")
    if kept is not None:
        if _policy_of_groups(kept) == (spec.tools.allow, spec.tools.deny):
            report.add("info", "groups restored verbatim from extensions.roo", "groups")
            return list(kept)
        report.add("info", "the tools changed since the import: the kept groups are not written back", "groups")
    if grants_no_tools(spec):
        return []
    denied = set(spec.tools.deny)
    if spec.tools.allow:
        wanted: list[str] = []
        for tool in spec.tools.allow:
            group = TOOL_GROUP.get(tool)
            if group is None:
                wider = " (the whole mcp group would give every MCP tool)" if tool.lower().startswith("mcp") else ""
                report.add("unrepresentable", f"tool {tool!r} belongs to no Roo group{wider}: not given", "tools.allow")
            elif group not in wanted:
                wanted.append(group)
        allowed = set(spec.tools.allow)
        groups = []
        for group in wanted:
            missing = [t for t in GROUP_TOOLS[group] if t not in allowed]
            if missing:
                given = [t for t in spec.tools.allow if TOOL_GROUP.get(t) == group]
                report.add(
                    "converted",
                    f"group {group!r} would also give {', '.join(missing)}, which the allow-list does not: "
                    f"left out, so {', '.join(given)} cannot be used in Roo",
                    "tools.allow",
                )
            else:
                groups.append(group)
    else:
        groups = list(ALL_GROUPS)
        if not denied:
            report.add("converted", "no tool allow-list (the executor's default set): every group given", "groups")
    out = []
    for group in groups:
        blocked = sorted(denied & set(GROUP_TOOLS[group]) | {t for t in denied if TOOL_GROUP.get(t) == group})
        if blocked:
            report.add("converted", f"group {group!r} would give the denied {', '.join(blocked)}: left out", "tools.deny")
        else:
            out.append(group)
    if not out:
        report.add("converted", "no Roo group fits the tool policy: the mode gets no tool (groups: [])", "groups")
    return out


def export_mode(spec: AgentSpec, report: Report) -> dict[str, Any]:
    """One ``customModes`` entry for ``spec``."""
    back = WriteBack(spec, FORMAT, report)
    kept = dict(spec.extensions.get(FORMAT, {}))
    body = export_body(spec, report)
    definition, _, instructions = body.partition(f"\n{INSTRUCTIONS_HEADING}\n")
    mode: dict[str, Any] = {}
    if not back.unchanged_derived("name", spec.name):
        restored, raw = back.raw("slug", spec.name, lambda value: slugify(str(value)))
        mode["slug"] = raw if restored else spec.name
    if not back.unchanged_derived("role", spec.role):
        mode["name"] = back.text("name", spec.role)
    mode["roleDefinition"] = back.text("roleDefinition", definition.strip(), "\n")
    origin = origin_of(spec, FORMAT)
    if not back.unchanged_derived("description", spec.description):
        as_short = origin is not None and "whenToUse" not in origin.keys and "description" in origin.keys
        key = "description" if as_short else "whenToUse"
        mode[key] = back.text(key, spec.description)
    if "description" in kept and "description" not in mode:
        mode["description"] = kept.pop("description")
    kept.pop("description", None)
    mode["groups"] = tools_to_groups(spec, report)
    if origin is not None and "groups" not in origin.keys and mode["groups"] == [] and "groups" not in kept:
        del mode["groups"]  # the source had none (no tool): written back without
    kept.pop("groups", None)
    if instructions.strip():
        mode["customInstructions"] = back.text("customInstructions", instructions.strip(), "\n")
    for key, value in kept.items():
        mode.setdefault(key, value)
        report.add("info", "restored from extensions.roo", key)
    report_unrepresentable(spec, (*ROUTING_FIELDS, "model", "max_turns"), report, FORMAT)
    return back.order(mode)


def export_agents(specs: Iterable[AgentSpec]) -> Exported:
    """One ``.roomodes`` holding every agent as a mode: JSON when every agent was imported from a JSON
    ``.roomodes``, else YAML; named as the file they all came from, else ``.roomodes``."""
    specs = list(specs)
    reports: list[Report] = []
    modes: list[dict[str, Any]] = []
    origins = [origin_of(spec, FORMAT) for spec in specs]
    files = {o.file for o in origins if o is not None}
    same = bool(specs) and all(o is not None for o in origins) and len(files) == 1
    name = files.pop() if same else ".roomodes"
    as_json = same and all(o is not None and o.syntax == "json" for o in origins)
    for spec in specs:
        report = Report(FORMAT, name, spec.name)
        modes.append(export_mode(spec, report))
        reports.append(report)
    if as_json:
        text = json.dumps({"customModes": modes}, indent=2, ensure_ascii=False) + "\n"
    else:
        text = dump_yaml({"customModes": modes})
    return Exported({Path(name): text}, reports)

