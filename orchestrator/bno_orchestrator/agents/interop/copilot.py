"""GitHub Copilot custom agents: ``.github/agents/NAME.agent.md`` (front matter ``name``, ``description``,
``tools``, ``model`` (a name or a list of names), ``handoffs``, ``agents``, ``argument-hint``, ... + the
prompt body).

:data:`TABLE` is the mapping. Copilot's ``name`` is a display name (``🧭 Orchestrator``): our id is made
from it and the display name is written back on export while the id is unchanged, so that the ``handoffs``
and ``agents`` lists kept under ``extensions.copilot`` (they name agents of the source project by display
name) stay valid. Copilot tool ids (``search``, ``fetch``, ``githubRepo``, ...) are kept as written.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bno_foundation.errors import ConfigError
from bno_orchestrator.agents.frontmatter import parse_front_matter_lenient, read_text
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
    common_fields,
    export_description,
    export_name,
    front_matter_text,
    import_body,
    is_empty_tools,
    tool_list,
)
from bno_orchestrator.agents.spec import AgentSpec

FORMAT = "copilot"
TITLE = "Copilot"
TABLE = FormatTable(
    FORMAT,
    TITLE,
    (
        FieldRule(
            "name",
            "name",
            "converted",
            "a display name (`Code Reviewer`) becomes the id `code-reviewer`; the display name is written back "
            "while the id is unchanged, so `handoffs` and `agents` that name it stay valid; none: the file name",
        ),
        FieldRule("description", "description", "carried", "text (a list or mapping is an error)"),
        FieldRule(
            "tools",
            "tools.allow",
            "carried",
            "Copilot tool ids as written (a YAML list, or comma-separated text, written back as it was); "
            "absent: the default set; `[]`: no tool at all (every tool denied)",
        ),
        FieldRule(
            "model",
            "model",
            "converted",
            "text; a list of models (fallbacks): the first is our model, the list is written back while the "
            "first is unchanged",
        ),
        FieldRule("(body)", "body", "converted", BODY_RULE),
        FieldRule(
            "(any other)",
            f"extensions.{FORMAT}",
            "extension",
            "`handoffs`, `agents`, `argument-hint`, `target`, `mcp-servers`, ...: kept and written back",
        ),
        FieldRule(None, "tools.deny", "unrepresentable", "Copilot has no deny-list: with an allow-list it is "
                  "redundant; without one the agent is exported with `tools: []` (no tool), never with every tool"),
        FieldRule(None, "max_turns", "unrepresentable", "reported on export"),
        FieldRule(None, "role", "unrepresentable", "made from the name on import; reported on export"),
        routing_rule(TITLE),
    ),
)
KNOWN_KEYS = TABLE.known_keys()


def model_names(value: Any) -> list[str]:
    """A ``model`` value as a list of names."""
    return name_list(value, "", "model", None)


def import_file(path: Path) -> tuple[AgentSpec, Report]:
    """Read one Copilot ``*.agent.md`` file."""
    if not path.name.endswith(".md"):
        raise ConfigError("not a Copilot agent file (NAME.agent.md)", path=path, line=1)
    report = Report(FORMAT, str(path))
    result = parse_front_matter_lenient(read_text(path), path)
    report.add_repairs(result.repairs)
    data, located = result.data, result.located

    def line(key: str) -> int | None:
        return key_line(located, key)

    origin = OriginRecorder(FORMAT, path.name, data)
    out = common_fields(data, result.body, path, located, report, origin)
    allow = tool_list(data.get("tools"), "tools", path, report, line("tools"), canonical=False)
    out["tools"] = {"allow": allow}
    if "tools" in data and (not isinstance(data["tools"], list) or data["tools"] != allow):
        origin.raw["tools"] = data["tools"]
    if is_empty_tools(data, "tools"):
        report.add("converted", "an empty tools list: the agent may use no tool (every tool denied)", "tools", line("tools"))
        out["tools"] = no_tools_policy()
    model = data.get("model")
    if isinstance(model, list):
        models = name_list(model, path, "model", line("model"))
        if models:
            out["model"] = models[0]
            origin.raw["model"] = model
            if len(models) > 1:
                report.add("converted", f"a list of models: {models[0]!r} is used, the list is written back to Copilot", "model", line("model"))
    else:
        text = expect_text(model, path, "model", line("model"), report)
        if text is not None:
            out["model"] = text.strip()
    extra = keep_unknown(data, KNOWN_KEYS, report, FORMAT, line)
    if extra:
        out["extensions"] = {FORMAT: extra}
    out["origin"] = origin.build()
    routing_defaults(report)
    return build_spec(out, import_body(result.body, report, result.body_line), path, report), report


def import_path(path: Path) -> Imported:
    """Import one ``*.agent.md`` file, or every one under a directory."""
    return import_files(path, "*.agent.md", import_file, "*.agent.md files")


def export_agent(spec: AgentSpec) -> tuple[str, str, Report]:
    """The file name and text of one ``NAME.agent.md`` for ``spec``, and what it could not hold."""
    report = Report(FORMAT, f"{spec.name}.agent.md", spec.name)
    back = WriteBack(spec, FORMAT, report)
    data: dict[str, Any] = {}
    export_name(spec, back, data)
    export_description(spec, back, data)
    if grants_no_tools(spec):
        restored, raw = back.raw("tools", [], model_names)
        data["tools"] = raw if restored else []
    elif spec.tools.allow:
        restored, raw = back.raw("tools", spec.tools.allow, model_names)
        data["tools"] = raw if restored else list(spec.tools.allow)
        if spec.tools.deny:
            report.add("converted", f"Copilot has no deny-list: the allow-list already leaves out {', '.join(spec.tools.deny)}", "tools.deny")
    elif spec.tools.deny:
        data["tools"] = []
        report.add(
            "converted",
            f"every tool but {', '.join(spec.tools.deny)} cannot be said in Copilot (no deny-list): exported with no tool",
            "tools.deny",
        )
    if spec.model:
        restored, raw = back.raw("model", spec.model, lambda value: next(iter(model_names(value)), None))
        data["model"] = raw if restored else spec.model
    restore_kept(data, spec.extensions.get(FORMAT, {}), report, FORMAT)
    if not back.unchanged_derived("role", spec.role):
        report.add("unrepresentable", f"Copilot agents have no role field (role = {spec.role!r})", "role")
    report_unrepresentable(spec, (*ROUTING_FIELDS, "max_turns"), report, FORMAT)
    text = front_matter_text(back.order(data)) + export_body(spec, report)
    return back.file(f"{spec.name}.agent.md"), text, report


def export_agents(specs: Iterable[AgentSpec]) -> Exported:
    """``NAME.agent.md`` per agent (or the file it was imported from; by default in ``.github/agents``)."""
    return export_files(specs, export_agent)
