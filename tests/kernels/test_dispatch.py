"""The one entry point bno_kernels.ternary_matmul: backend choice, forcing, fallbacks, argument checks."""

from __future__ import annotations

import warnings
from types import ModuleType

import pytest
import torch

import bno_kernels
from bno_kernels import dispatch
from bno_kernels.packed import PackedTernaryWeight
from bno_kernels.reference import ternary_matmul_reference


def _case() -> tuple[torch.Tensor, PackedTernaryWeight]:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, 40, generator=gen)  # (M, K)
    w = torch.randint(-1, 2, (11, 40), dtype=torch.int8, generator=gen)  # (N, K)
    return x, PackedTernaryWeight.from_ternary(w)


def test_lazy_exports() -> None:
    assert bno_kernels.ternary_matmul is dispatch.ternary_matmul
    assert bno_kernels.PackedTernaryWeight is PackedTernaryWeight
    assert "reference" in bno_kernels.available_backends()


def test_reference_backend_forced_by_argument() -> None:
    x, packed = _case()
    y = bno_kernels.ternary_matmul(x, packed, torch.tensor(0.5), backend="reference")
    assert torch.equal(y, ternary_matmul_reference(x, packed, torch.tensor(0.5)))


def test_backend_forced_by_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    x, packed = _case()
    monkeypatch.setenv(dispatch.ENV_BACKEND, "reference")
    assert dispatch.resolve_backend(x, packed) == "reference"
    monkeypatch.setenv(dispatch.ENV_BACKEND, "auto")
    assert dispatch.requested_backend() is None
    monkeypatch.setenv(dispatch.ENV_BACKEND, "gpu-magic")
    with pytest.raises(ValueError, match="BITNET_KERNEL_BACKEND"):
        bno_kernels.ternary_matmul(x, packed, 1.0)
    with pytest.raises(ValueError, match="backend argument"):
        bno_kernels.ternary_matmul(x, packed, 1.0, backend="nope")


def test_auto_picks_native_on_cpu(native_cpu: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(dispatch.ENV_BACKEND, raising=False)
    x, packed = _case()
    assert dispatch.resolve_backend(x, packed) == "cpu"
    assert "cpu" in bno_kernels.available_backends()
    scale = torch.rand(11)
    y = bno_kernels.ternary_matmul(x, packed, scale)
    assert torch.equal(y, ternary_matmul_reference(x, packed, scale))
    y_cpu = bno_kernels.ternary_matmul(x, packed, scale, backend="cpu", out_dtype=torch.bfloat16)
    assert y_cpu.dtype == torch.bfloat16


def test_fallback_to_reference_warns_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(dispatch.ENV_BACKEND, raising=False)
    monkeypatch.setattr(dispatch, "_cpu_available", lambda: False)
    monkeypatch.setattr(dispatch, "_warned", set())
    x, packed = _case()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        y1 = bno_kernels.ternary_matmul(x, packed, 1.0)
        y2 = bno_kernels.ternary_matmul(x, packed, 1.0)
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(messages) == 1 and "reference" in messages[0]
    assert torch.equal(y1, y2)
    assert torch.equal(y1, ternary_matmul_reference(x, packed, 1.0))


def test_argument_errors() -> None:
    x, packed = _case()
    with pytest.raises(TypeError, match="floating-point"):
        bno_kernels.ternary_matmul(x.to(torch.int32), packed, 1.0)
    with pytest.raises(ValueError, match="input features"):
        bno_kernels.ternary_matmul(x[:, :39], packed, 1.0)
