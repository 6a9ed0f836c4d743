"""The OpenAI dialects of the scripted model server, and the real Codex CLI against it.

The dialect tests use the official ``openai`` client when it is installed, and urllib requests shaped
like the API otherwise (both run when they can). The Codex tests run the real ``codex exec --json``
(found by ``bno_orchestrator.dispatch.clis.find_binary``) in a temporary git repository with an
isolated ``HOME``/``CODEX_HOME``, pointed at the server by a custom model provider; they are skipped,
with the reason, when the binary is absent. Everything listens on 127.0.0.1 and every wait is bounded.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bno_orchestrator.dispatch.clis import find_binary
from bno_orchestrator.scripted_model import HttpFailure, Reply, Scenario, ScriptedModelServer, WriteFile
from bno_orchestrator.scripted_model.openai import (
    OpenAIChatCompletions,
    OpenAIResponses,
    add_file_patch,
    whole_format,
)

KEY = "scripted-key"
TIMEOUT = 10
CODEX_TIMEOUT = 90
WRITE_TOOL = {"type": "function", "name": "write_file", "description": "Write a file.",
              "parameters": {"type": "object", "properties": {"path": {"type": "string"},
                                                              "content": {"type": "string"}},
                             "required": ["path", "content"]}}
CHAT_WRITE_TOOL = {"type": "function", "function": {k: v for k, v in WRITE_TOOL.items() if k != "type"}}


def _server(*steps: Any, api_key: str | None = KEY) -> ScriptedModelServer:
    return ScriptedModelServer(Scenario(list(steps)), dialects=[OpenAIResponses(), OpenAIChatCompletions()],
                               api_key=api_key)


def _post(url: str, body: Any, key: str | None = KEY) -> tuple[int, str, str]:
    """POST JSON; (status, content type, body text)."""
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            return response.status, response.headers.get("Content-Type", ""), response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Content-Type", ""), error.read().decode()


def _sse(text: str) -> list[tuple[str | None, str]]:
    """The ``(event, data)`` pairs of a server-sent-events body."""
    events = []
    for block in text.split("\n\n"):
        name, data = None, []
        for line in block.splitlines():
            if line.startswith("event: "):
                name = line[len("event: "):]
            elif line.startswith("data: "):
                data.append(line[len("data: "):])
        if data:
            events.append((name, "\n".join(data)))
    return events


# ------------------------------------------------------------------------------- Responses, urllib


def test_responses_streams_text_in_openai_event_order() -> None:
    with _server(Reply("hello there, this is a longer scripted answer")) as server:
        status, ctype, text = _post(f"{server.url}/v1/responses",
                                    {"model": "gpt-5.5", "input": "hi", "stream": True})
        main = server.main_requests()
    assert status == 200 and ctype.startswith("text/event-stream")
    events = _sse(text)
    kinds = [name for name, _ in events]
    assert kinds[:3] == ["response.created", "response.in_progress", "response.output_item.added"]
    assert kinds[-2:] == ["response.output_item.done", "response.completed"]
    payloads = [json.loads(data) for _, data in events]
    assert all(p["type"] == name for p, (name, _) in zip(payloads, events, strict=True))
    assert [p["sequence_number"] for p in payloads] == list(range(len(payloads)))
    deltas = "".join(p["delta"] for p in payloads if p["type"] == "response.output_text.delta")
    assert deltas == "hello there, this is a longer scripted answer"
    completed = payloads[-1]["response"]
    assert completed["status"] == "completed" and completed["object"] == "response"
    assert completed["output"][0]["content"][0]["text"] == deltas
    assert completed["usage"]["total_tokens"] == completed["usage"]["input_tokens"] + completed["usage"][
        "output_tokens"]
    assert len(main) == 1 and main[0].dialect == "openai-responses"


def test_responses_write_file_uses_the_declared_apply_patch_tool() -> None:
    custom = {"type": "custom", "name": "apply_patch", "format": {"type": "grammar"}}
    function = {"type": "function", "name": "apply_patch", "parameters": {"type": "object", "properties": {
        "input": {"type": "string"}}}}
    with _server(WriteFile("a/b.txt", "one\ntwo\n"), WriteFile("c.txt", "x")) as server:
        _, _, first = _post(f"{server.url}/v1/responses", {"model": "m", "input": "go", "tools": [custom]})
        _, _, second = _post(f"{server.url}/v1/responses", {"model": "m", "input": "go", "tools": [function]})
    item = json.loads(first)["output"][0]
    assert item["type"] == "custom_tool_call" and item["name"] == "apply_patch"
    assert item["input"] == "*** Begin Patch\n*** Add File: a/b.txt\n+one\n+two\n*** End Patch\n"
    call = json.loads(second)["output"][0]
    assert call["type"] == "function_call" and call["name"] == "apply_patch"
    assert json.loads(call["arguments"]) == {"input": add_file_patch("c.txt", "x")}
    assert call["call_id"].startswith("call_")


def test_responses_write_file_falls_back_to_shell_or_a_write_function() -> None:
    exec_tool = {"type": "function", "name": "exec_command", "parameters": {"type": "object", "properties": {
        "cmd": {"type": "string"}}}}
    with _server(WriteFile("d/f.txt", "it's\n"), WriteFile("g.txt", "G"), WriteFile("h.txt", "H")) as server:
        _, _, shell = _post(f"{server.url}/v1/responses", {"model": "m", "input": "x", "tools": [exec_tool]})
        _, _, named = _post(f"{server.url}/v1/responses", {"model": "m", "input": "x", "tools": [WRITE_TOOL]})
        _, _, bare = _post(f"{server.url}/v1/responses", {"model": "m", "input": "x"})
    command = json.loads(json.loads(shell)["output"][0]["arguments"])["cmd"]
    assert "mkdir -p d" in command and "d/f.txt" in command
    assert json.loads(json.loads(named)["output"][0]["arguments"]) == {"path": "g.txt", "content": "G"}
    bare_call = json.loads(bare)["output"][0]
    assert bare_call["name"] == "write_file" and json.loads(bare_call["arguments"])["path"] == "h.txt"


def test_responses_streams_a_function_call_with_argument_deltas() -> None:
    with _server(WriteFile("x.txt", "a long enough content to need several argument deltas\n")) as server:
        _, _, text = _post(f"{server.url}/v1/responses",
                           {"model": "m", "input": "x", "tools": [WRITE_TOOL], "stream": True})
    payloads = [json.loads(data) for _, data in _sse(text)]
    deltas = [p["delta"] for p in payloads if p["type"] == "response.function_call_arguments.delta"]
    done = next(p for p in payloads if p["type"] == "response.function_call_arguments.done")
    assert len(deltas) > 1 and "".join(deltas) == done["arguments"]
    added = next(p for p in payloads if p["type"] == "response.output_item.added")["item"]
    assert added["status"] == "in_progress" and added["arguments"] == ""
    assert json.loads(done["arguments"])["path"] == "x.txt"


def test_responses_codex_side_requests_do_not_consume_steps() -> None:
    with _server(Reply("the one step")) as server:
        request = urllib.request.Request(
            f"{server.url}/v1/responses", data=json.dumps({"model": "m", "input": "x"}).encode(), method="POST",
            headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json",
                     "x-codex-turn-metadata": json.dumps({"request_kind": "title"})})
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            side = json.loads(response.read())
        _, _, compact = _post(f"{server.url}/v1/responses/compact", {"model": "m", "input": []})
        _, _, main = _post(f"{server.url}/v1/responses", {"model": "m", "input": "x"})
        assert server.scenario.consumed == 1 and len(server.main_requests()) == 1
    assert side["output"][0]["content"][0]["text"] == "ok"
    assert json.loads(compact)["output"][0]["type"] == "message"
    assert json.loads(main)["output"][0]["content"][0]["text"] == "the one step"


def test_openai_auth_failures_and_http_failures_use_openai_error_json() -> None:
    with _server(HttpFailure(429, "slow down"), HttpFailure(500, "boom")) as server:
        missing = _post(f"{server.url}/v1/responses", {"model": "m", "input": "x"}, key=None)
        wrong = _post(f"{server.url}/v1/chat/completions", {"model": "m", "messages": []}, key="nope")
        limited = _post(f"{server.url}/v1/responses", {"model": "m", "input": "x", "stream": True})
        broken = _post(f"{server.url}/v1/chat/completions", {"model": "m", "messages": []})
        assert server.scenario.consumed == 2
    for status, _, text in (missing, wrong):
        assert status == 401
        error = json.loads(text)["error"]
        assert error["type"] == "invalid_request_error" and error["code"] == "invalid_api_key"
    assert limited[0] == 429 and json.loads(limited[2])["error"]["message"] == "slow down"
    assert json.loads(limited[2])["error"]["type"] == "rate_limit_exceeded"
    assert broken[0] == 500 and json.loads(broken[2])["error"] == {
        "message": "boom", "type": "server_error", "param": None, "code": None}


def test_models_endpoint_lists_models() -> None:
    with _server() as server:
        request = urllib.request.Request(f"{server.url}/v1/models", headers={"Authorization": f"Bearer {KEY}"})
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            body = json.loads(response.read())
    assert body["object"] == "list" and {m["object"] for m in body["data"]} == {"model"}


# ------------------------------------------------------------------------------------ Chat, urllib


def test_chat_completions_text_and_tool_calls_not_streamed() -> None:
    with _server(Reply("plain answer"), WriteFile("w.txt", "W\n")) as server:
        _, _, text = _post(f"{server.url}/v1/chat/completions",
                           {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]})
        _, _, tool = _post(f"{server.url}/v1/chat/completions",
                           {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}],
                            "tools": [CHAT_WRITE_TOOL]})
        assert [r.dialect for r in server.main_requests()] == ["openai-chat", "openai-chat"]
    answer = json.loads(text)
    assert answer["object"] == "chat.completion" and answer["model"] == "gpt-4o"
    assert answer["choices"][0]["message"]["content"] == "plain answer"
    assert answer["choices"][0]["finish_reason"] == "stop" and answer["usage"]["total_tokens"] > 0
    choice = json.loads(tool)["choices"][0]
    assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] is None
    call = choice["message"]["tool_calls"][0]
    assert call["type"] == "function" and call["function"]["name"] == "write_file"
    assert json.loads(call["function"]["arguments"]) == {"path": "w.txt", "content": "W\n"}


def test_chat_completions_stream_chunks_usage_and_done() -> None:
    with _server(WriteFile("s.txt", "streamed content that spans more than one argument chunk\n"),
                 Reply("streamed text answer")) as server:
        _, ctype, tool = _post(f"{server.url}/v1/chat/completions",
                               {"model": "m", "messages": [], "tools": [CHAT_WRITE_TOOL], "stream": True,
                                "stream_options": {"include_usage": True}})
        _, _, text = _post(f"{server.url}/v1/chat/completions", {"model": "m", "messages": [], "stream": True})
    assert ctype.startswith("text/event-stream")
    events = [data for _, data in _sse(tool)]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(data) for data in events[:-1]]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] > 0
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    pieces = [tc["function"].get("arguments", "") for c in chunks[:-1] for tc in c["choices"][0]["delta"].get(
        "tool_calls", [])]
    assert json.loads("".join(pieces))["path"] == "s.txt"
    text_chunks = [json.loads(data) for _, data in _sse(text)[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in text_chunks) == "streamed text answer"
    assert text_chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_chat_without_tools_writes_in_aider_whole_format_and_skips_side_requests() -> None:
    with _server(WriteFile("src/app.py", "print('hi')\n")) as server:
        _, _, commit = _post(f"{server.url}/v1/chat/completions", {"model": "m", "messages": [
            {"role": "system", "content": "You are an expert software engineer that generates concise, one-line "
                                          "Git commit messages based on the provided diffs."},
            {"role": "user", "content": "diff"}]})
        _, _, edit = _post(f"{server.url}/v1/chat/completions",
                           {"model": "m", "messages": [{"role": "user", "content": "edit"}]})
        assert server.scenario.consumed == 1
    assert json.loads(commit)["choices"][0]["message"]["content"] == "ok"
    assert json.loads(edit)["choices"][0]["message"]["content"] == whole_format("src/app.py", "print('hi')\n")
    assert whole_format("a.md", "```x```") == "a.md\n````\n```x```\n````\n"


# ---------------------------------------------------------------------------- the official client


@pytest.fixture
def openai_module() -> Any:
    return pytest.importorskip("openai", reason="the `openai` package (a dev dependency) is not installed")


def test_official_client_responses(openai_module: Any) -> None:
    with _server(Reply("sdk text"), WriteFile("o.txt", "O\n"), Reply("streamed sdk text"),
                 HttpFailure(400, "bad request")) as server:
        client = openai_module.OpenAI(api_key=KEY, base_url=f"{server.url}/v1", timeout=TIMEOUT, max_retries=0)
        response = client.responses.create(model="gpt-5.5", input="hi")
        assert response.output_text == "sdk text" and response.usage.total_tokens > 0
        call = client.responses.create(model="gpt-5.5", input="write", tools=[WRITE_TOOL]).output[0]
        assert call.type == "function_call" and json.loads(call.arguments) == {"path": "o.txt", "content": "O\n"}
        with client.responses.stream(model="gpt-5.5", input="hi") as stream:
            deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
            final = stream.get_final_response()
        assert "".join(deltas) == "streamed sdk text" == final.output_text
        with pytest.raises(openai_module.BadRequestError, match="bad request"):
            client.responses.create(model="gpt-5.5", input="hi")
        bad = openai_module.OpenAI(api_key="wrong", base_url=f"{server.url}/v1", timeout=TIMEOUT, max_retries=0)
        with pytest.raises(openai_module.AuthenticationError) as caught:
            bad.responses.create(model="gpt-5.5", input="hi")
        assert caught.value.code == "invalid_api_key"
        assert [m.id for m in client.models.list()]


def test_official_client_chat_completions(openai_module: Any) -> None:
    with _server(Reply("chat text"), WriteFile("t.txt", "T\n"), Reply("chat streamed"),
                 WriteFile("u.txt", "U\n")) as server:
        client = openai_module.OpenAI(api_key=KEY, base_url=f"{server.url}/v1", timeout=TIMEOUT, max_retries=0)
        messages = [{"role": "user", "content": "hi"}]
        text = client.chat.completions.create(model="gpt-4o", messages=messages)
        assert text.choices[0].message.content == "chat text"
        tool = client.chat.completions.create(model="gpt-4o", messages=messages, tools=[CHAT_WRITE_TOOL])
        call = tool.choices[0].message.tool_calls[0]
        assert call.function.name == "write_file" and json.loads(call.function.arguments)["path"] == "t.txt"
        stream = client.chat.completions.create(model="gpt-4o", messages=messages, stream=True)
        assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "chat streamed"
        streamed_args = ""
        for chunk in client.chat.completions.create(model="gpt-4o", messages=messages, tools=[CHAT_WRITE_TOOL],
                                                    stream=True, stream_options={"include_usage": True}):
            for delta in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
                streamed_args += delta.function.arguments or ""
        assert json.loads(streamed_args) == {"path": "u.txt", "content": "U\n"}


# ------------------------------------------------------------------------------------ the real Codex


CODEX = find_binary("codex", Path(__file__).resolve().parents[2])
needs_codex = pytest.mark.skipif(CODEX is None, reason="the Codex CLI is not installed ($BNO_AGENT_BIN_DIR, "
                                                       ".agent-clis/ or PATH; make agent-clis installs it)")


class CodexRig:
    """A git repository, an isolated HOME/CODEX_HOME whose config points Codex at the server."""

    def __init__(self, root: Path, server: ScriptedModelServer) -> None:
        self.root = root
        self.home = root / "home"
        self.codex_home = self.home / "codex"
        self.repo = root / "repo"
        self.codex_home.mkdir(parents=True)
        self.repo.mkdir()
        subprocess.run(["git", "init", "-q", str(self.repo)], check=True, timeout=TIMEOUT)
        (self.codex_home / "config.toml").write_text(
            'model = "gpt-5.5"\n'
            'model_provider = "scripted"\n'
            "[model_providers.scripted]\n"
            'name = "scripted"\n'
            f'base_url = "{server.url}/v1"\n'
            'env_key = "OPENAI_API_KEY"\n'
            'wire_api = "responses"\n'
            "request_max_retries = 0\n"
            "stream_max_retries = 0\n"
            "stream_idle_timeout_ms = 20000\n"
            "[sandbox_workspace_write]\n"
            "exclude_slash_tmp = true\n"
            "exclude_tmpdir_env_var = true\n"
            "[features]\n"
            "plugins = false\n"
            "apps = false\n"
            "remote_plugin = false\n"
            "[analytics]\n"
            "enabled = false\n")

    def exec(self, prompt: str, *extra: str, key: str | None = KEY) -> tuple[int, list[dict[str, Any]], str]:
        """``codex exec --json`` with the prompt on stdin: (exit code, JSONL events, stderr)."""
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.home),
               "CODEX_HOME": str(self.codex_home), "LANG": "C.UTF-8"}
        if key is not None:
            env["OPENAI_API_KEY"] = key
        argv = [str(CODEX), "exec", "--json", "--sandbox", "workspace-write", "-C", str(self.repo), *extra, "-"]
        done = subprocess.run(argv, input=prompt, capture_output=True, text=True, env=env, timeout=CODEX_TIMEOUT)
        events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
        return done.returncode, events, done.stderr


@pytest.fixture
def codex_rig(tmp_path: Path) -> Iterator[tuple[CodexRig, ScriptedModelServer]]:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    server = _server(WriteFile("hello.txt", "hello from codex\n"), Reply("I wrote hello.txt")).start()
    try:
        yield CodexRig(tmp_path, server), server
    finally:
        server.stop()


@needs_codex
def test_real_codex_writes_a_file_through_apply_patch(codex_rig: tuple[CodexRig, ScriptedModelServer]) -> None:
    rig, server = codex_rig
    code, events, stderr = rig.exec("Create hello.txt.")
    assert code == 0, (events, stderr[-2000:])
    assert (rig.repo / "hello.txt").read_text() == "hello from codex\n"
    kinds = [e["type"] for e in events]
    assert kinds[0] == "thread.started" and events[0]["thread_id"]
    assert "turn.started" in kinds and kinds[-1] == "turn.completed"
    assert events[-1]["usage"]["input_tokens"] > 0
    items = [e["item"] for e in events if e["type"] == "item.completed"]
    change = next(i for i in items if i["type"] == "file_change")
    assert change["status"] == "completed"
    assert change["changes"] == [{"path": str(rig.repo / "hello.txt"), "kind": "add"}]
    assert items[-1] == {"id": items[-1]["id"], "type": "agent_message", "text": "I wrote hello.txt"}
    main = server.main_requests()
    assert len(main) == 2 and server.scenario.consumed == 2
    assert main[0].headers["authorization"] == f"Bearer {KEY}" and main[0].body["stream"] is True
    outputs = [i for i in main[1].body["input"] if i.get("type") == "custom_tool_call_output"]
    assert outputs and "Success" in outputs[0]["output"]


@needs_codex
def test_real_codex_resumes_a_session(codex_rig: tuple[CodexRig, ScriptedModelServer]) -> None:
    rig, server = codex_rig
    code, events, _ = rig.exec("first")
    assert code == 0
    server.scenario.steps.extend([WriteFile("second.txt", "2\n"), Reply("second done")])
    code, resumed, stderr = rig.exec("second", "resume", events[0]["thread_id"])
    assert code == 0, (resumed, stderr[-2000:])
    assert resumed[0] == {"type": "thread.started", "thread_id": events[0]["thread_id"]}
    assert (rig.repo / "second.txt").read_text() == "2\n"
    history = server.main_requests()[-1].body["input"]
    assert any(i.get("type") == "custom_tool_call" for i in history[:6]), "the first turn is replayed"
    assert list(rig.codex_home.glob("sessions/*/*/*/rollout-*.jsonl")), "sessions live in CODEX_HOME"
    assert not (rig.repo / ".codex").exists()


@needs_codex
def test_real_codex_refuses_writes_outside_the_worktree(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"  # the parent of the repo, like the main repository of a worktree
    with _server(WriteFile(str(outside), "escaped\n"), WriteFile("../parent.txt", "p\n"), Reply("tried")) as server:
        rig = CodexRig(tmp_path, server)
        code, events, _ = rig.exec("try")
        outputs = [i["output"] for i in server.main_requests()[-1].body["input"]
                   if i.get("type") == "custom_tool_call_output"]
    assert code == 0 and events[-1]["type"] == "turn.completed"
    assert not outside.exists() and not (tmp_path / "parent.txt").exists()
    assert len(outputs) == 2 and all("rejected" in output for output in outputs)


@needs_codex
def test_real_codex_without_a_key_fails_fast(codex_rig: tuple[CodexRig, ScriptedModelServer]) -> None:
    rig, server = codex_rig
    code, events, _ = rig.exec("hi", key=None)
    assert code == 1 and not server.requests
    assert events[-1] == {"type": "turn.failed", "error": {"message": "Missing environment variable: "
                                                                      "`OPENAI_API_KEY`."}}


@needs_codex
def test_real_codex_reports_an_http_failure(tmp_path: Path) -> None:
    with _server(HttpFailure(400, "scripted refusal")) as server:
        code, events, _ = CodexRig(tmp_path, server).exec("hi")
    assert code == 1 and events[-1]["type"] == "turn.failed"
    assert "scripted refusal" in events[-1]["error"]["message"]
    assert any(e["type"] == "error" for e in events)
