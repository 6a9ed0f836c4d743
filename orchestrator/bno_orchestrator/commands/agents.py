"""``orchestrator agents``: list, show and validate agent definitions; import and export other formats.

    orchestrator agents list
    orchestrator agents show NAME [--render]
    orchestrator agents validate [PATH ...]
    orchestrator agents import FORMAT PATH [--into DIR] [--dry-run] [--force]
    orchestrator agents export FORMAT [NAME ...] [--out DIR] [--dry-run] [--force]

FORMAT is ``claude``, ``roo``, ``crewai`` or ``copilot`` (``auto`` on import guesses from the file name).
Every import and export prints a report of what was repaired, converted, kept under ``extensions`` or
could not be represented. Writes are atomic: all files are staged, then moved into place.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from bno_foundation.cli import EXIT_FAILURE, EXIT_OK, print_json
from bno_orchestrator.commands import add_json_flag, repo_from_args
from bno_orchestrator.errors import NotFoundError, UserError
from bno_orchestrator.paths import config_root


def _out(text: str = "") -> None:
    sys.stdout.write(text + "\n")


def agents_dir(args: argparse.Namespace) -> Path:
    """The agents folder: ``--dir`` when given, else the repo's own ``agents/`` or the shipped one."""
    if getattr(args, "dir", None):
        return Path(args.dir).resolve()
    return config_root(repo_from_args(args)) / "agents"


def _short(values: list[str], limit: int = 3) -> str:
    if not values:
        return "-"
    return ", ".join(values[:limit]) + (f" +{len(values) - limit}" if len(values) > limit else "")


def cmd_list(args: argparse.Namespace) -> int:
    from bno_orchestrator.agents import load_agents

    directory = agents_dir(args)
    agents = load_agents(directory)
    if args.json:
        print_json(
            {
                "directory": str(directory),
                "agents": [
                    {
                        "name": a.name,
                        "role": a.role,
                        "task_types": a.task_types,
                        "components": a.components,
                        "complexity": list(a.complexity),
                        "capacity": a.capacity,
                        "executor": a.executor.kind,
                        "secondary": a.secondary,
                        "gates": a.gates,
                    }
                    for a in agents.values()
                ],
            }
        )
        return EXIT_OK
    rows = [("NAME", "ROLE", "TASK TYPES", "COMPONENTS", "EXECUTOR", "CAP")]
    for a in agents.values():
        rows.append((a.name, a.role, _short(a.task_types), _short(a.components, 2), a.executor.kind, str(a.capacity)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        _out("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    _out(f"\n{len(agents)} agents in {directory}")
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    from bno_orchestrator.agents import load_agent
    from bno_orchestrator.agents.frontmatter import read_text
    from bno_orchestrator.agents.render import render_body, sample_task

    directory = agents_dir(args)
    path = directory / f"{args.name}.md"
    if not path.is_file():
        known = sorted(p.stem for p in directory.glob("*.md")) if directory.is_dir() else []
        raise NotFoundError(f"no agent named {args.name!r} in {directory} (known: {', '.join(known) or 'none'})")
    spec = load_agent(path)
    rendered = None
    if args.render:
        rendered = render_body(spec, sample_task(spec), worktree="/path/to/worktree", repo=str(directory.parent), path=path)
    if args.json:
        data: dict[str, Any] = {"path": str(path), **spec.model_dump(mode="json")}
        if rendered is not None:
            data["rendered"] = rendered
        print_json(data)
    else:
        sys.stdout.write(rendered if rendered is not None else read_text(path))
    return EXIT_OK


def cmd_validate(args: argparse.Namespace) -> int:
    from bno_orchestrator.agents.loader import agent_files, validate_paths

    default_dir = agents_dir(args)
    if args.paths:
        paths = [Path(p) for p in args.paths]
        for p in paths:
            if not p.exists():
                raise NotFoundError(f"{p}: no such file or directory")
        known = [p.stem for p in agent_files(default_dir)] if default_dir.is_dir() else []
        report = validate_paths(paths, known_agents=known)
    else:
        report = validate_paths([default_dir], workflows=default_dir.parent / "workflows")
    if args.json:
        print_json(report.as_json())
    else:
        for problem in report.problems:
            _out(str(problem))
        status = "ok" if report.ok else f"{len(report.problems)} problem(s)"
        _out(f"{status}: {len(report.files)} file(s), {len(report.agents)} valid agent(s)")
    return EXIT_OK if report.ok else EXIT_FAILURE


def _print_reports(reports: list[Any]) -> None:
    for report in reports:
        _out(f"{report.agent or '?'}  ({report.format}: {report.path})")
        for note in report.notes:
            _out(f"  {note.as_text()}")


def _write_files(args: argparse.Namespace, fmt: str, files: dict[Path, str], reports: list[Any], what: str) -> int:
    """Write an import's or export's ``files`` (all or none; existing ones only with ``--force``; nothing
    with ``--dry-run``) and print the conversion reports; ``what`` ends the summary line."""
    from bno_foundation.atomic import write_files_atomically

    existing = sorted(str(p) for p in files if p.exists())
    if existing and not args.force and not args.dry_run:
        raise UserError(f"would overwrite {', '.join(existing)}: pass --force to replace them")
    if not args.dry_run:
        write_files_atomically(files)
    if args.json:
        print_json(
            {
                "format": fmt,
                "dry_run": args.dry_run,
                "written": [] if args.dry_run else [str(p) for p in files],
                "would_write": [str(p) for p in files] if args.dry_run else [],
                "overwrites": existing,
                "reports": [r.as_json() for r in reports],
            }
        )
    else:
        _print_reports(reports)
        verb = "would write" if args.dry_run else "wrote"
        _out(f"\n{verb} {what}")
    return EXIT_OK


def cmd_import(args: argparse.Namespace) -> int:
    from bno_orchestrator.agents.frontmatter import parse_front_matter
    from bno_orchestrator.agents.interop import detect_format, format_module
    from bno_orchestrator.agents.loader import dump_agent

    source = Path(args.path)
    if not source.exists():
        raise NotFoundError(f"{source}: no such file or directory")
    fmt = detect_format(source) if args.format == "auto" else args.format
    imported = format_module(fmt).import_path(source)
    into = Path(args.into).resolve() if args.into else repo_from_args(args) / "agents"
    files: dict[Path, str] = {}
    origin: dict[str, str] = {}
    for spec, report in imported:
        if spec.name in origin:
            raise UserError(
                f"two imported agents are named {spec.name!r} ({origin[spec.name]} and {report.path}): import them one at a time"
            )
        origin[spec.name] = report.path
        text = dump_agent(spec)
        target = into / f"{spec.name}.md"
        parse_front_matter(text, target)  # what we write must read back strictly
        files[target] = text
    reports = [report for _, report in imported]
    return _write_files(args, fmt, files, reports, f"{len(files)} agent file(s) into {into}")


def cmd_export(args: argparse.Namespace) -> int:
    from bno_orchestrator.agents import load_agents
    from bno_orchestrator.agents.interop import DEFAULT_EXPORT_DIRS, format_module

    agents = load_agents(agents_dir(args))
    if args.names:
        missing = [n for n in args.names if n not in agents]
        if missing:
            raise NotFoundError(f"no agent named {', '.join(map(repr, missing))} (known: {', '.join(agents)})")
        specs = [agents[n] for n in args.names]
    else:
        specs = list(agents.values())
    exported = format_module(args.format).export_agents(specs)
    out = Path(args.out).resolve() if args.out else repo_from_args(args) / DEFAULT_EXPORT_DIRS[args.format]
    files = {out / rel: text for rel, text in exported.files.items()}
    return _write_files(args, args.format, files, exported.reports, f"{len(files)} file(s) under {out}")


def register(sub: Any) -> None:
    """Add ``orchestrator agents ...``."""
    formats = ("claude", "roo", "crewai", "copilot")
    parser = sub.add_parser("agents", help="list, show, validate, import and export agent definitions")
    commands = parser.add_subparsers(title="agents commands", metavar="COMMAND", parser_class=type(parser))

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--dir", default=None, help="the agents folder (default: REPO/agents, else the shipped one)")
        add_json_flag(p)

    p = commands.add_parser("list", help="one line per agent")
    common(p)
    p.set_defaults(handler=cmd_list)

    p = commands.add_parser("show", help="an agent's front matter and prompt")
    p.add_argument("name")
    p.add_argument("--render", action="store_true", help="render the prompt with a sample task")
    common(p)
    p.set_defaults(handler=cmd_show)

    p = commands.add_parser("validate", help="check agent files (schema, names, references, templates)")
    p.add_argument("paths", nargs="*", metavar="PATH", help="files or folders (default: the agents folder)")
    common(p)
    p.set_defaults(handler=cmd_validate)

    p = commands.add_parser("import", help="import Claude Code, Roo Code, CrewAI or Copilot agents")
    p.add_argument("format", choices=(*formats, "auto"))
    p.add_argument("path", help="a file or folder in that format")
    p.add_argument("--into", default=None, help="where to write NAME.md files (default: REPO/agents)")
    p.add_argument("--dry-run", action="store_true", help="report only, write nothing")
    p.add_argument("--force", action="store_true", help="replace existing agent files")
    add_json_flag(p)
    p.set_defaults(handler=cmd_import)

    p = commands.add_parser("export", help="export agents to Claude Code, Roo Code, CrewAI or Copilot")
    p.add_argument("format", choices=formats)
    p.add_argument("names", nargs="*", metavar="NAME", help="agents to export (default: all)")
    p.add_argument("--out", default=None, help="output folder (default: the format's usual place in the repo)")
    p.add_argument("--dry-run", action="store_true", help="report only, write nothing")
    p.add_argument("--force", action="store_true", help="replace existing files")
    common(p)
    p.set_defaults(handler=cmd_export)

    def no_command(_: argparse.Namespace) -> int:
        parser.print_help(sys.stderr)
        return 2

    parser.set_defaults(handler=no_command)
