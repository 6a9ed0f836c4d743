"""The "triton" packed layout of a ternary weight: int32 words, 16 codes each, K-major (pure torch).

A ternary weight ``w`` (N, K) in {-1, 0, 1} is stored as codes ``c = w + 1`` in {0, 1, 2} (2 bits each).
``KW = ceil(K / 16)`` words hold one output row; K is padded to ``K_pad = 16 * KW`` with code 1 (weight 0).
The storage is ``data`` int32 of shape ``(KW, N)``: row ``kw`` of words for all N outputs is contiguous,
so a (BLOCK_KW, BLOCK_N) tile is read by consecutive threads along N (coalesced).

The K axis is split into four *planes* of ``4 * KW`` consecutive k each. Inside word ``(kw, n)`` the 32 bits
hold 4 bytes ``b`` x 4 planes ``j``; bits ``[8b + 2j, 8b + 2j + 1]`` hold the code of::

    k = j * (4 * KW) + 4 * kw + b            (j, b in 0..3)

    bit  31 30 29 28 27 26 25 24 | 23 ... 16 | 15 ... 8 | 7  6  5  4  3  2  1  0
         j=3   j=2   j=1   j=0   |  byte 2   |  byte 1  | j=3   j=2   j=1   j=0
         <------- byte 3 ------->                       <------- byte 0 ------->
         k = j*4KW + 4kw + 3                            k = j*4KW + 4kw + 0

Why: one shift and one AND, ``E_j = (word >> 2j) & 0x03030303``, turn a word into four unsigned bytes that
are the codes of the four *consecutive* k ``j*4KW + 4kw + (0..3)``, which line up byte for byte with one
int32 load of the int8 activations (``xq`` viewed as int32 at index ``j*KW + kw``). A GPU consumes them with a
single ``dp4a.u32.s32`` (4 multiply-adds per instruction, 16 weights per word in 11 instructions); the
``-1`` of the code offset is applied once per token as ``- sum(xq)``. The prefill GEMM expands the same
word into ``tl.dot`` operands: plane ``j`` of a block of words is a contiguous run of ``4 * BLOCK_KW`` k.

The activations that meet this layout are padded to ``K_pad`` with zeros, so the padding codes never count.
"""

from __future__ import annotations

import torch

CODES_PER_WORD = 16
PLANES = 4
BYTES_PER_WORD = 4
_WORD_MASK = (1 << 32) - 1


def words_per_row(in_features: int) -> int:
    """``KW = ceil(K / 16)``: int32 words per output row."""
    assert in_features > 0, f"in_features must be positive, got {in_features}"
    return -(-in_features // CODES_PER_WORD)


def padded_in_features(in_features: int) -> int:
    """``K_pad = 16 * KW``: K rounded up to whole words (the activations are zero-padded to it)."""
    return CODES_PER_WORD * words_per_row(in_features)


def _shifts(device: torch.device) -> torch.Tensor:
    """Bit offset of the code for (plane j, byte b): ``8b + 2j``, shape (4[j], 4[b]) int64."""
    j = torch.arange(PLANES, device=device, dtype=torch.int64)  # (4,)
    b = torch.arange(BYTES_PER_WORD, device=device, dtype=torch.int64)  # (4,)
    return 8 * b[None, :] + 2 * j[:, None]  # (4, 4)


def pack(w: torch.Tensor) -> torch.Tensor:
    """Pack ``w`` int8 (N, K) in {-1, 0, 1} into int32 (KW, N) words (layout in the module docstring)."""
    assert w.dim() == 2, f"pack: expected a 2-D (N, K) weight, got shape {tuple(w.shape)}"
    assert w.dtype == torch.int8, f"pack: expected int8, got {w.dtype}"
    n, k = (int(s) for s in w.shape)
    kw = words_per_row(k)
    k_pad = CODES_PER_WORD * kw
    codes = torch.ones((n, k_pad), dtype=torch.int64, device=w.device)  # (N, K_pad), pad = code 1 (w = 0)
    codes[:, :k] = w.to(torch.int64) + 1
    assert bool(((codes >= 0) & (codes <= 2)).all()), "pack: weight values must be in {-1, 0, 1}"
    planes = codes.reshape(n, PLANES, kw, BYTES_PER_WORD)  # (N, j, KW, b): k = j*4KW + 4kw + b
    shifted = planes << _shifts(w.device)[None, :, None, :]  # (N, j, KW, b)
    words = shifted.sum(dim=(1, 3))  # (N, KW) int64 in [0, 2**32): disjoint bit fields, sum == or
    words = torch.where(words >= (1 << 31), words - (1 << 32), words)  # two's complement int32 range
    return words.t().contiguous().to(torch.int32)  # (KW, N)


def unpack(data: torch.Tensor, out_features: int, in_features: int) -> torch.Tensor:
    """Exact inverse of :func:`pack`: int32 (KW, N) words -> int8 (N, K) in {-1, 0, 1}."""
    kw = words_per_row(in_features)
    expected = (kw, out_features)
    assert data.dtype == torch.int32, f"unpack: expected int32 words, got {data.dtype}"
    assert tuple(data.shape) == expected, (
        f"unpack: data has shape {tuple(data.shape)}, expected (KW, N) = {expected} for K={in_features}"
    )
    words = data.to(torch.int64) & _WORD_MASK  # (KW, N) unsigned
    fields = (words.t()[:, None, :, None] >> _shifts(data.device)[None, :, None, :]) & 3  # (N, j, KW, b)
    codes = fields.reshape(out_features, CODES_PER_WORD * kw)[:, :in_features]  # (N, K)
    return (codes - 1).to(torch.int8)
