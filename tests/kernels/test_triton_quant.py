"""The Triton activation-quantization kernel, in Triton's interpreter: bit-exact against the reference.

Triton fixes its interpreter mode at its first import, so ``TRITON_INTERPRET`` is set before anything here
imports triton (``make test`` exports it too).
"""

from __future__ import annotations

import os

os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest
import torch

from bno_kernels.reference import quantize_activations
from bno_kernels.triton import quantize_activations_triton
from bno_kernels.triton.layout import padded_in_features
from bno_kernels.triton.quant import quantize_padded
from bno_kernels.triton.runtime import interpreter_active


def test_interpreter_is_active() -> None:
    assert interpreter_active(), "triton was imported before TRITON_INTERPRET=1 was set"


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("shape", [(1, 32), (3, 37), (16, 128), (33, 13), (2, 4100)])
def test_exact_against_reference(shape: tuple[int, int], dtype: torch.dtype) -> None:
    g = torch.Generator().manual_seed(hash(shape) % 1000)
    x = (torch.randn(shape, generator=g) * 3).to(dtype)  # (M, K)
    xq, s = quantize_activations_triton(x)
    ref_q, ref_s = quantize_activations(x)
    assert xq.dtype == torch.int8 and s.dtype == torch.float32
    assert torch.equal(s, ref_s)
    assert torch.equal(xq, ref_q)


def test_ties_round_half_to_even() -> None:
    # amax 127 -> s = 1 exactly, so x * s keeps every .5 tie; torch.round sends ties to even.
    x = torch.tensor([[127.0, 0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 3.5, 126.5, -126.5, 0.49999997, -0.0]])
    xq, s = quantize_activations_triton(x)
    assert float(s) == 1.0
    assert xq.tolist() == [[127, 0, 2, 2, 0, -2, -2, 4, 126, -126, 0, 0]]
    assert torch.equal(xq, quantize_activations(x)[0])


def test_ties_after_scaling() -> None:
    # amax 254 -> s = 0.5: x = 1, 3, 5 give exact ties 0.5, 1.5, 2.5 after scaling.
    x = torch.tensor([[254.0, 1.0, 3.0, 5.0, -1.0, -3.0, -7.0, 9.0]])
    xq, s = quantize_activations_triton(x)
    assert float(s) == 0.5
    assert xq.tolist() == [[127, 0, 2, 2, 0, -2, -4, 4]]
    assert torch.equal(xq, quantize_activations(x)[0])


def test_zero_row_uses_the_epsilon_and_padding_is_zero() -> None:
    x = torch.zeros((2, 20))  # (M, K)
    x[1, 3] = -2.0
    xq_pad, s = quantize_padded(x)
    assert tuple(xq_pad.shape) == (2, padded_in_features(20)) == (2, 32)
    assert torch.equal(s, quantize_activations(x)[1].reshape(2))
    assert bool((xq_pad[:, 20:] == 0).all()), "the padding must be zero: the packed kernels rely on it"
    assert xq_pad[1, 3].item() == -127 and int(xq_pad[0].abs().sum()) == 0


def test_leading_dims_and_strided_input() -> None:
    base = torch.randn(2, 3, 80)
    x = base[..., :37]  # (2, 3, 37), row stride 80
    xq, s = quantize_activations_triton(x)
    ref_q, ref_s = quantize_activations(x)
    assert tuple(xq.shape) == (2, 3, 37) and tuple(s.shape) == (2, 3, 1)
    assert torch.equal(xq, ref_q) and torch.equal(s, ref_s)


def test_rejects_integer_input() -> None:
    with pytest.raises(TypeError, match="floating-point"):
        quantize_activations_triton(torch.ones((1, 16), dtype=torch.int32))
