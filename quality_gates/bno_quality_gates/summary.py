"""Human summaries of a gate run: a Markdown file per run, a rich table on the terminal, and the tail of each
failing gate's output (control characters made visible, shown as text, never as markup)."""

from __future__ import annotations

import datetime as _dt
import unicodedata
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bno_foundation.terminal import escaped
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


def record_from_json(data: Mapping[str, Any]) -> RunRecord:
    """A stored run record (``RunRecord.to_json()``) read back; derived keys (verdict, duration) are dropped."""
    import dataclasses

    result_fields = {f.name for f in dataclasses.fields(GateResult)}
    run_fields = {f.name for f in dataclasses.fields(RunRecord)}
    values = {k: v for k, v in data.items() if k in run_fields}
    values["results"] = [GateResult(**{k: v for k, v in r.items() if k in result_fields})
                         for r in data.get("results", [])]
    return RunRecord(**values)


def render_run(run: RunRecord, console: Any) -> None:
    """One recorded run in full: what was tested, the table of its gates and the verdict."""
    from rich.text import Text

    when = _dt.datetime.fromtimestamp(run.started, _dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    facts = [("started", when), ("mode", run.mode + (f" (hook {run.hook})" if run.hook else "")),
             ("base", run.base or "-"), ("head", run.head or "-"), ("machine", run.machine),
             ("records", run.run_dir or "-")]
    if run.skip_requested:
        facts.append(("SKIP requested", ", ".join(run.skip_requested)))
    if run.changed_files:
        more = f" (+{len(run.changed_files) - 10} more)" if len(run.changed_files) > 10 else ""
        facts.append(("changed files", ", ".join(run.changed_files[:10]) + more))
    for label, value in facts:
        line = Text(f"{label}: ", style="dim")
        line.append(visible(value))
        console.print(line)
    render_table(run, console)


TAIL_LINES = 30
_KEPT_CONTROLS = frozenset("\n\t")


def visible(text: str) -> str:
    """``text`` with every control or format character (ANSI escapes, carriage returns, bidi overrides) shown
    as an escape such as ``\\x1b``; newlines and tabs stay."""
    text = text.replace("\r\n", "\n")
    out: list[str] = []
    for ch in text:
        if ch in _KEPT_CONTROLS or unicodedata.category(ch) not in ("Cc", "Cf"):
            out.append(ch)
        else:
            out.append(escaped(ch))
    return "".join(out)


def output_tail(text: str, lines: int = TAIL_LINES) -> tuple[str, int]:
    """(the last ``lines`` lines of ``text``, made :func:`visible`; how many lines ``text`` has)."""
    all_lines = visible(text).rstrip("\n").split("\n") if text.strip() else []
    return "\n".join(all_lines[-lines:]), len(all_lines)


def failure_tails(run: RunRecord, lines: int = TAIL_LINES) -> list[tuple[GateResult, str, int]]:
    """For each gate that failed or errored and left a log: (result, the tail of its log, its line count)."""
    out: list[tuple[GateResult, str, int]] = []
    for result in run.results:
        if result.status not in ("failed", "errored") or not result.log_path:
            continue
        try:
            text = Path(result.log_path).read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        tail, count = output_tail(text, lines)
        if tail:
            out.append((result, tail, count))
    return out


def render_failures(run: RunRecord, console: Any, lines: int = TAIL_LINES) -> None:
    """Print the tail of each failing gate's output on ``console`` (as plain text: no markup is read)."""
    from rich.text import Text

    for result, tail, count in failure_tails(run, lines):
        shown = min(lines, count)
        header = Text(visible(f"── {result.gate} {result.status}: "), style="bold red")
        header.append(visible(f"last {shown} of {count} line(s) of {result.log_path}" if count > shown
                              else f"its output ({result.log_path})"), style="dim")
        console.print(header)
        console.print(Text(tail), soft_wrap=True)


def render_table(run: RunRecord, console: Any | None = None) -> None:
    """Print the summary table and the verdict with rich (gate names, reasons and paths shown as text, never
    as markup or terminal control)."""
    from rich.table import Table
    from rich.text import Text

    if console is None:
        import sys

        from bno_foundation.terminal import safe_console

        console = safe_console(highlight=False, width=None if sys.stdout.isatty() else 160)
    table = Table(title=Text(visible(f"gates run {run.run_id}"), style="italic"), show_lines=False)
    for header in HEADERS:
        if header == "detail":
            table.add_column(header, overflow="fold", max_width=70)
        else:
            table.add_column(header, no_wrap=True)
    for result in run.results:
        row: list[Any] = [Text(visible(cell)) for cell in _row(result)]  # user text: never markup or control
        row[1].stylize(STATUS_STYLE.get(result.status, ""))
        table.add_row(*row)
    console.print(table)
    if run.not_affected:
        console.print(Text(visible(f"not affected: {', '.join(run.not_affected)}")))
    colour = "green" if run.passed else ("yellow" if run.exit_code == 0 else "red")
    console.print(Text(visible(verdict_line(run)), style=colour))
