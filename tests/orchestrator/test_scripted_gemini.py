"""The scripted model's Gemini API dialect: on the wire, and driving the real Gemini CLI.

The wire tests speak plain HTTP shaped exactly like the Gemini API (``generateContent``,
``streamGenerateContent?alt=sse``, ``countTokens``, Google's error JSON); the end-to-end tests run the real
``gemini`` binary (found by ``bno_orchestrator.dispatch.clis.find_binary``) against the server in
a temporary git repository, with its configuration isolated in a temporary HOME (settings: API-key auth,
no telemetry or update checks; the worktree, and only it, listed in ``trustedFolders.json``), and are
skipped when the binary is absent.
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

from bno_orchestrator.dispatch.cli_agents import json_objects
from bno_orchestrator.scripted_model import HttpFailure, Reply, Scenario, ScriptedModelServer, WriteFile
from bno_orchestrator.scripted_model.gemini import (
    GeminiGenerateContent,
    error_status,
    is_main_turn,
    split_path,
)
from tests.orchestrator.dispatch_helpers import installed_cli

KEY = "test-gemini-key"
MODEL = "gemini-2.5-flash"
HTTP_TIMEOUT = 10
GEMINI_TIMEOUT = 120
WRITE_DECL = {"name": "write_file", "description": "Writes content to a specified file in the local filesystem.",
              "parametersJsonSchema": {"type": "object",
                                       "properties": {"file_path": {"type": "string"}, "content": {"type": "string"}},
                                       "required": ["file_path", "content"]}}
READ_DECL = {"name": "read_file", "description": "Reads a file",
             "parametersJsonSchema": {"type": "object", "properties": {"file_path": {"type": "string"}}}}
# Gemini CLI's "next speaker" check (packages/core/src/utils/nextSpeakerChecker.ts): JSON mode, no tools.
NEXT_SPEAKER_SCHEMA = {"type": "object",
                       "properties": {"reasoning": {"type": "string"},
                                      "next_speaker": {"type": "string", "enum": ["user", "model"]}},
                       "required": ["reasoning", "next_speaker"]}


def _server(*steps: WriteFile | Reply | HttpFailure, repeat_last: bool = False) -> ScriptedModelServer:
    return ScriptedModelServer(Scenario(list(steps), repeat_last=repeat_last), dialects=[GeminiGenerateContent()],
                               api_key=KEY)


def _request(server: ScriptedModelServer, path: str, body: dict[str, Any] | None = None, *, method: str = "POST",
             headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=HTTP_TIMEOUT)
    try:
        sent = {"content-type": "application/json", "x-goog-api-client": "google-genai-sdk/1.30.0 gl-node/v20"}
        sent.update({"x-goog-api-key": KEY} if headers is None else headers)
        data = json.dumps(body).encode() if body is not None else None
        conn.request(method, path, body=data, headers=sent)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def _sse(raw: bytes) -> list[dict[str, Any]]:
    """The ``data:`` payloads of a server-sent event stream."""
    chunks = []
    for event in raw.decode().replace("\r\n", "\n").split("\n\n"):
        for line in event.splitlines():
            if line.startswith("data:"):
                chunks.append(json.loads(line[5:].strip()))
    return chunks


def _turn(**extra: Any) -> dict[str, Any]:
    """A Gemini-CLI-shaped agent turn: system instruction, contents, function declarations."""
    body: dict[str, Any] = {
        "contents": [{"role": "user", "parts": [{"text": "<session_context>...</session_context>"},
                                                {"text": "write hello.txt"}]}],
        "systemInstruction": {"parts": [{"text": "You are a non-interactive CLI agent."}]},
        "tools": [{"functionDeclarations": [READ_DECL, WRITE_DECL]}],
        "generationConfig": {"temperature": 1, "topP": 0.95, "topK": 64,
                             "thinkingConfig": {"includeThoughts": True, "thinkingBudget": 8192}},
    }
    body.update(extra)
    return body


def _parts(response: dict[str, Any]) -> list[dict[str, Any]]:
    candidate = response["candidates"][0]
    assert candidate["content"]["role"] == "model"
    return list(candidate["content"]["parts"])


GENERATE = f"/v1beta/models/{MODEL}:generateContent"
STREAM = f"/v1beta/models/{MODEL}:streamGenerateContent?alt=sse"


# --- the wire -------------------------------------------------------------------------------------------


def test_generate_content_write_is_a_write_file_function_call() -> None:
    with _server(WriteFile("hello.txt", "hello\n"), Reply("done")) as server:
        status, headers, raw = _request(server, GENERATE, _turn())
        assert status == 200 and headers["content-type"] == "application/json"
        response = json.loads(raw)
        assert _parts(response) == [{"functionCall": {"name": "write_file",
                                                      "args": {"file_path": "hello.txt", "content": "hello\n"}}}]
        assert response["candidates"][0]["finishReason"] == "STOP"
        usage = response["usageMetadata"]
        assert usage["promptTokenCount"] > 0 and usage["candidatesTokenCount"] > 0
        assert usage["totalTokenCount"] == usage["promptTokenCount"] + usage["candidatesTokenCount"]
        assert response["modelVersion"] == MODEL and response["responseId"]
        assert server.scenario.consumed == 1
        assert [r.main for r in server.requests] == [True] and server.requests[0].dialect == "gemini"


def test_streamed_text_reply_is_sse_chunks_ending_in_stop() -> None:
    with _server(Reply("I wrote hello.txt")) as server:
        status, headers, raw = _request(server, STREAM, _turn())
    assert status == 200 and headers["content-type"] == "text/event-stream"
    chunks = _sse(raw)
    assert len(chunks) >= 2
    assert "".join(p["text"] for c in chunks for p in _parts(c)) == "I wrote hello.txt"
    assert "finishReason" not in chunks[0]["candidates"][0]
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP" and "usageMetadata" in chunks[-1]


def test_streamed_write_is_one_function_call_chunk() -> None:
    with _server(WriteFile("/abs/out.txt", "x\n")) as server:
        _, _, raw = _request(server, STREAM, _turn())
    chunks = _sse(raw)
    assert [p for c in chunks for p in _parts(c)] == [
        {"functionCall": {"name": "write_file", "args": {"file_path": "/abs/out.txt", "content": "x\n"}}}]
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"


def test_stream_without_alt_sse_is_a_json_array() -> None:
    with _server(Reply("hi there")) as server:
        status, headers, raw = _request(server, f"/v1beta/models/{MODEL}:streamGenerateContent", _turn())
    assert status == 200 and headers["content-type"] == "application/json"
    chunks = json.loads(raw)
    assert isinstance(chunks, list) and "".join(p["text"] for c in chunks for p in _parts(c)) == "hi there"


def test_the_scenario_ends_with_the_final_text() -> None:
    with _server() as server:
        _, _, raw = _request(server, GENERATE, _turn())
    assert _parts(json.loads(raw)) == [{"text": "done"}]


def test_side_requests_do_not_consume_steps() -> None:
    with _server(WriteFile("a.txt", "a\n")) as server:
        # the "next speaker" check: JSON mode with a schema, no tools
        body = {"contents": [{"role": "user", "parts": [{"text": "who speaks next?"}]}],
                "generationConfig": {"responseMimeType": "application/json", "responseJsonSchema": NEXT_SPEAKER_SCHEMA}}
        status, _, raw = _request(server, f"/v1beta/models/{MODEL}:generateContent", body)
        assert status == 200
        assert json.loads(_parts(json.loads(raw))[0]["text"]) == {"reasoning": "scripted", "next_speaker": "user"}
        # the session summary (a plain text request on a lite model)
        summary = {"contents": [{"role": "user", "parts": [{"text": "Summary (max 80 chars):"}]}]}
        _, _, raw = _request(server, "/v1beta/models/gemini-2.5-flash-lite:generateContent", summary)
        assert _parts(json.loads(raw))[0]["text"]
        status, _, raw = _request(server, f"/v1beta/models/{MODEL}:countTokens", {"contents": body["contents"]})
        assert status == 200 and json.loads(raw)["totalTokens"] > 0
        status, _, raw = _request(server, "/v1beta/models/text-embedding-004:embedContent",
                                  {"content": {"parts": [{"text": "x"}]}})
        assert status == 200 and json.loads(raw)["embedding"]["values"]
        status, _, raw = _request(server, f"/v1beta/models/{MODEL}", method="GET")
        assert status == 200 and json.loads(raw)["name"] == f"models/{MODEL}"
        status, _, raw = _request(server, "/v1beta/models", method="GET")
        assert status == 200 and json.loads(raw)["models"]
        assert server.scenario.consumed == 0 and not server.main_requests()
        _, _, raw = _request(server, GENERATE, _turn())
        assert "functionCall" in _parts(json.loads(raw))[0] and server.scenario.consumed == 1


def test_router_and_loop_check_answers_mean_simple_and_no_loop() -> None:
    router = {"type": "OBJECT", "properties": {"complexity_reasoning": {"type": "STRING"},
                                               "complexity_score": {"type": "INTEGER",
                                                                    "description": "Complexity score from 1-100."}},
              "required": ["complexity_reasoning", "complexity_score"]}
    loop = {"type": "object", "properties": {"unproductive_state_analysis": {"type": "string"},
                                             "unproductive_state_confidence": {"type": "number"}},
            "required": ["unproductive_state_analysis", "unproductive_state_confidence"]}
    with _server() as server:
        answers = []
        for schema in (router, loop):
            body = {"contents": [{"role": "user", "parts": [{"text": "classify"}]}],
                    "generationConfig": {"responseMimeType": "application/json", "responseJsonSchema": schema}}
            _, _, raw = _request(server, "/v1beta/models/gemini-2.5-flash-lite:generateContent", body)
            answers.append(json.loads(_parts(json.loads(raw))[0]["text"]))
        assert server.scenario.consumed == 0
    assert answers == [{"complexity_reasoning": "scripted", "complexity_score": 1},
                       {"unproductive_state_analysis": "scripted", "unproductive_state_confidence": 0}]


def test_the_key_may_come_as_a_query_parameter() -> None:
    with _server(Reply("ok")) as server:
        status, _, raw = _request(server, f"{GENERATE}?key={KEY}", _turn(), headers={})
    assert status == 200 and _parts(json.loads(raw)) == [{"text": "ok"}]


@pytest.mark.parametrize(("headers", "status", "code"), [
    ({}, 403, "PERMISSION_DENIED"),
    ({"x-goog-api-key": "wrong"}, 400, "INVALID_ARGUMENT"),
])
def test_a_missing_or_wrong_key_gets_googles_error(headers: dict[str, str], status: int, code: str) -> None:
    with _server(Reply("never")) as server:
        got, headers_out, raw = _request(server, STREAM, _turn(), headers=headers)
        assert server.scenario.consumed == 0
    error = json.loads(raw)["error"]
    assert got == status and headers_out["content-type"] == "application/json"
    assert error["code"] == status and error["status"] == code
    if status == 400:
        assert error["message"].startswith("API key not valid")
        assert error["details"][0]["reason"] == "API_KEY_INVALID"


@pytest.mark.parametrize(("status", "code"), [(429, "RESOURCE_EXHAUSTED"), (500, "INTERNAL"), (503, "UNAVAILABLE"),
                                              (400, "INVALID_ARGUMENT")])
def test_http_failure_is_a_google_error(status: int, code: str) -> None:
    with _server(HttpFailure(status, "scripted failure")) as server:
        got, _, raw = _request(server, STREAM, _turn())
        assert server.scenario.consumed == 1
    assert got == status
    assert json.loads(raw) == {"error": {"code": status, "message": "scripted failure", "status": code}}
    assert error_status(status) == code


def test_unknown_method_is_a_404() -> None:
    with _server(Reply("x")) as server:
        status, _, raw = _request(server, f"/v1beta/models/{MODEL}:predictLongRunning", {})
        assert server.scenario.consumed == 0
    assert status == 404 and json.loads(raw)["error"]["status"] == "NOT_FOUND"


def test_declared_parameter_names_are_used() -> None:
    other = {"name": "write_file", "parameters": {"type": "OBJECT", "properties": {
        "absolute_path": {"type": "STRING"}, "content": {"type": "STRING"}}}}
    with _server(WriteFile("/w/x.txt", "y")) as server:
        _, _, raw = _request(server, GENERATE, _turn(tools=[{"functionDeclarations": [other]}]))
    assert _parts(json.loads(raw)) == [{"functionCall": {"name": "write_file",
                                                         "args": {"absolute_path": "/w/x.txt", "content": "y"}}}]


def test_path_parsing_and_main_turn_detection() -> None:
    assert split_path("/v1beta/models/gemini-2.5-pro:streamGenerateContent") == ("gemini-2.5-pro",
                                                                                 "streamGenerateContent")
    assert split_path("/v1/models/gemini-2.5-pro") == ("gemini-2.5-pro", None)
    assert split_path("/v1beta/models") == (None, None)
    assert split_path("/v1/messages") == (None, None)
    assert GeminiGenerateContent().matches("POST", "/v1beta/models/m:generateContent")
    assert not GeminiGenerateContent().matches("POST", "/v1/messages")
    assert not GeminiGenerateContent().matches("POST", "/v1/responses")
    assert is_main_turn(_turn())
    assert not is_main_turn({"contents": [], "tools": []})
    assert not is_main_turn(None)


# --- the real Gemini CLI --------------------------------------------------------------------------------


@pytest.fixture
def gemini() -> Path:
    return installed_cli("gemini")


@pytest.fixture
def worktree(tmp_path: Path) -> Iterator[Path]:
    repo = tmp_path / "wt"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True, timeout=30)
    yield repo.resolve()


def _json_document(text: str) -> dict[str, Any] | None:
    """The last JSON object starting a line of ``text`` (the executor's own parser), else None."""
    found = json_objects(text)
    return found[-1] if found else None


def _run_gemini(gemini: Path, url: str, worktree: Path, *args: str, key: str | None = KEY,
                settings: dict[str, Any] | None = None) -> tuple[int, dict[str, Any], str]:
    """Run ``gemini`` headless in ``worktree``; ``(exit code, the JSON result, stderr)``."""
    home = worktree.parent / "home"
    tmp = worktree.parent / "tmp"
    (home / ".gemini").mkdir(parents=True, exist_ok=True)
    tmp.mkdir(exist_ok=True)
    merged: dict[str, Any] = {
        "security": {"auth": {"selectedType": "gemini-api-key"}},
        "general": {"enableAutoUpdate": False, "enableAutoUpdateNotification": False, "maxAttempts": 1},
        "telemetry": {"enabled": False}, "privacy": {"usageStatisticsEnabled": False},
        "tools": {"core": ["read_file", "write_file", "replace", "list_directory", "glob", "grep_search"]},
        "model": {"maxSessionTurns": 10},
    }
    for section, values in (settings or {}).items():
        merged.setdefault(section, {}).update(values)
    (home / ".gemini" / "settings.json").write_text(json.dumps(merged))
    (home / ".gemini" / "trustedFolders.json").write_text(json.dumps({str(worktree): "TRUST_FOLDER"}))
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "TMPDIR": str(tmp),
           "GOOGLE_GEMINI_BASE_URL": url, "NO_COLOR": "1"}
    if key is not None:
        env["GEMINI_API_KEY"] = key
    done = subprocess.run([str(gemini), "--output-format", "json", "--approval-mode", "auto_edit", "-m", MODEL,
                           *args], input="Do the task.", capture_output=True, text=True, cwd=worktree, env=env,
                          timeout=GEMINI_TIMEOUT)
    if done.returncode == 0:
        result = json.loads(done.stdout)  # on success stdout is exactly the JSON document
    else:
        result = _json_document(done.stderr) or _json_document(done.stdout) or {}
    assert result, (done.returncode, done.stdout, done.stderr)
    return done.returncode, result, done.stderr


def test_json_document_parsing() -> None:
    noisy = 'Warning: x\nError when talking to Gemini API {"a": 1}\n    at f\n[ERROR] {\n  "error": {"code": 53}\n}\n'
    assert _json_document(noisy) == {"error": {"code": 53}}
    assert _json_document('{"response": "ok",\n "stats": {}}\n') == {"response": "ok", "stats": {}}
    assert _json_document("no json here\n") is None


def test_gemini_writes_a_file_in_the_worktree(gemini: Path, worktree: Path) -> None:
    with _server(WriteFile("hello.txt", "hello from gemini\n"), Reply("I wrote hello.txt")) as server:
        rc, result, _ = _run_gemini(gemini, server.url, worktree)
        main = server.main_requests()
    assert rc == 0, result
    assert (worktree / "hello.txt").read_text() == "hello from gemini\n"
    assert result["response"] == "I wrote hello.txt" and result["session_id"] and "error" not in result
    stats = result["stats"]
    assert stats["models"][MODEL]["api"]["totalRequests"] == 2 and stats["models"][MODEL]["tokens"]["input"] > 0
    assert stats["tools"]["byName"]["write_file"]["success"] == 1 and stats["tools"]["totalFail"] == 0
    assert len(main) == 2 and server.scenario.consumed == 2
    declared = [d["name"] for t in main[0].body["tools"] for d in t.get("functionDeclarations", [])]
    assert "write_file" in declared and "run_shell_command" not in declared  # tools.core restricts them
    assert main[0].headers["x-goog-api-key"] == KEY
    assert main[0].path == f"/v1beta/models/{MODEL}:streamGenerateContent" and main[0].query == {"alt": ["sse"]}
    assert sorted(p.name for p in worktree.iterdir()) == [".git", "hello.txt"]  # its own files go to HOME


def test_gemini_refuses_a_write_outside_the_worktree(gemini: Path, worktree: Path) -> None:
    outside = worktree.parent / "outside-xyz.txt"
    with _server(WriteFile(str(outside), "escaped\n"), Reply("tried")) as server:
        rc, result, stderr = _run_gemini(gemini, server.url, worktree)
    assert not outside.exists()
    assert rc == 0 and result["response"] == "tried"  # the refusal does not fail the run...
    assert result["stats"]["tools"]["byName"]["write_file"]["fail"] == 1  # ...it is counted
    assert "Path not in workspace" in stderr


def test_gemini_stops_at_the_turn_limit(gemini: Path, worktree: Path) -> None:
    with _server(WriteFile("hello.txt", "again\n"), repeat_last=True) as server:
        rc, result, _ = _run_gemini(gemini, server.url, worktree, settings={"model": {"maxSessionTurns": 2}})
        assert len(server.main_requests()) == 2
    assert rc == 53
    assert result["error"]["type"] == "FatalTurnLimitedError" and result["error"]["code"] == 53


def test_gemini_with_a_wrong_key_fails_fast(gemini: Path, worktree: Path) -> None:
    with _server(Reply("never")) as server:
        rc, result, _ = _run_gemini(gemini, server.url, worktree, key="wrong-key")
        assert server.scenario.consumed == 0
    assert rc == 400 % 256  # the CLI exits with the HTTP status, truncated to a byte
    assert result["error"]["code"] == 400 and "API key not valid" in result["error"]["message"]


def test_gemini_without_a_key_exits_41(gemini: Path, worktree: Path) -> None:
    with _server(Reply("never")) as server:
        rc, result, _ = _run_gemini(gemini, server.url, worktree, key=None)
        assert not server.requests
    assert rc == 41
    assert result["error"]["message"].startswith("When using Gemini API, you must specify the GEMINI_API_KEY")


def test_gemini_with_the_model_server_down_fails(gemini: Path, worktree: Path) -> None:
    with _server() as server:
        url = server.url
    # stopped: the socket is closed, the port refuses connections
    rc, result, _ = _run_gemini(gemini, url, worktree)  # general.maxAttempts 1: no retry backoff
    assert rc == 1 and "fetch failed" in result["error"]["message"]
