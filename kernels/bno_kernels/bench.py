"""``bitnet bench kernels``: the ternary matmul against torch dense fp32/bf16 and the reference, in one run.

Every figure is measured in the same process: ratios (speedups), weight bytes moved per second, and that
rate as a share of a copy bandwidth measured in the same run (on a GPU the measured device-to-device copy
stands for peak HBM bandwidth). Methods are interleaved within each repeat (A B C A B C ...) so a
disturbance hits all of them alike; the figure kept is the median over repeats.

Decode-sized calls read weights from memory, not cache: each method cycles through enough distinct copies
of the layer that its working set is at least twice the last-level cache (L3 on the CPU, L2 on a GPU).
"""

from __future__ import annotations

import math
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from bno_kernels.packed import PackedTernaryWeight
from bno_kernels.shapes import fused_shape

# The 2B4T matmuls of a layer (as the model runs them: q|k|v and gate|up fused), by name: (N, K).
_MATMULS_2B4T: dict[str, tuple[int, int]] = {
    "attn.o": fused_shape("o_proj"),
    "mlp.up": fused_shape("up_proj"),
    "mlp.down": fused_shape("down_proj"),
    "attn.qkv": fused_shape("q_proj", "k_proj", "v_proj"),
    "mlp.gate_up": fused_shape("gate_proj", "up_proj"),
}
# The same shapes written K x N (in_features x out_features), as ``--shapes`` takes them.
SHAPES_2B4T: dict[str, tuple[int, int]] = {name: (k, n) for name, (n, k) in _MATMULS_2B4T.items()}
DEFAULT_M: tuple[int, ...] = (1, 8, 32, 128)
QUICK_SHAPES: tuple[str, ...] = ("attn.o", "mlp.down")
QUICK_M: tuple[int, ...] = (1, 8)
METHODS: tuple[str, ...] = ("ours", "fp32", "bf16", "reference")
DEFAULT_LLC_BYTES = 32 << 20
COPY_CONVENTION = "bytes read + bytes written per second (STREAM convention) of a torch copy"


class BenchError(ValueError):
    """A bad benchmark argument (a user error)."""


@dataclass(frozen=True)
class Shape:
    """One linear layer shape: ``name``, in_features K, out_features N."""

    name: str
    k: int
    n: int

    @property
    def label(self) -> str:
        return f"{self.k}x{self.n}"


@dataclass
class BenchConfig:
    """What to measure."""

    shapes: list[Shape]
    ms: list[int]
    repeat: int = 5
    backend: str | None = None  # None: bno_kernels.ternary_matmul's automatic choice
    baselines: tuple[str, ...] = ("fp32", "bf16", "reference")
    device: str = "cpu"
    threads: int | None = None
    min_time_s: float = 0.02  # each timed sample runs at least this long
    llc_bytes: int | None = None  # None: detected
    copy_bytes: int | None = None  # None: 4 x LLC, at least 64 MiB
    seed: int = 0


@dataclass
class Row:
    """The measurements of one (shape, M)."""

    shape: Shape
    m: int
    layers: dict[str, int] = field(default_factory=dict)
    times: dict[str, list[float]] = field(default_factory=dict)  # seconds per call, one per repeat
    weight_bytes: dict[str, int] = field(default_factory=dict)  # bytes of one layer's weight


def parse_shapes(text: str | None, quick: bool = False) -> list[Shape]:
    """``None`` -> all 2B4T shapes (or the quick subset); else a comma list of names or ``KxN``."""
    if text is None:
        names = QUICK_SHAPES if quick else tuple(SHAPES_2B4T)
        return [Shape(n, *SHAPES_2B4T[n]) for n in names]
    shapes: list[Shape] = []
    for item in (t.strip() for t in text.split(",")):
        if not item:
            continue
        if item in SHAPES_2B4T:
            shapes.append(Shape(item, *SHAPES_2B4T[item]))
            continue
        parts = item.lower().split("x")
        if len(parts) != 2 or not all(p.isdigit() and int(p) > 0 for p in parts):
            raise BenchError(
                f"--shapes: {item!r} is neither a 2B4T name ({', '.join(SHAPES_2B4T)}) nor KxN (e.g. 2560x6912)"
            )
        shapes.append(Shape(item, int(parts[0]), int(parts[1])))
    if not shapes:
        raise BenchError("--shapes: no shape given")
    return shapes


def parse_ms(text: str | None, quick: bool = False) -> list[int]:
    """``None`` -> 1, 8, 32, 128 (or the quick subset); else a comma list of positive ints."""
    if text is None:
        return list(QUICK_M if quick else DEFAULT_M)
    try:
        ms = [int(t) for t in text.split(",") if t.strip()]
    except ValueError as exc:
        raise BenchError(f"--m: expected a comma list of integers, got {text!r}") from exc
    if not ms or any(m <= 0 for m in ms):
        raise BenchError(f"--m: expected positive integers, got {text!r}")
    return ms


def parse_baselines(text: str) -> tuple[str, ...]:
    """A comma list from fp32, bf16, reference (may be empty)."""
    items = tuple(t.strip() for t in text.split(",") if t.strip())
    bad = [t for t in items if t not in METHODS[1:]]
    if bad:
        raise BenchError(f"--baselines: unknown {bad}; choose from {', '.join(METHODS[1:])}")
    return items


def detect_llc_bytes(device: torch.device) -> int:
    """The last-level cache size: L2 of a GPU, else the largest CPU cache in sysfs (default 32 MiB)."""
    if device.type == "cuda":
        return int(getattr(torch.cuda.get_device_properties(device), "L2_cache_size", 50 << 20))
    best = 0
    for index in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*"):
        try:
            text = (index / "size").read_text().strip().upper()
        except OSError:
            continue
        units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
        value = int(text[:-1]) * units[text[-1]] if text[-1:] in units else int(text or 0)
        best = max(best, value)
    return best or DEFAULT_LLC_BYTES


class Timer:
    """Wall time on the CPU, CUDA events on a GPU."""

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def run(self, fn: Callable[[int], object], calls: int) -> float:
        """Seconds per call of ``fn(i)`` for i in range(calls)."""
        self.sync()
        if self.device.type == "cuda":
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            start.record()
            for i in range(calls):
                fn(i)
            end.record()
            end.synchronize()
            return float(start.elapsed_time(end)) / 1e3 / calls
        t0 = time.perf_counter()
        for i in range(calls):
            fn(i)
        return (time.perf_counter() - t0) / calls


def measure_copy(device: torch.device, nbytes: int, timer: Timer, repeat: int) -> dict[str, Any]:
    """Copy bandwidth of ``dst.copy_(src)`` over ``nbytes`` buffers, median of ``repeat`` samples."""
    src = torch.empty(nbytes, dtype=torch.uint8, device=device).fill_(1)
    dst = torch.empty_like(src)
    dst.copy_(src)
    samples = [timer.run(lambda _i: dst.copy_(src), 2) for _ in range(max(3, repeat))]
    t = statistics.median(samples)
    as_float = src.view(torch.float32)  # bytes 0x01: small normal floats
    read = statistics.median([timer.run(lambda _i: as_float.sum(), 2) for _ in range(max(3, repeat))])
    return {
        "read_gbps": nbytes / read / 1e9,
        "read_name": "torch sum over the same buffer (a read-only stream)",
        "bytes": nbytes,
        "gbps": 2 * nbytes / t / 1e9,
        "read_side_gbps": nbytes / t / 1e9,
        "convention": COPY_CONVENTION,
        "name": "measured device-to-device copy (peak HBM proxy)"
        if device.type == "cuda"
        else "measured copy",
    }


MAX_LAYERS = 1024


def _layers_for(nbytes: int, llc: int) -> int:
    """Distinct weight copies so that the working set is >= 2x the last-level cache (at most MAX_LAYERS).

    Every M cycles the same way, so prefill-sized calls also read their weights from memory, as in a model.
    """
    return min(MAX_LAYERS, max(2, math.ceil(2 * llc / max(1, nbytes))))


def _build_methods(
    shape: Shape, m: int, cfg: BenchConfig, device: torch.device, llc: int, gen: torch.Generator
) -> tuple[dict[str, Callable[[int], object]], dict[str, int], dict[str, int]]:
    """The callables of each method (argument: call index, cycling through layer copies)."""
    from bno_kernels.dispatch import ternary_matmul

    k, n = shape.k, shape.n
    w_int = torch.randint(-1, 2, (n, k), dtype=torch.int8, generator=gen)  # (N, K)
    w_float = w_int.float() * 0.05  # (N, K) same values, as a dense layer would hold them
    x32 = torch.randn(m, k, generator=gen).to(device)  # (M, K)
    x16 = x32.bfloat16()
    beta = torch.tensor(0.05, device=device)
    fns: dict[str, Callable[[int], object]] = {}
    layers: dict[str, int] = {}
    nbytes: dict[str, int] = {}

    packed = PackedTernaryWeight.from_ternary(w_int.to(device))
    copies_n = _layers_for(packed.nbytes, llc)
    packs = [packed] + [
        PackedTernaryWeight(packed.data.clone(), n, k, packed.layout) for _ in range(copies_n - 1)
    ]
    backend = cfg.backend

    def ours(i: int) -> object:
        return ternary_matmul(x32, packs[i % copies_n], beta, backend=backend)

    fns["ours"] = ours
    layers["ours"] = copies_n
    nbytes["ours"] = packed.nbytes

    if "fp32" in cfg.baselines:
        dense = w_float.to(device)
        c32 = _layers_for(dense.numel() * 4, llc)
        d32 = [dense] + [dense.clone() for _ in range(c32 - 1)]
        fns["fp32"] = lambda i: F.linear(x32, d32[i % c32])
        layers["fp32"] = c32
        nbytes["fp32"] = dense.numel() * 4
    if "bf16" in cfg.baselines:
        dense16 = w_float.to(device=device, dtype=torch.bfloat16)
        c16 = _layers_for(dense16.numel() * 2, llc)
        d16 = [dense16] + [dense16.clone() for _ in range(c16 - 1)]
        fns["bf16"] = lambda i: F.linear(x16, d16[i % c16])
        layers["bf16"] = c16
        nbytes["bf16"] = dense16.numel() * 2
    if "reference" in cfg.baselines:
        from bno_kernels.reference import ternary_matmul_reference

        # The reference is bound by unpacking, not by memory traffic: one copy is enough.
        fns["reference"] = lambda i: ternary_matmul_reference(x32, packed, beta)
        layers["reference"] = 1
        nbytes["reference"] = packed.nbytes
    return fns, layers, nbytes


def _calls_for(fn: Callable[[int], object], timer: Timer, layers: int, min_time: float) -> int:
    """Calls per timed sample: a multiple of ``layers`` that runs at least ``min_time``."""
    one = timer.run(fn, 1)  # warm-up and estimate
    rounds = max(1, math.ceil(min_time / max(one * layers, 1e-9)))
    return layers * rounds


def run_bench(cfg: BenchConfig, progress: Callable[[str, int, int], None] | None = None) -> dict[str, Any]:
    """Measure every (shape, M) and return the JSON-ready report."""
    device = torch.device(cfg.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise BenchError("--device cuda: torch sees no CUDA GPU")
    if cfg.repeat < 1:
        raise BenchError("--repeat must be >= 1")
    if cfg.llc_bytes is not None and cfg.llc_bytes < 1:
        raise BenchError("--llc-mib must be positive")
    if cfg.threads is not None:
        if cfg.threads < 1:
            raise BenchError("--threads must be >= 1")
        torch.set_num_threads(cfg.threads)
    from bno_kernels.dispatch import resolve_backend

    timer = Timer(device)
    llc = cfg.llc_bytes or detect_llc_bytes(device)
    copy_bytes = cfg.copy_bytes or max(64 << 20, 4 * llc)
    gen = torch.Generator().manual_seed(cfg.seed)
    probe_x = torch.zeros(1, cfg.shapes[0].k, device=device)
    probe_w = PackedTernaryWeight.from_ternary(
        torch.zeros(1, cfg.shapes[0].k, dtype=torch.int8, device=device)
    )
    backend_used = resolve_backend(probe_x, probe_w, cfg.backend)

    total = len(cfg.shapes) * len(cfg.ms) + 1
    step = 0

    def tick(what: str) -> None:
        nonlocal step
        step += 1
        if progress is not None:
            progress(what, step, total)

    copy_before = measure_copy(device, copy_bytes, timer, cfg.repeat)
    tick("copy bandwidth")
    rows: list[Row] = []
    for shape in cfg.shapes:
        for m in cfg.ms:
            fns, layers, nbytes = _build_methods(shape, m, cfg, device, llc, gen)
            row = Row(shape=shape, m=m, layers=layers, weight_bytes=nbytes)
            calls = {name: _calls_for(fn, timer, layers[name], cfg.min_time_s) for name, fn in fns.items()}
            row.times = {name: [] for name in fns}
            for _ in range(cfg.repeat):
                for name, fn in fns.items():  # interleaved: A B C D A B C D ...
                    row.times[name].append(timer.run(fn, calls[name]))
            rows.append(row)
            del fns
            tick(f"{shape.name} {shape.label} M={m}")
    copy_after = measure_copy(device, copy_bytes, timer, cfg.repeat)
    copy_gbps = statistics.median([copy_before["gbps"], copy_after["gbps"]])
    copy = dict(copy_before)
    copy["gbps"] = copy_gbps
    copy["read_side_gbps"] = copy_gbps / 2
    copy["read_gbps"] = statistics.median([copy_before["read_gbps"], copy_after["read_gbps"]])
    copy["before_gbps"] = copy_before["gbps"]
    copy["after_gbps"] = copy_after["gbps"]
    return _report(cfg, device, backend_used, llc, copy, rows)


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b <= 0 else a / b


def _report(
    cfg: BenchConfig, device: torch.device, backend: str, llc: int, copy: dict[str, Any], rows: list[Row]
) -> dict[str, Any]:
    results: list[dict[str, Any]] = []
    for row in rows:
        med = {name: statistics.median(ts) for name, ts in row.times.items()}
        gbps = {name: row.weight_bytes[name] / t / 1e9 for name, t in med.items()}
        results.append(
            {
                "name": row.shape.name,
                "shape": row.shape.label,
                "k": row.shape.k,
                "n": row.shape.n,
                "m": row.m,
                "layers": row.layers,
                "weight_bytes": row.weight_bytes,
                "time_s": med,
                "time_samples_s": row.times,
                "gbps": gbps,
                "share_of_copy": {name: g / copy["gbps"] for name, g in gbps.items()},
                "share_of_copy_read_side": {name: g / copy["read_side_gbps"] for name, g in gbps.items()},
                "share_of_read": {name: g / copy["read_gbps"] for name, g in gbps.items()},
                "speedup": {
                    f"vs_{name}": _ratio(med[name], med["ours"])
                    for name in ("fp32", "bf16", "reference")
                    if name in med
                },
            }
        )
    decode = [r for r in results if r["m"] == 1]
    summary: dict[str, Any] = {}
    if decode:
        share = [r["share_of_copy"]["ours"] for r in decode]
        summary["decode_min_share_of_copy"] = min(share)
        summary["decode_min_share_of_copy_read_side"] = min(
            r["share_of_copy_read_side"]["ours"] for r in decode
        )
        summary["decode_min_share_of_read"] = min(r["share_of_read"]["ours"] for r in decode)
        vs32 = [r["speedup"]["vs_fp32"] for r in decode if r["speedup"].get("vs_fp32")]
        if vs32:
            summary["decode_min_speedup_vs_fp32"] = min(vs32)
            summary["decode_geomean_speedup_vs_fp32"] = math.exp(sum(math.log(v) for v in vs32) / len(vs32))
    info: dict[str, Any] = {
        "device": device.type,
        "device_name": _device_name(device),
        "threads": torch.get_num_threads() if device.type == "cpu" else None,
        "backend": backend,
        "llc_bytes": llc,
        "repeat": cfg.repeat,
        "statistic": "median over repeats; methods interleaved within each repeat",
        "torch": torch.__version__,
    }
    if backend == "cpu":
        from bno_kernels.cpu import ops

        info["isa"] = ops.best_isa()
    return {"info": info, "copy": copy, "results": results, "summary": summary}


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return str(torch.cuda.get_device_name(device))
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return os.uname().machine


def render(report: dict[str, Any]) -> None:
    """Print the report as a rich table plus the copy bandwidth line."""
    from rich.console import Console
    from rich.table import Table

    info, copy = report["info"], report["copy"]
    console = Console()
    title = (
        f"ternary matmul ({info['backend']}"
        + (f", {info['isa']}" if info.get("isa") else "")
        + f") on {info['device_name']}"
        + (f", {info['threads']} threads" if info.get("threads") else "")
    )
    table = Table(title=title)
    for col in ("layer", "K x N", "M", "ours", "GB/s", "% copy", "x fp32", "x bf16", "x ref"):
        table.add_column(col, justify="right" if col not in ("layer",) else "left")

    def fmt_ratio(v: float | None) -> str:
        return "-" if v is None else f"{v:.1f}x"

    for r in report["results"]:
        sp = r["speedup"]
        table.add_row(
            r["name"],
            r["shape"],
            str(r["m"]),
            f"{r['time_s']['ours'] * 1e6:.0f} us",
            f"{r['gbps']['ours']:.1f}",
            f"{100 * r['share_of_copy']['ours']:.0f}%",
            fmt_ratio(sp.get("vs_fp32")),
            fmt_ratio(sp.get("vs_bf16")),
            fmt_ratio(sp.get("vs_reference")),
        )
    console.print(table)
    console.print(
        f"{copy['name']}: {copy['gbps']:.1f} GB/s ({copy['convention']}; before {copy['before_gbps']:.1f}, "
        f"after {copy['after_gbps']:.1f}); read stream (torch sum): {copy['read_gbps']:.1f} GB/s; "
        "GB/s column = packed weight bytes per second; "
        f"decode rows cycle through layer copies totalling >= 2x the {info['llc_bytes'] >> 20} MiB last-level cache."
    )
    s = report["summary"]
    if "decode_min_speedup_vs_fp32" in s:
        console.print(
            f"decode (M=1): speedup vs dense fp32 min {s['decode_min_speedup_vs_fp32']:.1f}x, geomean "
            f"{s['decode_geomean_speedup_vs_fp32']:.1f}x; share of copy bandwidth min "
            f"{100 * s['decode_min_share_of_copy']:.0f}% (of its read side "
            f"{100 * s['decode_min_share_of_copy_read_side']:.0f}%, of the read stream "
            f"{100 * s['decode_min_share_of_read']:.0f}%)"
        )


def config_from_args(
    *,
    shapes: str | None,
    ms: str | None,
    repeat: int | None,
    backend: str | None,
    baselines: str,
    device: str,
    threads: int | None,
    quick: bool,
    min_time_s: float,
    llc_bytes: int | None = None,
) -> BenchConfig:
    """Validate the command-line options into a :class:`BenchConfig`."""
    from bno_kernels.dispatch import requested_backend

    try:
        chosen = requested_backend(backend) if backend is not None else None
    except ValueError as exc:
        raise BenchError(str(exc)) from exc
    if device not in ("cpu", "cuda"):
        raise BenchError(f"--device: expected cpu or cuda, got {device!r}")
    return BenchConfig(
        shapes=parse_shapes(shapes, quick),
        ms=parse_ms(ms, quick),
        repeat=repeat if repeat is not None else (3 if quick else 5),
        backend=chosen,
        baselines=parse_baselines(baselines),
        device=device,
        threads=threads,
        min_time_s=min_time_s,
        llc_bytes=llc_bytes,
    )
