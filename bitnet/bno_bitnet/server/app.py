"""The HTTP side of ``bitnet serve``: FastAPI routes in OpenAI's shapes, server-sent events, limits.

Every refusal is OpenAI's error document (``{"error": {"message", "type", "param", "code"}}``) with a 4xx
status: 400 for a bad body (the field named), 404 for an unknown model or path, 413 for a body over the
limit, 429 when the waiting queue is full, 503 while shutting down. A request that runs past its timeout
ends: a plain response becomes a 504, a stream gets an error event before ``[DONE]``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from bno_bitnet.server import protocol
from bno_bitnet.server.protocol import ChatCompletionRequest, CompletionRequest, RequestError
from bno_bitnet.server.scheduler import BatchScheduler, Event, QueueFull, ShuttingDown
from bno_bitnet.server.scheduler import Request as GenRequest


@dataclass(frozen=True)
class Limits:
    """What one request may ask for."""

    max_body_bytes: int = 1 << 20  # 1 MiB
    max_tokens: int = 1024  # the most new tokens one request may ask for
    timeout_s: float = 300.0  # wall-clock time from arrival to the last token


def create_app(scheduler: BatchScheduler, model_name: str, limits: Limits | None = None) -> FastAPI:
    """The FastAPI application serving ``scheduler``'s model as ``model_name``."""
    lim = limits or Limits()
    app = FastAPI(title="bitnet serve", docs_url=None, redoc_url=None, openapi_url=None)
    created = protocol.now()
    tokenizer = scheduler.tokenizer

    @app.exception_handler(RequestError)
    async def _request_error(_: Request, exc: RequestError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        return JSONResponse(RequestError(str(exc.detail), status=exc.status_code, error_type=kind).body(),
                            status_code=exc.status_code)

    @app.get("/v1/models")
    async def list_models() -> dict[str, Any]:
        return {"object": "list", "data": [_model_card(model_name, created)]}

    @app.get("/v1/models/{name}")
    async def get_model(name: str) -> dict[str, Any]:
        _check_model(name, model_name)
        return _model_card(model_name, created)

    @app.post("/v1/chat/completions", response_model=None)
    async def chat(request: Request) -> JSONResponse | StreamingResponse:
        body = _parse(ChatCompletionRequest, await _read_body(request, lim))
        body.check_supported()
        _check_model(body.model, model_name)
        messages = [{"role": m.role, "content": m.text()} for m in body.messages]
        try:
            text = tokenizer.apply_chat_template(messages)
        except Exception as exc:  # a broken template is the model directory's problem: say so
            raise RequestError(f"the chat template failed: {exc}", status=500, error_type="server_error") from exc
        ids = tokenizer.encode(text, add_bos=True)
        return await _run(request, body, ids, body.requested_max_tokens(), chat=True)

    @app.post("/v1/completions", response_model=None)
    async def completions(request: Request) -> JSONResponse | StreamingResponse:
        body = _parse(CompletionRequest, await _read_body(request, lim))
        body.check_supported()
        _check_model(body.model, model_name)
        prompt = body.single_prompt()
        if isinstance(prompt, str):
            ids = tokenizer.encode(prompt, add_bos=True)
        else:
            vocab = scheduler.vocab
            bad = next((t for t in prompt if not 0 <= t < vocab), None)
            if bad is not None:
                raise RequestError(f"token id {bad} is outside the vocabulary [0, {vocab})", param="prompt")
            ids = prompt
        return await _run(request, body, ids, body.max_tokens, chat=False)

    async def _run(http: Request, body: ChatCompletionRequest | CompletionRequest, ids: list[int],
                   max_tokens: int | None, *, chat: bool) -> JSONResponse | StreamingResponse:
        prompt_param = "messages" if chat else "prompt"
        if not ids:
            raise RequestError("the prompt has no tokens", param=prompt_param)
        room = scheduler.context - len(ids)
        if room < 1:
            raise RequestError(f"the prompt has {len(ids)} tokens; the model's context is {scheduler.context}",
                               param=prompt_param, code="context_length_exceeded")
        if max_tokens is None:
            max_tokens = min(room, lim.max_tokens)
        if max_tokens > lim.max_tokens:
            raise RequestError(f"max_tokens is {max_tokens}; this server allows at most {lim.max_tokens}",
                               param="max_tokens")
        if max_tokens > room:
            raise RequestError(f"the prompt ({len(ids)} tokens) plus max_tokens ({max_tokens}) exceed the model's "
                               f"context of {scheduler.context}", param="max_tokens", code="context_length_exceeded")
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Event] = asyncio.Queue()
        def deliver(event: Event) -> None:  # on the scheduler's thread
            loop.call_soon_threadsafe(queue.put_nowait, event)

        gen = GenRequest(prompt_ids=ids, max_tokens=max_tokens, deliver=deliver,
                         temperature=body.temperature, top_p=body.top_p, seed=body.seed,
                         stop=body.stop_sequences(), deadline=time.monotonic() + lim.timeout_s)
        try:
            scheduler.submit(gen)
        except QueueFull as exc:
            raise RequestError(str(exc), status=429, error_type="rate_limit_exceeded") from exc
        except ShuttingDown as exc:
            raise RequestError(str(exc), status=503, error_type="server_error") from exc
        ident = protocol.new_id("chatcmpl" if chat else "cmpl")
        if body.stream:
            include_usage = bool(body.stream_options and body.stream_options.include_usage)
            return StreamingResponse(_sse(http, gen, queue, ident, body.model, len(ids), chat, include_usage),
                                     media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
        try:
            parts: list[str] = []
            while True:
                event = await queue.get()
                parts.append(event.text)
                if event.finish is not None:
                    break
        except asyncio.CancelledError:
            gen.cancel()
            raise
        if event.finish not in ("stop", "length"):
            raise _ended(event)
        return JSONResponse(_document(ident, body.model, "".join(parts), event.finish, len(ids),
                                      event.completion_tokens, chat))

    return app


def _model_card(name: str, created: int) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": created, "owned_by": "bitnet-orchestrator"}


def _check_model(requested: str, served: str) -> None:
    if requested != served:
        raise RequestError(f"The model '{requested}' does not exist; this server serves '{served}'", status=404,
                           param="model", error_type="invalid_request_error", code="model_not_found")


async def _read_body(request: Request, limits: Limits) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limits.max_body_bytes:
        raise RequestError(f"the body has {declared} bytes; the limit is {limits.max_body_bytes}", status=413)
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limits.max_body_bytes:
            raise RequestError(f"the body exceeds the limit of {limits.max_body_bytes} bytes", status=413)
        chunks.append(chunk)
    return b"".join(chunks)


def _parse(model: type[ChatCompletionRequest] | type[CompletionRequest], raw: bytes) -> Any:
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RequestError(f"the body is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise RequestError("the body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise RequestError(f"{loc}: {first['msg']}", param=loc or None) from exc


def _ended(event: Event) -> RequestError:
    if event.finish == "timeout":
        return RequestError("the request timed out", status=504, error_type="server_error", code="timeout")
    if event.finish == "shutdown":
        return RequestError("the server shut down before the request finished", status=503,
                            error_type="server_error")
    return RequestError(f"the request ended: {event.finish}", status=500, error_type="server_error")


def _document(ident: str, model: str, text: str, finish: str, prompt_tokens: int, completion_tokens: int,
              chat: bool) -> dict[str, Any]:
    usage = protocol.usage(prompt_tokens, completion_tokens)
    if chat:
        choice: dict[str, Any] = {"index": 0, "message": {"role": "assistant", "content": text},
                                  "logprobs": None, "finish_reason": finish}
        return {"id": ident, "object": "chat.completion", "created": protocol.now(), "model": model,
                "choices": [choice], "usage": usage}
    return {"id": ident, "object": "text_completion", "created": protocol.now(), "model": model,
            "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": finish}], "usage": usage}


def _chunk(ident: str, model: str, chat: bool, text: str | None, finish: str | None,
           role: bool = False) -> dict[str, Any]:
    if chat:
        delta: dict[str, Any] = {}
        if role:
            delta["role"] = "assistant"
        if text is not None:
            delta["content"] = text
        return {"id": ident, "object": "chat.completion.chunk", "created": protocol.now(), "model": model,
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
    return {"id": ident, "object": "text_completion", "created": protocol.now(), "model": model,
            "choices": [{"index": 0, "text": text or "", "logprobs": None, "finish_reason": finish}]}


def _sse_line(doc: dict[str, Any]) -> str:
    return f"data: {json.dumps(doc, ensure_ascii=False)}\n\n"


async def _sse(http: Request, gen: GenRequest, queue: asyncio.Queue[Event], ident: str, model: str,
               prompt_tokens: int, chat: bool, include_usage: bool) -> AsyncIterator[str]:
    """The server-sent events of one streamed request; a client that goes away cancels the request."""
    finished = False
    try:
        if chat:
            yield _sse_line(_chunk(ident, model, chat, "", None, role=True))
        while True:
            event = await queue.get()
            if event.text:
                yield _sse_line(_chunk(ident, model, chat, event.text, None))
            if event.finish is None:
                continue
            finished = True
            if event.finish in ("stop", "length"):
                yield _sse_line(_chunk(ident, model, chat, None if chat else "", event.finish))
            else:
                yield _sse_line(_ended(event).body())
            if include_usage:
                yield _sse_line({"id": ident, "object": "chat.completion.chunk" if chat else "text_completion",
                                 "created": protocol.now(), "model": model, "choices": [],
                                 "usage": protocol.usage(prompt_tokens, event.completion_tokens)})
            yield "data: [DONE]\n\n"
            return
    finally:
        if not finished:
            gen.cancel()
