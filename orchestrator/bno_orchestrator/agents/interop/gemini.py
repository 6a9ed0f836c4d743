"""Gemini CLI subagents: ``.gemini/agents/NAME.md`` (front matter ``name``, ``description``, ``kind``,
``tools``, ``mcpServers``, ``model``, ``temperature``, ``max_turns``, ``timeout_mins`` + the system prompt
as body).

:data:`TABLE` is the mapping. Gemini CLI's built-in tools map one to one onto Claude Code's
(:data:`GEMINI_TOOLS`); other names (MCP tools, ``mcp_*`` wildcards) are kept as written; ``*`` (every
tool) is our executor's default set. A remote (A2A) agent runs elsewhere and has no prompt: it is refused.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bno_foundation.errors import ConfigError
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
)
from bno_orchestrator.agents.interop.claude import (
    BODY_RULE,
    NAME_RULE,
    common_fields,
    export_description,
    export_name,
    front_matter_text,
    import_body,
    is_empty_tools,
)
from bno_orchestrator.agents.spec import AgentSpec

FORMAT = "gemini"
TITLE = "Gemini CLI"
# Gemini CLI built-in tool -> the Claude Code tool that grants the same thing
GEMINI_TOOLS: dict[str, str] = {
    "read_file": "Read", "glob": "Glob", "grep_search": "Grep", "list_directory": "LS",
    "write_file": "Write", "replace": "Edit", "run_shell_command": "Bash", "web_fetch": "WebFetch",
    "google_web_search": "WebSearch", "write_todos": "TodoWrite",
}  # fmt: skip
# older or second names of the same built-ins (read on import; never written)
GEMINI_ALIASES: dict[str, str] = {"search_file_content": "Grep", "read_many_files": "Read"}
CLAUDE_TO_GEMINI: dict[str, str] = {claude: gemini for gemini, claude in GEMINI_TOOLS.items()}
TABLE = FormatTable(
    FORMAT,
    TITLE,
    (
        FieldRule("name", "name", "converted", NAME_RULE + " (Gemini allows `_`; it becomes `-`)"),
        FieldRule("description", "description", "carried", "text (a list or mapping is an error)"),
        FieldRule(
            "tools",
            "tools.allow",
            "converted",
            "built-in tools in Claude Code's names (`read_file` = Read, `grep_search` = Grep, `glob` = Glob, "
            "`list_directory` = LS, `write_file` = Write, `replace` = Edit, `run_shell_command` = Bash, "
            "`web_fetch` = WebFetch, `google_web_search` = WebSearch, `write_todos` = TodoWrite); other names "
            "kept as written; written back in the source's form; `*` or absent: the default set; `[]`: no tool "
            "(every tool denied); a tool with no Gemini equivalent is left out on export",
        ),
        FieldRule("model", "model", "carried", "text"),
        FieldRule("max_turns", "max_turns", "carried", "whole number"),
        FieldRule("kind", None, "converted", "`local` (kept and written back); a `remote` (A2A) agent is refused: it has no prompt to import"),
        FieldRule("(body)", "body", "converted", BODY_RULE),
        FieldRule("(any other)", f"extensions.{FORMAT}", "extension", "`temperature`, `timeout_mins`, `mcpServers`, ...: kept and written back"),
        FieldRule(None, "tools.deny", "unrepresentable", "Gemini has no deny-list: with an allow-list it is redundant; without one every "
                  "built-in tool but the denied ones is listed"),
        FieldRule(None, "role", "unrepresentable", "made from the name on import; reported on export"),
        routing_rule(TITLE),
    ),
)
KNOWN_KEYS = TABLE.known_keys()


def claude_names(value: Any) -> list[str]:
    """A Gemini ``tools`` value in our (Claude Code's) names, duplicates removed."""
    names = name_list(value, "", "tools", None)
    return list(dict.fromkeys(GEMINI_TOOLS.get(n, GEMINI_ALIASES.get(n, n)) for n in names))


def imported_policy(value: Any) -> tuple[list[str], list[str]]:
    """The (allow, deny) an import makes of a ``tools`` value (to tell whether it still applies)."""
    if value is None:
        return [], []
    if not name_list(value, "", "tools", None):
        policy = no_tools_policy()
        return policy["allow"], policy["deny"]
    allow = claude_names(value)
    return ([] if "*" in allow else allow), []


def import_file(path: Path) -> tuple[AgentSpec, Report]:
    """Read one Gemini CLI subagent file."""
    if not path.name.endswith(".md"):
        raise ConfigError("not a Gemini CLI agent file (a Markdown file, NAME.md)", path=path, line=1)
    report = Report(FORMAT, str(path))
    result = parse_front_matter_lenient(read_text(path), path)
    report.add_repairs(result.repairs)
    data, located = result.data, result.located

    def line(key: str) -> int | None:
        return key_line(located, key)

    kind = expect_text(data.get("kind"), path, "kind", line("kind"), report)
    if kind is not None and kind.strip() != "local":
        raise ConfigError(f"a {kind.strip()!r} agent runs elsewhere (A2A) and has no prompt: only local agents can be imported", path=path, line=line("kind"), field="kind")
    origin = OriginRecorder(FORMAT, path.name, data)
    out = common_fields(data, result.body, path, located, report, origin)
    raw_tools = data.get("tools")
    names = name_list(raw_tools, path, "tools", line("tools"))
    allow = claude_names(raw_tools) if raw_tools is not None else []
    renamed = [f"{n} -> {GEMINI_TOOLS.get(n, GEMINI_ALIASES.get(n))}" for n in names if n in GEMINI_TOOLS or n in GEMINI_ALIASES]
    if renamed:
        report.add("converted", f"Gemini tools in Claude Code's names: {', '.join(renamed)}", "tools", line("tools"))
    if "tools" in data:
        origin.raw["tools"] = raw_tools
    if "*" in allow:
        report.add("converted", "tools '*' (every tool): the executor's default set", "tools", line("tools"))
        allow = []
    out["tools"] = {"allow": allow}
    if is_empty_tools(data, "tools"):
        report.add("converted", "an empty tools list: the agent may use no tool (every tool denied)", "tools", line("tools"))
        out["tools"] = no_tools_policy()
    model = expect_text(data.get("model"), path, "model", line("model"), report)
    if model is not None:
        out["model"] = model.strip()
    max_turns = expect_int(data.get("max_turns"), path, "max_turns", line("max_turns"))
    if max_turns is not None:
        out["max_turns"] = max_turns
    extra = keep_unknown(data, KNOWN_KEYS, report, FORMAT, line)
    if "kind" in data:
        extra["kind"] = data["kind"]
        report.add("kept", "kind: local is the only kind we import: kept under extensions.gemini", "kind", line("kind"))
    if extra:
        out["extensions"] = {FORMAT: extra}
    out["origin"] = origin.build()
    routing_defaults(report)
    return build_spec(out, import_body(result.body, report, result.body_line), path, report), report


def import_path(path: Path) -> Imported:
    """Import a subagent file, or every ``*.md`` under a directory (sorted)."""
    return import_files(path, "*.md", import_file, "*.md agent files")


def gemini_tools(spec: AgentSpec, report: Report) -> list[str] | None:
    """The narrowest Gemini ``tools`` list for our policy (None: the default set, ``tools`` left out)."""
    if grants_no_tools(spec):
        return []
    if not spec.tools.allow and not spec.tools.deny:
        return None
    if spec.tools.allow:
        if spec.tools.deny:
            report.add("converted", f"Gemini has no deny-list: the allow-list already leaves out {', '.join(spec.tools.deny)}", "tools.deny")
        wanted = list(spec.tools.allow)
    else:
        wanted = [tool for tool in CLAUDE_TOOLS if tool not in spec.tools.deny]
        report.add(
            "converted",
            f"every tool but {', '.join(spec.tools.deny)} cannot be said in Gemini (no deny-list): "
            "its built-in tools but those are listed (MCP tools are left out)",
            "tools.deny",
        )
    out: list[str] = []
    for tool in wanted:
        if tool in CLAUDE_TO_GEMINI:
            out.append(CLAUDE_TO_GEMINI[tool])
        elif tool in CLAUDE_TOOLS:
            if spec.tools.allow:
                report.add("unrepresentable", f"Gemini CLI has no tool like {tool}: left out", "tools.allow")
        else:
            out.append(tool)
    return list(dict.fromkeys(out))


def export_agent(spec: AgentSpec) -> tuple[str, str, Report]:
    """The file name and text of one Gemini CLI subagent file for ``spec``, and what it could not hold."""
    report = Report(FORMAT, f"{spec.name}.md", spec.name)
    back = WriteBack(spec, FORMAT, report)
    data: dict[str, Any] = {}
    export_name(spec, back, data)
    export_description(spec, back, data)
    tools = gemini_tools(spec, report)
    restored, raw = back.raw("tools", (spec.tools.allow, spec.tools.deny), imported_policy)
    if restored:
        data["tools"] = raw
    elif tools is not None:
        data["tools"] = tools
    if spec.model:
        data["model"] = spec.model
    if spec.max_turns is not None:
        data["max_turns"] = spec.max_turns
    restore_kept(data, spec.extensions.get(FORMAT, {}), report, FORMAT)
    if not back.unchanged_derived("role", spec.role):
        report.add("unrepresentable", f"Gemini CLI agents have no role field (role = {spec.role!r})", "role")
    report_unrepresentable(spec, ROUTING_FIELDS, report, FORMAT)
    text = front_matter_text(back.order(data)) + export_body(spec, report)
    return back.file(f"{spec.name}.md"), text, report


def export_agents(specs: Iterable[AgentSpec]) -> Exported:
    """One file per agent (``NAME.md``, or the file it was imported from; by default in ``.gemini/agents``)."""
    return export_files(specs, export_agent)
