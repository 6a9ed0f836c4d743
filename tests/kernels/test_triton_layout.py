"""The "triton" packed layout: exact round trip, the documented bit positions, padding, errors (pure torch)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from bno_kernels.packed import PackedTernaryWeight
from bno_kernels.triton import layout


def _ternary(n: int, k: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(-1, 2, (n, k), generator=g, dtype=torch.int8)  # (N, K)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 40), k=st.integers(1, 90), seed=st.integers(0, 2**31 - 1))
def test_round_trip_any_shape(n: int, k: int, seed: int) -> None:
    w = _ternary(n, k, seed)
    data = layout.pack(w)
    assert data.dtype == torch.int32
    assert tuple(data.shape) == (layout.words_per_row(k), n)
    assert torch.equal(layout.unpack(data, n, k), w)


def test_bit_positions_match_the_documented_formula() -> None:
    n, k = 3, 37  # KW = 3, K_pad = 48, planes of 12 k
    w = _ternary(n, k, 7)
    data = layout.pack(w)
    kw_total = layout.words_per_row(k)
    for row in range(n):
        for kw in range(kw_total):
            word = int(data[kw, row]) & 0xFFFFFFFF
            for j in range(4):
                for b in range(4):
                    kk = j * 4 * kw_total + 4 * kw + b
                    code = (word >> (8 * b + 2 * j)) & 3
                    expected = int(w[row, kk]) + 1 if kk < k else 1  # padding is code 1 (weight 0)
                    assert code == expected, f"row {row} word {kw} plane {j} byte {b} (k={kk})"


def test_extreme_words_and_two_bit_storage() -> None:
    w = torch.ones((5, 32), dtype=torch.int8)  # all codes 2: bit 31 set, negative int32 words
    data = layout.pack(w)
    assert bool((data < 0).all())
    assert torch.equal(layout.unpack(data, 5, 32), w)
    packed = PackedTernaryWeight.from_ternary(w, layout="triton")
    assert packed.nbytes == 5 * 32 // 4  # exactly 2 bits per weight when K is a multiple of 16
    assert torch.equal(packed.to_ternary(), w)


def test_cpu_and_triton_layouts_convert_exactly() -> None:
    w = _ternary(13, 37, 3)
    tri = PackedTernaryWeight.from_ternary(w, layout="triton")
    assert torch.equal(tri.to_ternary(), w)
    assert tri.layout == "triton" and tri.data.shape == (3, 13)


def test_unpack_rejects_wrong_shape() -> None:
    data = layout.pack(_ternary(4, 32, 0))
    with pytest.raises(AssertionError, match="expected \\(KW, N\\)"):
        layout.unpack(data, 4, 33)


def test_pack_rejects_non_ternary() -> None:
    with pytest.raises(AssertionError, match="must be in"):
        layout.pack(torch.full((2, 16), 2, dtype=torch.int8))
