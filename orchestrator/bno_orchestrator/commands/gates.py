"""``orchestrator gates run|status|graph|history|export``: the quality-gate DAG (thin over quality_gates)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from bno_foundation.cli import EXIT_OK, print_json
from bno_foundation.terminal import visible
from bno_orchestrator.commands import add_json_flag
from bno_orchestrator.commands.core_support import checked_repo
from bno_orchestrator.errors import NotFoundError, UserError
from bno_orchestrator.paths import gates_file, state_dir, store_path


def _config(args: argparse.Namespace) -> tuple[Path, Any]:
    from bno_quality_gates.spec import load_gates

    repo = checked_repo(args)
    config = load_gates(gates_file(repo, args.config))
    for warning in config.warnings:  # e.g. a required gate that can only run when another fails
        print(visible(f"warning: {warning}"), file=sys.stderr)
    return repo, config


def cmd_run(args: argparse.Namespace) -> int:
    """Run the gates (affected by default; --all, --only, --hook): the gates' own runner, our paths."""
    from bno_quality_gates.cli import run_gates

    repo = checked_repo(args)
    return run_gates(args, repo=repo, config_path=gates_file(repo, args.config), state_dir=state_dir(repo))


def cmd_status(args: argparse.Namespace) -> int:
    """Per gate: required, hooks, whether the cache holds a pass for the current inputs, the last result."""
    from bno_quality_gates.results import ResultsDB
    from bno_quality_gates.runner import Runner, RunOptions

    repo, config = _config(args)
    runner = Runner(config, RunOptions(repo=repo, state_dir=state_dir(repo), db_path=store_path(repo)))
    keys = runner.compute_keys(list(config.gates), repo)
    rows = []
    with ResultsDB(store_path(repo)) as db:
        last = db.runs(1)
        for name, spec in config.gates.items():
            history = db.history(name, limit=1)
            hit = db.cache_get(keys[name], runner.machine) if spec.cache else None
            rows.append(
                {
                    "gate": name,
                    "required": spec.required,
                    "hooks": spec.hooks,
                    "depends": spec.depends,
                    "cache": "fresh" if hit else "stale",
                    "last_status": history[0]["status"] if history else None,
                    "last_run": history[0]["run_id"] if history else None,
                }
            )
    if args.json:
        print_json({"gates": rows, "last_run": last[0] if last else None})
        return EXIT_OK
    from rich.table import Table

    table = Table(title=f"gates of {repo}")  # a safe console: every cell and the title are shown as text
    for column in ("gate", "required", "hooks", "depends", "cache", "last status", "last run"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row["gate"], "yes" if row["required"] else "no", ",".join(row["hooks"]), ",".join(row["depends"]),
            row["cache"], row["last_status"] or "-", row["last_run"] or "-",
        )
    console = _console()
    console.print(table)
    if last:
        console.print(f"last run {last[0]['run_id']}: {'passed' if last[0]['passed'] else 'not green'}")
    return EXIT_OK


def _console() -> Any:
    """A console on stdout that shows gate names, reasons and paths as text (never markup or control)."""
    from bno_foundation.terminal import safe_console

    return safe_console(highlight=False, width=None if sys.stdout.isatty() else 160)


def cmd_graph(args: argparse.Namespace) -> int:
    """Print the DAG: waves of gates that can run in parallel, edges with conditions (or DOT, or JSON)."""
    from bno_quality_gates.dag import build_graph, levels, to_dot

    _, config = _config(args)
    graph = build_graph(config)
    if args.json:
        print_json(
            {
                "levels": levels(graph),
                "edges": [{"from": u, "to": v, "condition": d["condition"]} for u, v, d in sorted(graph.edges(data=True))],
                "gates": {n: s.model_dump(mode="json") for n, s in config.gates.items()},
                "warnings": [str(w) for w in config.warnings],
            }
        )
    elif args.dot:
        sys.stdout.write(visible(to_dot(graph)))
    else:
        for depth, wave in enumerate(levels(graph)):
            for name in wave:
                spec = config.gates[name]
                deps = ", ".join(spec.depends) or "-"
                flags = [f for f, on in (("required", spec.required), ("gpu", spec.resources.gpu > 0),
                                         ("exclusive", spec.exclusive), ("machine-bound", spec.machine_bound)) if on]
                print(visible(f"{depth}  {name:<14} depends: {deps:<28} {' '.join(flags)}"))
    return EXIT_OK


def cmd_history(args: argparse.Namespace) -> int:
    """Recorded runs (newest first), one run in full (--run: a table; its raw record with --json), or one
    gate's results (--gate)."""
    from bno_quality_gates.results import ResultsDB
    from bno_quality_gates.summary import status_counts

    repo = checked_repo(args)
    with ResultsDB(store_path(repo)) as db:
        if args.run:
            record = db.run(args.run)
            if record is None:
                raise NotFoundError(f"no gate run {args.run!r}")
            data: Any = record
        elif args.gate:
            data = db.history(args.gate, limit=args.limit)
        else:
            data = db.runs(args.limit)
    if args.json:
        print_json(data)
        return EXIT_OK
    if args.run:
        from bno_quality_gates.summary import record_from_json, render_run

        render_run(record_from_json(data), _console())
        return EXIT_OK
    if args.gate:
        for row in data:
            print(visible(f"{row['run_id']}  {row['status']:<8} {row['duration']:8.2f}s  attempts {row['attempts']}  "
                          f"{row['reason']}"))
    else:
        for row in data:
            statuses = status_counts(row["statuses"]) or "nothing ran"
            verdict = "passed" if row["passed"] else "NOT GREEN"
            print(visible(f"{row['run_id']}  {verdict:<9} {row['mode']:<8} {row['finished'] - row['started']:7.2f}s  "
                          f"{statuses}"))
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    """Write a GitHub Actions workflow mirroring the DAG."""
    from bno_quality_gates.export_actions import export

    if not args.github_actions:
        raise UserError("choose an export format: --github-actions")
    repo, config = _config(args)
    output = Path(args.output) if args.output else repo / ".github" / "workflows" / "gates.yml"
    options: dict[str, Any] = {"gpu_labels": tuple(args.gpu_label or ("self-hosted", "gpu")), "python": args.python}
    if args.setup:
        options["setup"] = args.setup
    path = export(config, output, **options)
    if args.json:
        print_json({"written": str(path)})
    else:
        print(visible(f"wrote {path}"))
    return EXIT_OK


def register(sub: Any) -> None:
    """Add ``gates`` and its subcommands."""
    parser = sub.add_parser("gates", help="run and inspect the quality-gate DAG")
    gates = parser.add_subparsers(title="gates commands", metavar="SUBCOMMAND", parser_class=type(parser))

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--config", default=None, help="the gates file (default: workflows/gates.yaml)")
        add_json_flag(p)

    from bno_quality_gates.cli import add_run_arguments

    run = gates.add_parser("run", help="run the affected gates (or --all, --only, --hook)")
    add_run_arguments(run)
    run.set_defaults(handler=cmd_run)

    status = gates.add_parser("status", help="each gate: cache freshness and last result")
    common(status)
    status.set_defaults(handler=cmd_status)

    graph = gates.add_parser("graph", help="show the DAG")
    graph.add_argument("--dot", action="store_true", help="Graphviz DOT")
    common(graph)
    graph.set_defaults(handler=cmd_graph)

    history = gates.add_parser("history", help="recorded runs and gate results")
    history.add_argument("--gate", default=None)
    history.add_argument("--run", default=None, help="one run in full (an id, or 'latest')")
    history.add_argument("--limit", type=int, default=20)
    common(history)
    history.set_defaults(handler=cmd_history)

    export = gates.add_parser("export", help="export the DAG for a CI system")
    export.add_argument("--github-actions", action="store_true", help="a GitHub Actions workflow")
    export.add_argument("--output", default=None, help="default .github/workflows/gates.yml")
    export.add_argument("--gpu-label", action="append", help="runner labels for GPU gates (repeatable)")
    export.add_argument("--python", default="3.11")
    export.add_argument("--setup", default=None,
                        help="the install step of each job (default: pip install -e .[dev]); e.g. "
                             "'bash scripts/setup.sh && echo $PWD/.venv/bin >> $GITHUB_PATH'")
    common(export)
    export.set_defaults(handler=cmd_export)
