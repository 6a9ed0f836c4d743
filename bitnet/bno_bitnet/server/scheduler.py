"""Continuous batching: one thread owns the model and runs every request's tokens.

Each loop: requests that were cancelled, timed out or finished leave the batch; waiting requests are
admitted up to ``max_batch`` (each prefilled alone into its own cache, its first token sampled, then its
cache joined to the batch's); then ONE decode step runs every running row together and each row's next
token goes to its request. A request's tokens do not depend on the others in the batch: every row is
quantized, multiplied and attended on its own (the cache marks which slots are a row's), so greedy output
equals the same request served alone. Handing tokens to the HTTP side is the only cross-thread step: the
request's ``deliver`` callback (an asyncio ``call_soon_threadsafe`` in the app).
"""

from __future__ import annotations

import collections
import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from bno_bitnet.kv_cache import KVCache
from bno_bitnet.sampling import top_p_filter
from bno_bitnet.server.batch_cache import BatchKVCache
from bno_bitnet.tokenizer import IncrementalDecoder, Tokenizer

FinishReason = Literal["stop", "length", "cancelled", "timeout", "shutdown", "error"]


class QueueFull(Exception):
    """The waiting queue is at its bound: the client should retry later (HTTP 429)."""


class ShuttingDown(Exception):
    """The server is stopping and takes no new requests (HTTP 503)."""


@dataclass(frozen=True)
class Event:
    """What a request receives: one per token (its id and the text it completes, possibly empty while a
    character or a possible stop sequence is unfinished), then its end (``finish`` set, no token)."""

    text: str
    token_id: int | None = None
    finish: FinishReason | None = None
    completion_tokens: int = 0


@dataclass
class Request:
    """One generation: prompt ids, limits and sampling; ``deliver`` receives its events in order."""

    prompt_ids: list[int]
    max_tokens: int
    deliver: Callable[[Event], None]
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    stop: list[str] = field(default_factory=list)
    deadline: float | None = None  # time.monotonic() after which the request ends with "timeout"
    cancelled: threading.Event = field(default_factory=threading.Event)

    def cancel(self) -> None:
        """Ask the scheduler to drop the request (the client went away)."""
        self.cancelled.set()


class _Row:
    """A running request's decoding state."""

    def __init__(self, request: Request, tokenizer: Tokenizer) -> None:
        self.request = request
        self.decoder = IncrementalDecoder(tokenizer)
        self.generated = 0
        self.position = len(request.prompt_ids)  # RoPE position of the next token fed back
        self.next_token = -1
        self.pending = ""  # decoded text held back while it could begin a stop sequence
        self.generator: torch.Generator | None = None
        if request.temperature > 0:
            self.generator = torch.Generator(device="cpu")
            self.generator.manual_seed(request.seed if request.seed is not None else int(torch.seed() % 2**63))


@dataclass
class SchedulerStats:
    """Counters for tests and the benchmark."""

    admitted: int = 0
    finished: int = 0
    decode_steps: int = 0
    max_rows_in_step: int = 0
    rows_decoded: int = 0
    cancelled: int = 0  # requests ended because their client went away


class BatchScheduler:
    """Owns ``model``; runs submitted :class:`Request` s with continuous batching on its own thread."""

    def __init__(self, model: Any, tokenizer: Tokenizer, *, max_batch: int = 16, max_queue: int = 64) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.config = model.config
        self.max_batch = max_batch
        self.max_queue = max_queue
        self.context = int(self.config.max_position_embeddings)
        self.vocab = min(int(self.config.vocab_size), tokenizer.vocab_size)
        self.eos = set(tokenizer.eos_token_ids)
        self.stats = SchedulerStats()
        self._waiting: collections.deque[Request] = collections.deque()
        self._rows: list[_Row] = []
        self._cache: BatchKVCache | None = None
        self._lock = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name="bitnet-scheduler", daemon=True)
        self.error: BaseException | None = None

    # -- the HTTP side ----------------------------------------------------------------------------
    def start(self) -> None:
        """Start the scheduler thread."""
        self._thread.start()

    def submit(self, request: Request) -> None:
        """Queue a request; raises :class:`QueueFull` or :class:`ShuttingDown`."""
        with self._lock:
            if self._stopping:
                raise ShuttingDown("the server is shutting down")
            if len(self._waiting) >= self.max_queue:
                raise QueueFull(f"{len(self._waiting)} requests are waiting; retry later")
            self._waiting.append(request)
            self._lock.notify()

    def busy(self) -> int:
        """Requests waiting or running."""
        with self._lock:
            return len(self._waiting) + len(self._rows)

    def stop(self, *, timeout: float = 30.0) -> None:
        """Finish: refuse new requests, end every open one with "shutdown", join the thread."""
        with self._lock:
            self._stopping = True
            self._lock.notify()
        self._thread.join(timeout=timeout)

    # -- the model side ---------------------------------------------------------------------------
    def _loop(self) -> None:
        try:
            with torch.inference_mode():
                while True:
                    admitted = self._take_waiting()
                    if admitted is None:
                        break
                    with self._threads():
                        for request in admitted:
                            self._prefill(request)
                        self._retire()
                        if self._rows:
                            self._decode_step()
                        self._retire()
        except BaseException as exc:  # the thread must not die silently: every open request hears of it
            self.error = exc
            self._end_all("error")
            raise
        self._end_all("shutdown")

    def _take_waiting(self) -> list[Request] | None:
        """Requests to admit now (waits while idle); None when stopping."""
        with self._lock:
            while not self._waiting and not self._rows and not self._stopping:
                self._lock.wait(timeout=0.5)
            if self._stopping:
                return None
            room = self.max_batch - len(self._rows)
            taken: list[Request] = []
            while self._waiting and len(taken) < room:
                taken.append(self._waiting.popleft())
            return taken

    def _threads(self) -> contextlib.AbstractContextManager[Any]:
        try:
            from bno_kernels.cpu import ops
        except ImportError:  # pragma: no cover - the kernels package is part of the project
            return contextlib.nullcontext()
        device = next(iter(self.model.parameters())).device
        return ops.kernel_threads() if device.type == "cpu" and ops.available() else contextlib.nullcontext()

    def _prefill(self, request: Request) -> None:
        self.stats.admitted += 1
        if self._ended_early(request, 0):
            return
        n = len(request.prompt_ids)
        cache = KVCache(self.config, 1, n)
        ids = torch.tensor([request.prompt_ids], dtype=torch.long)  # (1, P)
        positions = torch.arange(n, dtype=torch.long)[None, :]  # (1, P)
        logits = self.model(ids, kv_cache=cache, position_ids=positions, attention_mask=torch.ones_like(ids),
                            num_logits_to_keep=1)  # (1, 1, V)
        row = _Row(request, self.tokenizer)
        if self._emit(row, self._sample(row, logits[0, -1])):
            return
        if self._cache is None:
            self._cache = BatchKVCache(self.config, cache, limit=2 * self.context)
        else:
            self._cache.add_row(cache)
        self._rows.append(row)

    def _decode_step(self) -> None:
        cache = self._cache
        assert cache is not None and cache.batch_size == len(self._rows)
        cache.make_room()
        tokens = torch.tensor([[r.next_token] for r in self._rows], dtype=torch.long)  # (B, 1)
        positions = torch.tensor([[r.position] for r in self._rows], dtype=torch.long)  # (B, 1)
        logits = self.model(tokens, kv_cache=cache, position_ids=positions,
                            attention_mask=torch.ones_like(tokens))  # (B, 1, V)
        self.stats.decode_steps += 1
        self.stats.rows_decoded += len(self._rows)
        self.stats.max_rows_in_step = max(self.stats.max_rows_in_step, len(self._rows))
        for b, row in enumerate(self._rows):
            row.position += 1
            self._emit(row, self._sample(row, logits[b, -1]))

    def _sample(self, row: _Row, logits: torch.Tensor) -> int:
        """Next token of one row from its logits (V',): greedy, or temperature and top-p with its generator."""
        logits = logits[: self.vocab].float()  # (V,)
        if row.generator is None:
            return int(torch.argmax(logits))
        scaled = top_p_filter(logits[None, :] / row.request.temperature, row.request.top_p)  # (1, V)
        probs = torch.softmax(scaled, dim=-1)[0]  # (V,)
        return int(torch.multinomial(probs, 1, generator=row.generator))

    def _emit(self, row: _Row, token: int) -> bool:
        """Deliver one token's text (stop sequences held back); True when the row has finished."""
        request = row.request
        row.generated += 1
        row.next_token = token
        finish: FinishReason | None = None
        if token in self.eos:
            finish = "stop"
            text = row.pending + row.decoder.flush()
        else:
            text = row.pending + row.decoder.push(token)
        cut = _find_stop(text, request.stop)
        if cut is not None:
            text, finish = text[:cut], "stop"
        elif finish is None and (row.generated >= request.max_tokens
                                 or len(request.prompt_ids) + row.generated >= self.context):
            finish = "length"
            text += row.decoder.flush()
            cut = _find_stop(text, request.stop)
            if cut is not None:
                text = text[:cut]
        if finish is None:
            keep = _held_back(text, request.stop)
            text, row.pending = text[: len(text) - keep], text[len(text) - keep :]
            request.deliver(Event(text, token_id=token, completion_tokens=row.generated))
            return False
        request.deliver(Event(text, token_id=token, completion_tokens=row.generated))
        request.deliver(Event("", finish=finish, completion_tokens=row.generated))
        self.stats.finished += 1
        row.next_token = -2  # finished: leaves the batch at the next retire
        return True

    def _ended_early(self, request: Request, generated: int) -> bool:
        """Deliver the end of a cancelled or timed-out request (waiting or running); True when it has ended."""
        if request.cancelled.is_set():
            finish: FinishReason = "cancelled"
            self.stats.cancelled += 1
        elif request.deadline is not None and time.monotonic() > request.deadline:
            finish = "timeout"
        else:
            return False
        request.deliver(Event("", finish=finish, completion_tokens=generated))
        self.stats.finished += 1
        return True

    def _retire(self) -> None:
        """Drop finished, cancelled and timed-out rows from the batch."""
        keep = [i for i, row in enumerate(self._rows)
                if row.next_token != -2 and not self._ended_early(row.request, row.generated)]
        if len(keep) == len(self._rows):
            return
        self._rows = [self._rows[i] for i in keep]
        if not keep:
            self._cache = None
        else:
            assert self._cache is not None
            self._cache.select_rows(torch.tensor(keep, dtype=torch.long))

    def _end_all(self, finish: FinishReason) -> None:
        """End every waiting and running request with ``finish`` (shutdown, or the thread failing)."""
        with self._lock:
            waiting = list(self._waiting)
            self._waiting.clear()
        for request in waiting:
            request.deliver(Event("", finish=finish))
        for row in self._rows:
            row.request.deliver(Event("", finish=finish, completion_tokens=row.generated))
        self._rows = []
        self._cache = None


def _find_stop(text: str, stops: list[str]) -> int | None:
    """Index where the first stop sequence starts in ``text``, or None."""
    found = [i for i in (text.find(s) for s in stops) if i >= 0]
    return min(found) if found else None


def _held_back(text: str, stops: list[str]) -> int:
    """Length of the longest end of ``text`` that could be the start of a stop sequence."""
    best = 0
    for stop in stops:
        for k in range(min(len(stop) - 1, len(text)), best, -1):
            if text.endswith(stop[:k]):
                best = k
                break
    return best
