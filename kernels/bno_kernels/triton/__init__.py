"""Triton kernels for the BitNet b1.58 W1.58A8 matmul on CUDA tensors (and in Triton's interpreter on CI).

- :mod:`bno_kernels.triton.layout`: the packed GPU layout (int32 words of 16 codes, K-major), pure torch;
- :mod:`bno_kernels.triton.quant`: fused per-token absmax activation quantization;
- :mod:`bno_kernels.triton.gemv`: decode GEMV / split-K (M <= 16) with ``dp4a`` on packed words;
- :mod:`bno_kernels.triton.gemm`: prefill GEMM (M > 16) with int8 ``tl.dot``, scales in the epilogue;
- :mod:`bno_kernels.triton.ops`: the entry points below; :mod:`bno_kernels.triton.bench_gpu`: the GPU benchmark.

Attributes resolve lazily so that ``bno_kernels.triton.layout`` (used by :mod:`bno_kernels.packed`) does not import
triton: Triton fixes its interpreter mode at its first import (see :mod:`bno_kernels.triton.runtime`).
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "ternary_matmul_triton": "bno_kernels.triton.ops",
    "ternary_matmul_packed": "bno_kernels.triton.ops",
    "ternary_matmul_int32_triton": "bno_kernels.triton.ops",
    "quantize_activations_triton": "bno_kernels.triton.quant",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'bno_kernels.triton' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
