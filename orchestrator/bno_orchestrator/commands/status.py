"""``orchestrator status``: tasks per state, and each agent's load against its capacity."""

from __future__ import annotations

import argparse
from typing import Any

from bno_foundation.cli import print_json
from bno_orchestrator.commands import add_json_flag, stdout_console
from bno_orchestrator.commands.core_support import load, open_store


def summary(args: argparse.Namespace) -> dict[str, Any]:
    """The status as a JSON-ready dict."""
    from bno_orchestrator.scoring import DependencyIndex
    from bno_orchestrator.workload import load_table

    config = load(args)
    with open_store(args) as store:
        tasks = store.tasks()
        events = store.event_count()
        path = store.location
    states = {state: 0 for state in config.workflow.states}
    for task in tasks:
        states[task.status.value] = states.get(task.status.value, 0) + 1
    waiting = DependencyIndex.build({t.id: t for t in tasks}).blocked_by
    agents = [
        {"agent": row.agent, "load": row.load, "capacity": row.capacity, "free": row.free,
         "overloaded": row.overloaded, "tasks": list(row.tasks)}
        for row in load_table(tasks, config.agents, config.workflow.load_states())
    ]
    return {"store": path, "tasks": len(tasks), "events": events, "states": states,
            "waiting_on_dependencies": sorted(waiting), "agents": agents}


def run(args: argparse.Namespace) -> int:
    """Handle ``status``."""
    from rich.table import Table

    data = summary(args)
    if args.json:
        print_json(data)
        return 0
    out = stdout_console()  # every cell and line below is shown as text, never as markup
    out.print(f"{data['tasks']} tasks, {data['events']} events in {data['store']}")
    states = Table(title="tasks per state")
    states.add_column("state")
    states.add_column("tasks", justify="right")
    for state, count in data["states"].items():
        states.add_row(state, str(count))
    out.print(states)
    if data["waiting_on_dependencies"]:
        out.print(f"waiting on dependencies: {', '.join(data['waiting_on_dependencies'])}")
    agents = Table(title="agents: load vs capacity")
    for column in ("agent", "load", "capacity", "tasks"):
        agents.add_column(column, justify="right" if column in ("load", "capacity") else "left")
    for row in data["agents"]:
        style = "red" if row["overloaded"] else ("yellow" if row["free"] == 0 else "")
        agents.add_row(row["agent"], str(row["load"]), str(row["capacity"]), ", ".join(row["tasks"]) or "-",
                       style=style)
    out.print(agents)
    return 0


def register(sub: Any) -> None:
    """Add ``status``."""
    parser = sub.add_parser("status", help="tasks per state and agent load vs capacity")
    add_json_flag(parser)
    parser.set_defaults(handler=run)
