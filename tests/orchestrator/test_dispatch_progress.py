"""Progress records and the stream readers of the agent CLIs, on event lines recorded from the tested versions
(claude 2.1.197, codex 0.171.0, gemini 0.61.0) run against the scripted model server."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bno_orchestrator.dispatch.cli_agents import parse_claude, parse_codex, parse_gemini
from bno_orchestrator.dispatch.cli_stream import StreamMonitor
from bno_orchestrator.dispatch.progress import Progress, ProgressSink, one_line, progress_path, read_progress

WT = "/tmp/run/wt"

CLAUDE = [
    {"type": "system", "subtype": "init", "cwd": WT, "session_id": "c-1", "claude_code_version": "2.1.197"},
    {"type": "assistant", "parent_tool_use_id": None, "session_id": "c-1", "message": {
        "id": "msg_1", "content": [{"type": "tool_use", "id": "tu_1", "name": "Write",
                                    "input": {"file_path": f"{WT}/mod.txt", "content": "fixed\n"}}]}},
    {"type": "user", "parent_tool_use_id": None, "session_id": "c-1", "message": {"content": [
        {"type": "tool_result", "tool_use_id": "tu_1", "content": "File created successfully"}]}},
    {"type": "assistant", "parent_tool_use_id": None, "session_id": "c-1", "message": {
        "id": "msg_2", "content": [{"type": "tool_use", "id": "tu_2", "name": "Write",
                                    "input": {"file_path": "/tmp/run/outside.txt", "content": "x"}}]}},
    {"type": "user", "parent_tool_use_id": None, "session_id": "c-1", "message": {"content": [
        {"type": "tool_result", "tool_use_id": "tu_2", "is_error": True,
         "content": "Claude requested permissions to write to /tmp/run/outside.txt, but you haven't granted it yet."}]}},
    {"type": "assistant", "parent_tool_use_id": None, "session_id": "c-1", "message": {
        "id": "msg_3", "content": [{"type": "text", "text": "mod.txt now says fixed"}]}},
    {"type": "result", "subtype": "success", "is_error": False, "num_turns": 3, "result": "mod.txt now says fixed",
     "session_id": "c-1", "total_cost_usd": 0.2, "usage": {"input_tokens": 39167, "output_tokens": 53},
     "permission_denials": [{"tool_name": "Write"}]},
]
CODEX = [
    {"type": "thread.started", "thread_id": "x-1"},
    {"type": "turn.started"},
    {"type": "item.started", "item": {"id": "item_0", "type": "file_change", "status": "in_progress",
                                      "changes": [{"path": f"{WT}/mod.txt", "kind": "add"}]}},
    {"type": "item.completed", "item": {"id": "item_0", "type": "file_change", "status": "completed",
                                        "changes": [{"path": f"{WT}/mod.txt", "kind": "add"}]}},
    {"type": "item.started", "item": {"id": "item_1", "type": "command_execution", "command": "bash -lc 'pytest -q'"}},
    {"type": "item.completed", "item": {"id": "item_2", "type": "agent_message", "text": "mod.txt now says fixed"}},
    {"type": "turn.completed", "usage": {"input_tokens": 19811, "output_tokens": 104}},
]
GEMINI = [
    {"type": "init", "session_id": "g-1", "model": "gemini-2.5-flash"},
    {"type": "message", "role": "user", "content": "make mod.txt say fixed"},
    {"type": "tool_use", "tool_name": "write_file", "tool_id": "w1",
     "parameters": {"file_path": "mod.txt", "content": "fixed\n"}},
    {"type": "tool_result", "tool_id": "w1", "status": "success"},
    {"type": "tool_use", "tool_name": "write_file", "tool_id": "w2",
     "parameters": {"file_path": "/tmp/run/outside.txt", "content": "x\n"}},
    {"type": "tool_result", "tool_id": "w2", "status": "error", "error": {
        "type": "invalid_tool_params", "message": "Path not in workspace: Attempted path \"/tmp/run/outside.txt\" "
                                                  "resolves outside the allowed workspace directories"}},
    {"type": "message", "role": "assistant", "content": "mod.txt now", "delta": True},
    {"type": "message", "role": "assistant", "content": " says fixed", "delta": True},
    {"type": "result", "status": "success", "stats": {"input_tokens": 20369, "output_tokens": 29, "tool_calls": 2}},
]


def lines(events: list[dict[str, object]]) -> str:
    return "".join(json.dumps(e) + "\n" for e in events)


def records(kind: str, events: list[dict[str, object]], **options: object) -> tuple[StreamMonitor, list[tuple[str, str]]]:
    seen: list[tuple[str, str]] = []
    monitor = StreamMonitor(kind, worktree=Path(WT), emit=lambda k, t: seen.append((k, t)), **options)  # type: ignore[arg-type]
    monitor.feed_text(lines(events))
    return monitor, seen


def test_each_cli_stream_becomes_turn_tool_edit_message_and_error_records() -> None:
    _, claude = records("claude", CLAUDE, max_turns=6)
    assert claude == [("turn", "turn 1/6"), ("edit", "Write mod.txt"), ("turn", "turn 2/6"),
                      ("edit", "Write /tmp/run/outside.txt"),
                      ("error", "Write failed: Claude requested permissions to write to /tmp/run/outside.txt, but "
                                "you haven't granted it yet."),
                      ("turn", "turn 3/6"), ("message", "assistant: mod.txt now says fixed")]
    _, codex = records("codex", CODEX)
    assert codex == [("turn", "turn 1"), ("edit", "Write mod.txt"), ("turn", "turn 2"),
                     ("tool", "$ bash -lc 'pytest -q'"), ("message", "assistant: mod.txt now says fixed")]
    monitor, gemini = records("gemini", GEMINI, max_turns=6)
    assert gemini[:3] == [("turn", "turn 1/6"), ("edit", "write_file mod.txt"), ("turn", "turn 2/6")]
    assert gemini[4][0] == "error" and gemini[4][1].startswith("write_file failed: Path not in workspace")
    assert gemini[5:] == [("turn", "turn 3/6"), ("message", "assistant: mod.txt now says fixed")]
    assert monitor.denials == 1 and monitor.session_id == "g-1"


def test_the_outcome_is_parsed_from_each_stream() -> None:
    claude = parse_claude(0, lines(CLAUDE), "")
    assert (claude.error_kind, claude.turns, claude.session_id, claude.message, claude.permission_denials,
            claude.input_tokens) == (None, 3, "c-1", "mod.txt now says fixed", 1, 39167)
    codex = parse_codex(0, lines(CODEX), "ERROR codex_core::tools::router: error=patch rejected: writing outside "
                                         "of the project; rejected by user approval settings\n")
    assert (codex.error_kind, codex.turns, codex.session_id, codex.message, codex.permission_denials,
            codex.output_tokens) == (None, 3, "x-1", "mod.txt now says fixed", 1, 104)
    gemini = parse_gemini(0, lines(GEMINI), "")
    assert (gemini.error_kind, gemini.turns, gemini.session_id, gemini.message, gemini.permission_denials,
            gemini.input_tokens) == (None, 3, "g-1", "mod.txt now says fixed", 1, 20369)


def test_stream_errors_are_classified() -> None:
    limit = [*GEMINI[:4], {"type": "result", "status": "error", "error": {
        "type": "FatalTurnLimitedError", "message": "Reached max session turns for this session."}, "stats": {}}]
    assert parse_gemini(53, lines(limit), "").error_kind == "turn_limit"
    assert parse_gemini(41, "", "When using Gemini API, you must specify the GEMINI_API_KEY environment variable."
                        ).error_kind == "not_logged_in"
    refused = [{"type": "assistant", "error": "authentication_failed", "parent_tool_use_id": None,
                "message": {"id": "m", "content": [{"type": "text", "text": "Not logged in · Please run /login"}]}},
               {"type": "result", "subtype": "success", "is_error": True, "result": "Not logged in · Please run /login"}]
    assert parse_claude(1, lines(refused), "").error_kind == "not_logged_in"
    down = [{"type": "assistant", "error": "server_error", "parent_tool_use_id": None,
             "message": {"id": "m", "content": [{"type": "text", "text": "API Error: Unable to connect to API"}]}},
            {"type": "result", "subtype": "success", "is_error": True, "result": "API Error"}]
    assert parse_claude(1, lines(down), "").error_kind == "network"
    maxed = [{"type": "result", "subtype": "error_max_turns", "is_error": True, "num_turns": 3,
              "errors": ["Reached maximum number of turns (2)"]}]
    assert parse_claude(1, lines(maxed), "").error_kind == "turn_limit"


def test_the_codex_reader_stops_at_the_turn_limit_and_on_the_network_wait() -> None:
    edits = [{"type": "item.started", "item": {"id": f"i{n}", "type": "command_execution", "command": "ls"}}
             for n in range(4)]
    monitor, _ = records("codex", edits, max_turns=3, enforce_turns=True)
    assert monitor.stop is not None and monitor.stop[0] == "turn_limit" and monitor.tool_calls == 4
    monitor, _ = records("codex", edits[:3], max_turns=3, enforce_turns=True)
    assert monitor.stop is None  # exactly at the limit is allowed
    monitor, seen = records("codex", [{"type": "error", "message": "Reconnecting... waiting for network 1/5"}])
    assert monitor.stop == ("network", "Reconnecting... waiting for network") and seen[0][0] == "error"


def test_progress_records_are_one_flushed_json_line_each(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "T-1" / "3.log"
    path = progress_path(log)
    assert path == tmp_path / "logs" / "T-1" / "3.progress.jsonl"
    got: list[Progress] = []
    with ProgressSink(path, got.append) as sink:
        sink.emit("message", "assistant: line one\n\tline two " + "x" * 500)
        assert len(read_progress(path)) == 1  # readable while the sink is still open
        sink.emit("edit", "Write mod.txt")
    first = json.loads(path.read_text().splitlines()[0])
    assert set(first) == {"t", "kind", "text"} and len(first["text"]) == 200 and first["text"].endswith("…")
    assert first["text"].startswith("assistant: line one line two x")
    assert datetime.fromisoformat(first["t"]).tzinfo is not None and got[0].time.tzinfo == UTC
    with open(path, "a", encoding="utf-8") as handle:
        handle.write('{"t": "2026-01-01T00:00:00+00:00", "kind": "tu')  # a line still being written
    assert [(p.kind, p.text) for p in read_progress(path)] == [(r.kind, r.text) for r in got]
    assert one_line("  a \n b  ") == "a b"
    with pytest.raises(ValueError, match="progress kind 'thought'"):
        Progress(datetime.now(UTC), "thought", "hm")
