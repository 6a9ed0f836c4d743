"""CrewAI ``agents.yaml``: a mapping of agent keys (snake_case) to ``role``, ``goal``, ``backstory`` and
optional settings (``llm``, ``tools``, ``max_iter``, ``verbose``, ``allow_delegation``, ...).

:data:`TABLE` is the mapping. A CrewAI agent without ``tools`` has no tool, so it is imported with no tool
(every tool denied), never with the executor's default set. A sibling ``tasks.yaml`` is read to report
which tasks each agent is given (tasks are not agents: they are not imported). A ``tasks.yaml`` given as
the agents file is refused with a clear error.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bno_foundation.errors import ConfigError
from bno_foundation.yamlio import Located, load_yaml
from bno_orchestrator.agents.interop.base import (
    ROUTING_FIELDS,
    Exported,
    FieldRule,
    FormatTable,
    Imported,
    OriginRecorder,
    Report,
    WriteBack,
    as_text,
    build_spec,
    dump_yaml,
    expect_int,
    expect_text,
    export_body,
    grants_no_tools,
    keep_unknown,
    name_list,
    no_tools_policy,
    origin_of,
    report_unrepresentable,
    routing_defaults,
    routing_rule,
    slugify,
)
from bno_orchestrator.agents.interop.claude import import_body
from bno_orchestrator.agents.spec import AgentSpec

FORMAT = "crewai"
TITLE = "CrewAI"
TABLE = FormatTable(
    FORMAT,
    TITLE,
    (
        FieldRule("(key)", "name", "converted", "`snake_case` key <-> kebab-case id (`_` <-> `-`); another spelling is written back while the id is unchanged"),
        FieldRule("role", "role", "carried", "text (a list or mapping is an error)"),
        FieldRule("goal", "description", "converted", "the goal is our description (when to use the agent)"),
        FieldRule("backstory", "body", "converted", "the body; an export renders our templates without a task"),
        FieldRule("llm", "model", "carried", "text"),
        FieldRule(
            "tools",
            "tools.allow",
            "converted",
            "names of the Python tool objects (they must be bound in crew.py); absent: no tool at all "
            "(every tool denied), as in CrewAI",
        ),
        FieldRule("max_iter", "max_turns", "carried", "whole number"),
        FieldRule("(any other)", f"extensions.{FORMAT}", "extension", "`verbose`, `allow_delegation`, `memory`, ...: kept and written back"),
        FieldRule(None, "tools.deny", "unrepresentable", "CrewAI has no deny-list: with an allow-list it is redundant; without one the agent gets no tool"),
        routing_rule(TITLE),
    ),
)
KNOWN_KEYS = TABLE.known_keys()
TASK_KEYS = ("expected_output", "agent", "context", "output_file")


def _looks_like_tasks(data: dict[str, Any]) -> bool:
    entries = [v for v in data.values() if isinstance(v, dict)]
    return bool(entries) and all("role" not in v and any(k in v for k in TASK_KEYS) for v in entries)


def _sibling_tasks(path: Path) -> dict[str, list[str]]:
    """Task keys per agent key from a ``tasks.yaml`` beside ``path`` (same naming prefix), if any."""
    candidates = [path.with_name("tasks.yaml")]
    if path.name.endswith("agents.yaml") and path.name != "agents.yaml":
        candidates.insert(0, path.with_name(path.name[: -len("agents.yaml")] + "tasks.yaml"))
    for candidate in candidates:
        if candidate.is_file():
            data = load_yaml(candidate).data
            out: dict[str, list[str]] = {}
            if isinstance(data, dict):
                for task, body in data.items():
                    if isinstance(body, dict) and body.get("agent"):
                        out.setdefault(as_text(body["agent"]), []).append(str(task))
            return out
    return {}


def import_path(path: Path) -> Imported:
    """Every agent of an ``agents.yaml`` (or of ``DIR/agents.yaml``)."""
    path = Path(path)
    if path.is_dir():
        path = path / "agents.yaml"
    if not path.name.endswith((".yaml", ".yml")):
        raise ConfigError("not a CrewAI agents.yaml (a YAML file)", path=path, line=1)
    located: Located = load_yaml(path)
    data = located.data
    if not isinstance(data, dict) or not data:
        raise ConfigError("not a CrewAI agents.yaml: expected a mapping of agent names", path=path, line=1)
    if _looks_like_tasks(data):
        raise ConfigError(
            "this is a CrewAI tasks.yaml (entries have expected_output/agent, no role): import the agents.yaml beside it",
            path=path,
            line=1,
        )
    tasks = _sibling_tasks(path)
    out: Imported = []
    for key, entry in data.items():
        out.append(_import_agent(str(key), entry, path, located, tasks))
    return out


def _import_agent(key: str, entry: Any, path: Path, located: Located, tasks: dict[str, list[str]]) -> tuple[AgentSpec, Report]:
    report = Report(FORMAT, str(path))
    line = located.where((key,))[0]
    if not isinstance(entry, dict):
        raise located.error(f"agent {key!r} must be a mapping with role, goal and backstory", (key,))

    def field_line(field: str) -> int | None:
        return located.where((key, field))[0]

    def text(field: str) -> str:
        value = expect_text(entry.get(field), path, f"{key}.{field}", field_line(field), report)
        if value is None or not value.strip():
            raise located.error("required field is missing", (key, field))
        return value

    role, goal, backstory = text("role"), text("goal"), text("backstory")
    origin = OriginRecorder(FORMAT, path.name, entry)
    name = slugify(key)
    if name.replace("-", "_") != key:
        origin.raw["(key)"] = key
    if name != key:
        report.add("converted", f"key {key!r} written as the id {name!r}", "name", line)
    spec_data: dict[str, Any] = {"name": name, "role": origin.text("role", role), "description": origin.text("goal", goal)}
    report.add("converted", "goal is our description (when to use the agent)", "goal", field_line("goal"))
    llm = entry.get("llm")
    extra: dict[str, Any] = {}
    if isinstance(llm, dict):
        extra["llm"] = llm
        report.add("kept", "an llm given as settings, not a model name: kept under extensions.crewai", "llm", field_line("llm"))
    else:
        model = expect_text(llm, path, f"{key}.llm", field_line("llm"), report)
        if model is not None:
            spec_data["model"] = model
    if entry.get("tools"):
        tools = name_list(entry["tools"], path, f"{key}.tools", field_line("tools"))
        if not isinstance(entry["tools"], list):
            origin.raw["tools"] = entry["tools"]
            report.add("converted", "tools given as text: read as a list (written back as text)", "tools", field_line("tools"))
        spec_data["tools"] = {"allow": tools}
    else:
        if "tools" in entry:
            origin.raw["tools"] = entry["tools"]
        spec_data["tools"] = no_tools_policy()
        report.add("converted", "no tools: a CrewAI agent without tools has none, so every tool is denied", "tools", field_line("tools") if "tools" in entry else line)
    max_turns = expect_int(entry.get("max_iter"), path, f"{key}.max_iter", field_line("max_iter"))
    if max_turns is not None:
        spec_data["max_turns"] = max_turns
    extra.update(keep_unknown(entry, KNOWN_KEYS, report, FORMAT, field_line))
    if extra:
        spec_data["extensions"] = {FORMAT: extra}
    spec_data["origin"] = origin.build()
    if key in tasks:
        report.add("info", f"tasks.yaml gives this agent the tasks: {', '.join(tasks[key])} (tasks are not imported)")
    routing_defaults(report)
    body = import_body(origin.text("backstory", backstory) + "\n", report, field_line("backstory"))
    return build_spec(spec_data, body, path, report), report


def _export_agent(spec: AgentSpec, report: Report) -> tuple[str, dict[str, Any]]:
    back = WriteBack(spec, FORMAT, report)
    key = spec.name.replace("-", "_")
    restored, raw = back.raw("(key)", spec.name, lambda value: slugify(str(value)))
    if restored:
        key = raw
    elif key != spec.name:
        report.add("converted", f"written under the key {key!r} (CrewAI keys are Python identifiers)", "name")
    entry: dict[str, Any] = {
        "role": back.text("role", spec.role),
        "goal": back.text("goal", spec.description),
        "backstory": back.text("backstory", export_body(spec, report).strip(), "\n"),
    }
    if spec.model:
        entry["llm"] = spec.model
    if grants_no_tools(spec):
        restored, raw = back.raw("tools", [], lambda value: name_list(value, "", "tools", None))
        if restored:
            entry["tools"] = raw
    elif spec.tools.allow:
        restored, raw = back.raw("tools", spec.tools.allow, lambda value: name_list(value, "", "tools", None))
        entry["tools"] = raw if restored else list(spec.tools.allow)
        if not restored:
            report.add("converted", "CrewAI tools are Python tool objects: these names must be bound in crew.py", "tools.allow")
    else:
        report.add(
            "converted",
            "the executor's default set of tools cannot be said in CrewAI: exported with no tool"
            + (f" (denied: {', '.join(spec.tools.deny)})" if spec.tools.deny else ""),
            "tools",
        )
    if spec.max_turns is not None:
        entry["max_iter"] = spec.max_turns
    for extra_key, value in spec.extensions.get(FORMAT, {}).items():
        entry.setdefault(extra_key, value)
        report.add("info", "restored from extensions.crewai", extra_key)
    report_unrepresentable(spec, ROUTING_FIELDS, report, FORMAT)
    return key, back.order(entry)


def export_agents(specs: Iterable[AgentSpec]) -> Exported:
    """One ``agents.yaml`` with every agent (named as the file they all came from, if they did)."""
    specs = list(specs)
    origins = [origin_of(spec, FORMAT) for spec in specs]
    files = {o.file for o in origins if o is not None}
    name = files.pop() if specs and all(origins) and len(files) == 1 else "agents.yaml"
    reports: list[Report] = []
    data: dict[str, Any] = {}
    for spec in specs:
        report = Report(FORMAT, name, spec.name)
        key, entry = _export_agent(spec, report)
        data[key] = entry
        reports.append(report)
    return Exported({Path(name): dump_yaml(data)}, reports)
