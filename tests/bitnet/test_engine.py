"""The generation engine: cached decode vs uncached logits, batches vs single prompts, seeds, stops."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from bno_bitnet.engine import Engine
from bno_bitnet.errors import ConfigError, ContextLengthError
from bno_bitnet.model import BitNetForCausalLM
from bno_bitnet.sampling import GenerationConfig
from bno_bitnet.shapes import build_random_model, shape_config
from bno_bitnet.tokenizer import ByteTokenizer

PROMPTS = ["hi", "a longer prompt, padded less", "mid-length one"]


@pytest.fixture(scope="module")
def model() -> BitNetForCausalLM:
    torch.manual_seed(0)
    return build_random_model("tiny", dtype=torch.float32, embed_dtype=torch.float32, seed=3)


@pytest.fixture(scope="module")
def engine(model: BitNetForCausalLM) -> Engine:
    return Engine(model, ByteTokenizer())


def test_cached_decode_equals_uncached_logits(engine: Engine, model: BitNetForCausalLM) -> None:
    cfg = GenerationConfig(max_new_tokens=12, stop_at_eos=False)
    results = engine.generate(PROMPTS, cfg, return_logits=True)
    for result in results:
        assert result.logits is not None and len(result.logits) == len(result.token_ids) == 12
        ids = torch.tensor([result.prompt_ids + result.token_ids[:-1]])  # (1, T)
        with torch.inference_mode():
            full = model(ids)[0]  # (T, V) one causal pass, no cache
        n = len(result.prompt_ids)
        for j, step_logits in enumerate(result.logits):
            torch.testing.assert_close(step_logits, full[n - 1 + j], atol=2e-4, rtol=1e-4)
        assert result.token_ids == full[n - 1:, : engine.vocab_size].argmax(-1).tolist()


def test_batch_equals_prompts_one_by_one_greedy(engine: Engine) -> None:
    cfg = GenerationConfig(max_new_tokens=10, stop_at_eos=False)
    batch = engine.generate(PROMPTS, cfg)
    for prompt, result in zip(PROMPTS, batch, strict=True):
        alone = engine.generate([prompt], cfg)[0]
        assert alone.token_ids == result.token_ids
        assert alone.prompt_ids == result.prompt_ids


def test_batch_equals_prompts_one_by_one_sampled(engine: Engine) -> None:
    cfg = GenerationConfig(max_new_tokens=10, temperature=1.0, top_k=50, top_p=0.95, seed=11,
                           repetition_penalty=1.3, stop_at_eos=False)
    batch = engine.generate(PROMPTS, cfg)
    singles = [engine.generate([p], cfg)[0].token_ids for p in PROMPTS]
    assert [r.token_ids for r in batch] == singles


def test_generation_is_deterministic_with_a_seed(engine: Engine) -> None:
    cfg = GenerationConfig(max_new_tokens=16, temperature=1.5, seed=1234, stop_at_eos=False)
    first = [r.token_ids for r in engine.generate(PROMPTS, cfg)]
    again = [r.token_ids for r in engine.generate(PROMPTS, cfg)]
    other = [r.token_ids for r in engine.generate(PROMPTS, cfg.replace(seed=4321))]
    assert first == again
    assert first != other
    greedy = engine.generate(PROMPTS[:1], GenerationConfig(max_new_tokens=16, stop_at_eos=False))[0]
    assert first[0] != greedy.token_ids  # temperature 1.5 on a random model does not collapse to argmax


def test_stop_tokens_end_each_row_on_its_own(engine: Engine) -> None:
    cfg = GenerationConfig(max_new_tokens=10, stop_at_eos=False)
    free = engine.generate(PROMPTS, cfg)
    stop = free[1].token_ids[3]
    first_hit = free[1].token_ids.index(stop)
    stopped = engine.generate(PROMPTS, cfg.replace(stop_token_ids=(stop,)))
    assert stopped[1].token_ids == free[1].token_ids[: first_hit + 1]
    assert stopped[1].finish_reason == "stop"
    for full, cut in zip(free, stopped, strict=True):  # other rows: cut at their own first stop, if any
        expected = full.token_ids[: full.token_ids.index(stop) + 1] if stop in full.token_ids else full.token_ids
        assert cut.token_ids == expected
        assert cut.finish_reason == ("stop" if stop in full.token_ids else "length")


def test_eos_stops_by_default(model: BitNetForCausalLM) -> None:
    probe = Engine(model, ByteTokenizer())
    first = probe.generate(["x"], GenerationConfig(max_new_tokens=1, stop_at_eos=False))[0].token_ids[0]

    class EosIsFirst(ByteTokenizer):
        @property
        def eos_token_ids(self) -> tuple[int, ...]:
            return (first,)

    result = Engine(model, EosIsFirst()).generate(["x"], GenerationConfig(max_new_tokens=5))[0]
    assert result.token_ids == [first] and result.finish_reason == "stop"


def test_streaming_yields_tokens_as_produced(engine: Engine) -> None:
    cfg = GenerationConfig(max_new_tokens=6, stop_at_eos=False)
    expected = engine.generate(PROMPTS, cfg)
    stream = engine.stream(PROMPTS, cfg)
    first = next(stream)
    assert first.index == 0 and engine.last_stats.decode_steps == 0  # no decode step has run yet
    events = [first, *stream]
    assert engine.last_stats.decode_steps == 5
    for row, result in enumerate(expected):
        mine = [e for e in events if e.row == row]
        assert [e.token_id for e in mine] == result.token_ids
        assert "".join(e.text for e in mine) == result.text
        assert [e.index for e in mine] == list(range(6))
        assert mine[-1].finish_reason == "length" and all(e.finish_reason is None for e in mine[:-1])


def test_stats_are_filled(engine: Engine) -> None:
    engine.generate(PROMPTS[:2], GenerationConfig(max_new_tokens=4, stop_at_eos=False))
    stats = engine.last_stats
    assert stats.batch_size == 2 and stats.decode_steps == 3 and stats.generated_tokens == 8
    assert stats.prompt_tokens == sum(len(ByteTokenizer().encode(p, add_bos=True)) for p in PROMPTS[:2])
    assert stats.prefill_s > 0 and stats.decode_s > 0 and stats.time_to_first_token_s >= stats.prefill_s
    assert len(stats.step_times_s) == 3 and stats.decode_tokens_per_s > 0 and stats.prefill_tokens_per_s > 0


def test_token_id_prompts_and_text_prompts_agree(engine: Engine) -> None:
    cfg = GenerationConfig(max_new_tokens=5, stop_at_eos=False)
    ids = ByteTokenizer().encode("hello", add_bos=True)
    assert engine.generate([ids], cfg)[0].token_ids == engine.generate(["hello"], cfg)[0].token_ids


def test_context_limits(model: BitNetForCausalLM) -> None:
    engine = Engine(model, ByteTokenizer())
    context = model.config.max_position_embeddings
    with pytest.raises(ContextLengthError, match=f"longer than the model's context of {context}"):
        engine.generate([[1] * (context + 1)], GenerationConfig(max_new_tokens=1))
    near_end = engine.generate([[1] * (context - 2)], GenerationConfig(max_new_tokens=10, stop_at_eos=False))[0]
    assert near_end.finish_reason == "context" and len(near_end.token_ids) == 3
    # a short prompt in the same batch still gets all its tokens
    both = engine.generate([[1] * (context - 2), [1, 2]], GenerationConfig(max_new_tokens=10, stop_at_eos=False))
    assert [len(r.token_ids) for r in both] == [3, 10]
    assert both[0].token_ids == near_end.token_ids


def test_bad_prompts_get_clear_errors(engine: Engine) -> None:
    with pytest.raises(ConfigError, match="empty"):
        engine.generate([])
    with pytest.raises(ConfigError, match=r"prompt 1\[0\]"):
        engine.generate([[1, 2], [10_000]])
    with pytest.raises(ConfigError, match="list of strings"):
        engine.generate("just a string")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="prompt 0: is empty"):
        Engine(engine.model, ByteTokenizer(), add_bos=False).generate([""])


def test_tokenizer_larger_than_model_vocab_is_refused() -> None:
    cfg = shape_config("tiny")
    cfg.vocab_size = 200
    small = build_random_model(cfg)
    with pytest.raises(ConfigError, match="258 tokens"):
        Engine(small, ByteTokenizer())


def test_bf16_model_and_int8_head_run(model: BitNetForCausalLM) -> None:
    bf16 = build_random_model("tiny", dtype=torch.bfloat16, embed_dtype=torch.bfloat16, seed=3, lm_head_int8=True)
    out = Engine(bf16).generate(PROMPTS, GenerationConfig(max_new_tokens=4, stop_at_eos=False))
    assert all(len(r.token_ids) == 4 for r in out)
    assert bf16.memory_report()["lm_head_int8"] > 0


def test_finished_rows_leave_the_batch_when_the_cache_can_drop_rows(model: BitNetForCausalLM) -> None:
    from bno_bitnet.kv_cache import KVCache

    calls: list[list[int]] = []

    class DroppingCache(KVCache):
        def select_rows(self, index: torch.Tensor) -> None:
            calls.append(index.tolist())
            self.keys = self.keys.index_select(1, index)
            self.values = self.values.index_select(1, index)
            self.valid = self.valid.index_select(0, index)
            self.seen = self.seen.index_select(0, index)
            self.batch_size = int(index.numel())

    plain = Engine(model, ByteTokenizer())
    cfg = GenerationConfig(max_new_tokens=8, temperature=0.9, seed=2, repetition_penalty=1.2, stop_at_eos=False)
    free = plain.generate(PROMPTS, cfg)
    stop = free[0].token_ids[2]
    expected = plain.generate(PROMPTS, cfg.replace(stop_token_ids=(stop,)))
    compacting = Engine(model, ByteTokenizer())
    compacting._new_cache = lambda b, s: DroppingCache(model.config, b, s, torch.float32, "cpu")  # type: ignore[method-assign]
    got = compacting.generate(PROMPTS, cfg.replace(stop_token_ids=(stop,)))
    assert calls and len(calls[0]) < len(PROMPTS)
    assert [r.token_ids for r in got] == [r.token_ids for r in expected]
    assert [r.finish_reason for r in got] == [r.finish_reason for r in expected]


def test_fused_native_decode_matches_the_layer_by_layer_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """The one-call-per-layer native decode computes what the torch modules compute, op by op."""
    model = build_random_model("tiny", seed=3)
    engine = Engine(model, ByteTokenizer(), add_bos=False)
    prompts = [[5, 6, 7, 8, 9, 10, 11], [12, 13, 14]]  # left padding in the batch
    config = GenerationConfig(max_new_tokens=10, temperature=0.0, stop_at_eos=False)
    calls: list[int] = []
    fused = BitNetForCausalLM._fused_decode

    def counting(self: BitNetForCausalLM, *args: Any, **kwargs: Any) -> torch.Tensor:
        calls.append(1)
        return fused(self, *args, **kwargs)

    monkeypatch.setattr(BitNetForCausalLM, "_fused_decode", counting)
    with_fusion = engine.generate(prompts, config, return_logits=True)
    assert len(calls) == 9, "every decode step after the prefill runs fused"
    monkeypatch.setenv("BITNET_FUSED_DECODE", "0")
    op_by_op = engine.generate(prompts, config, return_logits=True)
    assert len(calls) == 9
    for a, b in zip(with_fusion, op_by_op, strict=True):
        assert a.token_ids == b.token_ids
        assert a.logits is not None and b.logits is not None
        for x, y in zip(a.logits, b.logits, strict=True):
            torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-5)
