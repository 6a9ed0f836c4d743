"""Ahead-of-time compilation of the kernels for an NVIDIA target, without a GPU.

Triton ships ``ptxas``, so ``triton.compile`` can lower a kernel to PTX and a cubin on a CPU-only machine. CI
uses this to check what the interpreter cannot: the inline ``dp4a``, the int8 ``tl.dot`` on tensor cores, the
correctly rounded division and the absence of FMA contraction in the quantization kernel. It must run in a
process where Triton was imported *without* ``TRITON_INTERPRET=1`` (``python -m bno_kernels.triton.aot``).

    python -m bno_kernels.triton.aot [--arch 90]     # prints one line per kernel variant, exit 1 on failure
"""

from __future__ import annotations

import collections
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bno_kernels.triton.runtime import Kernel, interpreter_active


@dataclass(frozen=True)
class Variant:
    """One kernel specialization to compile."""

    name: str
    kernel: Kernel
    signature: dict[str, str]
    constexprs: dict[str, Any]
    num_warps: int
    num_stages: int
    divisible: tuple[str, ...]  # arguments specialised as multiples of 16 (as Triton does for 2B4T shapes)


@dataclass(frozen=True)
class Compiled:
    """PTX statistics and ptxas resource usage of one compiled variant."""

    name: str
    ops: dict[str, int]  # PTX opcode -> count
    ptx: str
    registers: int | None  # per thread, from cuobjdump -res-usage (None when cuobjdump is unavailable)
    stack: int | None  # bytes of stack per thread: > 0 means register spills
    loop_ops: dict[str, int]  # PTX opcodes inside the loops (label marked "Loop Header" to its back-edge)


def _gemv_sig(out: str = "*bf16") -> dict[str, str]:
    return {
        "xq_ptr": "*i32", "x_ptr": "*bf16", "w_ptr": "*i32", "out_ptr": out, "s_ptr": "*fp32", "ws_ptr": "*fp32",
        "work_ptr": "*i32", "count_ptr": "*i32", "M": "i32", "N": "i32", "K": "i32", "KW": "i32", "stride_xm": "i32",
        "stride_om": "i32", "M_BUCKET": "i32", "FUSE_QUANT": "constexpr", "QBLOCK": "constexpr", "SCALE": "constexpr", "WS_PER_CHANNEL": "constexpr", "BLOCK_M": "constexpr",
        "BLOCK_N": "constexpr", "BLOCK_KW": "constexpr", "SPLIT_K": "constexpr", "USE_DP4A": "constexpr",
    }


def _gemv_meta(
    block_m: int, block_n: int, block_kw: int, split_k: int, scale: bool = True, fuse: bool = False
) -> dict[str, Any]:
    return {"FUSE_QUANT": fuse, "QBLOCK": 2048, "SCALE": scale, "WS_PER_CHANNEL": False, "BLOCK_M": block_m, "BLOCK_N": block_n,
            "BLOCK_KW": block_kw, "SPLIT_K": split_k, "USE_DP4A": True}


def variants() -> list[Variant]:
    """The specializations CI compiles: every kernel, GEMV at batch 1, 4 and 16, split-K or not, bf16 epilogues."""
    from bno_kernels.triton.gemm import GEMM
    from bno_kernels.triton.gemv import GEMV
    from bno_kernels.triton.quant import ACT_QUANT

    gemv_div = ("xq_ptr", "x_ptr", "w_ptr", "out_ptr", "work_ptr", "N", "K", "KW", "stride_xm", "stride_om")
    gemm_sig = {
        "xq_ptr": "*i8", "w_ptr": "*i32", "out_ptr": "*bf16", "s_ptr": "*fp32", "ws_ptr": "*fp32", "M": "i32",
        "N": "i32", "KW": "i32", "stride_xm": "i32", "stride_om": "i32", "M_BUCKET": "i32", "SCALE": "constexpr",
        "WS_PER_CHANNEL": "constexpr", "BLOCK_M": "constexpr", "BLOCK_N": "constexpr", "BLOCK_KW": "constexpr",
        "GROUP_M": "constexpr",
    }
    return [
        Variant("act_quant[bf16]", ACT_QUANT,
                {"x_ptr": "*bf16", "xq_ptr": "*i8", "s_ptr": "*fp32", "K": "i32", "K_pad": "i32",
                 "stride_xm": "i32", "stride_qm": "i32", "BLOCK_K": "constexpr"},
                {"BLOCK_K": 4096}, 4, 1, ("x_ptr", "xq_ptr", "K_pad", "stride_xm", "stride_qm")),
        Variant("gemv[M=1]", GEMV, _gemv_sig(), _gemv_meta(1, 128, 16, 4), 4, 1, gemv_div),
        Variant("gemv[M=1,fused quant]", GEMV, _gemv_sig(), _gemv_meta(1, 64, 8, 16, fuse=True), 4, 1, gemv_div),
        Variant("gemv[M=1,K whole]", GEMV, _gemv_sig(), _gemv_meta(1, 64, 16, 1), 4, 1, gemv_div),
        Variant("gemv[M=4]", GEMV, _gemv_sig(), _gemv_meta(4, 128, 8, 8), 4, 1, gemv_div),
        Variant("gemv[M=16,int32]", GEMV, _gemv_sig("*i32"), _gemv_meta(16, 64, 4, 8, scale=False), 4, 1, gemv_div),
        Variant("gemm[bf16]", GEMM, gemm_sig,
                {"SCALE": True, "WS_PER_CHANNEL": False, "BLOCK_M": 128, "BLOCK_N": 128, "BLOCK_KW": 16,
                 "GROUP_M": 8}, 8, 3, ("xq_ptr", "w_ptr", "out_ptr", "N", "KW", "stride_xm", "stride_om")),
    ]


_OPCODE = re.compile(r"^\s+(?:@!?%p\d+\s+)?([a-z][a-z0-9_.]*)", re.MULTILINE)


def compile_variant(variant: Variant, arch: int = 90) -> Compiled:
    """Compile one variant to PTX + cubin for ``sm_{arch}`` and count its PTX opcodes."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    assert not interpreter_active(), "AOT compilation needs Triton imported without TRITON_INTERPRET=1"
    names = list(variant.signature)
    attrs = {(names.index(a),): [["tt.divisibility", 16]] for a in variant.divisible}
    src = ASTSource(
        fn=variant.kernel._wrapped("jitted"), signature=variant.signature, constexprs=variant.constexprs,
        attrs=attrs,
    )
    options = {"num_warps": variant.num_warps, "num_stages": variant.num_stages, **variant.kernel.gpu_options}
    compiled = triton.compile(src, target=GPUTarget("cuda", arch, 32), options=options)
    ptx: str = compiled.asm["ptx"]
    assert compiled.asm.get("cubin"), f"{variant.name}: ptxas produced no cubin"
    ops = collections.Counter(_OPCODE.findall(ptx))
    registers, stack = _resource_usage(compiled.asm["cubin"])
    return Compiled(variant.name, dict(ops), ptx, registers, stack, _loop_ops(ptx))


def _loop_ops(ptx: str) -> dict[str, int]:
    """Opcode counts of the PTX between each loop-header label and the branch back to it."""
    counts: collections.Counter[str] = collections.Counter()
    lines = ptx.splitlines()
    for i, line in enumerate(lines):
        header = re.match(r"^(\$L\w+):.*Loop Header", line.strip())
        if not header:
            continue
        for body in lines[i + 1:]:
            if re.search(rf"\bbra(\.uni)?\s+{re.escape(header.group(1))};", body):
                break
            counts.update(_OPCODE.findall(body + "\n"))
    return dict(counts)


def _resource_usage(cubin: bytes) -> tuple[int | None, int | None]:
    """(registers, stack bytes) per thread from Triton's bundled ``cuobjdump -res-usage``."""
    import triton

    tool = triton.knobs.nvidia.cuobjdump
    if tool is None:
        return None, None
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "kernel.cubin"
        path.write_bytes(cubin)
        proc = subprocess.run([tool.path, "-res-usage", str(path)], capture_output=True, text=True, check=False)
    found = re.search(r"REG:(\d+) STACK:(\d+)", proc.stdout)
    return (int(found.group(1)), int(found.group(2))) if found else (None, None)


def main(argv: list[str] | None = None) -> int:
    """Compile every variant; print the opcodes that matter (or JSON); exit 1 if one fails."""
    from bno_foundation.cli import CliArgumentParser, print_json

    parser = CliArgumentParser(prog="python -m bno_kernels.triton.aot", description=__doc__.splitlines()[0])
    parser.add_argument("--arch", type=int, default=90, help="SM architecture, e.g. 80 or 90 (default 90)")
    parser.add_argument("--json", action="store_true", help="print {variant: {ok, error, ops}} as JSON")
    args = parser.parse_args(argv)
    results: dict[str, dict[str, Any]] = {}
    for variant in variants():
        try:
            c = compile_variant(variant, args.arch)
        except Exception as exc:  # report every variant, then fail
            results[variant.name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}", "ops": {},
                                     "registers": None, "stack": None}
        else:
            results[variant.name] = {"ok": True, "error": "", "ops": c.ops, "registers": c.registers,
                                     "stack": c.stack, "loop_ops": c.loop_ops}
    if args.json:
        print_json(results)
    else:
        for name, r in results.items():
            keys = [k for k in sorted(r["ops"]) if k.startswith(("dp4a", "mma", "wgmma", "div", "fma", "ld.global"))]
            detail = r["error"] or " ".join(f"{k}={r['ops'][k]}" for k in keys)
            detail += f"  registers={r['registers']} stack={r['stack']}" if r["ok"] else ""
            print(f"{'ok  ' if r['ok'] else 'FAIL'} {name:16s} {detail}")
    return 0 if all(r["ok"] for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
