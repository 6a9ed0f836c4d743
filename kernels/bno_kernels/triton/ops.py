"""Entry points of the Triton backend: activation quantization, then GEMV (M <= 16) or GEMM (M > 16).

``y = (xq @ Wq^T)[int32, exact] * weight_scale / s`` with ``xq, s`` the per-token absmax int8 activations, the
same contract (and the same fp32 epilogue order) as :func:`bno_kernels.reference.ternary_matmul_reference`.
Kernel launches per call: one at batch 1 (the GEMV quantizes its activations itself); two for M >= 2 (the
activation quantization, then the GEMV or the GEMM), the scaling epilogue fused in each.
"""

from __future__ import annotations

import torch

from bno_kernels.packed import PackedTernaryWeight
from bno_kernels.reference import scale_weight
from bno_kernels.triton.gemm import gemm
from bno_kernels.triton.gemv import MAX_GEMV_M, gemv, gemv_fused
from bno_kernels.triton.layout import padded_in_features, words_per_row
from bno_kernels.triton.quant import quantize_padded

OUT_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


def _check_words(data: torch.Tensor, n: int, k: int, device: torch.device) -> None:
    expected = (words_per_row(k), n)
    if data.dtype != torch.int32 or tuple(data.shape) != expected:
        raise ValueError(
            f"triton ternary matmul: packed weight must be int32 {expected} (KW, N) for N={n}, K={k}; "
            f"got {data.dtype} {tuple(data.shape)}"
        )
    if data.device != device:
        raise ValueError(f"triton ternary matmul: weight is on {data.device}, activations on {device}")
    assert data.is_contiguous(), "triton ternary matmul: packed weight words must be contiguous"


def ternary_matmul_packed(
    x: torch.Tensor,
    data: torch.Tensor,
    n: int,
    k: int,
    weight_scale: torch.Tensor | float,
    out_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """x (..., K) float, ``data`` the triton-layout words (KW, N) -> (..., N) in ``out_dtype`` or x.dtype.

    ``weight_scale``: beta as a 0-d tensor (or float), or a per-output-channel (N,) tensor.
    """
    if not x.is_floating_point():
        raise TypeError(f"ternary_matmul_triton: x must be a floating-point tensor, got {x.dtype}")
    if x.dim() == 0 or x.shape[-1] != k:
        raise ValueError(f"ternary_matmul_triton: x has shape {tuple(x.shape)}, the weight expects K={k}")
    dtype = out_dtype or x.dtype
    if dtype not in OUT_DTYPES:
        raise ValueError(f"ternary_matmul_triton: out_dtype must be one of {OUT_DTYPES}, got {dtype}")
    _check_words(data, n, k, x.device)
    ws = scale_weight(weight_scale, n, x.device).contiguous()  # () or (N,) fp32
    lead = tuple(x.shape[:-1])
    x2d = x.reshape(-1, k)  # (M, K)
    m = int(x2d.shape[0])
    if m == 0:
        return torch.empty((*lead, n), dtype=dtype, device=x.device)
    if m == 1 and x2d.stride(-1) == 1:
        y = gemv_fused(x2d, data, n, ws, dtype)  # (1, N): quantization inside the GEMV, one launch
    else:
        xq_pad, s = quantize_padded(x2d)  # (M, K_pad) int8, (M,) fp32
        kernel = gemv if m <= MAX_GEMV_M else gemm
        y = kernel(xq_pad, data, n, s, ws, dtype)  # (M, N)
    return y.reshape(*lead, n)


def ternary_matmul_triton(
    x: torch.Tensor,
    weight: PackedTernaryWeight,
    weight_scale: torch.Tensor | float,
    *,
    out_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """The Triton backend of :func:`bno_kernels.ternary_matmul`: x (..., K) -> (..., N) (weight layout "triton")."""
    if weight.layout != "triton":
        raise ValueError(
            f"ternary_matmul_triton: the weight has layout {weight.layout!r}; repack it with "
            "weight.to(device, layout='triton')"
        )
    return ternary_matmul_packed(x, weight.data, weight.out_features, weight.in_features, weight_scale, out_dtype)


def ternary_matmul_int32_triton(xq: torch.Tensor, data: torch.Tensor, n: int, k: int) -> torch.Tensor:
    """Exact int32 ``xq @ Wq^T`` with the Triton kernels, no scaling: xq int8 (..., K) -> int32 (..., N).

    M <= 16 rows use the GEMV, more use the GEMM (the same kernels as :func:`ternary_matmul_packed`).
    """
    if xq.dtype != torch.int8 or xq.dim() == 0 or xq.shape[-1] != k:
        raise ValueError(f"ternary_matmul_int32_triton: expected int8 (..., {k}), got {xq.dtype} {tuple(xq.shape)}")
    _check_words(data, n, k, xq.device)
    lead = tuple(xq.shape[:-1])
    x2d = xq.reshape(-1, k)  # (M, K)
    m = int(x2d.shape[0])
    xq_pad = torch.zeros((m, padded_in_features(k)), dtype=torch.int8, device=xq.device)  # (M, K_pad)
    xq_pad[:, :k] = x2d
    if m == 0:
        acc = torch.empty((0, n), dtype=torch.int32, device=xq.device)
    elif m <= MAX_GEMV_M:
        acc = gemv(xq_pad, data, n)
    else:
        acc = gemm(xq_pad, data, n)
    return acc.reshape(*lead, n)
