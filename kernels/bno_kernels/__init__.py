"""Ternary (BitNet b1.58) matmul kernels: Triton for CUDA tensors, a native C++ kernel for the CPU,
and a pure-torch reference that defines the correct result.

The public entry point is :func:`bno_kernels.ternary_matmul`. Attributes are resolved lazily so that
``import bno_foundation.toolchain`` (used by the orchestrator inside git hooks) does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "ternary_matmul": "bno_kernels.dispatch",
    "available_backends": "bno_kernels.dispatch",
    "PackedTernaryWeight": "bno_kernels.packed",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'bno_kernels' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
