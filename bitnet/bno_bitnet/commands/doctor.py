"""``bitnet doctor``: can this machine run BitNet models and which kernel backends are usable?"""

from __future__ import annotations

import argparse
from typing import Any

from bno_foundation.toolchain import report, toolchain_checks


def run(args: argparse.Namespace) -> int:
    """The toolchain view of the doctor: Python, torch, triton, CUDA, the C++ compiler, CPU SIMD."""
    return report("bitnet", toolchain_checks(include_slow=not args.quick), as_json=args.json)


def register(sub: Any) -> None:
    parser = sub.add_parser("doctor", help="check Python, torch, triton, CUDA, the C++ compiler")
    parser.add_argument("--quick", action="store_true", help="skip the slow probes (CUDA, Triton interpreter)")
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")
    parser.set_defaults(handler=run)
