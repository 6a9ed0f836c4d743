"""Fused per-token activation quantization in Triton: absmax -> scale -> int8, one program per token.

Bit-exact with :func:`bno_kernels.reference.quantize_activations`: ``s = 127 / max|x|.clamp(min=1e-5)`` as a
correctly rounded fp32 division (``tl.math.div_rn``; Triton's ``/`` on a GPU is an approximate division) and
``xq = round_half_even(x * s).clamp(-128, 127)``. Round-half-to-even is built from exact steps (``floor``,
an exact fp32 subtraction and a parity test) because libdevice's ``rint`` does not exist in Triton's
interpreter; FMA contraction is switched off for this kernel (``enable_fp_fusion=False``) so that ``x * s``
is rounded to fp32 before the rounding step, as torch does.

The int8 output is written zero-padded to ``K_pad`` (a whole number of 16-code words, see
:mod:`bno_kernels.triton.layout`), which is the buffer the GEMV/GEMM kernels read.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from bno_kernels.triton.layout import padded_in_features
from bno_kernels.triton.runtime import Config, Kernel, device_function

ACT_MAX = 127.0
SCALE_EPS = 1e-5
_MAX_BLOCK_K = 4096


def _row_scale_impl(x_row, K, BLOCK_K: tl.constexpr):
    # s = 127 / max(|x|).clamp(min=1e-5) over one row of K values, as a (1,) fp32 tensor
    offs = tl.arange(0, BLOCK_K)
    amax = tl.zeros((BLOCK_K,), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        k = k0 + offs
        xv = tl.load(x_row + k, mask=k < K, other=0.0).to(tl.float32)
        amax = tl.maximum(amax, tl.abs(xv))
    denom = tl.maximum(tl.max(amax, axis=0, keep_dims=True), 1e-5)  # (1,)
    return tl.math.div_rn(tl.full((1,), 127.0, tl.float32), denom)  # (1,) correctly rounded


def _quantize_values_impl(xv, s):
    # round_half_even(xv * s).clamp(-128, 127) as int32; xv fp32 (any shape), s fp32 scalar
    v = xv * s  # fp32 product, rounded (no FMA: the kernels run with enable_fp_fusion=False)
    f = tl.floor(v)
    d = v - f  # exact: the fraction of v in [0, 1)
    fi = f.to(tl.int32)
    up = (d > 0.5) | ((d == 0.5) & ((fi & 1) != 0))  # round half to even
    q = fi + up.to(tl.int32)
    return tl.minimum(tl.maximum(q, -128), 127)


row_scale = device_function(_row_scale_impl)
quantize_values = device_function(_quantize_values_impl)


def _act_quant_kernel(
    x_ptr,  # (M, K) fp32 / bf16 / fp16, unit stride along K
    xq_ptr,  # (M, K_pad) int8, output
    s_ptr,  # (M,) fp32, output
    K,
    K_pad,
    stride_xm,
    stride_qm,
    BLOCK_K: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    x_row = x_ptr + row * stride_xm
    q_row = xq_ptr + row * stride_qm
    offs = tl.arange(0, BLOCK_K)
    s = row_scale(x_row, K, BLOCK_K)  # (1,)
    s_scalar = tl.sum(s, axis=0)
    for k0 in range(0, K_pad, BLOCK_K):
        k = k0 + offs
        xv = tl.load(x_row + k, mask=k < K, other=0.0).to(tl.float32)  # zero in the padding
        q = quantize_values(xv, s_scalar)
        tl.store(q_row + k, q.to(tl.int8), mask=k < K_pad)
    tl.store(s_ptr + row + tl.arange(0, 1), s)


ACT_QUANT = Kernel(
    fn=_act_quant_kernel,
    gpu_configs=[Config({}, num_warps=4, num_stages=1)],
    key=(),
    interpreter_config=Config({}),
    gpu_options={"enable_fp_fusion": False},
)


def _block_k(k_pad: int) -> int:
    return min(triton.next_power_of_2(k_pad), _MAX_BLOCK_K)


def quantize_padded(x2d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """x (M, K) float -> (xq int8 (M, K_pad) zero-padded, s fp32 (M,)) with the Triton kernel."""
    assert x2d.dim() == 2, f"quantize_padded: expected (M, K), got {tuple(x2d.shape)}"
    if not x2d.is_floating_point():
        raise TypeError(f"quantize_activations_triton: expected a floating-point tensor, got {x2d.dtype}")
    x2d = x2d if x2d.stride(-1) == 1 else x2d.contiguous()  # (M, K)
    m, k = (int(v) for v in x2d.shape)
    k_pad = padded_in_features(k)
    xq = torch.empty((m, k_pad), dtype=torch.int8, device=x2d.device)  # (M, K_pad)
    s = torch.empty((m,), dtype=torch.float32, device=x2d.device)  # (M,)
    if m == 0:
        return xq, s
    ACT_QUANT.launch(
        lambda meta: (m,),
        x2d, xq, s, k, k_pad, x2d.stride(0), xq.stride(0),
        device=x2d.device,
        BLOCK_K=_block_k(k_pad),
    )
    return xq, s


def quantize_activations_triton(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token absmax int8 quantization with the Triton kernel (same contract as the reference).

    x (..., K) float -> (xq int8 (..., K), s float32 (..., 1)).
    """
    if x.dim() == 0:
        raise ValueError("quantize_activations_triton: x must have at least one dimension (K)")
    k = int(x.shape[-1])
    if k == 0:
        raise ValueError("quantize_activations_triton: x has no features (K = 0)")
    lead = tuple(x.shape[:-1])
    xq_pad, s = quantize_padded(x.reshape(-1, k))  # (M, K_pad), (M,)
    return xq_pad[:, :k].reshape(*lead, k), s.reshape(*lead, 1)
