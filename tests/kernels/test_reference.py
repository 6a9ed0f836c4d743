"""The reference path: activation quantization semantics and exactness of the integer product."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from bno_kernels.packed import PackedTernaryWeight
from bno_kernels.reference import (
    int_matmul_reference,
    quantize_activations,
    scale_weight,
    ternary_matmul_reference,
)


def _case(m: int, n: int, k: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(m, k, generator=gen) * 4  # (M, K)
    w = torch.randint(-1, 2, (n, k), dtype=torch.int8, generator=gen)  # (N, K)
    return x, w


def test_quantize_activations_matches_the_formula() -> None:
    x = torch.tensor([[0.5, -1.0, 0.25, 0.0], [3.0, 1.5, -0.75, 2.9]])  # (2, 4)
    xq, s = quantize_activations(x)
    assert xq.dtype == torch.int8 and s.dtype == torch.float32
    assert s.shape == (2, 1)
    assert torch.equal(s[:, 0], torch.tensor([127.0, 127.0 / 3.0]))
    assert xq[0].tolist() == [64, -127, 32, 0]  # 63.5 rounds half to even -> 64; 31.75 -> 32
    assert xq[1].tolist() == [127, 64, -32, 123]  # 63.5 -> 64, -31.75 -> -32, 122.77 -> 123


def test_quantize_rounds_half_to_even_and_handles_zeros() -> None:
    x = torch.tensor([[127.0, 0.5, 1.5, 2.5, -0.5]])  # s = 1
    xq, _ = quantize_activations(x)
    assert xq[0].tolist() == [127, 0, 2, 2, 0]
    xq0, s0 = quantize_activations(torch.zeros(1, 3))
    assert xq0.abs().sum().item() == 0 and torch.isfinite(s0).all()


def test_quantize_rejects_integer_input() -> None:
    with pytest.raises(TypeError, match="floating-point"):
        quantize_activations(torch.zeros(2, 2, dtype=torch.int32))


@settings(max_examples=40, deadline=None)
@given(m=st.integers(1, 5), n=st.integers(1, 40), k=st.integers(1, 80), seed=st.integers(0, 2**31 - 1))
def test_int_matmul_is_exact(m: int, n: int, k: int, seed: int) -> None:
    x, w = _case(m, n, k, seed)
    xq, _ = quantize_activations(x)
    acc = int_matmul_reference(xq, PackedTernaryWeight.from_ternary(w))
    expected = (xq.to(torch.int64) @ w.to(torch.int64).t()).to(torch.int32)  # exact integer product
    assert acc.dtype == torch.int32
    assert torch.equal(acc, expected)


def test_int_matmul_exact_at_large_k_with_extreme_values() -> None:
    k = 150_000  # 128 * K > 2**24: the fp64 path
    xq = torch.full((1, k), -128, dtype=torch.int8)
    w = torch.ones(2, k, dtype=torch.int8)
    w[1] = -1
    acc = int_matmul_reference(xq, PackedTernaryWeight.from_ternary(w))
    assert acc.tolist() == [[-128 * k, 128 * k]]


@pytest.mark.parametrize("per_channel", [False, True])
def test_ternary_matmul_reference_matches_float_math(per_channel: bool) -> None:
    x, w = _case(3, 13, 37, 7)
    beta = torch.rand(13) + 0.1 if per_channel else torch.tensor(0.37)
    y = ternary_matmul_reference(x, PackedTernaryWeight.from_ternary(w), beta)
    xq, s = quantize_activations(x)
    expected = (xq.double() @ w.double().t()).float() * beta / s  # plain float matmul of the int values
    assert y.shape == (3, 13) and y.dtype == torch.float32
    assert torch.equal(y, expected)
    # and it approximates the unquantized product
    dense = x @ (w.float() * beta.reshape(-1, 1) if per_channel else w.float() * beta).t()
    torch.testing.assert_close(y, dense, rtol=0.05, atol=0.05 * dense.abs().max().item())


def test_reference_out_dtype_and_batch_dims() -> None:
    x, w = _case(6, 5, 20, 3)
    packed = PackedTernaryWeight.from_ternary(w)
    y = ternary_matmul_reference(x.reshape(2, 3, 20).bfloat16(), packed, torch.tensor(1.0))
    assert y.shape == (2, 3, 5) and y.dtype == torch.bfloat16
    y32 = ternary_matmul_reference(x.reshape(2, 3, 20), packed, 1.0, out_dtype=torch.float32)
    assert y32.dtype == torch.float32


def test_scale_weight_validates_shape() -> None:
    assert scale_weight(torch.tensor([2.0]), 4, torch.device("cpu")).shape == ()
    assert scale_weight(torch.ones(4), 4, torch.device("cpu")).shape == (4,)
    with pytest.raises(ValueError, match=r"shape \(4,\)"):
        scale_weight(torch.ones(3), 4, torch.device("cpu"))


def test_reference_rejects_wrong_k() -> None:
    packed = PackedTernaryWeight.from_ternary(torch.zeros(4, 8, dtype=torch.int8))
    with pytest.raises(ValueError, match="input features"):
        ternary_matmul_reference(torch.zeros(2, 9), packed, 1.0)
