"""The Gemini API dialect (what Gemini CLI and the ``google-genai`` SDK speak).

``POST /v1beta/models/{model}:generateContent`` answers one ``GenerateContentResponse`` JSON;
``:streamGenerateContent`` answers a stream of them (server-sent ``data:`` lines with ``?alt=sse``, which
is what the SDK asks for; a JSON array of chunks otherwise). A *main* turn (the request declares tools:
``tools[].functionDeclarations``, the agent loop) consumes a scenario step; a side request (Gemini CLI's
"next speaker" check, model-routing classifier, loop detection, chat compression, session summary: no
tools, usually ``responseMimeType: application/json`` with a ``responseJsonSchema``) is answered without
consuming one, with a value that fits the requested schema (the first ``enum`` member: ``next_speaker``
``"user"``, ``model_choice`` ``"flash"``; integers 1, e.g. the router's ``complexity_score``: simple; other
numbers 0, e.g. the loop detector's confidence: no loop) or a short text (the session summary).

:class:`~bno_orchestrator.scripted_model.scenario.WriteFile` becomes a ``functionCall`` of Gemini CLI's
own ``write_file`` tool with ``{"file_path": ..., "content": ...}`` (the names are read from the request's
declarations when they are there); the path is passed as given (Gemini CLI resolves a relative path
against its target directory). :class:`~bno_orchestrator.scripted_model.scenario.Reply` is a ``text``
part. :class:`~bno_orchestrator.scripted_model.scenario.HttpFailure` is Google's error JSON
``{"error": {"code", "message", "status"}}``. ``:countTokens`` answers an estimate, ``:embedContent`` and
``:batchEmbedContents`` a small vector, ``GET /v1beta/models[/{model}]`` a model description.

The key is read from the ``x-goog-api-key`` header or the ``key`` query parameter; a missing one gets
Google's 403 ``PERMISSION_DENIED``, a wrong one its 400 ``INVALID_ARGUMENT`` "API key not valid".
"""

from __future__ import annotations

import itertools
import json
import re
import urllib.parse
from typing import Any

from bno_orchestrator.scripted_model.scenario import HttpFailure, Reply, Scenario, Step, WriteFile
from bno_orchestrator.scripted_model.server import ModelRequest, Responder

# Google's canonical error ``status`` per HTTP status (google.rpc.Code as the REST APIs map it).
ERROR_STATUSES: dict[int, str] = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "NOT_IMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}

_PATH = re.compile(r"^/(?P<version>v1(?:alpha|beta)?\d*)/(?:(?P<models>models|tunedModels)(?:/(?P<rest>.*))?)?$")
_ids = itertools.count(1)
WRITE_TOOL = "write_file"
_PATH_PARAMS = ("file_path", "absolute_path", "path")


def error_status(status: int) -> str:
    """Google's error status name for an HTTP status."""
    if status in ERROR_STATUSES:
        return ERROR_STATUSES[status]
    return "INTERNAL" if status >= 500 else "FAILED_PRECONDITION"


def error_body(status: int, message: str, details: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Google's error JSON."""
    error: dict[str, Any] = {"code": status, "message": message, "status": error_status(status)}
    if details:
        error["details"] = details
    return {"error": error}


def _key_error(given: str | None) -> tuple[int, dict[str, Any]]:
    """What Google answers for a missing or wrong key."""
    if not given:
        return 403, error_body(403, "Method doesn't allow unregistered callers (callers without established "
                                    "identity). Please use API Key or other form of API consumer identity to "
                                    "call this API.")
    reason = {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
              "domain": "googleapis.com", "metadata": {"service": "generativelanguage.googleapis.com"}}
    return 400, error_body(400, "API key not valid. Please pass a valid API key.", [reason])


def given_key(request: ModelRequest) -> str | None:
    """The key the client sent: ``x-goog-api-key``, else the ``key`` query parameter."""
    header = request.headers.get("x-goog-api-key")
    if header:
        return header
    values = request.query.get("key")
    return values[0] if values else None


def split_path(path: str) -> tuple[str | None, str | None]:
    """``(model, method)`` of ``/v1beta/models/{model}:{method}``; ``(model, None)`` for ``models/{model}``."""
    match = _PATH.match(path)
    if not match or match.group("models") is None:
        return None, None
    rest = urllib.parse.unquote(match.group("rest") or "")
    if not rest:
        return None, None
    model, _, method = rest.partition(":")
    return model, method or None


def _declarations(body: Any) -> list[dict[str, Any]]:
    tools = body.get("tools") if isinstance(body, dict) else None
    found: list[dict[str, Any]] = []
    for tool in tools or []:
        if isinstance(tool, dict):
            for key in ("functionDeclarations", "function_declarations"):
                found.extend(d for d in tool.get(key) or [] if isinstance(d, dict))
    return found


def is_main_turn(body: Any) -> bool:
    """A main agent turn declares functions; Gemini CLI's utility requests (JSON checks, summaries) do not."""
    return bool(_declarations(body))


def _write_call(body: Any, path: str, content: str) -> dict[str, Any]:
    """The ``functionCall`` of the client's file-writing tool, with the parameter names it declared."""
    declarations = {str(d.get("name")): d for d in _declarations(body)}
    name = WRITE_TOOL
    if name not in declarations:
        name = next((n for n in declarations if n.lower().endswith("write_file")), WRITE_TOOL)
    schema = declarations.get(name, {})
    props = (schema.get("parametersJsonSchema") or schema.get("parameters") or {}).get("properties") or {}
    path_param = next((p for p in _PATH_PARAMS if p in props), "file_path")
    content_param = "content" if "content" in props or not props else next(
        (p for p in props if p != path_param), "content")
    return {"name": name, "args": {path_param: path, content_param: content}}


def _schema_value(schema: Any, depth: int = 0) -> Any:
    """A small value that satisfies a (JSON or OpenAPI-subset) schema: first enum member, required fields."""
    if not isinstance(schema, dict) or depth > 8:
        return None
    if schema.get("enum"):
        return schema["enum"][0]
    for combo in ("anyOf", "oneOf"):
        if schema.get(combo):
            return _schema_value(schema[combo][0], depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    kind = str(kind or ("object" if "properties" in schema else "string")).lower()
    if kind == "object":
        props = schema.get("properties") or {}
        required = schema.get("required") or list(props)
        return {name: _schema_value(props.get(name), depth + 1) for name in required}
    if kind == "array":
        return []
    if kind == "integer":  # Gemini CLI's router wants a complexity score of 1..100: 1 is "simple"
        return max(int(schema.get("minimum", 1)), 1)
    if kind == "number":  # e.g. the loop detector's confidence 0.0..1.0: 0 is "no loop"
        return schema.get("minimum", 0)
    if kind == "boolean":
        return False
    return "scripted"


def _side_text(body: Any) -> str:
    """The answer to a utility request: JSON fitting its schema when it asks for JSON, else a short text."""
    config = body.get("generationConfig") if isinstance(body, dict) else None
    config = config if isinstance(config, dict) else {}
    schema = config.get("responseJsonSchema") or config.get("responseSchema")
    if schema:
        return json.dumps(_schema_value(schema))
    if config.get("responseMimeType") == "application/json":
        return "{}"
    return "Scripted session"


def _estimate_tokens(body: Any) -> int:
    return max(1, len(json.dumps(body or {})) // 4)


def _usage(body: Any, output: int) -> dict[str, Any]:
    prompt = _estimate_tokens(body)
    return {"promptTokenCount": prompt, "candidatesTokenCount": output, "totalTokenCount": prompt + output,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}]}


def _response(model: str, parts: list[dict[str, Any]], usage: dict[str, Any] | None, response_id: str,
              finish: bool = True) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
    if finish:
        candidate["finishReason"] = "STOP"
    out: dict[str, Any] = {"candidates": [candidate], "modelVersion": model, "responseId": response_id}
    if usage is not None:
        out["usageMetadata"] = usage
    return out


class GeminiGenerateContent:
    """The Gemini API on ``/v1beta/models/...`` (see the module docstring)."""

    name = "gemini"

    def matches(self, method: str, path: str) -> bool:
        """``/v1beta/models``, ``/v1/models``, ``/v1alpha/models`` and below."""
        match = _PATH.match(path)
        return bool(match and match.group("models"))

    def handle(self, request: ModelRequest, scenario: Scenario, respond: Responder) -> None:
        """Answer one Gemini API request."""
        key = given_key(request)
        if not request.key_ok(key):
            status, body = _key_error(key)
            respond.json(status, body)
            return
        model, method = split_path(request.path)
        if request.method == "GET":
            self._models(request, model, respond)
            return
        if model is None or method is None:
            respond.json(404, error_body(404, f"Method not found: {request.method} {request.path}"))
            return
        if method in ("generateContent", "streamGenerateContent"):
            self._generate(request, scenario, respond, model, stream=method == "streamGenerateContent")
        elif method == "countTokens":
            contents = (request.body or {}).get("contents") if isinstance(request.body, dict) else None
            respond.json(200, {"totalTokens": _estimate_tokens(contents)})
        elif method == "embedContent":
            respond.json(200, {"embedding": {"values": [0.0] * 8}})
        elif method == "batchEmbedContents":
            requests = (request.body or {}).get("requests") if isinstance(request.body, dict) else None
            respond.json(200, {"embeddings": [{"values": [0.0] * 8} for _ in requests or [None]]})
        else:
            respond.json(404, error_body(404, f"Method not found: {method}"))

    def _models(self, request: ModelRequest, model: str | None, respond: Responder) -> None:
        def describe(name: str) -> dict[str, Any]:
            return {"name": f"models/{name}", "displayName": name, "inputTokenLimit": 1048576,
                    "outputTokenLimit": 65536,
                    "supportedGenerationMethods": ["generateContent", "streamGenerateContent", "countTokens"]}

        if model is not None:
            respond.json(200, describe(model))
        else:
            respond.json(200, {"models": [describe("gemini-2.5-pro"), describe("gemini-2.5-flash")]})

    def _generate(self, request: ModelRequest, scenario: Scenario, respond: Responder, model: str, *,
                  stream: bool) -> None:
        body = request.body
        step: Step
        if is_main_turn(body):
            request.main = True
            step = scenario.next_step()
        else:
            step = Reply(_side_text(body))
        if isinstance(step, HttpFailure):
            respond.json(step.status, error_body(step.status, step.message))
            return
        response_id = f"scripted-{next(_ids):06d}"
        if isinstance(step, WriteFile):
            parts: list[dict[str, Any]] = [{"functionCall": _write_call(body, step.path, step.content)}]
            output = _estimate_tokens(parts)
        else:
            parts = [{"text": step.text}]
            output = max(1, len(step.text) // 4)
        usage = _usage(body, output)
        if not stream:
            respond.json(200, _response(model, parts, usage, response_id))
            return
        chunks = self._chunks(model, parts, usage, response_id)
        if request.query.get("alt", [""])[0] == "sse":
            respond.sse((None, chunk) for chunk in chunks)
        else:
            respond.json(200, chunks)

    @staticmethod
    def _chunks(model: str, parts: list[dict[str, Any]], usage: dict[str, Any],
                response_id: str) -> list[dict[str, Any]]:
        """The streamed form: a text in two pieces, a function call whole; the last chunk finishes."""
        if len(parts) == 1 and "text" in parts[0] and len(parts[0]["text"]) > 1:
            text = parts[0]["text"]
            half = len(text) // 2
            return [_response(model, [{"text": text[:half]}], None, response_id, finish=False),
                    _response(model, [{"text": text[half:]}], usage, response_id)]
        return [_response(model, parts, usage, response_id)]
