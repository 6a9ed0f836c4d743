"""``orchestrator export`` / ``orchestrator import``: the tasks as YAML, for review in git."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from bno_foundation.cli import print_json
from bno_orchestrator.commands import add_json_flag, stdout_console
from bno_orchestrator.commands.core_support import actor_of, add_actor_flag, load, open_store, repo

DEFAULT_FILE = "tasks.yaml"


def run_export(args: argparse.Namespace) -> int:
    """Handle ``export``."""
    from bno_orchestrator.yamlexport import dump_export, export_tasks

    with open_store(args) as store:
        if args.output == "-":
            tasks, events = store.snapshot()
            sys.stdout.write(dump_export(tasks, events if args.events else None))
            return 0
        path = Path(args.output) if Path(args.output).is_absolute() else repo(args) / args.output
        count = export_tasks(store, path, include_events=args.events)
    if args.json:
        print_json({"path": str(path), "tasks": count, "events": args.events})
    else:
        stdout_console().print(f"exported {count} tasks to {path}")
    return 0


def run_import(args: argparse.Namespace) -> int:
    """Handle ``import``."""
    from bno_orchestrator.yamlexport import import_tasks

    config = load(args)
    path = Path(args.path) if Path(args.path).is_absolute() else Path.cwd() / args.path
    with open_store(args) as store:
        report = import_tasks(store, config.workflow, path, actor=actor_of(args), dry_run=args.dry_run,
                              known_types=config.task_types, known_components=config.components,
                              known_agents=set(config.agents))
    if args.json:
        print_json({"dry_run": args.dry_run, **report.as_json()})
        return 0
    verb = "would import" if args.dry_run else "imported"
    out = stdout_console()  # the lines quote titles and fields: shown as text, never as markup
    for line in report.lines():
        out.print(line)
    out.print(
        f"{verb} {path}: {len(report.created)} created, {len(report.edited)} edited, "
        f"{len(report.moved)} moved, {len(report.unchanged)} unchanged ({report.events} events)",
    )
    return 0


def register(sub: Any) -> None:
    """Add ``export`` and ``import``."""
    export = sub.add_parser("export", help="write the tasks (and optionally the event log) to YAML")
    export.add_argument("-o", "--output", default=DEFAULT_FILE,
                        help=f"the file, relative to the repo ('-' = stdout; default {DEFAULT_FILE})")
    export.add_argument("--events", action="store_true", help="include the event log")
    add_json_flag(export)
    export.set_defaults(handler=run_export)

    imp = sub.add_parser("import", help="apply a task YAML file to the store (all or nothing)")
    imp.add_argument("path")
    imp.add_argument("--dry-run", action="store_true", help="report what would change, change nothing")
    add_actor_flag(imp)
    add_json_flag(imp)
    imp.set_defaults(handler=run_import)
