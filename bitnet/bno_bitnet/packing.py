"""The Hugging Face packed ternary layout, and converters to and from the kernels' own layouts.

Hugging Face layout (``transformers/integrations/bitnet.py``, docs/architecture.md, "BitNet b1.58"): a ternary weight ``wq`` int8
(N, K) in {-1, 0, 1} is stored as codes ``wq + 1`` in {0, 1, 2}, four per ``uint8``, blocked along dim 0:
with ``R = ceil(N / 4)`` the packed tensor is ``uint8 (R, K)`` and bits ``[2i, 2i + 1]`` of packed row ``r``
hold original row ``i * R + r``. When ``N`` is not a multiple of 4 the last block is short: its missing
rows are padding with all bits zero (exactly what transformers' ``pack_weights`` writes), so the packed
bytes alone do not tell ``N``; :func:`unpack_hf` takes it, and checkpoints record it (the model config
fixes every layer's ``out_features``). The conversion is lossless for every ``N >= 1``.

The kernels' layouts (``"cpu"``, ``"triton"``) live with their kernels (:mod:`bno_kernels.packed`);
:func:`hf_to_packed` and :func:`packed_to_hf` convert through the exact int8 matrix.
"""

from __future__ import annotations

import torch

from bno_kernels.packed import PackedTernaryWeight, check_ternary

VALUES_PER_BYTE = 4
_SHIFTS = (0, 2, 4, 6)


def packed_rows(out_features: int) -> int:
    """Rows of the HF-packed tensor for ``out_features`` rows: ``ceil(N / 4)``."""
    assert out_features > 0, f"out_features must be positive, got {out_features}"
    return -(-out_features // VALUES_PER_BYTE)


def pack_hf(wq: torch.Tensor) -> torch.Tensor:
    """Pack a ternary matrix into the HF layout: wq int8 (N, K) in {-1, 0, 1} -> uint8 (ceil(N/4), K)."""
    check_ternary(wq, "pack_hf")
    n, k = wq.shape
    r = packed_rows(n)
    codes = torch.zeros((VALUES_PER_BYTE * r, k), dtype=torch.uint8, device=wq.device)  # (4R, K), pad = 0
    codes[:n] = (wq.to(torch.int16) + 1).to(torch.uint8)
    blocks = codes.view(VALUES_PER_BYTE, r, k)  # (4, R, K): block i holds rows i*R .. i*R + R - 1
    packed = blocks[0] | (blocks[1] << 2) | (blocks[2] << 4) | (blocks[3] << 6)  # (R, K)
    return packed.contiguous()


def unpack_hf(packed: torch.Tensor, out_features: int) -> torch.Tensor:
    """Inverse of :func:`pack_hf`: uint8 (ceil(N/4), K) -> int8 (N, K) in {-1, 0, 1}.

    Raises ``ValueError`` on a wrong shape or dtype, on the invalid code 3, or on non-zero padding bits.
    """
    if packed.dtype != torch.uint8:
        raise ValueError(f"unpack_hf: expected uint8 packed data, got {packed.dtype}")
    if packed.dim() != 2:
        raise ValueError(f"unpack_hf: expected a 2-D (ceil(N/4), K) tensor, got shape {tuple(packed.shape)}")
    r = packed_rows(out_features)
    if packed.shape[0] != r:
        raise ValueError(
            f"unpack_hf: {out_features} output rows pack into {r} rows, got {packed.shape[0]} "
            f"(shape {tuple(packed.shape)})"
        )
    k = packed.shape[1]
    shifts = torch.tensor(_SHIFTS, dtype=torch.uint8, device=packed.device).view(VALUES_PER_BYTE, 1, 1)
    codes = ((packed.unsqueeze(0) >> shifts) & 3).reshape(VALUES_PER_BYTE * r, k)  # (4R, K)
    if bool((codes[:out_features] == 3).any()):
        raise ValueError("unpack_hf: packed data holds the invalid 2-bit code 3 (corrupt packed weight)")
    if out_features < VALUES_PER_BYTE * r and bool(codes[out_features:].any()):
        raise ValueError(
            f"unpack_hf: padding rows beyond out_features={out_features} are not zero "
            "(the packed tensor belongs to a larger layer)"
        )
    return (codes[:out_features].to(torch.int8) - 1).contiguous()  # (N, K)


def hf_to_packed(packed: torch.Tensor, out_features: int, layout: str | None = None) -> PackedTernaryWeight:
    """HF layout uint8 (ceil(N/4), K) -> a kernel :class:`PackedTernaryWeight` (``layout`` None: the device's)."""
    return PackedTernaryWeight.from_ternary(unpack_hf(packed, out_features), layout=layout)


def packed_to_hf(weight: PackedTernaryWeight) -> torch.Tensor:
    """A kernel :class:`PackedTernaryWeight` (N, K) -> HF layout uint8 (ceil(N/4), K)."""
    return pack_hf(weight.to_ternary())
