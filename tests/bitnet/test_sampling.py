"""Sampling: config validation, greedy, temperature, top-k, top-p, repetition penalty, seeds."""

from __future__ import annotations

import pytest
import torch

from bno_bitnet.errors import ConfigError
from bno_bitnet.sampling import (
    GenerationConfig,
    Sampler,
    apply_repetition_penalty,
    top_k_filter,
    top_p_filter,
    validate_token_ids,
)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"max_new_tokens": 0}, "max_new_tokens"),
        ({"max_new_tokens": 2.5}, "max_new_tokens"),
        ({"temperature": -1.0}, "temperature"),
        ({"temperature": float("nan")}, "temperature"),
        ({"temperature": 1.0, "top_k": -3}, "top_k"),
        ({"temperature": 1.0, "top_p": 0.0}, "top_p"),
        ({"temperature": 1.0, "top_p": 1.5}, "top_p"),
        ({"repetition_penalty": 0.0}, "repetition_penalty"),
        ({"seed": -1}, "seed"),
        ({"seed": "x"}, "seed"),
        ({"stop_token_ids": (1, -2)}, "stop_token_ids"),
        ({"top_k": 5}, "top_k"),
    ],
)
def test_config_rejects_bad_values_naming_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        GenerationConfig(**kwargs)  # type: ignore[arg-type]


def test_config_replace_validates_and_rejects_unknown_fields() -> None:
    cfg = GenerationConfig(max_new_tokens=3)
    assert cfg.replace(temperature=0.5).temperature == 0.5
    assert cfg.greedy and not cfg.replace(temperature=0.5).greedy
    with pytest.raises(ConfigError, match="nonsense"):
        cfg.replace(nonsense=1)
    with pytest.raises(ConfigError, match="temperature"):
        cfg.replace(temperature=-2.0)
    assert GenerationConfig(stop_token_ids=[3, 4]).stop_token_ids == (3, 4)  # type: ignore[arg-type]


def test_greedy_is_argmax_and_ignores_extra_columns() -> None:
    logits = torch.tensor([[0.1, 3.0, -1.0, 9.0], [5.0, 1.0, 2.0, 9.0]])
    sampler = Sampler(GenerationConfig(), batch_size=2, vocab_size=3)
    assert sampler.sample(logits).tolist() == [1, 0]  # column 3 is outside the tokenizer's vocabulary


def test_top_k_keeps_exactly_k() -> None:
    logits = torch.tensor([[1.0, 4.0, 3.0, 2.0, 0.0]])
    out = top_k_filter(logits, 2)
    assert torch.isfinite(out).tolist() == [[False, True, True, False, False]]
    assert torch.equal(top_k_filter(logits, 0), logits)


def test_top_p_keeps_smallest_nucleus_and_always_the_best() -> None:
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    logits = probs.log()
    kept = torch.isfinite(top_p_filter(logits, 0.7))
    assert kept.tolist() == [[True, True, False, False]]
    kept = torch.isfinite(top_p_filter(logits, 0.01))
    assert kept.tolist() == [[True, False, False, False]]
    shuffled = logits[:, [2, 0, 3, 1]]
    assert torch.isfinite(top_p_filter(shuffled, 0.7)).tolist() == [[False, True, False, True]]


def test_repetition_penalty_divides_positive_and_multiplies_negative() -> None:
    logits = torch.tensor([[2.0, -2.0, 2.0]])
    seen = torch.tensor([[True, True, False]])
    out = apply_repetition_penalty(logits.clone(), seen, 2.0)
    assert out.tolist() == [[1.0, -4.0, 2.0]]


def test_repetition_penalty_changes_the_greedy_choice() -> None:
    cfg = GenerationConfig(repetition_penalty=4.0)
    sampler = Sampler(cfg, batch_size=1, vocab_size=3)
    logits = torch.tensor([[3.0, 2.0, 0.0]])
    assert sampler.sample(logits).tolist() == [0]
    sampler.observe(torch.tensor([[0, 2]]), valid=torch.tensor([[True, False]]))  # the 2 is padding
    assert sampler.sample(logits).tolist() == [1]
    assert sampler.seen is not None and sampler.seen.tolist() == [[True, False, False]]


def test_seeded_sampling_is_deterministic_and_rows_are_independent() -> None:
    torch.manual_seed(0)
    logits = torch.randn(1, 50)
    cfg = GenerationConfig(temperature=1.0, seed=1234)
    a = Sampler(cfg, batch_size=1, vocab_size=50)
    b = Sampler(cfg, batch_size=3, vocab_size=50)
    seq_a = [a.sample(logits).item() for _ in range(20)]
    seq_b = [b.sample(logits.expand(3, -1)).tolist() for _ in range(20)]
    assert seq_a == [row[0] for row in seq_b] == [row[2] for row in seq_b]
    c = Sampler(cfg.replace(seed=99), batch_size=1, vocab_size=50)
    assert [c.sample(logits).item() for _ in range(20)] != seq_a


def test_sampling_follows_the_distribution_and_respects_filters() -> None:
    probs = torch.tensor([[0.6, 0.3, 0.1, 0.0]])
    logits = probs.clamp(min=1e-30).log()
    sampler = Sampler(GenerationConfig(temperature=1.0, seed=7), batch_size=1, vocab_size=4)
    draws = torch.tensor([sampler.sample(logits).item() for _ in range(3000)])
    freq = torch.bincount(draws, minlength=4).float() / draws.numel()
    assert abs(freq[0].item() - 0.6) < 0.05 and abs(freq[1].item() - 0.3) < 0.05
    assert freq[3].item() == 0.0
    topk = Sampler(GenerationConfig(temperature=5.0, top_k=1, seed=1), batch_size=1, vocab_size=4)
    assert {topk.sample(logits).item() for _ in range(50)} == {0}


def test_low_temperature_approaches_greedy() -> None:
    logits = torch.tensor([[1.0, 1.5, 0.5]])
    sampler = Sampler(GenerationConfig(temperature=1e-3, seed=3), batch_size=1, vocab_size=3)
    assert {sampler.sample(logits).item() for _ in range(30)} == {1}


def test_validate_token_ids() -> None:
    assert validate_token_ids([0, 5], 6, "prompt 0") == [0, 5]
    with pytest.raises(ConfigError, match=r"prompt 1\[1\]"):
        validate_token_ids([0, 6], 6, "prompt 1")
