"""The native output-head kernels: int8 (bit-exact against torch._int_mm), bfloat16 and 4-bit grouped."""

from __future__ import annotations

from types import ModuleType

import pytest
import torch

from bno_kernels.cpu import ops, q4
from bno_kernels.reference import quantize_activations

SHAPES = [(1000, 64), (77, 2560), (130, 100), (64, 65)]  # (V, K): tails of every kind


def _int8_table(v: int, k: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(v, k, generator=g)
    scale = w.abs().amax(1).clamp(min=1e-8) / 127  # (V,)
    wq = torch.round(w / scale[:, None]).clamp(-127, 127).to(torch.int8)  # (V, K)
    return wq, scale, wq.sum(1, dtype=torch.int32)


@pytest.mark.parametrize(("v", "k"), SHAPES)
@pytest.mark.parametrize("m", [1, 3, 17])
def test_int8_head_is_bit_exact(native_cpu: ModuleType, v: int, k: int, m: int) -> None:
    wq, scale, row_sum = _int8_table(v, k, seed=v + k)
    h = torch.randn(m, k, generator=torch.Generator().manual_seed(m)) * 3  # (M, K)
    hq, s = quantize_activations(h)  # (M, K) int8, (M, 1): the kernels' quantizer
    acc = hq.long() @ wq.long().t()  # (M, V) exact in int64
    expected = acc.float() * (scale[None, :] / s)
    got = ops.head_int8_cpu(h, wq, scale, row_sum)
    assert torch.equal(got, expected)


@pytest.mark.parametrize(("v", "k"), SHAPES)
def test_bf16_head_matches_a_float_sum(native_cpu: ModuleType, v: int, k: int) -> None:
    g = torch.Generator().manual_seed(k)
    w = torch.randn(v, k, generator=g).to(torch.bfloat16)
    h = torch.randn(2, k, generator=g)
    expected = h.to(torch.bfloat16).double() @ w.double().t()  # (2, V) the bf16-rounded inputs, exact sums
    got = ops.head_bf16_cpu(h, w)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got.double(), expected, rtol=1e-5, atol=1e-4 * k**0.5)


def test_q4_layout_round_trip_within_half_a_step() -> None:
    g = torch.Generator().manual_seed(3)
    w = torch.randn(50, 100, generator=g)
    codes, scales = q4.quantize(w)
    assert codes.shape == (50, 64) and scales.shape == (50, 4)  # Kp = 128: 64 bytes, 4 groups
    back = q4.dequantize(codes, scales, 100)
    step = scales.view(torch.float16).float().repeat_interleave(32, dim=1)[:, :100]  # (V, K) per-column d
    assert bool(((back - w).abs() <= step / 2 + 1e-6).all())
    assert torch.equal(q4.dequantize(*q4.quantize(torch.zeros(3, 64)), 64), torch.zeros(3, 64))
    lows = codes & 0x0F
    assert int(lows.min()) >= 1 and int((codes >> 4).max()) <= 15  # codes 1..15 (8 = zero, padding)


@pytest.mark.parametrize(("v", "k"), SHAPES)
@pytest.mark.parametrize("m", [1, 4])
def test_q4_head_matches_its_dequantized_table(native_cpu: ModuleType, v: int, k: int, m: int) -> None:
    g = torch.Generator().manual_seed(v * k)
    codes, scales = q4.quantize(torch.randn(v, k, generator=g))
    h = torch.randn(m, k, generator=g)
    hq8, s = quantize_activations(h)  # (M, K), (M, 1): the kernel's int8 activations
    hq = hq8.float()
    expected = (hq.double() @ q4.dequantize(codes, scales, k).double().t()) / s.double()  # (M, V)
    got = ops.head_q4_cpu(h, codes, scales)
    # per group the kernel sums exact int32 products; only the fp32 sum over groups rounds
    torch.testing.assert_close(got.double(), expected, rtol=1e-5, atol=1e-4)


def test_heads_refuse_bad_operands(native_cpu: ModuleType) -> None:
    wq, scale, row_sum = _int8_table(8, 64, seed=1)
    with pytest.raises(RuntimeError, match="activations have K"):
        ops.head_int8_cpu(torch.zeros(1, 63), wq, scale, row_sum)
    with pytest.raises(RuntimeError, match="row_sum"):
        ops.head_int8_cpu(torch.zeros(1, 64), wq, scale, row_sum[:4].contiguous())
    with pytest.raises(RuntimeError, match="bfloat16"):
        ops.head_bf16_cpu(torch.zeros(1, 64), torch.zeros(8, 64))
    codes, scales = q4.quantize(torch.randn(8, 64))
    with pytest.raises(RuntimeError, match="scales"):
        ops.head_q4_cpu(torch.zeros(1, 64), codes, scales[:, :1].contiguous())
