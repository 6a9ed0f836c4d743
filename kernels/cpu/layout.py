"""The packed layout of the native CPU kernel (``layout="cpu"``).

Weights ``w`` (N, K) in {-1, 0, 1} are stored as 2-bit codes ``c = w + 1`` in {0, 1, 2}. Rows are padded
to ``Np = ceil(N / 16) * 16`` and columns to ``Kp = ceil(K / 16) * 16`` (padding holds code 1, weight 0).
The storage is ``uint8 (Np / 16, Kp / 16, 64)``: one 64-byte block per tile of 16 output rows and group
of 16 input columns. In block ``(t, g)`` byte ``4 * lane + b`` holds, in bits ``[2j, 2j + 1]``, the code
of weight ``w[16 t + lane, 16 g + 4 j + b]`` for ``lane`` in 0..15, ``b`` in 0..3, ``j`` in 0..3.

Why this order: one 512-bit load brings a whole block. Masking it with ``0x03 << 2j`` leaves, in 32-bit
lane ``lane``, the four codes of row ``16 t + lane`` at columns ``16 g + 4 j .. + 3`` (scaled by ``4^j``),
which ``vpdpbusd`` multiplies with the four activations ``x[16 g + 4 j .. + 3]`` broadcast to all lanes:
16 output rows accumulate at once in one register, with no horizontal reduction. The AVX2 path reads
the same block as two 256-bit halves (lanes 0..7 and 8..15).
"""

from __future__ import annotations

import torch

TILE_N = 16  # output rows per tile (one 32-bit lane each in a 512-bit register)
GROUP_K = 16  # input columns per 64-byte block (4 shifts x 4 bytes)
BLOCK_BYTES = 64


def padded_shape(out_features: int, in_features: int) -> tuple[int, int]:
    """``(Np, Kp)``: N and K rounded up to the tile sizes."""
    assert out_features > 0 and in_features > 0, f"empty weight ({out_features}, {in_features})"
    n_pad = -(-out_features // TILE_N) * TILE_N
    k_pad = -(-in_features // GROUP_K) * GROUP_K
    return n_pad, k_pad


def packed_shape(out_features: int, in_features: int) -> tuple[int, int, int]:
    """The shape of :func:`pack`'s result for an (N, K) weight."""
    n_pad, k_pad = padded_shape(out_features, in_features)
    return n_pad // TILE_N, k_pad // GROUP_K, BLOCK_BYTES


def pack(w: torch.Tensor) -> torch.Tensor:
    """Pack ternary ``w`` int8 (N, K) into ``uint8 (Np/16, Kp/16, 64)`` (see the module docstring)."""
    if w.dim() != 2:
        raise ValueError(f"pack: expected a 2-D (N, K) weight, got shape {tuple(w.shape)}")
    n, k = w.shape
    n_pad, k_pad = padded_shape(n, k)
    codes = torch.ones((n_pad, k_pad), dtype=torch.uint8, device=w.device)  # (Np, Kp), padding = weight 0
    codes[:n, :k] = (w.to(torch.int16) + 1).to(torch.uint8)
    # (Np, Kp) -> (T, lane, G, j, b) -> (T, G, lane, b, j)
    blocks = codes.view(n_pad // TILE_N, TILE_N, k_pad // GROUP_K, 4, 4).permute(0, 2, 1, 4, 3)
    shifts = torch.tensor([0, 2, 4, 6], dtype=torch.uint8, device=w.device)
    packed = (blocks << shifts).sum(dim=-1, dtype=torch.uint8)  # (T, G, lane, b): the 2-bit fields don't overlap
    return packed.reshape(n_pad // TILE_N, k_pad // GROUP_K, BLOCK_BYTES).contiguous()


def unpack(data: torch.Tensor, out_features: int, in_features: int) -> torch.Tensor:
    """Inverse of :func:`pack`: ``uint8 (Np/16, Kp/16, 64)`` -> int8 (N, K) in {-1, 0, 1}."""
    expected = packed_shape(out_features, in_features)
    if tuple(data.shape) != expected or data.dtype != torch.uint8:
        raise ValueError(
            f"unpack: cpu-layout data for ({out_features}, {in_features}) must be uint8 {expected}, "
            f"got {data.dtype} {tuple(data.shape)}"
        )
    n_pad, k_pad = padded_shape(out_features, in_features)
    tiles, groups = expected[0], expected[1]
    shifts = torch.tensor([0, 2, 4, 6], dtype=torch.uint8, device=data.device)
    fields = (data.view(tiles, groups, TILE_N, 4, 1) >> shifts) & 3  # (T, G, lane, b, j)
    if bool((fields == 3).any()):
        raise ValueError("unpack: cpu-layout data holds the invalid 2-bit code 3 (corrupt packed weight)")
    codes = fields.permute(0, 2, 1, 4, 3).reshape(n_pad, k_pad)  # (T, lane, G, j, b) -> (Np, Kp)
    return (codes[:out_features, :in_features].to(torch.int8) - 1).contiguous()
