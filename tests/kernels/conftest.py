"""Shared fixtures of the kernel tests: the native CPU extension is built (or loaded) once per session."""

from __future__ import annotations

from types import ModuleType

import pytest


@pytest.fixture(scope="session")
def native_cpu() -> ModuleType:
    """The compiled CPU kernel (first build takes ~30 s and is cached; a missing compiler is an error)."""
    from bno_kernels.cpu import ops

    return ops.load()
