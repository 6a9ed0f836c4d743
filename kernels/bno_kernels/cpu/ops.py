"""Python wrappers of the native CPU kernel; the extension is built (or loaded from cache) on first use."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import ModuleType

import torch

from bno_kernels.packed import PackedTernaryWeight

ISAS: dict[str, int] = {"auto": -1, "scalar": 0, "avx2": 1, "avx512": 2}
# "auto" (default): the kernel's own pool for calls of at most 8 activation rows (decode), torch's OpenMP
# threads with a static split (at::parallel_for) for larger calls (prefill, where torch's ops use them too);
# "pool" / "openmp": always one of them. The pool claims chunks dynamically and falls back to the calling
# thread alone for a while when a worker was preempted mid-call (another process on its core): see the
# header of ternary_cpu.cpp.
SCHEDULERS: dict[str, int] = {"pool": 0, "openmp": 1, "auto": 2}
ENV_SCHEDULER = "BITNET_CPU_SCHEDULER"
_ISA_NAMES = {v: k for k, v in ISAS.items()}

_lock = threading.Lock()
_module: ModuleType | None = None
_threads_setting = 0  # the last set_num_threads value (0: follow torch)
_error: str | None = None


class NativeKernelUnavailable(RuntimeError):
    """The native CPU kernel cannot be built or loaded on this machine."""


def load() -> ModuleType:
    """The compiled extension (built once per process at most; a failure is remembered)."""
    global _module, _error
    if _module is not None:  # fast path, no lock
        return _module
    with _lock:
        if _module is not None:
            return _module
        if _error is not None:
            raise NativeKernelUnavailable(_error)
        from bno_kernels.cpu.build import BuildError, load_extension

        try:
            module = load_extension()
        except BuildError as exc:
            _error = str(exc)
            raise NativeKernelUnavailable(_error) from exc
        scheduler = os.environ.get(ENV_SCHEDULER, "auto").strip().lower() or "auto"
        if scheduler not in SCHEDULERS:
            _error = f"{ENV_SCHEDULER}={scheduler!r}: expected one of {sorted(SCHEDULERS)}"
            raise NativeKernelUnavailable(_error)
        module.set_scheduler(SCHEDULERS[scheduler])
        _module = module
        return _module


def available() -> bool:
    """Whether the native kernel builds and loads here (tries once per process)."""
    if _module is not None:
        return True
    try:
        load()
    except NativeKernelUnavailable:
        return False
    return True


def unavailable_reason() -> str:
    """Why :func:`available` is False ("" when it is True)."""
    return "" if available() else (_error or "unknown")


def best_isa() -> str:
    """The fastest code path this CPU runs: "avx512" (VNNI), "avx2" or "scalar"."""
    return _ISA_NAMES[int(load().best_isa())]


def _isa_code(isa: str) -> int:
    if isa not in ISAS:
        raise ValueError(f"unknown isa {isa!r}; expected one of {sorted(ISAS)}")
    return ISAS[isa]


def _check_weight(weight: PackedTernaryWeight) -> None:
    if weight.layout != "cpu":
        raise ValueError(
            f"the native CPU kernel needs a 'cpu'-layout weight, got {weight.layout!r} "
            "(convert it with PackedTernaryWeight.to('cpu'))"
        )
    if weight.device.type != "cpu":
        raise ValueError(f"the native CPU kernel needs CPU tensors, the weight is on {weight.device}")


def quantize_cpu(x: torch.Tensor, *, isa: str = "auto") -> tuple[torch.Tensor, torch.Tensor]:
    """Native per-token absmax quantization: x (..., K) -> (xq int8 (..., K), s float32 (..., 1))."""
    lead = x.shape[:-1]
    x2 = _as_kernel_input(x).reshape(-1, x.shape[-1])  # (M, K)
    xq, s = load().quantize(x2, _isa_code(isa))
    return xq.reshape(*lead, x.shape[-1]), s.reshape(*lead, 1)


def int_matmul_cpu(xq: torch.Tensor, weight: PackedTernaryWeight, *, isa: str = "auto") -> torch.Tensor:
    """Exact native ``xq @ Wq^T``: xq int8 (..., K) -> int32 (..., N)."""
    _check_weight(weight)
    if xq.dtype != torch.int8:
        raise TypeError(f"int_matmul_cpu: expected int8 activations, got {xq.dtype}")
    lead = xq.shape[:-1]
    x2 = xq.reshape(-1, xq.shape[-1]).contiguous()  # (M, K)
    out = load().int_matmul(
        x2, weight.data.contiguous(), weight.out_features, weight.in_features, _isa_code(isa)
    )
    return out.reshape(*lead, weight.out_features)


def _as_kernel_input(x: torch.Tensor) -> torch.Tensor:
    """float32 or bfloat16 contiguous CPU tensor (other float types are converted to float32, exactly)."""
    if x.device.type != "cpu":
        raise ValueError(f"the native CPU kernel needs CPU tensors, x is on {x.device}")
    if x.dtype not in (torch.float32, torch.bfloat16):
        x = x.float()
    return x.contiguous()


def set_scheduler(name: str) -> None:
    """Choose how the kernel's threads share work: "auto" (default), "pool" or "openmp"."""
    if name not in SCHEDULERS:
        raise ValueError(f"unknown scheduler {name!r}; expected one of {sorted(SCHEDULERS)}")
    load().set_scheduler(SCHEDULERS[name])


def get_scheduler() -> str:
    """The scheduler in use."""
    code = int(load().get_scheduler())
    return next(name for name, value in SCHEDULERS.items() if value == code)


def ternary_matmul_cpu(
    x: torch.Tensor,
    weight: PackedTernaryWeight,
    weight_scale: torch.Tensor | float,
    *,
    out_dtype: torch.dtype | None = None,
    isa: str = "auto",
) -> torch.Tensor:
    """Native fused quantize + ternary matmul + scales: x (..., K) float -> (..., N) (see bno_kernels.ternary_matmul)."""
    n, k = weight.out_features, weight.in_features
    if weight.layout != "cpu" or weight.device.type != "cpu":
        _check_weight(weight)
    if x.shape[-1] != k:
        raise ValueError(f"ternary_matmul: x has {x.shape[-1]} input features, the weight expects {k}")
    ws = weight_scale
    if not (
        isinstance(ws, torch.Tensor)
        and ws.dtype == torch.float32
        and ws.device.type == "cpu"
        and ws.is_contiguous()
        and ws.dim() <= 1
        and ws.numel() in (1, n)
    ):
        from bno_kernels.reference import scale_weight

        ws = scale_weight(weight_scale, n, torch.device("cpu")).contiguous()  # () or (N,)
    x2 = x if x.dim() == 2 else x.reshape(-1, k)  # (M, K)
    if x2.device.type != "cpu" or x2.dtype not in (torch.float32, torch.bfloat16) or not x2.is_contiguous():
        x2 = _as_kernel_input(x2)
    data = weight.data if weight.data.is_contiguous() else weight.data.contiguous()
    y = load().matmul(x2, data, n, k, ws, _isa_code(isa))  # (M, N) float32
    if x.dim() != 2:
        y = y.reshape(*x.shape[:-1], n)  # (..., N)
    target = out_dtype or x.dtype
    return y if target == torch.float32 else y.to(target)


def set_num_threads(threads: int) -> None:
    """The kernels' own thread count (0: follow ``torch.get_num_threads()``, the default)."""
    global _threads_setting
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
        raise ValueError(f"threads must be a non-negative integer, got {threads!r}")
    load().set_num_threads(threads)
    _threads_setting = threads


def get_num_threads() -> int:
    """The kernels' thread count now."""
    return int(load().get_num_threads())


@contextmanager
def kernel_threads() -> Iterator[int]:
    """Run the block with the kernels' pool on all of torch's threads and torch's own ops on one.

    An OpenMP team stalls at every barrier for a thread the OS has preempted (another process on its
    core), and its spinning competes with the pool; the pool does not wait for a worker that has not
    started (see ternary_cpu.cpp). torch's ops in a BitNet forward (norms, RoPE, attention, the relu²
    product) are a small share of a step. Yields the kernels' thread count; restores both settings on exit.
    """
    torch_threads = torch.get_num_threads()
    module = load()
    before = _threads_setting
    kernel = before or torch_threads
    module.set_num_threads(kernel)
    if torch_threads > 1:
        torch.set_num_threads(1)
    try:
        yield kernel
    finally:
        if torch_threads > 1:
            torch.set_num_threads(torch_threads)
        module.set_num_threads(before)


@dataclass(frozen=True)
class PoolStats:
    """Counters of the kernels' pool since the process started."""

    worker_chunks: int  # chunks run by pool workers (not the calling thread)
    stalls: int  # calls that waited more than a millisecond for a preempted worker
    solo_calls: int  # calls run on the calling thread alone during a back-off after a stall


def pool_stats() -> PoolStats:
    """The pool's counters (see :class:`PoolStats`)."""
    chunks, stalls, solo = (int(v) for v in load().pool_stats())
    return PoolStats(worker_chunks=chunks, stalls=stalls, solo_calls=solo)


def head_int8_cpu(h: torch.Tensor, weight: torch.Tensor, scale: torch.Tensor, row_sum: torch.Tensor) -> torch.Tensor:
    """Native int8 head: h (M, K) float -> logits (M, V) float32; weight int8 (V, K), scale (V,), row_sum (V,)."""
    return load().head_int8(_as_kernel_input(h), weight, scale, row_sum, -1)


def head_bf16_cpu(h: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Native bfloat16 head: h (M, K) float -> logits (M, V) float32 (h rounded to bf16, fp32 sums)."""
    return load().head_bf16(_as_kernel_input(h), weight, -1)


def head_q4_cpu(h: torch.Tensor, codes: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """Native 4-bit grouped head: h (M, K) float -> logits (M, V) float32 (layout: bno_kernels.cpu.q4)."""
    return load().head_q4(_as_kernel_input(h), codes, scales, -1)


def read_bandwidth(nbytes: int = 512 * 1024 * 1024, repeats: int = 3) -> float:
    """Best read bandwidth (bytes/s) of the kernels' threads streaming a fresh ``nbytes`` buffer."""
    nbytes = max(4096, nbytes // 4096 * 4096)
    buf = torch.ones(nbytes, dtype=torch.uint8)  # written once: every page is resident before timing
    return float(load().read_bandwidth(buf, repeats))


_heads_fast: bool | None = None


def heads_are_fast() -> bool:
    """Whether the native head kernels beat torch's here: they are written for AVX512-VNNI (elsewhere their
    portable loops are slower than torch's own int8 and bf16 matmuls, which the model then uses)."""
    global _heads_fast
    if _heads_fast is None:
        _heads_fast = available() and best_isa() == "avx512"
    return _heads_fast
