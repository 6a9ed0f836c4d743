"""How a Triton kernel of this package is compiled and launched: on a GPU or in Triton's interpreter.

Triton decides once, when ``triton.language`` is first imported, whether it runs in its interpreter
(``TRITON_INTERPRET=1``): its own helpers (``tl.zeros``, ``tl.max``...) are wrapped for one mode only. So:

- interpreter active -> every launch is interpreted (CPU or CUDA tensors) with the kernel's fixed, small
  interpreter configuration (the interpreter is slow; autotuning there would only cost time);
- interpreter not active -> CUDA tensors run compiled and autotuned (``triton.autotune`` over the kernel's GPU
  configurations, keyed on the shape class); CPU tensors are refused with an error that says what to set.

Tests set ``TRITON_INTERPRET=1`` before the first ``import triton`` (the Makefile exports it for ``make test``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import triton

INTERPRET_ENV = "TRITON_INTERPRET"


def interpreter_active() -> bool:
    """True when Triton was imported in interpreter mode (``TRITON_INTERPRET=1`` at its first import)."""
    import triton.language as tl
    from triton.runtime.interpreter import InterpretedFunction

    return isinstance(tl.zeros, InterpretedFunction)


def interpret_mode(device: torch.device) -> bool:
    """True when kernels run in Triton's interpreter; raises when ``device`` cannot run them at all."""
    if interpreter_active():
        return True
    if device.type != "cuda":
        raise RuntimeError(
            f"Triton kernels got {device.type} tensors, which need Triton's interpreter: set "
            f"{INTERPRET_ENV}=1 before triton is first imported (environment now: "
            f"{INTERPRET_ENV}={os.environ.get(INTERPRET_ENV, '<unset>')}), or move the tensors to CUDA"
        )
    return False


def device_function(fn: Callable[..., Any]) -> Any:
    """Wrap a helper called from inside kernels for the mode Triton was imported in."""
    if interpreter_active():
        from triton.runtime.interpreter import InterpretedFunction

        return InterpretedFunction(fn)
    return triton.jit(fn)


@dataclass(frozen=True)
class Config:
    """One launch configuration: constexpr meta-parameters plus ``num_warps``/``num_stages``."""

    meta: dict[str, int]
    num_warps: int = 4
    num_stages: int = 2

    def to_triton(self) -> triton.Config:
        """As a ``triton.Config`` for ``@triton.autotune``."""
        return triton.Config(dict(self.meta), num_warps=self.num_warps, num_stages=self.num_stages)


@dataclass
class Kernel:
    """A kernel function with its GPU autotuning space and its interpreter configuration."""

    fn: Callable[..., None]
    gpu_configs: Sequence[Config]
    key: Sequence[str]
    interpreter_config: Config
    reset_to_zero: Sequence[str] = ()
    gpu_options: dict[str, Any] = field(default_factory=dict)
    prune: Callable[..., list[Any]] | None = None  # early_config_prune(configs, named_args, **kwargs)
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    def _wrapped(self, kind: str) -> Any:
        """The kernel wrapped for ``kind``: "interpreted", "jitted" or "autotuned" (built once)."""
        if kind not in self._cache:
            if kind == "interpreted":
                from triton.runtime.interpreter import InterpretedFunction

                self._cache[kind] = InterpretedFunction(self.fn)
            elif kind == "jitted":
                self._cache[kind] = triton.jit(self.fn)
            else:
                assert kind == "autotuned", f"unknown kernel wrapping {kind!r}"
                self._cache[kind] = triton.autotune(
                    configs=[c.to_triton() for c in self.gpu_configs],
                    key=list(self.key),
                    reset_to_zero=list(self.reset_to_zero) or None,
                    prune_configs_by={"early_config_prune": self.prune} if self.prune else None,
                )(self._wrapped("jitted"))
        return self._cache[kind]

    def launch(
        self,
        grid: Callable[[dict[str, Any]], tuple[int, ...]],
        *args: Any,
        device: torch.device,
        config: Config | None = None,
        **kwargs: Any,
    ) -> None:
        """Launch in ``device``'s mode. ``config`` forces one configuration (tests, benchmarks); otherwise
        the interpreter uses ``interpreter_config`` and a GPU autotunes over ``gpu_configs``."""
        if interpret_mode(device):
            cfg = config or self.interpreter_config
            self._wrapped("interpreted")[grid(cfg.meta)](*args, **kwargs, **cfg.meta)
        elif config is not None or len(self.gpu_configs) == 1:
            cfg = config or self.gpu_configs[0]
            self._wrapped("jitted")[grid(cfg.meta)](
                *args, **kwargs, **cfg.meta, num_warps=cfg.num_warps, num_stages=cfg.num_stages,
                **self.gpu_options,
            )
        else:
            self._wrapped("autotuned")[grid](*args, **kwargs, **self.gpu_options)

    def best_config(self) -> dict[str, Any] | None:
        """The autotuner's choice for the last key it tuned (None before any GPU launch)."""
        tuner = self._cache.get("autotuned")
        best = getattr(tuner, "best_config", None)
        return None if best is None else {**best.kwargs, "num_warps": best.num_warps,
                                          "num_stages": best.num_stages}
