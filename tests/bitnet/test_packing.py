"""The Hugging Face packed layout and the converters to the kernels' layouts (property tests)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from bno_bitnet.packing import hf_to_packed, pack_hf, packed_rows, packed_to_hf, unpack_hf
from bno_kernels.packed import LAYOUTS, PackedTernaryWeight
from tests.bitnet.tiny import eager_transformers


def _ternary(n: int, k: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(-1, 2, (n, k), generator=gen, dtype=torch.int8)


shapes = st.tuples(st.integers(1, 41), st.integers(1, 23), st.integers(0, 2**16))


@settings(max_examples=60, deadline=None)
@given(shape=shapes)
def test_pack_unpack_round_trip(shape: tuple[int, int, int]) -> None:
    n, k, seed = shape
    w = _ternary(n, k, seed)
    packed = pack_hf(w)
    assert packed.dtype == torch.uint8 and tuple(packed.shape) == (packed_rows(n), k)
    assert torch.equal(unpack_hf(packed, n), w)


@settings(max_examples=40, deadline=None)
@given(shape=shapes)
def test_pack_matches_transformers_bytes(shape: tuple[int, int, int]) -> None:
    from transformers.integrations.bitnet import pack_weights, unpack_weights

    n, k, seed = shape
    w = _ternary(n, k, seed)
    theirs = pack_weights(w.clone())
    assert torch.equal(pack_hf(w), theirs)
    with eager_transformers():
        unpacked = unpack_weights(pack_hf(w), dtype=torch.float32)
    assert torch.equal(unpacked[:n], w.float())


@pytest.mark.parametrize("layout", LAYOUTS)
@settings(max_examples=30, deadline=None)
@given(shape=shapes)
def test_hf_to_kernel_layout_and_back(layout: str, shape: tuple[int, int, int]) -> None:
    n, k, seed = shape
    w = _ternary(n, k, seed)
    hf = pack_hf(w)
    weight = hf_to_packed(hf, n, layout=layout)
    assert isinstance(weight, PackedTernaryWeight) and weight.layout == layout
    assert torch.equal(weight.to_ternary(), w)
    assert torch.equal(packed_to_hf(weight), hf)


def test_known_layout_example() -> None:
    # N = 5 -> R = 2: packed row r bits [2i, 2i+1] hold row i*R + r; the missing rows (5, 6, 7) are zero bits.
    w = torch.tensor([[1], [0], [-1], [1], [0]], dtype=torch.int8)
    codes = [2, 1, 0, 2, 1]
    expected = [codes[0] | codes[2] << 2 | codes[4] << 4, codes[1] | codes[3] << 2]
    assert pack_hf(w).flatten().tolist() == expected


def test_unpack_rejects_bad_input() -> None:
    w = _ternary(6, 3, 0)
    packed = pack_hf(w)
    with pytest.raises(ValueError, match="uint8"):
        unpack_hf(packed.to(torch.int16), 6)
    with pytest.raises(ValueError, match="pack into"):
        unpack_hf(packed, 12)
    bad = packed.clone()
    bad[0, 0] = 0xFF
    with pytest.raises(ValueError, match="code 3"):
        unpack_hf(bad, 6)
    with pytest.raises(ValueError, match="padding"):
        unpack_hf(pack_hf(_ternary(8, 3, 1)), 6)
    with pytest.raises(ValueError, match="-1, 0, 1"):
        pack_hf(torch.full((2, 2), 2, dtype=torch.int8))
