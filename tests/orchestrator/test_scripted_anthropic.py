"""The scripted model's Anthropic Messages dialect: on the wire, and driving the real Claude Code CLI.

The wire tests speak plain HTTP shaped exactly like the Messages API (and the official ``anthropic``
client where it is installed); the end-to-end tests run the real ``claude`` binary (found by
``bno_orchestrator.dispatch.clis.find_binary``: ``$BNO_AGENT_BIN_DIR``, ``.agent-clis/``, PATH) against the server in a temporary git repository, with its
configuration isolated in a temporary HOME, and are skipped when the binary is absent.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bno_orchestrator.scripted_model import HttpFailure, Reply, Scenario, ScriptedModelServer, WriteFile
from bno_orchestrator.scripted_model.anthropic import (
    AnthropicMessages,
    error_type,
    is_main_turn,
    working_directory,
)
from tests.orchestrator.dispatch_helpers import installed_cli

KEY = "test-anthropic-key"
HTTP_TIMEOUT = 10
CLAUDE_TIMEOUT = 120
WRITE_TOOL = {"name": "Write", "description": "Write a file",
              "input_schema": {"type": "object", "properties": {"file_path": {"type": "string"},
                                                                "content": {"type": "string"}}}}
READ_TOOL = {"name": "Read", "description": "Read a file",
             "input_schema": {"type": "object", "properties": {"file_path": {"type": "string"}}}}


def _server(*steps: WriteFile | Reply | HttpFailure, repeat_last: bool = False) -> ScriptedModelServer:
    return ScriptedModelServer(Scenario(list(steps), repeat_last=repeat_last), dialects=[AnthropicMessages()],
                               api_key=KEY)


def _post(server: ScriptedModelServer, path: str, body: dict[str, Any], *,
          headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=HTTP_TIMEOUT)
    try:
        sent = {"content-type": "application/json", "anthropic-version": "2023-06-01"}
        sent.update({"x-api-key": KEY} if headers is None else headers)
        conn.request("POST", path, body=json.dumps(body).encode(), headers=sent)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def _events(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    """``(event, data)`` pairs of a server-sent event stream."""
    events = []
    for chunk in raw.decode().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in chunk.splitlines() if ": " in line)
        if "data" in lines:
            events.append((lines.get("event", ""), json.loads(lines["data"])))
    return events


def _turn(cwd: str = "/work/wt", **extra: Any) -> dict[str, Any]:
    """A Claude-Code-shaped agent turn: tools, a system prompt stating the working directory."""
    body: dict[str, Any] = {
        "model": "claude-sonnet-4-5", "max_tokens": 32000,
        "system": [{"type": "text", "text": "You are Claude Code."},
                   {"type": "text", "text": f"# Environment\n - Primary working directory: {cwd}\n - Platform: linux"}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "write hello.txt"}]}],
        "tools": [READ_TOOL, WRITE_TOOL],
    }
    body.update(extra)
    return body


# --- the wire -------------------------------------------------------------------------------------------


def test_json_reply_is_a_message_and_consumes_a_step() -> None:
    with _server(Reply("all done")) as server:
        status, headers, raw = _post(server, "/v1/messages", _turn())
    assert status == 200 and headers["content-type"] == "application/json"
    message = json.loads(raw)
    assert message["type"] == "message" and message["role"] == "assistant"
    assert message["model"] == "claude-sonnet-4-5"
    assert message["content"] == [{"type": "text", "text": "all done"}]
    assert message["stop_reason"] == "end_turn" and message["stop_sequence"] is None
    assert message["usage"]["input_tokens"] > 0 and message["usage"]["output_tokens"] > 0
    assert message["id"].startswith("msg_")
    assert server.scenario.consumed == 1
    assert [r.main for r in server.requests] == [True] and server.requests[0].dialect == "anthropic"


def test_streamed_write_is_a_write_tool_call_with_an_absolute_path(tmp_path: Path) -> None:
    with _server(WriteFile("src/hello.txt", "hello\n")) as server:
        status, headers, raw = _post(server, "/v1/messages", _turn(str(tmp_path), stream=True))
    assert status == 200 and headers["content-type"] == "text/event-stream"
    events = _events(raw)
    names = [name for name, _ in events]
    assert names == ["message_start", "content_block_start", "ping", "content_block_delta", "content_block_stop",
                     "message_delta", "message_stop"]
    assert all(data["type"] == name for name, data in events)
    start = events[1][1]["content_block"]
    assert start["type"] == "tool_use" and start["name"] == "Write" and start["input"] == {}
    assert start["id"].startswith("toolu_")
    delta = events[3][1]["delta"]
    assert delta["type"] == "input_json_delta"
    assert json.loads(delta["partial_json"]) == {"file_path": f"{tmp_path}/src/hello.txt", "content": "hello\n"}
    assert events[5][1]["delta"]["stop_reason"] == "tool_use"
    assert events[5][1]["usage"]["output_tokens"] > 0
    assert events[0][1]["message"]["usage"]["input_tokens"] > 0


def test_streamed_text_reply() -> None:
    with _server(Reply("finished")) as server:
        _, _, raw = _post(server, "/v1/messages", _turn(stream=True))
    events = dict(_events(raw))
    assert events["content_block_start"]["content_block"] == {"type": "text", "text": ""}
    assert events["content_block_delta"]["delta"] == {"type": "text_delta", "text": "finished"}
    assert events["message_delta"]["delta"]["stop_reason"] == "end_turn"


def test_overwriting_an_existing_file_reads_it_first(tmp_path: Path) -> None:
    (tmp_path / "hello.txt").write_text("old\n")
    with _server(WriteFile("hello.txt", "new\n"), Reply("ok")) as server:
        _, _, raw = _post(server, "/v1/messages", _turn(str(tmp_path)))
        read = json.loads(raw)["content"][0]
        assert read["name"] == "Read" and read["input"] == {"file_path": f"{tmp_path}/hello.txt"}
        follow_up = _turn(str(tmp_path))
        follow_up["messages"] += [
            {"role": "assistant", "content": [read]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": read["id"], "content": "1\told"}]},
        ]
        _, _, raw = _post(server, "/v1/messages", follow_up)
        write = json.loads(raw)["content"][0]
        assert write["name"] == "Write"
        assert write["input"] == {"file_path": f"{tmp_path}/hello.txt", "content": "new\n"}
        assert server.scenario.consumed == 1  # the write after the read used no new step
        _, _, raw = _post(server, "/v1/messages", _turn(str(tmp_path)))
        assert json.loads(raw)["content"] == [{"type": "text", "text": "ok"}]
    assert [r.main for r in server.requests] == [True, False, True]


def test_side_requests_do_not_consume_steps() -> None:
    with _server(Reply("the real answer")) as server:
        quota = {"model": "claude-haiku-4-5", "max_tokens": 1, "messages": [{"role": "user", "content": "quota"}]}
        status, _, raw = _post(server, "/v1/messages", quota)
        assert status == 200 and json.loads(raw)["content"][0]["type"] == "text"
        title = {"model": "claude-haiku-4-5", "max_tokens": 512, "stream": True, "system": "Generate a title",
                 "messages": [{"role": "user", "content": "write hello.txt"}]}
        status, _, raw = _post(server, "/v1/messages", title)
        assert status == 200 and _events(raw)[-1][0] == "message_stop"
        status, _, raw = _post(server, "/v1/messages/count_tokens", {"model": "m", "messages": quota["messages"]})
        assert status == 200 and json.loads(raw)["input_tokens"] > 0
        assert server.scenario.consumed == 0
        _, _, raw = _post(server, "/v1/messages", _turn())
        assert json.loads(raw)["content"][0]["text"] == "the real answer"
    assert [r.main for r in server.requests] == [False, False, False, True]


@pytest.mark.parametrize("headers", [{}, {"x-api-key": "wrong"}, {"authorization": "Bearer wrong"}])
def test_a_missing_or_wrong_key_gets_anthropics_401(headers: dict[str, str]) -> None:
    with _server(Reply("never")) as server:
        status, _, raw = _post(server, "/v1/messages", _turn(), headers=headers)
    assert status == 401
    error = json.loads(raw)
    assert error["type"] == "error" and error["error"]["type"] == "authentication_error"
    assert error["error"]["message"]
    assert server.scenario.consumed == 0


def test_a_bearer_key_is_accepted() -> None:
    with _server(Reply("hi")) as server:
        status, _, _ = _post(server, "/v1/messages", _turn(), headers={"authorization": f"Bearer {KEY}"})
    assert status == 200


@pytest.mark.parametrize(("status", "kind"), [(400, "invalid_request_error"), (403, "permission_error"),
                                              (429, "rate_limit_error"), (500, "api_error"),
                                              (529, "overloaded_error"), (503, "api_error")])
def test_http_failure_is_an_anthropic_error(status: int, kind: str) -> None:
    with _server(HttpFailure(status, "scripted failure")) as server:
        got, _, raw = _post(server, "/v1/messages", _turn(stream=True))
    assert got == status
    assert json.loads(raw)["error"] == {"type": kind, "message": "scripted failure"}
    assert error_type(status) == kind


def test_working_directory_and_main_turn_detection() -> None:
    assert working_directory(_turn("/a/b c")) == "/a/b c"
    assert working_directory({"system": "Working directory: /x/y\nIs a git repository: true"}) == "/x/y"
    mid_conversation = {"messages": [{"role": "system", "content": "<env>\nWorking directory: /m/n\n</env>"}]}
    assert working_directory(mid_conversation) == "/m/n"
    assert working_directory({"system": [{"type": "text", "text": "CWD: /bare/wt\nDate: 2026-12-03"}]}) == "/bare/wt"
    assert working_directory({"system": "nothing here"}) is None
    read_back = {"messages": [{"role": "user", "content": [{"type": "tool_result", "content": "Working directory: /no"}]}]}
    assert working_directory(read_back) is None
    assert is_main_turn(_turn())
    assert is_main_turn({"max_tokens": 32000, "messages": []})  # a tool-less client's real turn
    assert not is_main_turn({"max_tokens": 1, "messages": [{"role": "user", "content": "quota"}]})


def test_edit_stands_in_for_write_where_only_edit_is_offered(tmp_path: Path) -> None:
    (tmp_path / "old.txt").write_text("before\n")
    edit_tool = {"name": "Edit", "input_schema": {"type": "object"}}
    with _server(WriteFile("new.txt", "fresh\n"), WriteFile("old.txt", "after\n")) as server:
        _, _, raw = _post(server, "/v1/messages", _turn(str(tmp_path), tools=[READ_TOOL, edit_tool]))
        create = json.loads(raw)["content"][0]
        assert create["name"] == "Edit"
        assert create["input"] == {"file_path": f"{tmp_path}/new.txt", "old_string": "", "new_string": "fresh\n",
                                   "replace_all": False}
        _, _, raw = _post(server, "/v1/messages", _turn(str(tmp_path), tools=[READ_TOOL, edit_tool]))
        read = json.loads(raw)["content"][0]
        assert read["name"] == "Read"
        follow_up = _turn(str(tmp_path), tools=[READ_TOOL, edit_tool])
        follow_up["messages"] += [
            {"role": "assistant", "content": [read]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": read["id"], "content": "before"}]},
        ]
        _, _, raw = _post(server, "/v1/messages", follow_up)
        replace = json.loads(raw)["content"][0]
        assert replace["name"] == "Edit"
        assert (replace["input"]["old_string"], replace["input"]["new_string"]) == ("before\n", "after\n")


def test_relative_write_without_a_stated_cwd_stays_relative() -> None:
    body = _turn()
    body["system"] = "no environment section"
    with _server(WriteFile("hello.txt", "x")) as server:
        _, _, raw = _post(server, "/v1/messages", body)
    assert json.loads(raw)["content"][0]["input"]["file_path"] == "hello.txt"


def test_official_anthropic_client(tmp_path: Path) -> None:
    anthropic = pytest.importorskip("anthropic")
    with _server(WriteFile("hello.txt", "hi\n"), Reply("done"), HttpFailure(429, "slow down")) as server:
        client = anthropic.Anthropic(api_key=KEY, base_url=server.url, max_retries=0, timeout=HTTP_TIMEOUT)
        body = _turn(str(tmp_path))
        with client.messages.stream(model=body["model"], max_tokens=body["max_tokens"], system=body["system"],
                                    messages=body["messages"], tools=body["tools"]) as stream:
            message = stream.get_final_message()
        assert message.stop_reason == "tool_use"
        assert message.content[0].name == "Write"
        assert message.content[0].input == {"file_path": f"{tmp_path}/hello.txt", "content": "hi\n"}
        reply = client.messages.create(model=body["model"], max_tokens=body["max_tokens"],
                                       messages=body["messages"], tools=body["tools"])
        assert reply.content[0].text == "done" and reply.stop_reason == "end_turn"
        with pytest.raises(anthropic.RateLimitError):
            client.messages.create(model=body["model"], max_tokens=8192, messages=body["messages"])
        bad = anthropic.Anthropic(api_key="wrong", base_url=server.url, max_retries=0, timeout=HTTP_TIMEOUT)
        with pytest.raises(anthropic.AuthenticationError):
            bad.messages.create(model=body["model"], max_tokens=8192, messages=body["messages"])


# --- the real Claude Code CLI ---------------------------------------------------------------------------


@pytest.fixture
def claude() -> Path:
    return installed_cli("claude")


@pytest.fixture
def worktree(tmp_path: Path) -> Iterator[Path]:
    repo = tmp_path / "wt"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True, timeout=30)
    yield repo


def _run_claude(claude: Path, server: ScriptedModelServer, worktree: Path, *args: str,
                key: str | None = KEY) -> tuple[int, dict[str, Any]]:
    home = worktree.parent / "home"
    home.mkdir(exist_ok=True)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home),
           "CLAUDE_CONFIG_DIR": str(home / ".claude"), "ANTHROPIC_BASE_URL": server.url,
           "DISABLE_AUTOUPDATER": "1", "DISABLE_TELEMETRY": "1", "DISABLE_ERROR_REPORTING": "1",
           "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "CLAUDE_CODE_MAX_RETRIES": "0",
           "API_TIMEOUT_MS": "30000"}
    if key is not None:
        env["ANTHROPIC_API_KEY"] = key
    done = subprocess.run([str(claude), "-p", "--output-format", "json", *args], input="Do the task.",
                          capture_output=True, text=True, cwd=worktree, env=env, timeout=CLAUDE_TIMEOUT)
    assert done.stdout.strip(), done.stderr
    return done.returncode, json.loads(done.stdout)


def test_claude_writes_a_file_in_the_worktree(claude: Path, worktree: Path) -> None:
    with _server(WriteFile("hello.txt", "hello from claude\n"), Reply("I wrote hello.txt")) as server:
        rc, result = _run_claude(claude, server, worktree, "--permission-mode", "acceptEdits", "--max-turns", "5")
    assert rc == 0, result
    assert (worktree / "hello.txt").read_text() == "hello from claude\n"
    assert result["type"] == "result" and result["subtype"] == "success" and result["is_error"] is False
    assert result["result"] == "I wrote hello.txt"
    assert result["num_turns"] == 2 and result["permission_denials"] == []
    assert result["session_id"] and result["total_cost_usd"] > 0 and result["usage"]["input_tokens"] > 0
    assert len(server.main_requests()) == 2 and server.scenario.consumed == 2
    assert not (worktree / ".claude").exists()  # its own files went to CLAUDE_CONFIG_DIR


def test_claude_overwrites_an_existing_file(claude: Path, worktree: Path) -> None:
    (worktree / "hello.txt").write_text("old\n")
    with _server(WriteFile("hello.txt", "new\n"), Reply("updated")) as server:
        rc, result = _run_claude(claude, server, worktree, "--permission-mode", "acceptEdits", "--max-turns", "5")
    assert rc == 0 and result["subtype"] == "success", result
    assert (worktree / "hello.txt").read_text() == "new\n"
    assert result["num_turns"] == 3  # Read, Write, reply


def test_claude_bare_mode_writes_through_edit(claude: Path, worktree: Path) -> None:
    (worktree / "old.txt").write_text("before\n")
    with _server(WriteFile("new.txt", "fresh\n"), WriteFile("old.txt", "after\n"), Reply("ok")) as server:
        rc, result = _run_claude(claude, server, worktree, "--bare", "--permission-mode", "acceptEdits",
                                 "--max-turns", "6")
    assert rc == 0 and result["subtype"] == "success" and result["permission_denials"] == [], result
    assert (worktree / "new.txt").read_text() == "fresh\n"
    assert (worktree / "old.txt").read_text() == "after\n"


def test_claude_refuses_a_write_outside_the_worktree(claude: Path, worktree: Path) -> None:
    outside = worktree.parent / "outside-xyz.txt"
    with _server(WriteFile(str(outside), "escaped\n"), Reply("tried")) as server:
        rc, result = _run_claude(claude, server, worktree, "--permission-mode", "acceptEdits", "--max-turns", "5")
    assert not outside.exists()
    assert rc == 0 and result["subtype"] == "success"  # the refusal does not fail the run...
    assert [d["tool_input"]["file_path"] for d in result["permission_denials"]] == [str(outside)]  # ...it is listed


def test_claude_stops_at_the_turn_limit(claude: Path, worktree: Path) -> None:
    with _server(WriteFile("hello.txt", "again\n"), repeat_last=True) as server:
        rc, result = _run_claude(claude, server, worktree, "--permission-mode", "acceptEdits", "--max-turns", "2")
    assert rc == 1
    assert result["subtype"] == "error_max_turns" and result["is_error"] is True
    assert result["errors"] == ["Reached maximum number of turns (2)"]
    assert len(server.main_requests()) == 2


def test_claude_with_a_wrong_key_fails_fast(claude: Path, worktree: Path) -> None:
    with _server(Reply("never")) as server:
        rc, result = _run_claude(claude, server, worktree, "--max-turns", "2", key="wrong-key")
    assert rc == 1 and result["is_error"] is True and result["api_error_status"] == 401
    assert result["result"].startswith("Invalid API key")
    assert server.scenario.consumed == 0
