"""Triton kernels for the BitNet b1.58 W1.58A8 matmul on CUDA tensors (and in Triton's interpreter on CI).

- :mod:`kernels.triton.layout`: the packed GPU layout (int32 words of 16 codes, K-major), pure torch;
- :mod:`kernels.triton.quant`: fused per-token absmax activation quantization;
- :mod:`kernels.triton.gemv`: decode GEMV / split-K (M <= 16) with ``dp4a`` on packed words;
- :mod:`kernels.triton.gemm`: prefill GEMM (M > 16) with int8 ``tl.dot``, scales in the epilogue;
- :mod:`kernels.triton.ops`: the entry points below; :mod:`kernels.triton.bench_gpu`: the GPU benchmark.

Attributes resolve lazily so that ``kernels.triton.layout`` (used by :mod:`kernels.packed`) does not import
triton: Triton fixes its interpreter mode at its first import (see :mod:`kernels.triton.runtime`).
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "ternary_matmul_triton": "kernels.triton.ops",
    "ternary_matmul_packed": "kernels.triton.ops",
    "ternary_matmul_int32_triton": "kernels.triton.ops",
    "quantize_activations_triton": "kernels.triton.quant",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'kernels.triton' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
