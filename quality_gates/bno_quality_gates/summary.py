"""Human summaries of a gate run: a Markdown file per run and a rich table on the terminal."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping
from typing import Any

from bno_quality_gates.results import GateResult, RunRecord

STATUS_STYLE: dict[str, str] = {
    "passed": "green",
    "cached": "cyan",
    "failed": "bold red",
    "errored": "bold magenta",
    "skipped": "yellow",
    "omitted": "yellow",
}


def _fmt_counts(counts: dict[str, Any]) -> str:
    if not counts:
        return ""
    keys = [k for k in ("passed", "failed", "errors", "skipped") if k in counts]
    return " ".join(f"{k} {counts[k]}" for k in keys) if keys else ""


def _fmt_metrics(metrics: dict[str, Any], limit: int = 3) -> str:
    parts = []
    for key, value in metrics.items():
        if isinstance(value, int | float | str | bool):
            parts.append(f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}")
        if len(parts) >= limit:
            break
    return ", ".join(parts)


def _row(result: GateResult) -> list[str]:
    return [
        result.gate,
        result.status,
        "yes" if result.required else "no",
        f"{result.duration:.2f}s",
        str(result.attempts),
        _fmt_counts(result.counts),
        result.reason or _fmt_metrics(result.metrics),
    ]


HEADERS = ["gate", "status", "required", "duration", "attempts", "tests", "detail"]


def status_counts(statuses: Mapping[str, int]) -> str:
    """``{"passed": 3, "failed": 1}`` -> ``1 failed, 3 passed`` (by status name; empty when none ran)."""
    return ", ".join(f"{n} {s}" for s, n in sorted(statuses.items()))


def verdict_line(run: RunRecord) -> str:
    """One line: the verdict and the status counts."""
    counts = status_counts(run.counts())
    if run.passed:
        verdict = "PASSED"
    elif run.exit_code == 0:
        verdict = "NOT GREEN (required gates skipped on request: " + ", ".join(run.overridden) + ")"
    else:
        verdict = "FAILED"
    return f"{verdict}: {counts or 'no gate to run'} in {run.finished - run.started:.2f}s"


def markdown(run: RunRecord) -> str:
    """The run as Markdown: verdict, table, what was not affected and what was skipped on request."""
    when = _dt.datetime.fromtimestamp(run.started, _dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    lines = [
        f"# Gate run {run.run_id}",
        "",
        f"- started: {when}",
        f"- mode: {run.mode}" + (f" (hook {run.hook})" if run.hook else ""),
        f"- base: {run.base or '-'}",
        f"- machine: {run.machine}",
        f"- verdict: **{verdict_line(run)}**",
    ]
    if run.skip_requested:
        lines.append(f"- SKIP requested: {', '.join(run.skip_requested)}")
    if run.not_affected:
        lines.append(f"- not affected by the change: {', '.join(run.not_affected)}")
    if run.changed_files:
        shown = run.changed_files[:30]
        more = f" (+{len(run.changed_files) - 30} more)" if len(run.changed_files) > 30 else ""
        lines.append(f"- changed files: {', '.join(shown)}{more}")
    lines += ["", "| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    for result in run.results:
        cells = [c.replace("|", "\\|").replace("\n", " ") for c in _row(result)]
        lines.append("| " + " | ".join(cells) + " |")
    for result in run.results:
        if result.metrics:
            lines += ["", f"## {result.gate} metrics", "", "```json"]
            import json

            lines.append(json.dumps(result.metrics, indent=2, sort_keys=True, default=str))
            lines.append("```")
    return "\n".join(lines) + "\n"


def render_table(run: RunRecord, console: Any | None = None) -> None:
    """Print the summary table and the verdict with rich."""
    from rich.console import Console
    from rich.table import Table

    if console is None:
        import sys

        console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
    table = Table(title=f"gates run {run.run_id}", show_lines=False)
    for header in HEADERS:
        if header == "detail":
            table.add_column(header, overflow="fold", max_width=70)
        else:
            table.add_column(header, no_wrap=True)
    for result in run.results:
        row = _row(result)
        style = STATUS_STYLE.get(result.status, "")
        row[1] = f"[{style}]{row[1]}[/]" if style else row[1]
        table.add_row(*row)
    console.print(table)
    if run.not_affected:
        console.print(f"not affected: {', '.join(run.not_affected)}")
    colour = "green" if run.passed else ("yellow" if run.exit_code == 0 else "red")
    console.print(f"[{colour}]{verdict_line(run)}[/]")
