"""The gate summaries show user text as text (issue 13, item 4): a gate's reason, a changed file's name and
the progress lines hold markup, emoji codes and terminal control, and print without a crash, with the markup
as typed and no raw ESC, BEL or NUL, even on a plain Rich console (not a safe one)."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from bno_quality_gates.cli import _progress
from bno_quality_gates.results import GateResult, RunRecord
from bno_quality_gates.status import GateStatus
from bno_quality_gates.summary import render_run, render_table

HOSTILE = "fix [/] now [link=https://x]y[/link] :smile: \x1b]0;t\x07 \x00"


def _console() -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    # a plain console that reads markup and emoji codes: the summaries must not rely on a safe one
    return Console(file=buffer, width=400, color_system=None), buffer


def _record() -> RunRecord:
    result = GateResult(gate="lint", status=GateStatus.FAILED, required=True, reason=f"said {HOSTILE}",
                        duration=1.5, attempts=1)
    return RunRecord(run_id="20260101-abc", started=0.0, finished=2.0, mode="all", hook=None, base=None,
                     head=None, machine="m", results=[result], changed_files=[f"src/{HOSTILE}.py"],
                     not_affected=[f"docs {HOSTILE}"])


def _assert_inert(text: str) -> None:
    assert "\x1b" not in text and "\x07" not in text and "\x00" not in text, repr(text)


def test_run_table_and_record_show_reasons_and_file_names_as_typed() -> None:
    console, buffer = _console()
    render_run(_record(), console)
    out = buffer.getvalue()
    _assert_inert(out)
    shown = "fix [/] now [link=https://x]y[/link] :smile: \\x1b]0;t\\x07 \\x00"
    assert f"said {shown}" in out  # the reason in the table
    assert f"changed files: src/{shown}.py" in out and f"not affected: docs {shown}" in out
    assert "😄" not in out


def test_default_console_of_the_table_is_safe(capsys: pytest.CaptureFixture[str]) -> None:
    render_table(_record())
    out = capsys.readouterr().out
    _assert_inert(out)
    assert "[link=https://x]y[/link] :smile:" in out


def test_progress_lines_show_gate_names_and_reasons_as_typed() -> None:
    console, buffer = _console()
    on_event = _progress(console)
    on_event("start", f"gate {HOSTILE}", None)
    on_event("end", "lint", GateResult(gate="lint", status=GateStatus.FAILED, required=True,
                                       reason=f"because {HOSTILE}", duration=0.25))
    out = buffer.getvalue()
    _assert_inert(out)
    lines = out.splitlines()
    assert lines[0] == "… gate fix [/] now [link=https://x]y[/link] :smile: ␛]0;t␇ ␀ started"
    assert lines[1] == "  failed lint 0.25s (because fix [/] now [link=https://x]y[/link] :smile: ␛]0;t␇ ␀)"
