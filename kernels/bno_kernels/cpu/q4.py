"""The 4-bit grouped layout of an output head (``q4``), for the native kernel ``head_q4``.

A float table ``W`` (V, K) is split in groups of 32 columns; each (row, group) keeps an fp16 scale
``d = absmax / 7`` and 4-bit codes ``q = round(w / d) + 8`` in 1..15, so ``w ≈ d * (q - 8)`` (symmetric:
zero is exact). Columns are padded to ``Kp``, a multiple of 64, with code 8 (weight 0).

Storage: ``codes`` uint8 (V, Kp / 2): in the 32 bytes of block ``b`` (columns ``64 b ..``), byte ``j`` holds
column ``64 b + j`` in its low nibble and column ``64 b + 32 + j`` in its high nibble, so one 256-bit load
unpacks into the block's 64 columns in order. ``scales`` int16 (V, Kp / 32), the fp16 bits of ``d``.
4.5 bits per weight: a 2B4T head (128256 x 2560) takes 185 MB against 657 MB in bf16 and 328 MB in int8.
"""

from __future__ import annotations

import torch

GROUP = 32  # columns per scale
BLOCK = 64  # columns per 32-byte block (two groups)
LEVELS = 7  # codes - 8 span -7..7


def padded_columns(in_features: int) -> int:
    """``Kp``: K rounded up to a multiple of 64."""
    return -(-in_features // BLOCK) * BLOCK


def quantize(weight: torch.Tensor, chunk_rows: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
    """``weight`` (V, K) float -> (codes uint8 (V, Kp/2), scales int16 (V, Kp/32)), ``chunk_rows`` rows at a time."""
    if weight.dim() != 2:
        raise ValueError(f"q4.quantize: expected a 2-D (V, K) table, got shape {tuple(weight.shape)}")
    v, k = weight.shape
    kp = padded_columns(k)
    codes = torch.empty((v, kp // 2), dtype=torch.uint8)
    scales = torch.empty((v, kp // GROUP), dtype=torch.int16)
    with torch.no_grad():
        for r in range(0, v, chunk_rows):
            w = torch.zeros((min(chunk_rows, v - r), kp), dtype=torch.float32)  # (C, Kp) zero padded
            w[:, :k] = weight[r : r + chunk_rows].detach().float()
            groups = w.view(w.shape[0], kp // GROUP, GROUP)  # (C, G, 32)
            d16 = (groups.abs().amax(dim=-1) / LEVELS).to(torch.float16)  # (C, G) the stored scales
            d = d16.float()
            q = torch.round(groups / torch.where(d > 0, d, torch.ones_like(d))[..., None])  # (C, G, 32)
            q = (q.clamp(-LEVELS, LEVELS) + 8).to(torch.uint8).view(w.shape[0], kp // BLOCK, 2, GROUP)
            codes[r : r + chunk_rows] = (q[:, :, 0, :] | (q[:, :, 1, :] << 4)).reshape(w.shape[0], kp // 2)
            scales[r : r + chunk_rows] = d16.view(torch.int16)
    return codes, scales


def dequantize(codes: torch.Tensor, scales: torch.Tensor, in_features: int) -> torch.Tensor:
    """Inverse of :func:`quantize` up to rounding: (V, K) float32 ``d * (q - 8)``."""
    v, half = codes.shape
    kp = half * 2
    low = (codes & 0x0F).view(v, kp // BLOCK, GROUP)  # (V, B, 32) first group of each block
    high = (codes >> 4).view(v, kp // BLOCK, GROUP)  # (V, B, 32) second group
    q = torch.stack((low, high), dim=2).reshape(v, kp // GROUP, GROUP).float() - 8  # (V, G, 32)
    d = scales.view(torch.float16).float()  # (V, G)
    return (q * d[..., None]).reshape(v, kp)[:, :in_features]
