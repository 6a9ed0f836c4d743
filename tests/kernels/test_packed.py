"""Round trips of the packed ternary layouts and the PackedTernaryWeight container."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from bno_kernels.cpu import layout as cpu_layout
from bno_kernels.packed import PackedTernaryWeight


def _ternary(n: int, k: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(-1, 2, (n, k), dtype=torch.int8, generator=gen)  # (N, K)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 70), k=st.integers(1, 90), seed=st.integers(0, 2**31 - 1))
def test_cpu_layout_round_trip(n: int, k: int, seed: int) -> None:
    w = _ternary(n, k, seed)
    data = cpu_layout.pack(w)
    assert data.dtype == torch.uint8
    assert tuple(data.shape) == cpu_layout.packed_shape(n, k)
    assert torch.equal(cpu_layout.unpack(data, n, k), w)


def test_cpu_layout_is_two_bits_per_weight_plus_padding() -> None:
    assert cpu_layout.pack(_ternary(2560, 6912, 0)).numel() == 2560 * 6912 // 4
    assert cpu_layout.pack(_ternary(13, 37, 1)).numel() == 16 * 48 // 4  # N and K padded to 16
    assert cpu_layout.pack(_ternary(48, 64, 1)).numel() == 48 * 64 // 4


def _block(data: torch.Tensor, t: int, g: int, n: int, k: int) -> torch.Tensor:
    """Block (t, g) per the documented offsets: (t // 4) * G * 256 + (g * s + t % 4) * 64."""
    n_pad, k_pad = cpu_layout.padded_shape(n, k)
    tiles, groups = n_pad // 16, k_pad // 16
    u = t // 4
    s = min(4, tiles - 4 * u)
    start = u * groups * 256 + (g * s + t % 4) * 64
    return data[start : start + 64]


@pytest.mark.parametrize("n", [128, 96])  # full super-tiles only / a partial last super-tile (2 tiles)
def test_cpu_layout_bit_positions(n: int) -> None:
    # w[16 t + lane, 16 g + 4 j + b] lives in block (t, g), byte 4 lane + b, bits 2j.
    w = torch.zeros(n, 32, dtype=torch.int8)
    w[16 * 5 + 7, 16 + 4 * 2 + 3] = 1  # t=5, lane=7, g=1, j=2, b=3 -> code 2 at bits 4..5
    data = cpu_layout.pack(w)
    assert _block(data, 5, 1, n, 32)[4 * 7 + 3].item() == (2 << 4) | (1 << 0) | (1 << 2) | (1 << 6)
    assert data[0].item() == 0b01010101  # all zeros -> code 1 in every field
    assert int((data != 0b01010101).sum()) == 1


def test_cpu_layout_rejects_corrupt_codes() -> None:
    data = cpu_layout.pack(_ternary(16, 16, 2))
    data[0] = 0xFF
    with pytest.raises(ValueError, match="invalid 2-bit code"):
        cpu_layout.unpack(data, 16, 16)
    with pytest.raises(ValueError, match="must be uint8"):
        cpu_layout.unpack(data, 17, 16)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 40), k=st.integers(1, 40), seed=st.integers(0, 2**31 - 1))
def test_packed_weight_round_trip(n: int, k: int, seed: int) -> None:
    w = _ternary(n, k, seed)
    packed = PackedTernaryWeight.from_ternary(w)
    assert packed.layout == "cpu"
    assert packed.shape == (n, k)
    assert packed.nbytes == packed.data.numel()
    assert torch.equal(packed.to_ternary(), w)
    moved = packed.to("cpu")
    assert moved.layout == "cpu" and torch.equal(moved.to_ternary(), w)


def test_from_ternary_validates_input() -> None:
    with pytest.raises(ValueError, match="values must be in"):
        PackedTernaryWeight.from_ternary(torch.full((2, 2), 2, dtype=torch.int8))
    with pytest.raises(ValueError, match="dtype int8"):
        PackedTernaryWeight.from_ternary(torch.zeros(2, 2))
    with pytest.raises(ValueError, match="2-D"):
        PackedTernaryWeight.from_ternary(torch.zeros(2, dtype=torch.int8))
    with pytest.raises(ValueError, match="unknown packed layout"):
        PackedTernaryWeight.from_ternary(torch.zeros(2, 2, dtype=torch.int8), layout="nope")
