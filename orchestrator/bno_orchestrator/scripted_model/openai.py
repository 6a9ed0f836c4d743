"""The OpenAI dialects: the Responses API (what Codex speaks) and Chat Completions (aider and others).

``POST /v1/responses`` is a model turn, streamed (``"stream": true``: ``response.created``,
``response.in_progress``, ``response.output_item.added``, ``response.output_text.delta`` /
``response.function_call_arguments.delta`` / ``response.custom_tool_call_input.delta``,
``response.output_item.done``, ``response.completed`` with ``usage``) or one ``response`` JSON object.
A request is a *main* turn (consumes a scenario step) unless Codex marks it as something else in its
``x-codex-turn-metadata`` header (``"request_kind"`` other than ``"turn"``); ``POST
/v1/responses/compact`` (Codex's remote compaction) is a side request. ``GET /v1/models`` lists a few
models.

:class:`~bno_orchestrator.scripted_model.scenario.WriteFile` becomes a call of the client's own
file-editing tool, chosen from the ``tools`` the request declares: Codex's ``apply_patch`` (a
``custom``/freeform tool: ``custom_tool_call`` whose ``input`` is the patch; or a ``function`` tool:
``{"input": PATCH}``), with the patch ``*** Begin Patch / *** Add File: PATH / +line... / *** End
Patch``; else Codex's shell tools (``exec_command`` ``{"cmd": ...}``, ``shell_command``, ``shell``)
with a command that writes the file; else a ``write_file``-like function (``{"path", "content"}``,
the property names taken from its schema); with no tools at all, a ``write_file`` function call.

``POST /v1/chat/completions`` answers ``chat.completion`` JSON or ``chat.completion.chunk`` SSE
(ending ``data: [DONE]``; ``usage`` in a last chunk when ``stream_options.include_usage``). WriteFile
becomes a ``tool_calls`` entry for a declared write-like function tool, or, with no tools (aider's
edit formats are text), a reply in aider's *whole* format: the path, then the content in a fence.
Aider's commit-message and summary requests are side requests.

Both check ``Authorization: Bearer KEY`` and answer OpenAI's 401 (``invalid_api_key``) otherwise;
:class:`~bno_orchestrator.scripted_model.scenario.HttpFailure` becomes OpenAI's error JSON with that
status.
"""

from __future__ import annotations

import itertools
import json
import shlex
import time
from collections.abc import Iterator
from typing import Any

from bno_orchestrator.scripted_model.scenario import HttpFailure, Reply, Scenario, Step, WriteFile
from bno_orchestrator.scripted_model.server import ModelRequest, Responder

# OpenAI's error ``type`` per HTTP status (https://platform.openai.com/docs/guides/error-codes).
ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "invalid_request_error",
    404: "invalid_request_error",
    409: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_exceeded",
    500: "server_error",
    503: "server_error",
}
ERROR_CODES: dict[int, str] = {401: "invalid_api_key", 429: "rate_limit_exceeded", 404: "model_not_found"}
MODELS = ("gpt-5.5", "gpt-5-codex", "gpt-4o", "gpt-4o-mini")
SIDE_TEXT = "ok"

_ids = itertools.count(1)
_PATH_KEYS = ("path", "file_path", "filepath", "filename", "file", "target_file")
_CONTENT_KEYS = ("content", "contents", "text", "file_text", "data", "body")
_WRITE_TOOL_NAMES = ("write_file", "write", "create_file", "writefile", "save_file", "str_replace_editor")


def _new_id(prefix: str) -> str:
    return f"{prefix}_scripted{next(_ids):08d}"


def error_type(status: int) -> str:
    """OpenAI's error type for an HTTP status."""
    if status in ERROR_TYPES:
        return ERROR_TYPES[status]
    return "server_error" if status >= 500 else "invalid_request_error"


def error_body(status: int, message: str) -> dict[str, Any]:
    """OpenAI's error JSON."""
    return {"error": {"message": message, "type": error_type(status), "param": None,
                      "code": ERROR_CODES.get(status)}}


def bearer_key(request: ModelRequest) -> str | None:
    """The key from ``Authorization: Bearer KEY`` (None without one)."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def check_key(request: ModelRequest, respond: Responder) -> bool:
    """Whether the key is right; answers OpenAI's 401 (and returns False) when it is not."""
    given = bearer_key(request)
    if request.key_ok(given):
        return True
    message = ("You didn't provide an API key. You need to provide your API key in an Authorization header "
               "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)." if given is None
               else "Incorrect API key provided. You can find your API key at "
                    "https://platform.openai.com/account/api-keys.")
    respond.json(401, {"error": {"message": message, "type": "invalid_request_error", "param": None,
                                 "code": "invalid_api_key"}})
    return False


def add_file_patch(path: str, content: str) -> str:
    """An ``apply_patch`` patch that creates ``path`` with ``content`` (each line ends with a newline)."""
    lines = content.splitlines() or [""]
    body = "".join(f"+{line}\n" for line in lines)
    return f"*** Begin Patch\n*** Add File: {path}\n{body}*** End Patch\n"


def write_command(path: str, content: str) -> str:
    """A POSIX shell command that writes ``content`` to ``path`` (creating its directory)."""
    quoted = shlex.quote(path)
    directory = path.rsplit("/", 1)[0] if "/" in path.strip("/") else ""
    mkdir = f"mkdir -p {shlex.quote(directory)} && " if directory else ""
    return f"{mkdir}printf '%s' {shlex.quote(content)} > {quoted}"


def _models_list() -> dict[str, Any]:
    return {"object": "list", "data": [{"id": model, "object": "model", "created": 1_700_000_000,
                                        "owned_by": "scripted"} for model in MODELS]}


def _serve_models(path: str, respond: Responder) -> None:
    model = path.rstrip("/").rsplit("/", 1)[-1]
    if path.rstrip("/").endswith("/models"):
        respond.json(200, _models_list())
    else:
        respond.json(200, {"id": model, "object": "model", "created": 1_700_000_000, "owned_by": "scripted"})


def _answered_before_the_turn(request: ModelRequest, respond: Responder) -> bool:
    """Answer what needs no model turn: a bad key (401) or the model list. True when answered."""
    if not check_key(request, respond):
        return True
    if _is_models_path(request.method, request.path):
        _serve_models(request.path, respond)
        return True
    return False


def _is_models_path(method: str, path: str) -> bool:
    return method in ("GET", "HEAD") and (path.rstrip("/") in ("/v1/models", "/models")
                                          or path.startswith(("/v1/models/", "/models/")))


# ---------------------------------------------------------------------------------------------- tools


def _tool_name(tool: Any) -> str:
    if not isinstance(tool, dict):
        return ""
    if isinstance(tool.get("function"), dict):  # Chat Completions: {"type": "function", "function": {...}}
        return str(tool["function"].get("name", ""))
    return str(tool.get("name", ""))


def _tool_properties(tool: dict[str, Any]) -> dict[str, Any]:
    spec = tool["function"] if isinstance(tool.get("function"), dict) else tool
    params = spec.get("parameters")
    props = params.get("properties") if isinstance(params, dict) else None
    return props if isinstance(props, dict) else {}


def _write_tool(tools: list[Any]) -> tuple[str, dict[str, Any]] | None:
    """A declared function tool that writes a file, with ``{"path": ..., "content": ...}`` key names."""
    candidates = [t for t in tools if isinstance(t, dict) and t.get("type", "function") == "function"]
    ranked = sorted(candidates, key=lambda t: (_tool_name(t).lower() not in _WRITE_TOOL_NAMES,))
    for tool in ranked:
        props = _tool_properties(tool)
        path_key = next((k for k in _PATH_KEYS if k in props), None)
        content_key = next((k for k in _CONTENT_KEYS if k in props), None)
        if path_key and content_key:
            return _tool_name(tool), {"path": path_key, "content": content_key}
    return None


def _write_args(keys: dict[str, str], step: WriteFile) -> dict[str, Any]:
    return {keys["path"]: step.path, keys["content"]: step.content}


# ------------------------------------------------------------------------------------------ Responses


def _request_kind(request: ModelRequest) -> str | None:
    raw = request.headers.get("x-codex-turn-metadata")
    if not raw:
        return None
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError:
        return None
    kind = meta.get("request_kind") if isinstance(meta, dict) else None
    return str(kind) if kind is not None else None


def responses_output(step: Reply | WriteFile, tools: list[Any]) -> list[dict[str, Any]]:
    """The Responses ``output`` items for a step (completed)."""
    if isinstance(step, Reply):
        return [{"type": "message", "id": _new_id("msg"), "status": "completed", "role": "assistant",
                 "content": [{"type": "output_text", "text": step.text, "annotations": [], "logprobs": []}]}]
    call_id = _new_id("call")
    by_name = {_tool_name(t): t for t in tools if isinstance(t, dict)}
    patch = add_file_patch(step.path, step.content)
    apply_patch = by_name.get("apply_patch")
    if apply_patch is not None and apply_patch.get("type") == "custom":
        return [{"type": "custom_tool_call", "id": _new_id("ctc"), "status": "completed", "call_id": call_id,
                 "name": "apply_patch", "input": patch}]
    if apply_patch is not None:
        return [_function_call(call_id, "apply_patch", {"input": patch})]
    command = write_command(step.path, step.content)
    if "exec_command" in by_name:
        return [_function_call(call_id, "exec_command", {"cmd": command})]
    if "shell_command" in by_name:
        return [_function_call(call_id, "shell_command", {"command": command})]
    if "shell" in by_name:
        return [_function_call(call_id, "shell", {"command": ["bash", "-lc", command]})]
    found = _write_tool(tools)
    if found is not None:
        name, keys = found
        return [_function_call(call_id, name, _write_args(keys, step))]
    return [_function_call(call_id, "write_file", {"path": step.path, "content": step.content})]


def _function_call(call_id: str, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {"type": "function_call", "id": _new_id("fc"), "status": "completed", "call_id": call_id,
            "name": name, "arguments": json.dumps(arguments)}


def _usage(body: Any, output: list[dict[str, Any]]) -> dict[str, Any]:
    input_tokens = max(1, len(json.dumps(body)) // 4) if body is not None else 1
    output_tokens = max(1, len(json.dumps(output)) // 4)
    return {"input_tokens": input_tokens, "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": output_tokens, "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": input_tokens + output_tokens}


def _response_object(response_id: str, body: dict[str, Any], status: str, output: list[dict[str, Any]],
                     usage: dict[str, Any] | None) -> dict[str, Any]:
    return {"id": response_id, "object": "response", "created_at": int(time.time()), "status": status,
            "error": None, "incomplete_details": None, "instructions": body.get("instructions"),
            "max_output_tokens": body.get("max_output_tokens"), "model": body.get("model") or MODELS[0],
            "output": output, "parallel_tool_calls": bool(body.get("parallel_tool_calls", True)),
            "previous_response_id": body.get("previous_response_id"),
            "reasoning": body.get("reasoning") or {"effort": None, "summary": None},
            "store": bool(body.get("store", False)), "temperature": 1.0, "text": {"format": {"type": "text"}},
            "tool_choice": body.get("tool_choice", "auto"), "tools": body.get("tools") or [], "top_p": 1.0,
            "truncation": "disabled", "usage": usage, "user": None, "metadata": body.get("metadata") or {}}


def _in_progress(item: dict[str, Any]) -> dict[str, Any]:
    started = dict(item, status="in_progress")
    if item["type"] == "message":
        started["content"] = []
    elif item["type"] == "function_call":
        started["arguments"] = ""
    elif item["type"] == "custom_tool_call":
        started["input"] = ""
    return started


def _chunks(text: str, size: int = 24) -> list[str]:
    return [text[i:i + size] for i in range(0, len(text), size)] or [""]


def responses_events(response_id: str, body: dict[str, Any],
                     output: list[dict[str, Any]]) -> Iterator[tuple[str | None, Any]]:
    """The SSE events of a streamed Responses answer, in OpenAI's order, with sequence numbers."""
    seq = itertools.count(0)

    def event(kind: str, **fields: Any) -> tuple[str, dict[str, Any]]:
        return kind, {"type": kind, "sequence_number": next(seq), **fields}

    yield event("response.created", response=_response_object(response_id, body, "in_progress", [], None))
    yield event("response.in_progress", response=_response_object(response_id, body, "in_progress", [], None))
    for index, item in enumerate(output):
        yield event("response.output_item.added", output_index=index, item=_in_progress(item))
        item_id = item["id"]
        if item["type"] == "message":
            part = item["content"][0]
            text = part["text"]
            yield event("response.content_part.added", item_id=item_id, output_index=index, content_index=0,
                        part={"type": "output_text", "text": "", "annotations": []})
            for piece in _chunks(text):
                yield event("response.output_text.delta", item_id=item_id, output_index=index, content_index=0,
                            delta=piece, logprobs=[])
            yield event("response.output_text.done", item_id=item_id, output_index=index, content_index=0,
                        text=text, logprobs=[])
            yield event("response.content_part.done", item_id=item_id, output_index=index, content_index=0,
                        part={"type": "output_text", "text": text, "annotations": []})
        elif item["type"] == "function_call":
            for piece in _chunks(item["arguments"]):
                yield event("response.function_call_arguments.delta", item_id=item_id, output_index=index,
                            delta=piece)
            yield event("response.function_call_arguments.done", item_id=item_id, output_index=index,
                        name=item["name"], arguments=item["arguments"])
        elif item["type"] == "custom_tool_call":
            for piece in _chunks(item["input"]):
                yield event("response.custom_tool_call_input.delta", item_id=item_id, output_index=index,
                            delta=piece)
            yield event("response.custom_tool_call_input.done", item_id=item_id, output_index=index,
                        input=item["input"])
        yield event("response.output_item.done", output_index=index, item=item)
    yield event("response.completed",
                response=_response_object(response_id, body, "completed", output, _usage(body, output)))


class OpenAIResponses:
    """``POST /v1/responses`` (and ``/v1/responses/compact``, ``GET /v1/models``): Codex's API."""

    name = "openai-responses"

    def matches(self, method: str, path: str) -> bool:
        """The Responses endpoints and the model list."""
        if _is_models_path(method, path):
            return True
        return method == "POST" and path.rstrip("/") in ("/v1/responses", "/responses", "/v1/responses/compact",
                                                         "/responses/compact")

    def handle(self, request: ModelRequest, scenario: Scenario, respond: Responder) -> None:
        """Answer one request (a main turn consumes a scenario step)."""
        if _answered_before_the_turn(request, respond):
            return
        body: dict[str, Any] = request.body if isinstance(request.body, dict) else {}
        if request.path.rstrip("/").endswith("/compact"):
            # Remote compaction: the compacted history is a summary message (Codex keeps it verbatim).
            summary = [{"type": "message", "role": "user", "id": _new_id("msg"),
                        "content": [{"type": "input_text", "text": "(scripted compaction summary)"}]}]
            respond.json(200, {"output": summary})
            return
        kind = _request_kind(request)
        request.main = kind is None or kind == "turn"
        step: Step = scenario.next_step() if request.main else Reply(SIDE_TEXT)
        if isinstance(step, HttpFailure):
            respond.json(step.status, error_body(step.status, step.message))
            return
        tools = body.get("tools") if isinstance(body.get("tools"), list) else []
        output = responses_output(step, tools or [])
        response_id = _new_id("resp")
        if body.get("stream"):
            respond.sse(responses_events(response_id, body, output))
        else:
            respond.json(200, _response_object(response_id, body, "completed", output, _usage(body, output)))


# ----------------------------------------------------------------------------------- Chat Completions


def _message_text(message: Any) -> str:
    if not isinstance(message, dict):
        return ""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


_SIDE_MARKERS = ("commit message", "summarize this partial conversation", "briefly* summarize")


def is_chat_side_request(body: dict[str, Any]) -> bool:
    """Aider's commit-message and history-summary requests (a system prompt that says so)."""
    if body.get("tools"):
        return False
    messages = body.get("messages") if isinstance(body.get("messages"), list) else []
    system = " ".join(_message_text(m) for m in messages or []
                      if isinstance(m, dict) and m.get("role") in ("system", "developer")).lower()
    return any(marker in system for marker in _SIDE_MARKERS)


def whole_format(path: str, content: str) -> str:
    """Aider's *whole* edit format: the path on its own line, then the whole content in a fence."""
    fence = "````" if "```" in content else "```"
    body = content if content.endswith("\n") or not content else content + "\n"
    return f"{path}\n{fence}\n{body}{fence}\n"


def chat_message(step: Reply | WriteFile, tools: list[Any]) -> tuple[dict[str, Any], str]:
    """The assistant message for a step and its ``finish_reason``."""
    if isinstance(step, Reply):
        return {"role": "assistant", "content": step.text, "refusal": None}, "stop"
    found = _write_tool(tools)
    if found is None and tools:
        name = _tool_name(tools[0]) or "write_file"
        found = (name, {"path": "path", "content": "content"})
    if found is None:
        return {"role": "assistant", "content": whole_format(step.path, step.content), "refusal": None}, "stop"
    name, keys = found
    call = {"id": _new_id("call"), "type": "function",
            "function": {"name": name, "arguments": json.dumps(_write_args(keys, step))}}
    return {"role": "assistant", "content": None, "refusal": None, "tool_calls": [call]}, "tool_calls"


def _chat_usage(body: Any, message: dict[str, Any]) -> dict[str, Any]:
    prompt = max(1, len(json.dumps(body)) // 4) if body is not None else 1
    completion = max(1, len(json.dumps(message)) // 4)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": 0}, "completion_tokens_details": {"reasoning_tokens": 0}}


def chat_chunks(completion_id: str, body: dict[str, Any], message: dict[str, Any],
                finish_reason: str) -> Iterator[dict[str, Any]]:
    """The ``chat.completion.chunk`` objects of a streamed answer (without the ``[DONE]`` marker)."""
    created = int(time.time())
    model = body.get("model") or MODELS[0]

    def chunk(delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
        return {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model,
                "system_fingerprint": "fp_scripted",
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}

    yield chunk({"role": "assistant", "content": "", "refusal": None}, None)
    if message.get("content"):
        for piece in _chunks(message["content"]):
            yield chunk({"content": piece}, None)
    for index, call in enumerate(message.get("tool_calls") or []):
        yield chunk({"tool_calls": [{"index": index, "id": call["id"], "type": "function",
                                     "function": {"name": call["function"]["name"], "arguments": ""}}]}, None)
        for piece in _chunks(call["function"]["arguments"]):
            yield chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}, None)
    yield chunk({}, finish_reason)
    options = body.get("stream_options")
    if isinstance(options, dict) and options.get("include_usage"):
        yield {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model,
               "system_fingerprint": "fp_scripted", "choices": [], "usage": _chat_usage(body, message)}


class OpenAIChatCompletions:
    """``POST /v1/chat/completions`` (and ``GET /v1/models``): aider and other OpenAI-compatible clients."""

    name = "openai-chat"

    def matches(self, method: str, path: str) -> bool:
        """The Chat Completions endpoint and the model list."""
        return _is_models_path(method, path) or (
            method == "POST" and path.rstrip("/") in ("/v1/chat/completions", "/chat/completions"))

    def handle(self, request: ModelRequest, scenario: Scenario, respond: Responder) -> None:
        """Answer one request (a main turn consumes a scenario step)."""
        if _answered_before_the_turn(request, respond):
            return
        body: dict[str, Any] = request.body if isinstance(request.body, dict) else {}
        request.main = not is_chat_side_request(body)
        step: Step = scenario.next_step() if request.main else Reply(SIDE_TEXT)
        if isinstance(step, HttpFailure):
            respond.json(step.status, error_body(step.status, step.message))
            return
        tools = body.get("tools") if isinstance(body.get("tools"), list) else []
        message, finish_reason = chat_message(step, tools or [])
        completion_id = _new_id("chatcmpl")
        if body.get("stream"):
            respond.sse(((None, c) for c in chat_chunks(completion_id, body, message, finish_reason)), done_line=True)
            return
        respond.json(200, {"id": completion_id, "object": "chat.completion", "created": int(time.time()),
                           "model": body.get("model") or MODELS[0], "system_fingerprint": "fp_scripted",
                           "choices": [{"index": 0, "message": message, "logprobs": None,
                                        "finish_reason": finish_reason}],
                           "usage": _chat_usage(body, message)})
