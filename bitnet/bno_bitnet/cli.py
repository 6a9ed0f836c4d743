"""The ``bitnet`` command line: one entry point, one error handler, exit codes.

Each command lives in its own module under :mod:`bno_bitnet.commands` with ``register(subparsers)``;
``bench`` subcommands register under the ``bench`` group with ``register_bench(subparsers)``.
Exit codes: 0 success, 1 a negative verdict, 2 a user error, 3 an internal error, 130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Sequence

from bno_foundation.cli import CliArgumentParser, run_cli
from bno_foundation.errors import UserError

COMMAND_MODULES: tuple[str, ...] = (
    "bno_bitnet.commands.doctor",
    "bno_bitnet.commands.model",
    "bno_bitnet.commands.train",
    "bno_bitnet.commands.generate",
    "bno_bitnet.commands.server",
)
BENCH_MODULES: tuple[str, ...] = ("bno_bitnet.commands.bench_e2e", "bno_bitnet.commands.bench_kernels",
                                  "bno_bitnet.commands.bench_serve")


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser."""
    parser = CliArgumentParser(prog="bitnet", description="BitNet b1.58 models: load, convert, run, train, bench.")
    parser.add_argument("-v", "--verbose", action="store_true", help="print tracebacks of errors")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=CliArgumentParser)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    bench = sub.add_parser("bench", help="benchmarks: ratios measured in one run")
    bench_sub = bench.add_subparsers(title="benchmarks", metavar="BENCH", parser_class=CliArgumentParser)
    for name in BENCH_MODULES:
        importlib.import_module(name).register_bench(bench_sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Console-script entry point."""
    return run_cli("bitnet", build_parser(), argv, (UserError, FileNotFoundError))


if __name__ == "__main__":
    raise SystemExit(main())
