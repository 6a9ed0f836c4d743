"""Ternary (BitNet b1.58) matmul kernels: Triton for CUDA tensors, a native C++ kernel for the CPU,
and a pure-torch reference that defines the correct result.

The public entry point is :func:`kernels.ternary_matmul`. Attributes are resolved lazily so that
``import kernels.toolchain`` (used by the orchestrator inside git hooks) does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "ternary_matmul": "kernels.dispatch",
    "available_backends": "kernels.dispatch",
    "PackedTernaryWeight": "kernels.packed",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'kernels' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
