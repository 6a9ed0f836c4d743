"""The OpenAI wire protocol as ``bitnet serve`` speaks it: request bodies and response documents.

Requests are validated with pydantic (unknown fields are ignored, as OpenAI's API does); a field of the
wrong type or out of range is a 400 naming the field. Features the server does not offer (several choices,
log probabilities, echo) are refused by name rather than silently ignored.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_STOP_SEQUENCES = 4


class RequestError(Exception):
    """A request the server refuses: HTTP ``status``, OpenAI error ``type``, the offending ``param``."""

    def __init__(self, message: str, *, status: int = 400, param: str | None = None,
                 error_type: str = "invalid_request_error", code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.param = param
        self.error_type = error_type
        self.code = code

    def body(self) -> dict[str, Any]:
        """OpenAI's error document."""
        return {"error": {"message": self.message, "type": self.error_type, "param": self.param, "code": self.code}}


class StreamOptions(BaseModel):
    """``stream_options``: ``include_usage`` adds a last chunk with the token counts."""

    model_config = ConfigDict(extra="ignore")
    include_usage: bool = False


class _Sampling(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str
    temperature: float = Field(default=1.0, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    seed: int | None = None
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int = 1
    logprobs: Any = None
    user: str | None = None

    @field_validator("stop")
    @classmethod
    def _stops(cls, value: str | list[str] | None) -> str | list[str] | None:
        stops = [value] if isinstance(value, str) else (value or [])
        if len(stops) > MAX_STOP_SEQUENCES:
            raise ValueError(f"at most {MAX_STOP_SEQUENCES} stop sequences")
        if any(s == "" for s in stops):
            raise ValueError("a stop sequence must not be empty")
        return value

    def stop_sequences(self) -> list[str]:
        """``stop`` as a list."""
        return [self.stop] if isinstance(self.stop, str) else list(self.stop or [])

    def check_supported(self) -> None:
        """Refuse what the server does not do, naming the field."""
        if self.n != 1:
            raise RequestError("only n=1 is supported", param="n")
        if self.logprobs not in (None, False, 0):
            raise RequestError("logprobs are not supported", param="logprobs")


class TextPart(BaseModel):
    """One part of a message's content list (only text parts are understood)."""

    model_config = ConfigDict(extra="ignore")
    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    """One chat message; ``content`` is a string or a list of text parts."""

    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None

    def text(self) -> str:
        """The message's text."""
        if isinstance(self.content, list):
            return "".join(part.text for part in self.content)
        return self.content or ""


class ChatCompletionRequest(_Sampling):
    """The body of ``POST /v1/chat/completions``."""

    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)

    def requested_max_tokens(self) -> int | None:
        """``max_completion_tokens`` (the current name) or ``max_tokens``."""
        return self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens


class CompletionRequest(_Sampling):
    """The body of ``POST /v1/completions``: one prompt, as text or as token ids."""

    prompt: str | list[int] | list[str] | list[list[int]]
    max_tokens: int | None = Field(default=16, ge=1)
    echo: bool = False
    best_of: int | None = None
    suffix: str | None = None

    def check_supported(self) -> None:
        super().check_supported()
        if self.echo:
            raise RequestError("echo is not supported", param="echo")
        if self.best_of not in (None, 1):
            raise RequestError("only best_of=1 is supported", param="best_of")
        if self.suffix:
            raise RequestError("suffix is not supported", param="suffix")

    def single_prompt(self) -> str | list[int]:
        """The one prompt (a list of one prompt is accepted; several are refused)."""
        prompt = self.prompt
        if isinstance(prompt, str):
            return prompt
        if not prompt:
            raise RequestError("prompt is empty", param="prompt")
        if all(isinstance(p, int) for p in prompt):
            return [int(p) for p in prompt]  # type: ignore[arg-type]
        if len(prompt) != 1:
            raise RequestError("one prompt per request is supported", param="prompt")
        only = prompt[0]
        return only if isinstance(only, str) else [int(t) for t in only]  # type: ignore[union-attr]


def new_id(prefix: str) -> str:
    """``chatcmpl-...`` / ``cmpl-...``."""
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def now() -> int:
    """Seconds since the epoch, as ``created`` fields carry it."""
    return int(time.time())


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    """The ``usage`` document."""
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}
