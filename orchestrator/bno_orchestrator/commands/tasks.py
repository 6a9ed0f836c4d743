"""``orchestrator task add | list | show | edit | move | block | unblock | explain | delete | restore | undo``.

Everything is printed through :func:`bno_foundation.terminal.safe_console`: task titles, labels and reasons
are user text, shown as text (never read as markup, control characters made visible).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from bno_foundation.cli import print_json
from bno_foundation.terminal import safe_console, visible
from bno_orchestrator.commands import add_json_flag
from bno_orchestrator.commands.core_support import (
    actor_of,
    add_actor_flag,
    fmt,
    load,
    num,
    open_store,
)
from bno_orchestrator.scorers import SCORER_NAMES


def console() -> Any:
    """A safe Rich console on stdout (markup and emoji off, control characters made visible)."""
    return safe_console(file=sys.stdout, soft_wrap=False)


def _bold(text: str) -> Any:
    from rich.text import Text

    return Text(visible(text), style="bold")


def _line(*parts: str | tuple[str, str]) -> Any:
    """One line of plain and (text, style) parts, as a Rich ``Text``: user text stays text, its control
    characters made visible (a ``Text`` bypasses the safe console's own filter)."""
    from rich.text import Text

    return Text.assemble(*(visible(p) if isinstance(p, str) else (visible(p[0]), p[1]) for p in parts))


# the list fields that ``task edit`` can add items to or remove items from: flag stem -> field
_LIST_FLAGS: dict[str, str] = {"label": "labels", "depends-on": "depends_on", "assignee": "assignees",
                               "component": "components"}

_INT_FIELDS = ("impact", "urgency", "dependencies", "resources", "risk", "business_value", "time_criticality",
               "risk_reduction", "job_size")


def _add_field_flags(parser: argparse.ArgumentParser, *, edit: bool) -> None:
    parser.add_argument("--description", default=None)
    parser.add_argument("--type", default=None, help="a task type of routing.yaml (default: implementation)")
    parser.add_argument("--component", action="append", default=None, dest="components",
                        help=f"a component id (repeat for several{'; replaces the list' if edit else ''})")
    parser.add_argument("--complexity", default=None, help="1..4 or simple|medium|high|critical")
    for name in _INT_FIELDS:
        parser.add_argument(f"--{name.replace('_', '-')}", type=int, default=None, dest=name)
    replaces = "; replaces the list: --add-/--remove-... change one item" if edit else ""
    parser.add_argument("--depends-on", action="append", default=None, dest="depends_on",
                        help=f"a task id this one waits for (repeat for several{replaces})")
    parser.add_argument("--label", action="append", default=None, dest="labels",
                        help=f"a label (repeat for several{replaces})")
    parser.add_argument("--assignee", action="append", default=None, dest="assignees",
                        help=f"assign by hand to a known agent; the router then keeps this choice (repeat for "
                             f"several{replaces})")
    parser.add_argument("--milestone", default=None)
    parser.add_argument("--phase", default=None)
    parser.add_argument("--estimate", type=float, default=None, help="hours")
    parser.add_argument("--due", default=None, help="ISO date or datetime (UTC)")
    if edit:
        for stem, field in _LIST_FLAGS.items():
            parser.add_argument(f"--add-{stem}", action="append", default=None, dest=f"add_{field}",
                                metavar=stem.upper(), help=f"add one item to {field} (repeatable)")
            parser.add_argument(f"--remove-{stem}", action="append", default=None, dest=f"remove_{field}",
                                metavar=stem.upper(), help=f"remove one item from {field} (repeatable)")
        parser.add_argument("--title", default=None)
        parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                            help="set any editable field; VALUE is YAML (e.g. labels=[a, b], impact=null)")
    add_actor_flag(parser)
    parser.add_argument("--reason", default="", help="why (recorded in the event)")
    add_json_flag(parser)


def _fields(args: argparse.Namespace) -> dict[str, Any]:
    names = ("description", "type", "components", "complexity", *_INT_FIELDS, "depends_on", "labels",
             "assignees", "milestone", "phase", "estimate", "due", "title")
    out = {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}
    import yaml

    from bno_orchestrator.errors import UserError

    for item in getattr(args, "set", []) or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise UserError(f"--set {item!r}: expected FIELD=VALUE")
        try:
            out[key.strip()] = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or "cannot parse"
            raise UserError(f"--set {key}: invalid YAML value {raw!r}: {problem}") from None
    return out


def _list_edits(args: argparse.Namespace, prefix: str) -> dict[str, list[str]]:
    """The ``--add-*`` (``prefix`` "add") or ``--remove-*`` items, by field."""
    out: dict[str, list[str]] = {}
    for field in _LIST_FLAGS.values():
        items = getattr(args, f"{prefix}_{field}", None)
        if items:
            out[field] = list(items)
    return out


def _task_json(task: Any, score: Any = None) -> dict[str, Any]:
    data: dict[str, Any] = task.model_dump(mode="json")
    if score is not None:
        data["score"] = score.value
        data["blocked"] = score.blocked
        data["blocked_by"] = list(score.blocked_by)
        data["blocks"] = list(score.blocks)
    return data


def run_add(args: argparse.Namespace) -> int:
    """Handle ``task add``."""
    from bno_orchestrator.workflow import create_task

    config = load(args)
    fields = _fields(args)
    fields["title"] = args.title
    if args.id:
        fields["id"] = args.id
    with open_store(args) as store:
        task = create_task(store, fields, actor=actor_of(args), reason=args.reason,
                           known_types=config.task_types, known_components=config.components,
                           known_agents=config.agents)
    if args.json:
        print_json(_task_json(task))
    else:
        console().print(_line("added ", (task.id, "bold"), f" {task.title} ({task.type}, {task.complexity_name})"))
    return 0


def run_edit(args: argparse.Namespace) -> int:
    """Handle ``task edit``."""
    from bno_orchestrator.errors import UserError
    from bno_orchestrator.workflow import edit_task

    config = load(args)
    changes = _fields(args)
    add, remove = _list_edits(args, "add"), _list_edits(args, "remove")
    if not changes and not add and not remove:
        raise UserError("nothing to change: give at least one field flag, --add-/--remove-... or --set FIELD=VALUE")
    with open_store(args) as store:
        task = edit_task(store, args.id, changes, actor=actor_of(args), reason=args.reason,
                         known_types=config.task_types, known_components=config.components,
                         known_agents=config.agents, add=add, remove=remove)
    if args.json:
        print_json(_task_json(task))
    else:
        console().print(_line("edited ", (task.id, "bold"), f": {', '.join(sorted({*changes, *add, *remove}))}"))
    return 0


def _scores(config: Any, tasks: list[Any], scorer: str | None, now: Any) -> dict[str, Any]:
    from bno_orchestrator.scoring import score_tasks

    return score_tasks(tasks, config.scoring, now=now, scorer=scorer)


def run_list(args: argparse.Namespace) -> int:
    """Handle ``task list``: a plain-text table, one line per task, titles cut to the terminal's width."""
    from bno_orchestrator.scoring import rank, score_tasks

    scoring = _scoring_config(args)  # only scoring.yaml: listing needs no agents, routing or escalation
    with open_store(args) as store:
        tasks = store.tasks()
        now = store.now()
    scores = score_tasks(tasks, scoring, now=now, scorer=args.scorer)
    by_id = {t.id: t for t in tasks}
    order = [i for i in rank(scores) if _keep(by_id[i], args)]
    if args.limit is not None:
        order = order[: args.limit]
    if args.json:
        print_json({"scorer": args.scorer or scoring.scorer,
                    "tasks": [_task_json(by_id[i], scores[i]) for i in order]})
        return 0
    rows = [tuple(visible(cell) for cell in (
        task.id, task.title, task.type, task.status.value, num(score.value), str(task.complexity),
        fmt(task.assignees), fmt(list(score.blocked_by))))
            for task, score in ((by_id[i], scores[i]) for i in order)]
    out = console()
    out.print(f"tasks (scorer: {args.scorer or scoring.scorer}): {len(rows)}", markup=False)
    out.file.write(text_table(LIST_COLUMNS, rows, width=out.width, flex=1, right=("score", "cx")))
    out.file.flush()
    return 0


LIST_COLUMNS: tuple[str, ...] = ("id", "title", "type", "status", "score", "cx", "assignees", "blocked by")
MAX_CELL = 28  # a column other than the flexible one is cut to this many cells (with an ellipsis)
MIN_FLEX = 12  # the flexible column (the title) gets at least this many cells


def fit_cell(text: str, width: int) -> str:
    """``text`` on one line in exactly ``width`` cells: control characters as spaces, cut with ``…``."""
    if text.isascii() and text.isprintable():  # the common case: one cell per character
        return text.ljust(width) if len(text) <= width else (text[: width - 1] + "…" if width > 0 else "")
    from rich.cells import cell_len, set_cell_size

    flat = " ".join(text.split())
    if cell_len(flat) > width:  # a wide character may leave a cell over: pad after the ellipsis
        return set_cell_size(set_cell_size(flat, max(width - 1, 0)).rstrip() + "…", width) if width > 0 else ""
    return set_cell_size(flat, width)


def text_table(headers: tuple[str, ...], rows: Sequence[tuple[str, ...]], *, width: int, flex: int,
               right: tuple[str, ...] = ()) -> str:
    """A plain-text table, one line per row (no wrapping, so its cost is linear in the cells): each column
    as wide as its widest cell (at most :data:`MAX_CELL`), column ``flex`` takes what is left of ``width``
    (at least :data:`MIN_FLEX`); cut cells end with ``…``; the ``right`` columns are right-aligned.
    Cells are written as text, never read as markup."""
    from rich.cells import cell_len

    widths = [cell_len(h) for h in headers]
    for row in rows:
        for index, cell in enumerate(row):
            size = cell_len(cell)
            if size > widths[index]:
                widths[index] = size
    widths = [w if i == flex else min(w, MAX_CELL) for i, w in enumerate(widths)]
    gaps = 2 * (len(headers) - 1)
    widths[flex] = max(MIN_FLEX, min(widths[flex], width - gaps - sum(widths) + widths[flex]))

    def line(cells: tuple[str, ...]) -> str:
        parts = []
        for index, cell in enumerate(cells):
            fitted = fit_cell(cell, widths[index])
            if headers[index] in right:
                fitted = fitted.rstrip().rjust(widths[index])
            parts.append(fitted)
        return "  ".join(parts).rstrip() + "\n"

    rule = "  ".join("─" * w for w in widths) + "\n"
    return line(headers) + rule + "".join(line(row) for row in rows)


def _scoring_config(args: argparse.Namespace) -> Any:
    """The repository's ``scoring.yaml`` (its own, else the shipped one), read without the other files."""
    from bno_orchestrator.commands.core_support import repo
    from bno_orchestrator.config import load_scoring, workflow_file
    from bno_orchestrator.paths import config_root

    return load_scoring(workflow_file(config_root(repo(args)), "scoring.yaml"))


def _keep(task: Any, args: argparse.Namespace) -> bool:
    if args.status and task.status.value not in args.status:
        return False
    if args.agent and args.agent not in task.assignees and args.agent not in task.support:
        return False
    return not (args.type and task.type != args.type)


def run_show(args: argparse.Namespace) -> int:
    """Handle ``task show``."""
    from rich.table import Table

    from bno_orchestrator.events import EventKind

    config = load(args)
    with open_store(args) as store:
        tasks = store.tasks()
        events = store.events(task_id=args.id)
        if store.find(args.id) is None and events and events[-1].kind == EventKind.TASK_DELETED:
            from bno_orchestrator.errors import NotFoundError

            raise NotFoundError(f"{args.id} was deleted (event {events[-1].id} by {events[-1].actor}); "
                                f"`orchestrator task restore {args.id}` brings it back")
        task = store.task(args.id)
        now = store.now()
    score = _scores(config, tasks, None, now)[task.id]
    allowed = config.workflow.targets(task.status.value)
    if args.json:
        finished = [e.payload for e in events if e.kind == EventKind.DISPATCH_FINISHED and "exit_code" in e.payload]
        last = finished[-1] if finished else None
        dispatch = None if last is None else {k: last.get(k) for k in (
            "attempt", "agent", "kind", "exit_code", "timed_out", "error_kind", "error", "cost_usd", "input_tokens",
            "output_tokens", "turns", "session_id", "final_message", "log_file", "changed_files")}
        print_json({"task": _task_json(task, score), "allowed_moves": allowed, "last_dispatch": dispatch,
                    "events": [e.model_dump(mode="json") for e in events]})
        return 0
    out = console()
    fields = Table(title=_line(f"{task.id}: {task.title}"), show_header=False)
    fields.add_column("field", style="bold")
    fields.add_column("value")
    for key, value in task.model_dump(mode="json").items():
        if value not in (None, [], "") and key not in ("id", "title"):
            fields.add_row(key, fmt(value))
    fields.add_row("score", f"{score.value:.4g} ({score.scorer})")
    if score.blocked_by:
        fields.add_row("blocked by", ", ".join(score.blocked_by))
    fields.add_row("allowed moves", ", ".join(f"{k} ({'/'.join(v)})" for k, v in allowed.items()) or "-")
    out.print(fields)
    history = Table(title="history")
    for column in ("#", "when (UTC)", "actor", "kind", "what", "reason"):
        history.add_column(column)
    for event in events:
        history.add_row(str(event.id), event.ts.strftime("%Y-%m-%d %H:%M:%S") if event.ts else "-", event.actor,
                        event.kind, _what(event.kind, event.payload), event.reason)
    out.print(history)
    return 0


def _what(kind: str, payload: dict[str, Any]) -> str:
    from bno_orchestrator.events import EventKind

    if kind == EventKind.TASK_MOVED:
        return f"{payload.get('from')} -> {payload.get('to')}"
    if kind == EventKind.TASK_ROUTED:
        return f"-> {payload.get('primary')} + {fmt(payload.get('secondary'))} ({payload.get('strategy')})"
    if kind == EventKind.TASK_EDITED:
        return ", ".join(sorted(payload.get("changes", {})))
    if kind == EventKind.TASK_ESCALATED:
        return f"{payload.get('rule')}: {fmt(payload.get('agents'))}"
    if kind == EventKind.TASK_DELETED:
        detached = payload.get("detached") or []
        return f"deleted (was {payload.get('task', {}).get('status')})" + (
            f"; dependency removed from {fmt(detached)}" if detached else "")
    if kind == EventKind.TASK_RESTORED:
        return f"restored (as deleted by event {payload.get('deleted_event')})"
    if kind == EventKind.DISPATCH_FINISHED and "exit_code" in payload:
        parts = [f"exit {payload.get('exit_code')}", f"error {payload.get('error_kind') or '-'}"]
        parts += [f"{label} {payload[key]}" for key, label in (
            ("cost_usd", "cost $"), ("input_tokens", "in"), ("output_tokens", "out"), ("turns", "turns"),
            ("session_id", "session")) if payload.get(key) is not None]
        return ", ".join(parts)
    if kind == EventKind.GATES_VERIFIED:
        return f"run {payload.get('run_id')}: {'passed' if payload.get('passed') else 'failed'}"
    return ""


def run_move(args: argparse.Namespace) -> int:
    """Handle ``task move``."""
    from bno_orchestrator.workflow import move_task

    config = load(args)
    with open_store(args) as store:
        before = store.task(args.id).status.value
        task = move_task(store, config.workflow, args.id, args.state, actor=actor_of(args), reason=args.reason)
    return _report_move(args, task, before)


def _report_move(args: argparse.Namespace, task: Any, before: str) -> int:
    if args.json:
        print_json({"task": _task_json(task), "from": before, "to": task.status.value})
    else:
        console().print(_line(f"{task.id}: {before} -> ", (task.status.value, "bold")))
    return 0


def run_block(args: argparse.Namespace) -> int:
    """Handle ``task block``."""
    from bno_orchestrator.workflow import block_task

    config = load(args)
    with open_store(args) as store:
        before = store.task(args.id).status.value
        task = block_task(store, config.workflow, args.id, args.reason, actor=actor_of(args))
    return _report_move(args, task, before)


def run_unblock(args: argparse.Namespace) -> int:
    """Handle ``task unblock``."""
    from bno_orchestrator.workflow import unblock_task

    config = load(args)
    with open_store(args) as store:
        before = store.task(args.id).status.value
        task = unblock_task(store, config.workflow, args.id, actor=actor_of(args), reason=args.reason, to=args.to)
    return _report_move(args, task, before)


def run_explain(args: argparse.Namespace) -> int:
    """Handle ``task explain``."""
    from rich.table import Table

    from bno_orchestrator.scoring import blocking_notes

    config = load(args)
    with open_store(args) as store:
        tasks = store.tasks()
        task = store.task(args.id)
        now = store.now()
    score = _scores(config, tasks, args.scorer, now)[task.id]
    if args.json:
        print_json({"task_id": task.id, **score.as_json()})
        return 0
    table = Table(title=_line(f"{task.id} {task.title}: {score.scorer} = {score.formula}"))
    for column in ("term", "value", "source", "where it came from"):
        table.add_column(column, justify="right" if column == "value" else "left")
    for term in score.terms:
        table.add_row(term.name, num(term.value), term.source, term.note)
    table.add_row(_bold("score"), _bold(num(score.value)), "", "")
    out = console()
    out.print(table)
    for note in blocking_notes(task, score):
        out.print(note)
    return 0


def run_delete(args: argparse.Namespace) -> int:
    """Handle ``task delete``: a recorded, restorable ``task.deleted`` event."""
    from bno_orchestrator.workflow import delete_task

    with open_store(args) as store:
        event = delete_task(store, args.id, actor=actor_of(args), reason=args.reason, force=args.force)
    detached = list(event.payload.get("detached", []))
    if args.json:
        print_json({"deleted": args.id, "event": event.model_dump(mode="json"), "detached": detached})
        return 0
    out = console()
    out.print(_line("deleted ", (args.id, "bold"), f" (event {event.id}; `orchestrator task restore {args.id}` "
                    "brings it back)"))
    if detached:
        out.print(f"removed the dependency on {args.id} from {', '.join(detached)}")
    return 0


def run_restore(args: argparse.Namespace) -> int:
    """Handle ``task restore``: a deleted task back as it was."""
    from bno_orchestrator.workflow import restore_task

    with open_store(args) as store:
        task = restore_task(store, args.id, actor=actor_of(args), reason=args.reason)
    if args.json:
        print_json(_task_json(task))
    else:
        console().print(_line("restored ", (task.id, "bold"), f" {task.title} ({task.status.value})"))
    return 0


def run_undo(args: argparse.Namespace) -> int:
    """Handle ``task undo``: the actor's last create, edit, move, delete or restore, inverted by a new event."""
    from bno_orchestrator.workflow import undo_last

    config = load(args)
    with open_store(args) as store:
        done = undo_last(store, config.workflow, actor=actor_of(args))
    if args.json:
        print_json({"undone": done.undone.model_dump(mode="json"), "event": done.event.model_dump(mode="json"),
                    "task": None if done.task is None else _task_json(done.task), "summary": done.summary})
    else:
        console().print(_line("undid event ", (str(done.undone.id), "bold"),
                              f" ({done.undone.kind}): {done.summary} (event {done.event.id})"))
    return 0


def register(sub: Any) -> None:
    """Add ``task`` and its subcommands."""
    from bno_foundation.cli import CliArgumentParser

    task = sub.add_parser("task", help="add, list, show, edit, move, block, explain, delete and undo tasks")
    tsub = task.add_subparsers(title="task commands", metavar="ACTION", parser_class=CliArgumentParser)

    add = tsub.add_parser("add", help="add a task to the backlog")
    add.add_argument("title")
    add.add_argument("--id", default=None, help="the task id (default: the next T-NNNN)")
    _add_field_flags(add, edit=False)
    add.set_defaults(handler=run_add)

    lst = tsub.add_parser("list", help="tasks ranked by score (blocked last)")
    lst.add_argument("--status", action="append", default=None, help="only this state (repeatable)")
    lst.add_argument("--agent", default=None, help="only tasks of this agent")
    lst.add_argument("--type", default=None, help="only this task type")
    lst.add_argument("--scorer", choices=SCORER_NAMES, default=None)
    lst.add_argument("--limit", type=int, default=None, help="only the first N")
    add_json_flag(lst)
    lst.set_defaults(handler=run_list)

    show = tsub.add_parser("show", help="a task's fields, allowed moves and history")
    show.add_argument("id")
    add_json_flag(show)
    show.set_defaults(handler=run_show)

    edit = tsub.add_parser("edit", help="change a task's fields (not its status)")
    edit.add_argument("id")
    _add_field_flags(edit, edit=True)
    edit.set_defaults(handler=run_edit)

    move = tsub.add_parser("move", help="move a task to another workflow state")
    move.add_argument("id")
    move.add_argument("state")
    add_actor_flag(move)
    move.add_argument("--reason", default="")
    add_json_flag(move)
    move.set_defaults(handler=run_move)

    block = tsub.add_parser("block", help="mark a task blocked (with the reason)")
    block.add_argument("id")
    block.add_argument("--reason", required=True)
    add_actor_flag(block)
    add_json_flag(block)
    block.set_defaults(handler=run_block)

    unblock = tsub.add_parser("unblock", help="return a blocked task to where it was")
    unblock.add_argument("id")
    unblock.add_argument("--to", default=None, help="another state than the one it was blocked from")
    unblock.add_argument("--reason", default="")
    add_actor_flag(unblock)
    add_json_flag(unblock)
    unblock.set_defaults(handler=run_unblock)

    explain = tsub.add_parser("explain", help="each term of the task's score and where it came from")
    explain.add_argument("id")
    explain.add_argument("--scorer", choices=SCORER_NAMES, default=None)
    add_json_flag(explain)
    explain.set_defaults(handler=run_explain)

    delete = tsub.add_parser("delete", help="delete a task (recorded as an event; `task restore` brings it back)")
    delete.add_argument("id")
    delete.add_argument("--reason", default="", help="why (recorded in the event)")
    delete.add_argument("--force", action="store_true",
                        help="also remove it from the dependencies of the tasks that wait for it (each recorded)")
    add_actor_flag(delete)
    add_json_flag(delete)
    delete.set_defaults(handler=run_delete)

    restore = tsub.add_parser("restore", help="bring a deleted task back as it was")
    restore.add_argument("id")
    restore.add_argument("--reason", default="", help="why (recorded in the event)")
    add_actor_flag(restore)
    add_json_flag(restore)
    restore.set_defaults(handler=run_restore)

    undo = tsub.add_parser("undo", help="undo the actor's last task create, edit, move, delete or restore "
                                        "(by a new event)")
    add_actor_flag(undo)
    add_json_flag(undo)
    undo.set_defaults(handler=run_undo)
