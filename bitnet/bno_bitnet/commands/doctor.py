"""``bitnet doctor``: can this machine run BitNet models and which kernel backends are usable?"""

from __future__ import annotations

import argparse
from typing import Any

from bno_foundation.cli import EXIT_FAILURE, EXIT_OK, print_json
from bno_foundation.toolchain import checks_as_json, render_table, toolchain_checks


def run(args: argparse.Namespace) -> int:
    checks = toolchain_checks(include_slow=not args.quick)
    failed = any(c.failed for c in checks)
    if args.json:
        print_json({"ok": not failed, "checks": checks_as_json(checks)})
    else:
        render_table("bitnet doctor", checks)
    return EXIT_FAILURE if failed else EXIT_OK


def register(sub: Any) -> None:
    parser = sub.add_parser("doctor", help="check Python, torch, triton, CUDA, the C++ compiler")
    parser.add_argument("--quick", action="store_true", help="skip the slow probes (CUDA, Triton interpreter)")
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")
    parser.set_defaults(handler=run)
