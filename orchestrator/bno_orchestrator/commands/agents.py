"""``orchestrator agents``: list, show and validate agent definitions; import and export other formats.

    orchestrator agents list
    orchestrator agents show NAME [--render]
    orchestrator agents validate [PATH ...]
    orchestrator agents import FORMAT PATH [--into DIR] [--dry-run] [--force]
    orchestrator agents export FORMAT [NAME ...] [--out DIR] [--dry-run] [--force]

FORMAT is ``claude``, ``roo``, ``crewai``, ``copilot`` or ``gemini`` (``auto`` on import tells each file's format from
its name and shape; docs/agent-formats.md has the field mapping of each). Every import and export prints a
report of what was repaired, converted, kept under ``extensions`` or could not be represented, the files an
import of a folder skipped and why, and what each file written does: create, change (with the fields),
overwrite, or replace a shipped agent. Writes are atomic: all files are staged, then moved into place.
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
    """One line on stdout; agent names, paths and file contents show their control characters."""
    from bno_foundation.terminal import visible

    sys.stdout.write(visible(text) + "\n")


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
        from bno_foundation.terminal import visible

        sys.stdout.write(visible(rendered if rendered is not None else read_text(path)))
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


def changed_fields(old: Any, new: Any) -> list[str]:
    """The front-matter fields (and ``body``) in which two agents differ, in the order files list them."""
    from bno_orchestrator.agents.spec import FIELD_ORDER

    before, after = old.front_matter(), new.front_matter()
    fields = [key for key in FIELD_ORDER if before.get(key) != after.get(key)]
    if old.body != new.body:
        fields.append("body")
    return fields


def plan_agent_files(files: dict[Path, tuple[Any, str]], shipped: dict[str, Any]) -> list[dict[str, Any]]:
    """What writing each agent file would do: ``create``, ``change`` (with the fields), ``unchanged``,
    ``overwrite`` (the existing file is not a valid agent), or ``replace-shipped`` (no file yet, but the
    name is a shipped agent's, which this one replaces; with the fields that differ from it)."""
    from bno_orchestrator.agents import load_agent
    from bno_orchestrator.errors import ConfigError

    plan: list[dict[str, Any]] = []
    for target, (spec, _) in files.items():
        entry: dict[str, Any] = {"agent": spec.name, "path": str(target), "fields": []}
        if target.exists():
            try:
                entry["fields"] = changed_fields(load_agent(target), spec)
                entry["action"] = "change" if entry["fields"] else "unchanged"
            except ConfigError as exc:
                entry["action"], entry["reason"] = "overwrite", f"the existing file is not a valid agent ({exc})"
        elif spec.name in shipped:
            entry["action"], entry["fields"] = "replace-shipped", changed_fields(shipped[spec.name], spec)
        else:
            entry["action"] = "create"
        plan.append(entry)
    return plan


def plan_export_files(files: dict[Path, str]) -> list[dict[str, Any]]:
    """What writing each exported file would do: ``create``, ``overwrite`` or ``unchanged``."""
    plan: list[dict[str, Any]] = []
    for target, text in files.items():
        action = "create"
        if target.exists():
            try:
                action = "unchanged" if target.read_text(encoding="utf-8") == text else "overwrite"
            except (OSError, UnicodeDecodeError):
                action = "overwrite"
        plan.append({"path": str(target), "action": action})
    return plan


def _print_plan(plan: list[dict[str, Any]], dry_run: bool) -> None:
    for entry in plan:
        verb = entry["action"] if dry_run else {"create": "created", "change": "changed", "overwrite": "overwrote",
                                                   "replace-shipped": "replaced shipped", "unchanged": "unchanged"}[entry["action"]]
        who = f"{entry['agent']}: " if "agent" in entry else ""
        fields = f" (fields: {', '.join(entry['fields'])})" if entry.get("fields") else ""
        reason = f" ({entry['reason']})" if entry.get("reason") else ""
        _out(f"{verb:<16} {who}{entry['path']}{fields}{reason}")


def _write_files(
    args: argparse.Namespace, fmt: str, files: dict[Path, str], reports: list[Any], what: str,
    plan: list[dict[str, Any]], skipped: list[Any] | None = None,
) -> int:
    """Write an import's or export's ``files`` (all or none; existing ones only with ``--force``; nothing
    with ``--dry-run``) and print the plan, the skipped files and the conversion reports; ``what`` ends
    the summary line."""
    from bno_foundation.atomic import write_files_atomically

    existing = sorted(str(p) for p in files if p.exists())
    if existing and not args.force and not args.dry_run:
        raise UserError(f"would overwrite {', '.join(existing)}: pass --force to replace them")
    if not args.dry_run:
        write_files_atomically(files)
    skipped = skipped or []
    if args.json:
        print_json(
            {
                "format": fmt,
                "dry_run": args.dry_run,
                "written": [] if args.dry_run else [str(p) for p in files],
                "would_write": [str(p) for p in files] if args.dry_run else [],
                "overwrites": existing,
                "plan": plan,
                "skipped": [s.as_json() for s in skipped],
                "reports": [r.as_json() for r in reports],
            }
        )
    else:
        _print_reports(reports)
        if skipped:
            _out(f"\nskipped {len(skipped)} file(s):")
            for item in skipped:
                _out(f"  {item.path}: {item.reason}")
        _out("")
        _print_plan(plan, args.dry_run)
        verb = "would write" if args.dry_run else "wrote"
        _out(f"\n{verb} {what}")
    return EXIT_OK


def _shipped_agents() -> dict[str, Any]:
    from bno_orchestrator.agents import load_agents
    from bno_orchestrator.paths import data_root

    return load_agents(data_root() / "agents")


def cmd_import(args: argparse.Namespace) -> int:
    from bno_orchestrator.agents.frontmatter import parse_front_matter
    from bno_orchestrator.agents.interop import collect_sources, format_module
    from bno_orchestrator.agents.loader import dump_agent

    source = Path(args.path)
    if not source.exists():
        raise NotFoundError(f"{source}: no such file or directory")
    sources, skipped = collect_sources(source, args.format)
    imported = [item for fmt, path in sources for item in format_module(fmt).import_path(path)]
    formats = sorted({fmt for fmt, _ in sources})
    default_into = repo_from_args(args) / "agents"
    into = Path(args.into).resolve() if args.into else default_into
    staged: dict[Path, tuple[Any, str]] = {}
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
        staged[target] = (spec, text)
    shipped = _shipped_agents() if into == default_into.resolve() else {}
    plan = plan_agent_files(staged, shipped)
    reports = [report for _, report in imported]
    files = {target: text for target, (_, text) in staged.items()}
    return _write_files(args, "+".join(formats), files, reports, f"{len(files)} agent file(s) into {into}", plan, skipped)


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
    plan = plan_export_files(files)
    return _write_files(args, args.format, files, exported.reports, f"{len(files)} file(s) under {out}", plan)


def register(sub: Any) -> None:
    """Add ``orchestrator agents ...``."""
    formats = ("claude", "roo", "crewai", "copilot", "gemini")
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

    p = commands.add_parser("import", help="import Claude Code, Roo Code, CrewAI, Copilot or Gemini CLI agents")
    p.add_argument("format", choices=(*formats, "auto"))
    p.add_argument("path", help="a file or folder in that format")
    p.add_argument("--into", default=None, help="where to write NAME.md files (default: REPO/agents)")
    p.add_argument("--dry-run", action="store_true", help="report only, write nothing")
    p.add_argument("--force", action="store_true", help="replace existing agent files")
    add_json_flag(p)
    p.set_defaults(handler=cmd_import)

    p = commands.add_parser("export", help="export agents to Claude Code, Roo Code, CrewAI, Copilot or Gemini CLI")
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
