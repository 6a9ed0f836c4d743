"""The generation engine: prefill and decode over a preallocated KV cache, batched and streamed.

``Engine(model, tokenizer).generate(prompts, GenerationConfig(...))`` returns one
:class:`GenerationResult` per prompt; :meth:`Engine.stream` yields a :class:`StreamEvent` per token as it
is produced. A batch of prompts of different lengths is LEFT-padded: the attention mask marks the real
tokens and the position ids count real tokens only, so each row computes exactly what it would alone
(no cross-talk). Each row stops on its own (a stop token, ``max_new_tokens``, or the end of the
context); a finished row's outputs are dropped and, when the cache supports it, the row leaves the batch.

The model contract (``bno_bitnet.model.BitNetForCausalLM``)::

    forward(input_ids (B, T), *, kv_cache, position_ids (B, T), attention_mask (B, T)) -> logits (B, T', V)

with ``T' == T`` or, when the model accepts ``num_logits_to_keep``, ``T' == 1`` during prefill (only the last
position's logits are needed there; the head is the costliest single matmul of a 2B model).
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from bno_bitnet.errors import ConfigError, ContextLengthError
from bno_bitnet.sampling import GenerationConfig, Sampler, validate_token_ids
from bno_bitnet.tokenizer import ByteTokenizer, IncrementalDecoder, Tokenizer

FinishReason = Literal["stop", "length", "context"]


@dataclass(frozen=True)
class StreamEvent:
    """One generated token of one prompt.

    ``text`` is the text this token completes (may be empty while a character is unfinished);
    ``finish_reason`` is set on a row's last event: ``"stop"`` (a stop token, kept in ``token_id``),
    ``"length"`` (``max_new_tokens`` reached) or ``"context"`` (the model's context is full).
    """

    row: int
    index: int
    token_id: int
    text: str
    finish_reason: FinishReason | None = None
    logits: torch.Tensor | None = None  # (V,) float32 the token was chosen from, when asked for


@dataclass
class GenerationResult:
    """The output of one prompt."""

    prompt_ids: list[int]
    token_ids: list[int]
    text: str
    finish_reason: FinishReason
    logits: list[torch.Tensor] | None = None  # per generated token, (V,) float32, when asked for


@dataclass
class GenerationStats:
    """Timings of the last generation call (wall clock, seconds)."""

    batch_size: int = 0
    prompt_tokens: int = 0  # real (unpadded) prompt tokens over the batch
    padded_prompt_len: int = 0
    generated_tokens: int = 0  # tokens emitted over the batch
    decode_steps: int = 0  # forward passes after the prefill
    time_to_first_token_s: float = 0.0  # from the call to the first token (tokenize, prefill, sample)
    prefill_s: float = 0.0  # the prefill forward and its sampling
    decode_s: float = 0.0  # all decode steps
    prefill_cpu_s: float = 0.0  # process CPU time (all threads) of the prefill
    decode_cpu_s: float = 0.0  # process CPU time (all threads) of the decode steps
    step_times_s: list[float] = field(default_factory=list)

    @property
    def prefill_tokens_per_s(self) -> float:
        """Real prompt tokens per second of prefill."""
        return self.prompt_tokens / self.prefill_s if self.prefill_s > 0 else 0.0

    @property
    def decode_tokens_per_s(self) -> float:
        """Decode steps per second times the batch size at the start (tokens per second at batch 1)."""
        return self.decode_steps * self.batch_size / self.decode_s if self.decode_s > 0 else 0.0


def _model_device(model: nn.Module) -> torch.device:
    for param in model.parameters():
        return param.device
    for buf in model.buffers():
        return buf.device
    return torch.device("cpu")


def _accepts(fn: Any, name: str) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


class Engine:
    """Runs a causal LM with a KV cache: batched, seeded, streaming generation.

    ``model`` is a ``BitNetForCausalLM`` (or any module with its ``forward`` contract, a ``config`` with
    ``vocab_size`` and ``max_position_embeddings``, and a KV cache class). ``tokenizer`` defaults to bytes.
    ``add_bos`` puts the tokenizer's BOS before text prompts (token-id prompts are used as given).
    """

    def __init__(self, model: nn.Module, tokenizer: Tokenizer | None = None, *, add_bos: bool = True,
                 cache_dtype: torch.dtype | None = None) -> None:
        self.model = model.eval()
        self.config: Any = getattr(model, "config", None)
        if self.config is None:
            raise ConfigError("Engine: the model has no .config (vocab_size, max_position_embeddings)")
        self.tokenizer: Tokenizer = tokenizer if tokenizer is not None else ByteTokenizer()
        model_vocab = int(self.config.vocab_size)
        if self.tokenizer.vocab_size > model_vocab:
            raise ConfigError(
                f"tokenizer has {self.tokenizer.vocab_size} tokens but the model's vocab_size is {model_vocab}"
            )
        # Only ids the tokenizer can decode are sampled (model vocabularies are often padded).
        self.vocab_size = self.tokenizer.vocab_size
        self.max_context = int(self.config.max_position_embeddings)
        self.add_bos = add_bos
        self.device = _model_device(model)
        self.cache_dtype = cache_dtype if cache_dtype is not None else self._default_cache_dtype()
        self._keep_last = next((name for name in ("num_logits_to_keep", "logits_to_keep")
                                if _accepts(model.forward, name)), None)
        self.last_stats = GenerationStats()
        self._uses_native_kernels = self.device.type == "cpu" and any(
            getattr(getattr(m, "packed", None), "layout", None) == "cpu" for m in model.modules()
        )

    def _default_cache_dtype(self) -> torch.dtype:
        """The model's activation dtype (``model.dtype``), else its first floating parameter's."""
        dtype = getattr(self.model, "dtype", None)
        if isinstance(dtype, torch.dtype):
            return dtype
        for param in self.model.parameters():
            if param.is_floating_point():
                return param.dtype
        return torch.float32

    # -- inputs -----------------------------------------------------------------------------------
    def encode_prompts(self, prompts: Sequence[str] | Sequence[Sequence[int]]) -> list[list[int]]:
        """Token ids of each prompt (text is encoded, with BOS when ``add_bos``); validated."""
        if isinstance(prompts, str | bytes) or not isinstance(prompts, Sequence):
            raise ConfigError("prompts: expected a list of strings or a list of token-id lists")
        if len(prompts) == 0:
            raise ConfigError("prompts: the list is empty")
        out: list[list[int]] = []
        for i, prompt in enumerate(prompts):
            if isinstance(prompt, str):
                ids = self.tokenizer.encode(prompt, add_bos=self.add_bos)
            elif isinstance(prompt, Sequence):
                ids = validate_token_ids([int(t) if isinstance(t, int) else t for t in prompt],  # type: ignore[misc]
                                        int(self.config.vocab_size), f"prompt {i}")
            else:
                raise ConfigError(f"prompt {i}: expected a string or a list of token ids, got {type(prompt).__name__}")
            if not ids:
                raise ConfigError(f"prompt {i}: is empty (and the tokenizer has no BOS to start it)")
            if len(ids) > self.max_context:
                raise ContextLengthError(
                    f"prompt {i}: {len(ids)} tokens is longer than the model's context of {self.max_context} "
                    "tokens (max_position_embeddings)"
                )
            out.append(ids)
        return out

    def _new_cache(self, batch_size: int, max_seq_len: int) -> Any:
        from bno_bitnet.kv_cache import KVCache

        return KVCache(self.config, batch_size, max_seq_len, self.cache_dtype, self.device)

    def _forward(self, input_ids: torch.Tensor, cache: Any, position_ids: torch.Tensor,
                 attention_mask: torch.Tensor, last_only: bool) -> torch.Tensor:
        """Logits of the last position of each row: (B, V)."""
        kwargs: dict[str, Any] = {"kv_cache": cache, "position_ids": position_ids, "attention_mask": attention_mask}
        if last_only and self._keep_last is not None:
            kwargs[self._keep_last] = 1
        logits = self.model(input_ids, **kwargs)  # (B, T', V)
        assert logits.dim() == 3 and logits.shape[0] == input_ids.shape[0], (
            f"model returned logits {tuple(logits.shape)} for input {tuple(input_ids.shape)}"
        )
        return logits[:, -1, :]  # (B, V)

    # -- generation -------------------------------------------------------------------------------
    def generate(self, prompts: Sequence[str] | Sequence[Sequence[int]],
                 config: GenerationConfig | None = None, *, return_logits: bool = False) -> list[GenerationResult]:
        """Generate for every prompt; results in prompt order.

        ``return_logits`` keeps, per generated token, the logits it was chosen from (before the
        repetition penalty and the sampling filters), for tests and inspection.
        """
        start = time.perf_counter()
        cfg = config if config is not None else GenerationConfig()
        encoded = self.encode_prompts(prompts)
        tokens: list[list[int]] = [[] for _ in encoded]
        texts: list[list[str]] = [[] for _ in encoded]
        logits: list[list[torch.Tensor]] = [[] for _ in encoded]
        reasons: list[FinishReason] = ["length"] * len(encoded)
        for event in self._run(encoded, cfg, start, return_logits):
            tokens[event.row].append(event.token_id)
            texts[event.row].append(event.text)
            if event.logits is not None:
                logits[event.row].append(event.logits)
            if event.finish_reason is not None:
                reasons[event.row] = event.finish_reason
        return [GenerationResult(prompt_ids=encoded[i], token_ids=tokens[i], text="".join(texts[i]),
                                 finish_reason=reasons[i], logits=logits[i] if return_logits else None)
                for i in range(len(encoded))]

    def stream(self, prompts: Sequence[str] | Sequence[Sequence[int]],
               config: GenerationConfig | None = None, *, return_logits: bool = False) -> Iterator[StreamEvent]:
        """Yield each token as it is produced (rows interleaved step by step).

        Bad prompts raise here, before the first token; the model runs as the iterator is consumed.
        """
        start = time.perf_counter()
        cfg = config if config is not None else GenerationConfig()
        encoded = self.encode_prompts(prompts)
        return self._run(encoded, cfg, start, return_logits)

    def _stop_ids(self, cfg: GenerationConfig) -> list[int]:
        stops = set(cfg.stop_token_ids)
        if cfg.stop_at_eos:
            stops.update(self.tokenizer.eos_token_ids)
        return sorted(stops)

    def _run(self, encoded: list[list[int]], cfg: GenerationConfig, start: float,
             return_logits: bool) -> Iterator[StreamEvent]:
        with torch.inference_mode():
            yield from self._run_inner(encoded, cfg, start, return_logits)

    def _run_inner(self, encoded: list[list[int]], cfg: GenerationConfig,
                   start: float, return_logits: bool) -> Iterator[StreamEvent]:
        batch = len(encoded)
        lengths = [len(ids) for ids in encoded]
        padded = max(lengths)
        # Room: a row may emit tokens while the token it feeds back still has a position in the context.
        room = [min(cfg.max_new_tokens, self.max_context - n + 1) for n in lengths]
        steps = max(room)
        cache_len = padded + steps - 1
        stats = GenerationStats(batch_size=batch, prompt_tokens=sum(lengths), padded_prompt_len=padded)
        self.last_stats = stats
        device = self.device

        input_ids = torch.zeros(batch, padded, dtype=torch.long)  # (B, T0) left-padded
        mask = torch.zeros(batch, padded, dtype=torch.long)  # (B, T0) 1 = real token
        for i, ids in enumerate(encoded):
            input_ids[i, padded - len(ids):] = torch.tensor(ids, dtype=torch.long)
            mask[i, padded - len(ids):] = 1
        positions = (mask.cumsum(-1) - 1).clamp_(min=0)  # (B, T0) real-token positions
        input_ids, mask, positions = input_ids.to(device), mask.to(device), positions.to(device)

        sampler = Sampler(cfg, batch, self.vocab_size, device)
        sampler.observe(input_ids, mask.bool())
        stop_ids = torch.tensor(self._stop_ids(cfg), dtype=torch.long, device=device)  # (S,)
        decoders = [IncrementalDecoder(self.tokenizer) for _ in range(batch)]
        emitted = [0] * batch
        rows = list(range(batch))  # original index of each batch row still running

        cache = self._new_cache(batch, cache_len)
        c0 = time.process_time()
        t0 = time.perf_counter()
        with self._threads():
            logits = self._forward(input_ids, cache, positions, mask, last_only=True)  # (B, V)
            next_tokens = sampler.sample(logits)  # (B,)
        t1 = time.perf_counter()
        stats.prefill_cpu_s = time.process_time() - c0
        stats.prefill_s = t1 - t0
        stats.time_to_first_token_s = t1 - start

        next_pos = torch.tensor(lengths, dtype=torch.long, device=device)[:, None]  # (B, 1)
        step_mask = torch.ones(batch, 1, dtype=torch.long, device=device)  # (B, 1)
        active = [True] * batch  # per current batch row
        step = 0
        while True:
            tokens_list = next_tokens.tolist()
            is_stop = torch.isin(next_tokens, stop_ids).tolist() if stop_ids.numel() else [False] * len(rows)
            keep: list[int] = []
            for b, row in enumerate(rows):
                if not active[b]:
                    continue
                tok = int(tokens_list[b])
                emitted[row] += 1
                reason: FinishReason | None = None
                if is_stop[b]:
                    reason = "stop"
                elif emitted[row] >= cfg.max_new_tokens:
                    reason = "length"
                elif emitted[row] >= room[row]:
                    reason = "context"
                text = decoders[row].push(tok)
                if reason is not None:
                    text += decoders[row].flush()
                    active[b] = False
                else:
                    keep.append(b)
                stats.generated_tokens += 1
                row_logits = logits[b].float().clone() if return_logits else None
                yield StreamEvent(row=row, index=emitted[row] - 1, token_id=tok, text=text, finish_reason=reason,
                                  logits=row_logits)
            if not keep:
                break
            cs = time.process_time()
            ts = time.perf_counter()
            if len(keep) < len(rows) and self._can_compact(cache):
                index = torch.tensor(keep, dtype=torch.long, device=device)
                cache.select_rows(index)
                sampler.select_rows(keep)
                rows = [rows[b] for b in keep]
                active = [True] * len(keep)
                next_tokens = next_tokens.index_select(0, index)
                next_pos = next_pos.index_select(0, index)
                step_mask = step_mask[: len(keep)]
            sampler.observe(next_tokens)
            with self._threads():
                logits = self._forward(next_tokens[:, None], cache, next_pos, step_mask, last_only=False)  # (B, V)
                next_tokens = sampler.sample(logits)
            next_pos += 1
            if not all(active):  # finished rows still in the batch: keep their positions inside the context
                next_pos.clamp_(max=self.max_context - 1)
            step += 1
            te = time.perf_counter()
            stats.step_times_s.append(te - ts)
            stats.decode_s += te - ts
            stats.decode_cpu_s += time.process_time() - cs
            stats.decode_steps = step

    def _threads(self) -> AbstractContextManager[Any]:
        """The thread setting of a forward pass: on the CPU with the native kernels, the kernels' pool takes
        all the threads and torch's own ops run on one (see :func:`bno_kernels.cpu.ops.kernel_threads`): no
        OpenMP barrier for a preempted thread to stall, so a busy core slows a step instead of collapsing it."""
        if not self._uses_native_kernels:  # a dense model keeps torch's thread team for its matmuls
            return nullcontext()
        from bno_kernels.cpu import ops

        return ops.kernel_threads() if ops.available() else nullcontext()

    def _can_compact(self, cache: Any) -> bool:
        """Whether finished rows can leave the batch (the cache can drop rows)."""
        return callable(getattr(cache, "select_rows", None))
