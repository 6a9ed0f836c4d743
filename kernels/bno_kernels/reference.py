"""The pure-torch reference of the BitNet b1.58 W1.58A8 matmul: it defines the correct result.

``y = (xq @ Wq^T) * weight_scale / s`` where ``xq, s = quantize_activations(x)`` (per-token absmax int8,
round half to even) and the integer product is exact (int32). Every other backend must reproduce the
int32 accumulation bit for bit and apply the scales in the same order (fp32: ``acc * weight_scale / s``).
"""

from __future__ import annotations

import torch

from bno_kernels.packed import PackedTernaryWeight

ACT_MAX = 127.0
SCALE_EPS = 1e-5
# Largest |partial sum| is 128 * K: exact in fp32 while it stays below 2**24, in fp64 below 2**53.
_FP32_EXACT_K = (1 << 24) // 128


def quantize_activations(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token absmax int8 quantization.

    x (..., K) float -> (xq int8 (..., K), s float32 (..., 1)) with ``s = 127 / max|x|.clamp(min=1e-5)``
    (a true fp32 division) and ``xq = round_half_even(x * s).clamp(-128, 127)``, all in fp32.
    """
    if not x.is_floating_point():
        raise TypeError(f"quantize_activations: expected a floating-point tensor, got {x.dtype}")
    xf = x.float()  # (..., K)
    amax = xf.abs().amax(dim=-1, keepdim=True).clamp(min=SCALE_EPS)  # (..., 1)
    s = torch.full_like(amax, ACT_MAX).div(amax)  # (..., 1) true division, as the kernels compute it
    xq = torch.round(xf * s).clamp(-128, 127).to(torch.int8)  # (..., K)
    return xq, s


def int_matmul_reference(xq: torch.Tensor, weight: PackedTernaryWeight) -> torch.Tensor:
    """Exact ``xq @ Wq^T``: xq int8 (..., K) -> int32 (..., N)."""
    if xq.dtype != torch.int8:
        raise TypeError(f"int_matmul_reference: expected int8 activations, got {xq.dtype}")
    k = weight.in_features
    if xq.shape[-1] != k:
        raise ValueError(f"int_matmul_reference: activations have K={xq.shape[-1]}, weight has K={k}")
    w = weight.to_ternary().to(xq.device)  # (N, K) int8
    exact_fp32 = k <= _FP32_EXACT_K and torch.get_float32_matmul_precision() == "highest"
    dtype = torch.float32 if exact_fp32 else torch.float64
    # Integer values with every partial sum below 2**24 (fp32) or 2**53 (fp64): exact in any order.
    acc = torch.matmul(xq.to(dtype), w.to(dtype).t())  # (..., N)
    return acc.to(torch.int32)


def scale_weight(weight_scale: torch.Tensor | float, out_features: int, device: torch.device) -> torch.Tensor:
    """``weight_scale`` (0-d, one element, or (N,)) as fp32 on ``device``: shape () or (N,)."""
    ws = torch.as_tensor(weight_scale, dtype=torch.float32, device=device)
    if ws.numel() == 1:
        return ws.reshape(())
    if ws.dim() != 1 or ws.shape[0] != out_features:
        raise ValueError(
            f"weight_scale must be a 0-d tensor or have shape ({out_features},), got {tuple(ws.shape)}"
        )
    return ws


def apply_scales(acc: torch.Tensor, weight_scale: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """The epilogue every backend shares: fp32 ``acc * weight_scale / s``. acc int32 (..., N), s (..., 1)."""
    return acc.to(torch.float32) * weight_scale / s  # (..., N)


def ternary_matmul_reference(
    x: torch.Tensor,
    weight: PackedTernaryWeight,
    weight_scale: torch.Tensor | float,
    *,
    out_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """The reference W1.58A8 matmul: x (..., K) float -> (..., N) in ``out_dtype`` or ``x.dtype``."""
    if x.shape[-1] != weight.in_features:
        raise ValueError(
            f"ternary_matmul: x has {x.shape[-1]} input features, the weight expects {weight.in_features}"
        )
    ws = scale_weight(weight_scale, weight.out_features, x.device)
    xq, s = quantize_activations(x)  # (..., K) int8, (..., 1) fp32
    acc = int_matmul_reference(xq, weight)  # (..., N) int32
    return apply_scales(acc, ws, s).to(out_dtype or x.dtype)
