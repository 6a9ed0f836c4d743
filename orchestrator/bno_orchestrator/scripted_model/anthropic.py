"""The Anthropic Messages API dialect (what Claude Code and the ``anthropic`` SDK speak).

``POST /v1/messages`` is a model turn, streamed (``"stream": true``: ``message_start``,
``content_block_start``/``delta``/``stop``, ``message_delta`` with the stop reason and usage,
``message_stop``) or one JSON message. A *main* turn consumes a scenario step: one that offers tools (the
agent loop; Claude Code always offers them), or a tool-less one asking for more than 4096 output tokens.
Side requests (Claude Code's ``quota`` probe with ``max_tokens: 1``, title and topic requests) get a
short text and consume nothing. :class:`~bno_orchestrator.scripted_model.scenario.WriteFile` becomes a
call of Claude Code's own ``Write`` tool, ``{"file_path": ..., "content": ...}``, with a relative path
made absolute against the working directory Claude Code states in its prompt (``Primary working
directory: /abs/path``; its ``Write`` documents absolute paths). An existing file is ``Read`` first (see
:class:`AnthropicMessages`). ``POST /v1/messages/count_tokens`` answers an estimate; Claude Code's
``/api/*`` calls get an empty JSON object. The key is read from ``x-api-key`` or ``Authorization:
Bearer``; a wrong or missing one gets Anthropic's 401 ``authentication_error``, and an
:class:`~bno_orchestrator.scripted_model.scenario.HttpFailure` Anthropic's error JSON with the type
that matches its status.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import threading
import uuid
from typing import Any

from bno_orchestrator.scripted_model.scenario import HttpFailure, Reply, Scenario, Step, WriteFile
from bno_orchestrator.scripted_model.server import ModelRequest, Responder

# Anthropic's error ``type`` per HTTP status (https://docs.anthropic.com/en/api/errors).
ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}

_CWD_PATTERNS = (
    re.compile(r"^[ \t]*(?:-[ \t]*)?(?:(?:Primary )?[Ww]orking directory|CWD):[ \t]*(/.*?)[ \t]*$", re.MULTILINE),
    re.compile(r"<cwd>\s*(\S.*?)\s*</cwd>"),
)


def _new_id(prefix: str) -> str:
    """A fresh id like the API's (unique across servers, so a resumed session never sees one twice)."""
    return f"{prefix}_scripted_{uuid.uuid4().hex[:20]}"


def error_type(status: int) -> str:
    """Anthropic's error type for an HTTP status."""
    if status in ERROR_TYPES:
        return ERROR_TYPES[status]
    return "api_error" if status >= 500 else "invalid_request_error"


def error_body(status: int, message: str) -> dict[str, Any]:
    """Anthropic's error JSON."""
    return {"type": "error", "error": {"type": error_type(status), "message": message},
            "request_id": _new_id("req")}


def _text_of(value: Any) -> str:
    """The text of a ``system`` or message ``content`` value (string or blocks; tool results left out)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        parts: list[str] = []
        for block in value:
            if isinstance(block, dict) and block.get("type", "text") == "text":
                parts.append(str(block.get("text", "")))
            elif isinstance(block, str):
                parts.append(block)
        return "\n".join(parts)
    return ""


def working_directory(body: Any) -> str | None:
    """The working directory Claude Code states in its prompt, if any.

    ``Primary working directory: /abs`` (``CWD: /abs`` in ``--bare`` mode) in ``system``, or (recent
    versions, for some models) in a ``"role": "system"`` message of
    ``messages``; text blocks only, so a file's content read back in a tool result cannot pose as it.
    """
    if not isinstance(body, dict):
        return None
    texts = [_text_of(body.get("system"))]
    for message in body.get("messages") or []:
        if isinstance(message, dict):
            texts.append(_text_of(message.get("content")))
    for text in texts:
        for pattern in _CWD_PATTERNS:
            match = pattern.search(text)
            if match and match.group(1).startswith("/"):
                return match.group(1)
    return None


SIDE_MAX_TOKENS = 4096


def is_main_turn(body: Any) -> bool:
    """A main agent turn: it offers tools, or (a tool-less client) asks for more than a side call's tokens.

    Claude Code's side calls (the ``quota`` probe with ``max_tokens: 1``, title and topic requests with
    at most 4096 output tokens) offer no tools; its agent turns always offer them.
    """
    if not isinstance(body, dict):
        return False
    if body.get("tools"):
        return True
    max_tokens = body.get("max_tokens")
    return not isinstance(max_tokens, int) or max_tokens > SIDE_MAX_TOKENS


def _tool_names(body: Any) -> list[str]:
    """The names of the tools the request offers."""
    tools = body.get("tools") if isinstance(body, dict) else None
    return [str(t.get("name", "")) for t in tools or [] if isinstance(t, dict)]


def _tool_name(body: Any, wanted: str) -> str:
    """A tool's name as the client declared it (``Write``, or an MCP-prefixed variant like ``mcp__x__Write``)."""
    names = _tool_names(body)
    if wanted in names:
        return wanted
    for name in names:
        if name.lower().endswith("__" + wanted.lower()):
            return name
    return wanted


def _estimate_tokens(body: Any) -> int:
    return max(1, len(json.dumps(body or {})) // 4)


def _last_tool_result_ids(body: dict[str, Any]) -> list[str]:
    """The ``tool_use_id`` of each tool result in the last user message (Claude Code may append ``system``
    role notes after it, e.g. the remaining budget with ``--max-budget-usd``)."""
    messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
    while messages and messages[-1].get("role") == "system":
        messages.pop()
    if not messages or messages[-1].get("role") != "user" or not isinstance(messages[-1].get("content"), list):
        return []
    return [str(block.get("tool_use_id")) for block in messages[-1]["content"]
            if isinstance(block, dict) and block.get("type") == "tool_result"]


class AnthropicMessages:
    """The Anthropic Messages API on ``/v1/messages`` (see the module docstring).

    A :class:`WriteFile` is a ``Write`` call; where the request offers ``Edit`` but no ``Write`` (Claude
    Code's ``--bare`` mode), an ``Edit`` call that creates or wholly replaces the file. Claude Code's
    ``Write`` refuses to overwrite a file the conversation has not read ("File has not been
    read yet"), so a :class:`WriteFile` onto an existing file is answered in two turns: a ``Read`` of it
    first, then, on the request carrying that read's result, the ``Write``; only the first consumes the
    step (the CLI counts both turns).
    """

    name = "anthropic"

    def __init__(self) -> None:
        self._pending: dict[str, WriteFile] = {}  # Read tool_use id -> the write that follows it
        self._lock = threading.Lock()

    def matches(self, method: str, path: str) -> bool:
        """``/v1/messages`` and below, and Claude Code's ``/api/*`` side calls."""
        return path == "/v1/messages" or path.startswith(("/v1/messages/", "/api/"))

    def handle(self, request: ModelRequest, scenario: Scenario, respond: Responder) -> None:
        """Check the key, then answer a model turn, a token count or a side call."""
        if not request.key_ok(self._given_key(request)):
            respond.json(401, error_body(401, "invalid x-api-key"))
            return
        if request.path.startswith("/api/"):
            respond.json(200, {})
            return
        body = request.body if isinstance(request.body, dict) else {}
        if request.path == "/v1/messages/count_tokens":
            respond.json(200, {"input_tokens": _estimate_tokens(body)})
            return
        if request.path != "/v1/messages" or request.method != "POST":
            respond.json(404, error_body(404, f"scripted model: no route {request.method} {request.path}"))
            return
        if is_main_turn(body):
            blocks_or_failure, request.main = self._main_turn(body, scenario)
        else:
            blocks_or_failure = [{"type": "text", "text": "Scripted session"}]
        if isinstance(blocks_or_failure, HttpFailure):
            respond.json(blocks_or_failure.status, error_body(blocks_or_failure.status, blocks_or_failure.message))
            return
        blocks = blocks_or_failure
        stop_reason = "tool_use" if any(b["type"] == "tool_use" for b in blocks) else "end_turn"
        model = str(body.get("model") or "claude-scripted")
        message_id = _new_id("msg")
        input_tokens = _estimate_tokens(body)
        output_tokens = max(1, len(json.dumps(blocks)) // 4)
        if body.get("stream"):
            respond.sse(self._events(message_id, model, blocks, stop_reason, input_tokens, output_tokens))
            return
        respond.json(200, {
            "id": message_id, "type": "message", "role": "assistant", "model": model, "content": blocks,
            "stop_reason": stop_reason, "stop_sequence": None,
            "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens,
                      "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
        }, headers={"request-id": _new_id("req")})

    @staticmethod
    def _given_key(request: ModelRequest) -> str | None:
        if "x-api-key" in request.headers:
            return request.headers["x-api-key"]
        auth = request.headers.get("authorization", "")
        return auth[7:].strip() if auth.lower().startswith("bearer ") else None

    def _main_turn(self, body: dict[str, Any], scenario: Scenario) -> tuple[list[dict[str, Any]] | HttpFailure, bool]:
        """The content blocks of an agent turn (or the failure to answer with), and whether it used a step."""
        with self._lock:
            pending = next((self._pending.pop(i) for i in _last_tool_result_ids(body) if i in self._pending), None)
        if pending is not None:  # the Read we asked for came back: now the write (no new step)
            return [self._write(body, pending.path, pending.content, existing=True)], False
        step: Step = scenario.next_step()
        if isinstance(step, HttpFailure):
            return step, True
        if isinstance(step, Reply):
            return [{"type": "text", "text": step.text}], True
        path = step.path
        cwd = working_directory(body)
        if not path.startswith("/") and cwd:
            path = posixpath.join(cwd, path)
        if path.startswith("/") and os.path.isfile(path) and "Read" in _tool_names(body):
            read = self._tool_use(body, "Read", {"file_path": path})
            with self._lock:
                self._pending[read["id"]] = WriteFile(path, step.content)
            return [read], True
        return [self._write(body, path, step.content, existing=False)], True

    def _write(self, body: dict[str, Any], path: str, content: str, *, existing: bool) -> dict[str, Any]:
        """The tool call that writes ``content``: ``Write``; ``Edit`` where only that is offered (``--bare``).

        ``Edit`` creates a file from ``old_string: ""``, and replaces an existing one's whole text.
        """
        names = _tool_names(body)
        if _tool_name(body, "Write") not in names and _tool_name(body, "Edit") in names:
            old = ""
            if existing:
                try:
                    with open(path, encoding="utf-8") as handle:
                        old = handle.read()
                except (OSError, UnicodeDecodeError):
                    old = ""
            return self._tool_use(body, "Edit", {"file_path": path, "old_string": old, "new_string": content,
                                                 "replace_all": False})
        return self._tool_use(body, "Write", {"file_path": path, "content": content})

    @staticmethod
    def _tool_use(body: dict[str, Any], tool: str, tool_input: dict[str, Any]) -> dict[str, Any]:
        return {"type": "tool_use", "id": _new_id("toolu"), "name": _tool_name(body, tool), "input": tool_input}

    @staticmethod
    def _events(message_id: str, model: str, blocks: list[dict[str, Any]], stop_reason: str,
                input_tokens: int, output_tokens: int) -> list[tuple[str | None, Any]]:
        usage = {"input_tokens": input_tokens, "output_tokens": 1,
                 "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
        events: list[tuple[str | None, Any]] = [
            ("message_start", {"type": "message_start", "message": {
                "id": message_id, "type": "message", "role": "assistant", "model": model, "content": [],
                "stop_reason": None, "stop_sequence": None, "usage": usage}}),
        ]
        for index, block in enumerate(blocks):
            if block["type"] == "tool_use":
                start = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
                delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
            else:
                start = {"type": "text", "text": ""}
                delta = {"type": "text_delta", "text": block["text"]}
            events.append(("content_block_start", {"type": "content_block_start", "index": index,
                                                   "content_block": start}))
            if index == 0:
                events.append(("ping", {"type": "ping"}))
            events.append(("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}))
            events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
        events.append(("message_delta", {"type": "message_delta",
                                         "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                                         "usage": {"output_tokens": output_tokens}}))
        events.append(("message_stop", {"type": "message_stop"}))
        return events
