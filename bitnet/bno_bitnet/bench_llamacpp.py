"""Time llama.cpp (through llama-cpp-python) on a GGUF written by :mod:`bno_bitnet.gguf_export`.

The same measurement as our engine's: prefill of the prompt's token ids (one ``eval``), then greedy decode
one token at a time (argmax of the last logits), median over ``repeats`` runs after a warm-up, process CPU
time, peak and model resident memory. Runs in the benchmark's fresh process for its phase.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bno_bitnet.errors import ConfigError


@dataclass
class LlamaCppRun:
    """One timed generation."""

    prefill_s: float
    decode_s: float
    decode_steps: int
    prefill_cpu_s: float
    decode_cpu_s: float


def require_llama_cpp() -> None:
    """Fail with one line when llama-cpp-python is not installed."""
    try:
        import llama_cpp  # noqa: F401
    except ImportError as exc:
        raise ConfigError("--compare llama.cpp needs llama-cpp-python: pip install 'bitnet-orchestrator[bench]' "
                          "(it builds llama.cpp: a few minutes)") from exc


def load(path: Path, *, threads: int, context: int, batch: int) -> object:
    """The model, loaded with ``threads`` threads for prefill and decode, logs off."""
    require_llama_cpp()
    import llama_cpp

    from bno_bitnet.gguf_export import quiet_llama_cpp

    quiet_llama_cpp()
    return llama_cpp.Llama(str(path), n_ctx=context, n_batch=batch, n_ubatch=batch, n_threads=threads,
                           n_threads_batch=threads, logits_all=False, verbose=False)


def generate(llm: object, prompt: list[int], new_tokens: int) -> LlamaCppRun:
    """Prefill ``prompt`` then decode ``new_tokens - 1`` greedy steps (the first token comes from prefill)."""
    import llama_cpp
    import numpy as np

    model: Any = llm
    vocab = int(model.n_vocab())

    def last_logits() -> Any:  # (V,) the logits of the last evaluated token, read in place
        return np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(model.ctx, -1), shape=(vocab,))

    model.reset()
    c0, t0 = time.process_time(), time.perf_counter()
    model.eval(prompt)
    token = int(np.argmax(last_logits()))
    c1, t1 = time.process_time(), time.perf_counter()
    for _ in range(new_tokens - 1):
        model.eval([token])
        token = int(np.argmax(last_logits()))
    c2, t2 = time.process_time(), time.perf_counter()
    return LlamaCppRun(t1 - t0, t2 - t1, new_tokens - 1, c1 - c0, c2 - c1)
