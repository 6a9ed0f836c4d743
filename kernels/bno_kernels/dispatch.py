"""The one entry point of the ternary matmul, :func:`ternary_matmul`, and the choice of backend.

Backends: ``"triton"`` (CUDA tensors, :mod:`bno_kernels.triton`), ``"cpu"`` (the native C++ kernel,
:mod:`bno_kernels.cpu`) and ``"reference"`` (pure torch, :mod:`bno_kernels.reference`). The choice, in order:
the ``backend`` argument, the ``BITNET_KERNEL_BACKEND`` environment variable (``auto`` or empty means
no choice), then automatic: Triton for CUDA tensors, the native kernel on the CPU when its extension
builds, otherwise the reference with a one-time warning.
"""

from __future__ import annotations

import importlib
import os
import warnings

import torch

from bno_kernels.packed import PackedTernaryWeight
from bno_kernels.reference import ternary_matmul_reference

BACKENDS: tuple[str, ...] = ("reference", "cpu", "triton")
ENV_BACKEND = "BITNET_KERNEL_BACKEND"

_warned: set[str] = set()


def _warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        warnings.warn(message, RuntimeWarning, stacklevel=3)


def _cpu_available() -> bool:
    from bno_kernels.cpu import ops

    return ops.available()


def _native_fast_path(x: torch.Tensor, weight: PackedTernaryWeight, backend: str | None) -> bool:
    """True when the call certainly goes to the loaded native CPU kernel (checked without locks)."""
    if backend not in (None, "cpu") or x.device.type != "cpu" or weight.layout != "cpu":
        return False
    if backend is None and os.environ.get(ENV_BACKEND, "") not in ("", "auto", "cpu"):
        return False
    return _cpu_available()


def _triton_available() -> bool:
    if not torch.cuda.is_available():
        return False
    try:
        importlib.import_module("bno_kernels.triton")
    except ImportError:
        return False
    return True


def available_backends() -> list[str]:
    """The backends that can run on this machine now (the reference always can)."""
    found = ["reference"]
    if _cpu_available():
        found.append("cpu")
    if _triton_available():
        found.append("triton")
    return found


def requested_backend(backend: str | None = None) -> str | None:
    """The explicitly requested backend (argument, then environment), or None for automatic choice."""
    chosen = backend if backend is not None else os.environ.get(ENV_BACKEND, "").strip().lower()
    if chosen in ("", "auto"):
        return None
    if chosen not in BACKENDS:
        source = "backend argument" if backend is not None else f"environment variable {ENV_BACKEND}"
        raise ValueError(
            f"unknown kernel backend {chosen!r} in the {source}; expected one of {BACKENDS} or 'auto'"
        )
    return chosen


def resolve_backend(x: torch.Tensor, weight: PackedTernaryWeight, backend: str | None = None) -> str:
    """Which backend :func:`ternary_matmul` uses for these operands."""
    forced = requested_backend(backend)
    if forced is not None:
        return forced
    if x.is_cuda:
        if weight.layout == "triton" and _triton_available():
            return "triton"
        _warn_once(
            "cuda-fallback",
            f"ternary_matmul: Triton kernels are unusable for this CUDA call (weight layout {weight.layout!r}); "
            "running the slow pure-torch reference",
        )
        return "reference"
    if x.device.type == "cpu" and weight.layout == "cpu":
        if _cpu_available():
            return "cpu"
        from bno_kernels.cpu import ops

        _warn_once(
            "cpu-fallback",
            f"ternary_matmul: the native CPU kernel is unavailable ({ops.unavailable_reason()}); "
            "running the slow pure-torch reference",
        )
        return "reference"
    _warn_once(
        f"layout-{x.device.type}-{weight.layout}",
        f"ternary_matmul: no fast kernel for {x.device.type} tensors with a {weight.layout!r}-layout weight "
        "(move the weight with PackedTernaryWeight.to(device)); running the pure-torch reference",
    )
    return "reference"


def ternary_matmul(
    x: torch.Tensor,
    weight: PackedTernaryWeight,
    weight_scale: torch.Tensor | float,
    *,
    backend: str | None = None,
    out_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """``y = (xq @ Wq^T)[int32, exact] * weight_scale / s``.

    x (..., K) float (fp32/bf16/fp16); ``weight`` packed (N, K); ``weight_scale`` the per-tensor beta as a
    0-d tensor or a per-output-channel (N,) tensor. Returns (..., N) in ``out_dtype`` or ``x.dtype``.
    ``xq, s`` are the per-token absmax int8 activations (:func:`bno_kernels.reference.quantize_activations`).
    ``backend``: None (environment, then automatic) or "reference" | "cpu" | "triton".
    """
    if not x.is_floating_point():
        raise TypeError(f"ternary_matmul: x must be a floating-point tensor, got {x.dtype}")
    if _native_fast_path(x, weight, backend):  # the decode hot path: skip the general resolution
        from bno_kernels.cpu import ops

        return ops.ternary_matmul_cpu(x, weight, weight_scale, out_dtype=out_dtype)
    if x.shape[-1] != weight.in_features:
        raise ValueError(
            f"ternary_matmul: x has {x.shape[-1]} input features, the weight expects {weight.in_features}"
        )
    chosen = resolve_backend(x, weight, backend)
    if chosen == "reference":
        return ternary_matmul_reference(x, weight, weight_scale, out_dtype=out_dtype)
    if chosen == "cpu":
        from bno_kernels.cpu import ops

        return ops.ternary_matmul_cpu(x, weight, weight_scale, out_dtype=out_dtype)
    triton_mod = importlib.import_module("bno_kernels.triton")
    y: torch.Tensor = triton_mod.ternary_matmul_triton(x, weight, weight_scale, out_dtype=out_dtype)
    return y
