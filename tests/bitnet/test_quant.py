"""Quantizers: absmean ternary weights, absmax int8 activations, straight-through estimators."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from bno_bitnet.quant import (
    absmax_quantize,
    absmean_quantize,
    fake_quantize_activation,
    fake_quantize_weight,
    latent_from_ternary,
    ste_activation_quant,
    ste_weight_quant,
)
from tests.bitnet.tiny import eager_transformers


def test_absmean_known_values() -> None:
    w = torch.tensor([[0.5, -0.1, 2.0], [-1.0, 0.0, 0.3]])
    wq, beta = absmean_quantize(w)
    assert beta.shape == () and beta.dtype == torch.float32
    assert torch.isclose(beta, w.abs().mean())
    assert wq.dtype == torch.int8
    # w / beta = [0.769, -0.154, 3.08], [-1.54, 0, 0.46] -> round, clamp to [-1, 1]
    assert wq.tolist() == [[1, 0, 1], [-1, 0, 0]]


def test_absmean_all_zero_uses_eps() -> None:
    wq, beta = absmean_quantize(torch.zeros(3, 4))
    assert torch.equal(wq, torch.zeros(3, 4, dtype=torch.int8))
    assert abs(float(beta) - 1e-5) < 1e-12


def test_absmax_per_token_and_clamp() -> None:
    x = torch.tensor([[1.0, -2.0, 0.5], [0.0, 0.0, 0.0]])
    xq, s = absmax_quantize(x)
    assert xq.dtype == torch.int8 and s.shape == (2, 1)
    assert xq[0].tolist() == [64, -127, 32]  # 127/2 * x, rounded half to even (63.5 -> 64, 31.75 -> 32)
    assert float(s[0, 0]) == 63.5
    assert xq[1].tolist() == [0, 0, 0] and float(s[1, 0]) == pytest.approx(127 / 1e-5, rel=1e-6)


def test_fake_quant_matches_transformers() -> None:
    from transformers.integrations.bitnet import ActQuant, WeightQuant

    gen = torch.Generator().manual_seed(0)
    w = torch.randn(33, 17, generator=gen) * 0.05
    x = torch.randn(4, 5, 17, generator=gen) * 3
    with eager_transformers():
        assert torch.equal(fake_quantize_weight(w), WeightQuant.apply(w))
        assert torch.equal(fake_quantize_activation(x), ActQuant.apply(x))


def test_ste_forward_exact_and_gradient_identity() -> None:
    w = torch.randn(8, 6, requires_grad=True)
    x = torch.randn(3, 6, requires_grad=True)
    qw, qx = ste_weight_quant(w), ste_activation_quant(x)
    assert torch.equal(qw, fake_quantize_weight(w.detach()))
    assert torch.equal(qx, fake_quantize_activation(x.detach()))
    (qw.sum() * 2 + (qx * 3).sum()).backward()
    assert w.grad is not None and x.grad is not None
    assert torch.equal(w.grad, torch.full_like(w, 2.0))
    assert torch.equal(x.grad, torch.full_like(x, 3.0))


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 12), k=st.integers(1, 12), seed=st.integers(0, 2**16), scale=st.floats(1e-3, 10.0))
def test_latent_from_ternary_round_trips(n: int, k: int, seed: int, scale: float) -> None:
    gen = torch.Generator().manual_seed(seed)
    wq = torch.randint(-1, 2, (n, k), generator=gen, dtype=torch.int8)
    beta = torch.tensor(scale, dtype=torch.float32)
    latent = latent_from_ternary(wq, beta, torch.float32)
    wq2, beta2 = absmean_quantize(latent)
    assert torch.equal(wq2, wq)
    if wq.any():
        assert torch.isclose(beta2, beta, rtol=1e-6)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 16), k=st.integers(1, 16), seed=st.integers(0, 2**16))
def test_quantizers_ranges(n: int, k: int, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(n, k, generator=gen)
    wq, beta = absmean_quantize(w)
    assert set(wq.unique().tolist()) <= {-1, 0, 1}
    assert float(beta) > 0
    xq, s = absmax_quantize(w * 100)
    assert int(xq.min()) >= -128 and int(xq.max()) <= 127
    assert int(xq.abs().amax(dim=-1).min()) == 127  # the largest entry of each token maps to +-127
    assert torch.allclose(xq.float() / s, w * 100, atol=float((w * 100).abs().max()) / 127)


def test_absmean_beta_does_not_depend_on_the_thread_count() -> None:
    """beta is a mean over the whole weight: summed in fp64, its fp32 value is the same for any reduction order
    (a one-bit change of beta can flip a rounded activation downstream and change a model's output)."""
    from bno_bitnet.quant import absmean_quantize

    w = torch.randn(1536, 512, generator=torch.Generator().manual_seed(4))
    before = torch.get_num_threads()
    try:
        results = []
        for threads in (1, 2, 4):
            torch.set_num_threads(threads)
            results.append(absmean_quantize(w))
    finally:
        torch.set_num_threads(before)
    assert all(torch.equal(r[0], results[0][0]) and torch.equal(r[1], results[0][1]) for r in results)
    assert float(results[0][1]) == pytest.approx(float(w.double().abs().mean()), rel=1e-6)
