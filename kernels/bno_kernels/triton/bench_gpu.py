"""GPU benchmark of the Triton ternary kernels at 2B4T shapes against cuBLAS bf16 (``torch.matmul``).

    python -m bno_kernels.triton.bench_gpu [--layers 30] [--batch 1 4 16] [--prefill 512] [--json]

All figures come from this one run on this one GPU; nothing is compared with numbers from elsewhere:

1. correctness on the GPU first: int32 results (with and without the ``dp4a`` instruction) equal the
   reference exactly, and the scaled results equal it too, for M = 1, 4 and the prefill M;
2. copy bandwidth: a device-to-device copy of 1 GiB, (read + write bytes) / time, the attainable HBM rate;
3. per shape: the decode GEMV at each batch size, timed over ``--layers`` distinct weight copies in turn (so the
   weights stream from HBM, not from the 50 MB L2), against ``torch.matmul`` in bf16 on the same rotation,
   both replayed from CUDA graphs (GPU time without Python/launch overhead; eager times are in the JSON);
   reported: microseconds per matmul, packed bytes / time as GB/s and as a share of the copy bandwidth, and
   the speedup over bf16;
4. decode sweep: one token through all layers (7 matmuls each: q, k, v, o, gate, up, down), eager and replayed
   from a CUDA graph (no launch overhead), ternary vs bf16;
5. prefill GEMM at M = ``--prefill`` per shape, ternary vs bf16.

``run(...)`` returns the same results as a dict, for :mod:`bno_kernels.bench` to embed.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import torch

from bno_kernels.shapes import HIDDEN_SIZE_2B4T, PROJECTIONS_2B4T

# 2B4T (hidden 2560, intermediate 6912, 20 query / 5 KV heads of 128): (name, N, K) of one layer's matmuls.
SHAPES_2B4T: tuple[tuple[str, int, int], ...] = tuple((name, n, k) for name, (n, k) in PROJECTIONS_2B4T.items())
COPY_BYTES = 1 << 30
REPS = 20  # timed repetitions per measurement (the median is reported)
# (N, K) of the exactness check: k_proj's N, and an odd K that exercises the padding
CHECK_SHAPE = (PROJECTIONS_2B4T["k_proj"][0], HIDDEN_SIZE_2B4T + 37)


def _median_us(fn: Callable[[], object], calls_per_rep: int, reps: int | None = None) -> float:
    """Median over ``reps`` of (event time of ``fn()`` / calls_per_rep), in microseconds."""
    times: list[float] = []
    for _ in range(reps or REPS):
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) * 1000.0 / calls_per_rep)
    times.sort()
    return times[len(times) // 2]


def _graph_us(fn: Callable[[], object], calls_per_rep: int, reps: int | None = None) -> float:
    """Like :func:`_median_us` for ``fn`` captured once in a CUDA graph and replayed (no launch overhead).

    ``fn`` must have run once before (compilation and autotuning cannot happen during capture)."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        fn()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, stream=stream):  # the warm-up stream: its GEMV workspaces already exist
        fn()
    graph.replay()
    return _median_us(graph.replay, calls_per_rep, reps)


def copy_bandwidth_gbs(device: torch.device) -> float:
    """Device-to-device copy rate of 1 GiB in GB/s, counting the bytes read and written."""
    src = torch.empty(COPY_BYTES, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    for _ in range(3):
        dst.copy_(src)
    us = _median_us(lambda: dst.copy_(src), 1)
    return 2 * COPY_BYTES / (us * 1e-6) / 1e9


def _ternary_weight(n: int, k: int, device: torch.device, seed: int) -> torch.Tensor:
    g = torch.Generator(device="cpu").manual_seed(seed)
    return torch.randint(-1, 2, (n, k), generator=g, dtype=torch.int8).to(device)  # (N, K)


def check_exact(device: torch.device, prefill: int) -> dict[str, bool]:
    """On the GPU: int32 (dp4a and byte-wise) and scaled results equal the reference exactly."""
    from bno_kernels.packed import PackedTernaryWeight
    from bno_kernels.reference import int_matmul_reference, quantize_activations, ternary_matmul_reference
    from bno_kernels.triton.gemm import gemm
    from bno_kernels.triton.gemv import gemv_int32
    from bno_kernels.triton.ops import ternary_matmul_triton
    from bno_kernels.triton.quant import quantize_padded
    from bno_kernels.triton.runtime import interpret_mode

    out: dict[str, bool] = {}
    n, k = CHECK_SHAPE
    w = PackedTernaryWeight.from_ternary(_ternary_weight(n, k, device, 0), layout="triton")
    for m in (1, 4, prefill):
        x = torch.randn((m, k), device=device, dtype=torch.bfloat16)  # (M, K)
        xq_pad, s = quantize_padded(x)
        ref_q, ref_s = quantize_activations(x)
        out[f"quant M={m}"] = bool(torch.equal(xq_pad[:, :k], ref_q) and torch.equal(s, ref_s.reshape(m)))
        ref_acc = int_matmul_reference(ref_q, w)
        if m <= 16:
            for dp4a in (False,) if interpret_mode(device) else (True, False):
                acc = gemv_int32(xq_pad, w.data, n, use_dp4a=dp4a)
                out[f"gemv {'dp4a' if dp4a else 'bytewise'} M={m}"] = bool(torch.equal(acc, ref_acc))
        else:
            out[f"gemm M={m}"] = bool(torch.equal(gemm(xq_pad, w.data, n), ref_acc))
        ws = torch.rand(n, device=device) + 0.1
        y = ternary_matmul_triton(x, w, ws)  # M = 1: quantization fused into the GEMV
        out[f"scaled bf16 M={m}"] = bool(torch.equal(y, ternary_matmul_reference(x, w, ws)))
    return out


def _rotation(
    n: int, k: int, copies: int, device: torch.device
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """``copies`` distinct packed weights and bf16 weights of shape (N, K)."""
    from bno_kernels.triton.layout import pack

    packed, dense = [], []
    for i in range(copies):
        w = _ternary_weight(n, k, device, 1000 + i)  # (N, K)
        packed.append(pack(w))  # (KW, N) int32
        dense.append(w.to(torch.bfloat16))  # (N, K)
    return packed, dense


def bench_shape(
    name: str, n: int, k: int, m: int, layers: int, device: torch.device, copy_gbs: float
) -> dict[str, Any]:
    """One matmul shape at batch ``m``, rotating through ``layers`` weight copies: ternary vs bf16."""
    from bno_kernels.triton.ops import ternary_matmul_packed

    packed, dense = _rotation(n, k, layers, device)
    x = torch.randn((m, k), device=device, dtype=torch.bfloat16)  # (M, K)
    ws = torch.tensor(0.5, device=device)

    def ours() -> None:
        for data in packed:
            ternary_matmul_packed(x, data, n, k, ws)

    def cublas() -> None:
        for wd in dense:
            torch.matmul(x, wd.t())

    ours()  # autotune + compile
    cublas()
    from bno_kernels.triton.gemm import GEMM
    from bno_kernels.triton.gemv import GEMV, MAX_GEMV_M

    chosen = (GEMV if m <= MAX_GEMV_M else GEMM).best_config()
    t_ours = _graph_us(ours, layers)
    t_bf16 = _graph_us(cublas, layers)
    wbytes = packed[0].numel() * 4
    gbs = wbytes / (t_ours * 1e-6) / 1e9
    return {
        "shape": name, "N": n, "K": k, "M": m, "ternary_us": t_ours, "bf16_us": t_bf16,
        "ternary_eager_us": _median_us(ours, layers), "bf16_eager_us": _median_us(cublas, layers),
        "speedup_vs_bf16": t_bf16 / t_ours, "weight_GBps": gbs, "share_of_copy_bw": gbs / copy_gbs,
        "bf16_weight_GBps": n * k * 2 / (t_bf16 * 1e-6) / 1e9, "config": chosen,
    }


def bench_decode_sweep(layers: int, device: torch.device, copy_gbs: float) -> dict[str, Any]:
    """One token (M = 1) through ``layers`` x 7 matmuls, eager and from a CUDA graph: ternary vs bf16."""
    from bno_kernels.triton.layout import pack
    from bno_kernels.triton.ops import ternary_matmul_packed

    weights = []
    for li in range(layers):
        for si, (_, n, k) in enumerate(SHAPES_2B4T):
            w = _ternary_weight(n, k, device, 7 * li + si)  # (N, K)
            weights.append((n, k, pack(w), w.to(torch.bfloat16)))
    xs = {k: torch.randn((1, k), device=device, dtype=torch.bfloat16) for k in {k for _, _, k in SHAPES_2B4T}}
    ws = torch.tensor(0.5, device=device)

    def ours() -> None:
        for n, k, data, _ in weights:
            ternary_matmul_packed(xs[k], data, n, k, ws)

    def cublas() -> None:
        for _, k, _, wd in weights:
            torch.matmul(xs[k], wd.t())

    ours()
    cublas()
    result: dict[str, Any] = {"layers": layers}
    packed_bytes = sum(d.numel() * 4 for _, _, d, _ in weights)
    for label, fn in (("ternary", ours), ("bf16", cublas)):
        result[f"{label}_eager_us"] = _median_us(fn, 1)
        result[f"{label}_graph_us"] = _graph_us(fn, 1)
    result["packed_MB"] = packed_bytes / 1e6
    for mode in ("eager", "graph"):
        t = result[f"ternary_{mode}_us"]
        result[f"speedup_{mode}"] = result[f"bf16_{mode}_us"] / t
        result[f"share_of_copy_bw_{mode}"] = packed_bytes / (t * 1e-6) / 1e9 / copy_gbs
    return result


def run(
    layers: int = 30,
    batches: tuple[int, ...] = (1,),
    prefill: int = 512,
    sweep: bool = True,
    device: torch.device | None = None,
) -> dict[str, Any]:
    """Every measurement of this module on ``device`` (default ``cuda:0``; RuntimeError without CUDA)."""
    if not torch.cuda.is_available():
        raise RuntimeError("bno_kernels.triton.bench_gpu needs a CUDA GPU (torch.cuda.is_available() is False)")
    from bno_kernels.triton.runtime import interpret_mode

    device = device or torch.device("cuda", 0)
    if interpret_mode(device) and device.type == "cuda":
        raise RuntimeError("TRITON_INTERPRET=1 is set: unset it to benchmark compiled kernels")
    torch.manual_seed(0)
    exact = check_exact(device, prefill)
    copy_gbs = copy_bandwidth_gbs(device)
    rows = [
        bench_shape(name, n, k, m, layers, device, copy_gbs)
        for m in batches
        for name, n, k in SHAPES_2B4T
        if name not in ("v_proj", "up_proj")  # same shapes as k_proj / gate_proj
    ]
    prefill_rows = [
        bench_shape(name, n, k, prefill, max(2, layers // 10), device, copy_gbs)
        for name, n, k in SHAPES_2B4T
        if name not in ("v_proj", "up_proj")
    ] if prefill > 16 else []
    return {
        "device": torch.cuda.get_device_name(device),
        "torch": torch.__version__,
        "exact": exact,
        "copy_GBps": copy_gbs,
        "decode": rows,
        "prefill": prefill_rows,
        "sweep": bench_decode_sweep(layers, device, copy_gbs) if sweep else None,
    }


def _print_table(result: dict[str, Any]) -> None:
    print(f"device: {result['device']}   torch {result['torch']}")
    print("exact on GPU: " + ", ".join(f"{k}={'yes' if v else 'NO'}" for k, v in result["exact"].items()))
    print(f"copy bandwidth (read+write, 1 GiB): {result['copy_GBps']:.0f} GB/s")
    header = f"{'shape':10s} {'N':>6s} {'K':>6s} {'M':>4s} {'ternary us':>11s} {'bf16 us':>9s} {'speedup':>8s} " \
             f"{'GB/s':>7s} {'of copy':>8s}"
    for title, rows in (("decode GEMV (weights rotate through HBM)", result["decode"]),
                        ("prefill GEMM", result["prefill"])):
        if not rows:
            continue
        print(f"\n{title}\n{header}")
        for r in rows:
            print(f"{r['shape']:10s} {r['N']:6d} {r['K']:6d} {r['M']:4d} {r['ternary_us']:11.2f} "
                  f"{r['bf16_us']:9.2f} {r['speedup_vs_bf16']:7.2f}x {r['weight_GBps']:7.0f} "
                  f"{r['share_of_copy_bw']:7.0%}  {r['config']}")
    sw = result["sweep"]
    if sw:
        print(f"\ndecode sweep: 1 token through {sw['layers']} layers x 7 matmuls ({sw['packed_MB']:.0f} MB packed)")
        for mode in ("eager", "graph"):
            print(f"  {mode:5s}: ternary {sw[f'ternary_{mode}_us']:9.1f} us   bf16 {sw[f'bf16_{mode}_us']:9.1f} us   "
                  f"speedup {sw[f'speedup_{mode}']:.2f}x   ternary bytes at {sw[f'share_of_copy_bw_{mode}']:.0%} "
                  "of copy bandwidth")


def main(argv: list[str] | None = None) -> int:
    """Command line: print the table (or JSON); exit 2 without a CUDA GPU."""
    from bno_foundation.cli import EXIT_USER_ERROR, CliArgumentParser, print_json

    parser = CliArgumentParser(prog="python -m bno_kernels.triton.bench_gpu", description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=30, help="distinct weight copies / layers (default 30)")
    parser.add_argument("--batch", type=int, nargs="+", default=[1], help="decode batch sizes (<= 16)")
    parser.add_argument("--prefill", type=int, default=512, help="prefill M for the GEMM rows (0: skip)")
    parser.add_argument("--no-sweep", action="store_true", help="skip the whole-model decode sweep")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    if any(not 1 <= b <= 16 for b in args.batch):
        parser.error("--batch values must be in 1..16 (larger M runs the GEMM: use --prefill)")
    try:
        result = run(args.layers, tuple(args.batch), args.prefill, sweep=not args.no_sweep)
    except RuntimeError as exc:
        sys.stderr.write(f"bench_gpu: {exc}\n")
        return EXIT_USER_ERROR
    if args.json:
        print_json(result)
    else:
        _print_table(result)
    return 0 if all(result["exact"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
