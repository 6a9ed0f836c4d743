"""GitHub Copilot custom agents: ``.github/agents/NAME.agent.md`` (front matter ``name``, ``description``,
``tools``, ``model`` (a name or a list of names), ``handoffs``, ``argument-hint`` + the prompt body).

Copilot tool ids (``search``, ``fetch``, ``githubRepo``, ...) are kept as written. ``handoffs`` name
agents of the source project, which may not exist here, so they are kept under ``extensions.copilot``
rather than turned into ``secondary``.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bno_orchestrator.agents.frontmatter import parse_front_matter_lenient, read_text
from bno_orchestrator.agents.interop.base import (
    ROUTING_FIELDS,
    Exported,
    Imported,
    Report,
    as_text,
    build_spec,
    export_body,
    export_files,
    import_files,
    keep_unknown,
    key_line,
    report_unrepresentable,
    restore_kept,
    routing_defaults,
)
from bno_orchestrator.agents.interop.claude import common_fields, front_matter_text, import_body, tool_list
from bno_orchestrator.agents.spec import AgentSpec

FORMAT = "copilot"
KNOWN_KEYS = ("name", "description", "tools", "model")


def import_file(path: Path) -> tuple[AgentSpec, Report]:
    """Read one Copilot ``*.agent.md`` file."""
    report = Report(FORMAT, str(path))
    result = parse_front_matter_lenient(read_text(path), path)
    report.add_repairs(result.repairs)
    data, located = result.data, result.located

    def line(key: str) -> int | None:
        return key_line(located, key)

    out = common_fields(data, result.body, path, located, report)
    out["tools"] = {"allow": tool_list(data.get("tools"), "tools", report, line("tools"), canonical=False)}
    model = data.get("model")
    models_kept = isinstance(model, list) and len(model) > 1
    if isinstance(model, list) and model:
        out["model"] = as_text(model[0])
        if models_kept:
            report.add("kept", f"a list of models: using {model[0]!r}, the list kept under extensions.copilot", "model", line("model"))
    elif model is not None:
        out["model"] = as_text(model)
    extra = keep_unknown(data, KNOWN_KEYS, report, FORMAT, line)
    if models_kept:
        extra["model"] = model
    if extra:
        out["extensions"] = {FORMAT: extra}
    routing_defaults(report)
    return build_spec(out, import_body(result.body, report, result.body_line), path, report), report


def import_path(path: Path) -> Imported:
    """Import one ``*.agent.md`` file, or every one under a directory."""
    return import_files(path, "*.agent.md", import_file, "*.agent.md files")


def export_agent(spec: AgentSpec) -> tuple[str, Report]:
    """One ``NAME.agent.md`` text for ``spec`` and what it could not hold."""
    report = Report(FORMAT, f"{spec.name}.agent.md", spec.name)
    kept = dict(spec.extensions.get(FORMAT, {}))
    data: dict[str, Any] = {"name": spec.name, "description": spec.description}
    if spec.tools.allow:
        data["tools"] = list(spec.tools.allow)
    if "model" in kept and spec.model == as_text(kept["model"][0]):
        data["model"] = kept.pop("model")
        report.add("info", "model list restored from extensions.copilot", "model")
    elif spec.model:
        data["model"] = spec.model
    kept.pop("model", None)
    restore_kept(data, kept, report, FORMAT)
    report.add("unrepresentable", f"Copilot agents have no role field (role = {spec.role!r})", "role")
    report_unrepresentable(spec, (*ROUTING_FIELDS, "max_turns", "tools.deny"), report, FORMAT)
    return front_matter_text(data) + export_body(spec, report), report


def export_agents(specs: Iterable[AgentSpec]) -> Exported:
    """``NAME.agent.md`` per agent (by default written to ``.github/agents``)."""
    return export_files(specs, ".agent.md", export_agent)
