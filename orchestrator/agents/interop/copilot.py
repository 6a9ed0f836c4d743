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

from orchestrator.agents.frontmatter import parse_front_matter_lenient, read_text
from orchestrator.agents.interop.base import (
    ROUTING_FIELDS,
    Exported,
    Imported,
    Report,
    as_text,
    build_spec,
    export_body,
    report_unrepresentable,
    routing_defaults,
)
from orchestrator.agents.interop.claude import common_fields, front_matter_text, import_body, tool_list
from orchestrator.agents.spec import AgentSpec
from quality_gates.errors import ConfigError

FORMAT = "copilot"
KNOWN_KEYS = ("name", "description", "tools", "model")


def import_file(path: Path) -> tuple[AgentSpec, Report]:
    """Read one Copilot ``*.agent.md`` file."""
    report = Report(FORMAT, str(path))
    result = parse_front_matter_lenient(read_text(path), path)
    report.add_repairs(result.repairs)
    data, located = result.data, result.located

    def line(key: str) -> int | None:
        return located.where((key,))[0] if located is not None else None

    out = common_fields(data, result.body, path, located, report)
    out["tools"] = {"allow": tool_list(data.get("tools"), "tools", report, line("tools"), canonical=False)}
    extra = {key: value for key, value in data.items() if key not in KNOWN_KEYS}
    model = data.get("model")
    if isinstance(model, list) and model:
        out["model"] = as_text(model[0])
        if len(model) > 1:
            extra["model"] = model
            report.add("kept", f"a list of models: using {model[0]!r}, the list kept under extensions.copilot", "model", line("model"))
    elif model is not None:
        out["model"] = as_text(model)
    for key in extra:
        if key != "model":
            report.add("kept", "no such field in our schema: kept under extensions.copilot", key, line(key))
    if extra:
        out["extensions"] = {FORMAT: extra}
    routing_defaults(report)
    return build_spec(out, import_body(result.body, report, result.body_line), path, report), report


def import_path(path: Path) -> Imported:
    """Import one ``*.agent.md`` file, or every one under a directory."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.agent.md") if p.is_file())
        if not files:
            raise ConfigError("no *.agent.md files in this directory", path=path)
        return [import_file(p) for p in files]
    return [import_file(path)]


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
    for key, value in kept.items():
        if key not in data:
            data[key] = value
            report.add("info", "restored from extensions.copilot", key)
    report.add("unrepresentable", f"Copilot agents have no role field (role = {spec.role!r})", "role")
    report_unrepresentable(spec, (*ROUTING_FIELDS, "max_turns", "tools.deny"), report, FORMAT)
    return front_matter_text(data) + export_body(spec, report), report


def export_agents(specs: Iterable[AgentSpec]) -> Exported:
    """``NAME.agent.md`` per agent (by default written to ``.github/agents``)."""
    files: dict[Path, str] = {}
    reports: list[Report] = []
    for spec in specs:
        text, report = export_agent(spec)
        files[Path(f"{spec.name}.agent.md")] = text
        reports.append(report)
    return Exported(files, reports)
