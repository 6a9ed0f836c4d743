"""CrewAI ``agents.yaml``: a mapping of agent keys (snake_case) to ``role``, ``goal``, ``backstory`` and
optional settings (``llm``, ``tools``, ``max_iter``, ``verbose``, ``allow_delegation``, ...).

Mapping: key <-> name (``_`` <-> ``-``), ``role`` <-> role, ``goal`` <-> description, ``backstory`` <->
body, ``llm`` <-> model, ``tools`` <-> tools.allow, ``max_iter`` <-> max_turns; other settings are kept
under ``extensions.crewai``. A sibling ``tasks.yaml`` is read to report which tasks each agent is given
(tasks are not agents: they are not imported). A ``tasks.yaml`` given as the agents file is refused with a
clear error.
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

FORMAT = "crewai"
KNOWN_KEYS = ("role", "goal", "backstory", "llm", "tools", "max_iter")
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
        report = Report(FORMAT, str(path))
        line = located.where((key,))[0]
        if not isinstance(entry, dict):
            raise located.error(f"agent {key!r} must be a mapping with role, goal and backstory", (key,))
        for required in ("role", "goal", "backstory"):
            if not as_text(entry.get(required) or "").strip():
                raise located.error("required field is missing", (key, required))
        name = slugify(str(key))
        if name != key:
            report.add("converted", f"key {key!r} written as the id {name!r}", "name", line)
        spec_data: dict[str, Any] = {
            "name": name,
            "role": as_text(entry["role"]).strip(),
            "description": as_text(entry["goal"]).strip(),
        }
        report.add("converted", "goal is our description (when to use the agent)", "goal", located.where((key, "goal"))[0])
        if entry.get("llm") is not None:
            spec_data["model"] = as_text(entry["llm"])
        if entry.get("tools"):
            tools = entry["tools"] if isinstance(entry["tools"], list) else [entry["tools"]]
            spec_data["tools"] = {"allow": [as_text(t) for t in tools]}
        if entry.get("max_iter") is not None:
            try:
                spec_data["max_turns"] = int(entry["max_iter"])
            except (TypeError, ValueError):
                raise located.error("max_iter must be an integer", (key, "max_iter")) from None

        def field_line(field: str, agent: str = key) -> int | None:
            return located.where((agent, field))[0]

        extra = keep_unknown(entry, KNOWN_KEYS, report, FORMAT, field_line)
        if extra:
            spec_data["extensions"] = {FORMAT: extra}
        if str(key) in tasks:
            report.add("info", f"tasks.yaml gives this agent the tasks: {', '.join(tasks[str(key)])} (tasks are not imported)")
        routing_defaults(report)
        body = import_body(as_text(entry["backstory"]).strip() + "\n", report, located.where((key, "backstory"))[0])
        out.append((build_spec(spec_data, body, path, report), report))
    return out


def export_agents(specs: Iterable[AgentSpec]) -> Exported:
    """One ``agents.yaml`` with every agent."""
    reports: list[Report] = []
    data: dict[str, Any] = {}
    for spec in specs:
        report = Report(FORMAT, "agents.yaml", spec.name)
        key = spec.name.replace("-", "_")
        if key != spec.name:
            report.add("converted", f"written under the key {key!r} (CrewAI keys are Python identifiers)", "name")
        entry: dict[str, Any] = {"role": spec.role, "goal": spec.description, "backstory": export_body(spec, report)}
        if spec.model:
            entry["llm"] = spec.model
        if spec.tools.allow:
            entry["tools"] = list(spec.tools.allow)
            report.add("converted", "CrewAI tools are Python tool objects: these names must be bound in crew.py", "tools.allow")
        if spec.max_turns is not None:
            entry["max_iter"] = spec.max_turns
        for extra_key, value in spec.extensions.get(FORMAT, {}).items():
            entry.setdefault(extra_key, value)
            report.add("info", "restored from extensions.crewai", extra_key)
        report_unrepresentable(spec, (*ROUTING_FIELDS, "tools.deny"), report, FORMAT)
        data[key] = entry
        reports.append(report)
    return Exported({Path("agents.yaml"): dump_yaml(data)}, reports)
