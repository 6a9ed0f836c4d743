"""``bitnet bench kernels``: ternary matmul vs torch dense fp32/bf16 vs the reference, measured in one run."""

from __future__ import annotations

import argparse
from typing import Any

from bno_foundation.cli import print_json


def run(args: argparse.Namespace) -> int:
    """Measure and print a table (or ``--json``), with a progress bar on stderr."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from bno_bitnet.errors import ConfigError
    from bno_foundation.terminal import safe_console
    from bno_kernels.bench import BenchError, config_from_args, render, run_bench

    try:
        cfg = config_from_args(
            shapes=args.shapes,
            ms=args.m,
            repeat=args.repeat,
            backend=args.backend,
            baselines=args.baselines,
            device=args.device,
            threads=args.threads,
            quick=args.quick,
            min_time_s=args.min_time,
            llc_bytes=None if args.llc_mib is None else int(args.llc_mib * (1 << 20)),
        )
    except BenchError as exc:
        raise ConfigError(str(exc)) from exc
    with Progress(
        TextColumn("{task.description}", style="progress.description", markup=False),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=safe_console(stderr=True),
        transient=True,
        disable=args.no_progress,
    ) as bar:
        task = bar.add_task("bench kernels", total=None)

        def progress(what: str, done: int, total: int) -> None:
            bar.update(task, completed=done, total=total, description=f"bench kernels: {what}")

        try:
            report = run_bench(cfg, progress)
        except BenchError as exc:
            raise ConfigError(str(exc)) from exc
    if args.json:
        print_json(report)
    else:
        render(report)
    return 0


def register_bench(bench_sub: Any) -> None:
    """Add ``kernels`` under ``bitnet bench``."""
    parser = bench_sub.add_parser(
        "kernels",
        help="ternary matmul vs torch dense fp32/bf16 vs reference (ratios, GB/s, share of copy bandwidth)",
    )
    parser.add_argument("--shapes", help="comma list of 2B4T layer names or KxN (default: all 2B4T shapes)")
    parser.add_argument("--m", help="comma list of batch sizes M (default 1,8,32,128)")
    parser.add_argument(
        "--repeat", type=int, help="timed repeats per method (median kept; default 5, quick 3)"
    )
    parser.add_argument("--backend", help="force our backend: cpu, reference or triton (default: automatic)")
    parser.add_argument(
        "--baselines", default="fp32,bf16,reference", help="comma list of fp32, bf16, reference ('' for none)"
    )
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="where tensors live")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads before measuring")
    parser.add_argument("--min-time", type=float, default=0.02, help="seconds per timed sample (at least)")
    parser.add_argument(
        "--llc-mib",
        type=float,
        help="last-level cache size in MiB for the working-set rule (default: detected)",
    )
    parser.add_argument("--quick", action="store_true", help="fewer shapes and M (for the perf gate)")
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(handler=run)
