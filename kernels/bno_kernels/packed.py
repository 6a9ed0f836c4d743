"""Packed ternary weights: the storage every ternary-matmul backend reads.

A :class:`PackedTernaryWeight` holds 2 bits per weight (plus tile padding) in a layout chosen for the
kernel that will read it: ``"cpu"`` (:mod:`bno_kernels.cpu.layout`, the native C++ kernel) or ``"triton"``
(:mod:`bno_kernels.triton.layout`, the GPU kernels). Converting between layouts goes through the exact
int8 ternary matrix.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType

import torch

LAYOUTS: tuple[str, ...] = ("cpu", "triton")


def _layout_module(layout: str) -> ModuleType:
    """The module with ``pack``/``unpack`` for ``layout`` (imported lazily: triton's is another helper's)."""
    if layout == "cpu":
        return importlib.import_module("bno_kernels.cpu.layout")
    if layout == "triton":
        return importlib.import_module("bno_kernels.triton.layout")
    raise ValueError(f"unknown packed layout {layout!r}; expected one of {LAYOUTS}")


def default_layout(device: torch.device | str) -> str:
    """``"triton"`` for CUDA devices, ``"cpu"`` otherwise."""
    return "triton" if torch.device(device).type == "cuda" else "cpu"


def check_ternary(w: torch.Tensor, what: str = "weight") -> None:
    """Raise ValueError unless ``w`` is a 2-D int8 tensor with values in {-1, 0, 1}."""
    if w.dim() != 2:
        raise ValueError(f"{what}: expected a 2-D (out_features, in_features) tensor, got {tuple(w.shape)}")
    if w.dtype != torch.int8:
        raise ValueError(f"{what}: expected dtype int8, got {w.dtype}")
    if w.numel() and bool((w.abs() > 1).any()):
        bad = w[w.abs() > 1][0].item()
        raise ValueError(f"{what}: values must be in {{-1, 0, 1}}, found {bad}")


@dataclass
class PackedTernaryWeight:
    """A ternary (N, K) weight packed at 2 bits per value in a backend's layout."""

    data: torch.Tensor  # layout-specific packed storage
    out_features: int  # N
    in_features: int  # K
    layout: str  # "cpu" or "triton"

    def __post_init__(self) -> None:
        assert self.layout in LAYOUTS, f"unknown packed layout {self.layout!r}; expected one of {LAYOUTS}"
        assert self.out_features > 0 and self.in_features > 0, (
            f"empty packed weight ({self.out_features}, {self.in_features})"
        )

    @classmethod
    def from_ternary(cls, w: torch.Tensor, layout: str | None = None) -> PackedTernaryWeight:
        """Pack ``w`` int8 (N, K) in {-1, 0, 1}. ``layout`` None -> "triton" if ``w.is_cuda`` else "cpu"."""
        check_ternary(w)
        chosen = layout if layout is not None else default_layout(w.device)
        data = _layout_module(chosen).pack(w)
        return cls(data=data, out_features=int(w.shape[0]), in_features=int(w.shape[1]), layout=chosen)

    def to_ternary(self) -> torch.Tensor:
        """The exact int8 (N, K) ternary matrix (on ``self.device``)."""
        w: torch.Tensor = _layout_module(self.layout).unpack(self.data, self.out_features, self.in_features)
        assert tuple(w.shape) == (self.out_features, self.in_features), (
            f"{self.layout} unpack returned {tuple(w.shape)}, expected ({self.out_features}, {self.in_features})"
        )
        return w

    def to(self, device: torch.device | str, layout: str | None = None) -> PackedTernaryWeight:
        """Move to ``device``; repack when the layout must change (``layout`` None -> the device's default)."""
        target = torch.device(device)
        chosen = layout if layout is not None else default_layout(target)
        if chosen == self.layout:
            return PackedTernaryWeight(self.data.to(target), self.out_features, self.in_features, self.layout)
        w = self.to_ternary().to(target)  # (N, K) int8
        return PackedTernaryWeight.from_ternary(w, layout=chosen)

    @property
    def device(self) -> torch.device:
        """The device of the packed storage."""
        return self.data.device

    @property
    def shape(self) -> tuple[int, int]:
        """``(out_features, in_features)`` of the unpacked weight."""
        return (self.out_features, self.in_features)

    @property
    def nbytes(self) -> int:
        """Bytes of packed storage (2 bits per weight plus the layout's padding)."""
        return int(self.data.numel() * self.data.element_size())

    def __repr__(self) -> str:
        return (
            f"PackedTernaryWeight(out_features={self.out_features}, in_features={self.in_features}, "
            f"layout={self.layout!r}, device={self.device}, nbytes={self.nbytes})"
        )
