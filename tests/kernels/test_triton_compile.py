"""The kernels compile for an H100 (sm_90) without a GPU: what Triton's interpreter cannot check.

Runs ``python -m bno_kernels.triton.aot --json`` in a subprocess with ``TRITON_INTERPRET`` unset (this test process
has Triton in interpreter mode) and checks the PTX: the GEMV uses the ``dp4a`` instruction, the GEMM runs int8
on tensor cores, the quantization divides with ``div.rn`` and has no fused multiply-add (so ``x * s`` is rounded
before rounding to an integer, as in torch); and ptxas's resource usage: no register spills.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def compiled() -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["TRITON_DEFAULT_FP_FUSION"] = "1"  # silences Triton 3.9's notice; every kernel sets its own option
    proc = subprocess.run(
        [sys.executable, "-W", "ignore", "-m", "bno_kernels.triton.aot", "--json", "--arch", "90"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.stdout.strip(), f"aot printed nothing; stderr:\n{proc.stderr[-3000:]}"
    result: dict[str, Any] = json.loads(proc.stdout)
    failed = {name: r["error"] for name, r in result.items() if not r["ok"]}
    assert not failed, f"kernels failed to compile for sm_90: {failed}"
    assert proc.returncode == 0, proc.stderr[-3000:]
    return result


def _count(ops: dict[str, int], prefix: str) -> int:
    return sum(v for k, v in ops.items() if k.startswith(prefix))


def test_gemv_uses_dp4a(compiled: dict[str, Any]) -> None:
    for name in ("gemv[M=1]", "gemv[M=1,fused quant]", "gemv[M=1,K whole]", "gemv[M=4]", "gemv[M=16,int32]"):
        ops = compiled[name]["ops"]
        assert _count(ops, "dp4a.u32.s32") > 0, f"{name}: no dp4a in the PTX"
        assert _count(ops, "ld.global.v4") > 0, f"{name}: weight words are not loaded 16 bytes at a time"


def test_gemv_loops_have_no_barriers_or_shared_memory_shuffles(compiled: dict[str, Any]) -> None:
    for name in ("gemv[M=1]", "gemv[M=1,K whole]"):  # (the fused variant packs bytes with a small reduction)
        loop = compiled[name]["loop_ops"]
        assert _count(loop, "dp4a") > 0, f"{name}: no loop with dp4a found in the PTX: {loop}"
        shuffles = {k: v for k, v in loop.items() if k.startswith(("bar.", "ld.shared", "st.shared"))}
        assert not shuffles, f"{name}: layout shuffles inside the K loop: {shuffles}"


def test_no_register_spills(compiled: dict[str, Any]) -> None:
    usage = {name: (r["registers"], r["stack"]) for name, r in compiled.items()}
    assert all(regs is not None for regs, _ in usage.values()), f"cuobjdump gave no resource usage: {usage}"
    spilling = {name: u for name, u in usage.items() if u[1] != 0}
    assert not spilling, f"kernels spill registers to the stack on sm_90: {spilling}"


def test_split_k_gemv_meets_in_the_workspace_with_atomics(compiled: dict[str, Any]) -> None:
    ops = compiled["gemv[M=1]"]["ops"]
    assert _count(ops, "red.global") + _count(ops, "atom.global") > 0, f"no global atomics: {sorted(ops)}"
    assert any("acq_rel" in k for k in ops), f"the ticket must be an acquire-release atomic: {sorted(ops)}"
    whole = compiled["gemv[M=1,K whole]"]["ops"]
    assert _count(whole, "red.global") + _count(whole, "atom.global") == 0, "SPLIT_K=1 needs no atomics"


def test_gemm_uses_int8_tensor_cores(compiled: dict[str, Any]) -> None:
    ops = compiled["gemm[bf16]"]["ops"]
    int8_mma = _count(ops, "wgmma.mma_async.sync.aligned") + _count(ops, "mma.sync.aligned")
    assert int8_mma > 0 and any(".s8" in k for k in ops), f"no int8 MMA in the GEMM PTX: {sorted(ops)}"


def test_quantization_rounding_is_exact_on_gpu(compiled: dict[str, Any]) -> None:
    for name in ("act_quant[bf16]", "gemv[M=1,fused quant]"):
        ops = compiled[name]["ops"]
        assert _count(ops, "div.rn.f32") >= 1, f"{name}: expected a correctly rounded division: {ops}"
        assert _count(ops, "fma") == 0, f"{name}: FMA contraction would change the rounding of x * s"
        assert _count(ops, "div.full") == 0 and _count(ops, "div.approx") == 0, name


def test_epilogues_divide_correctly_rounded(compiled: dict[str, Any]) -> None:
    for name in ("gemv[M=1]", "gemm[bf16]"):
        ops = compiled[name]["ops"]
        assert _count(ops, "div.rn.f32") > 0 and _count(ops, "div.full") == 0, f"{name}: {ops}"
