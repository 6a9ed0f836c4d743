"""The Triton GEMV (M <= 16) and GEMM (M > 16) in Triton's interpreter: exact int32 against the reference,
and the scaled results (fp32, bf16, fp16; per-tensor and per-channel scales) bit-identical to it.

Triton fixes its interpreter mode at its first import, so ``TRITON_INTERPRET`` is set before anything here
imports triton (``make test`` exports it too). Shapes are tiny: the interpreter is slow.
"""

from __future__ import annotations

import os

os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from bno_kernels import ternary_matmul
from bno_kernels.packed import PackedTernaryWeight
from bno_kernels.reference import int_matmul_reference, quantize_activations, ternary_matmul_reference
from bno_kernels.triton import ternary_matmul_int32_triton, ternary_matmul_packed, ternary_matmul_triton
from bno_kernels.triton.gemm import gemm
from bno_kernels.triton.gemv import _workspace, gemv_fused, gemv_int32
from bno_kernels.triton.layout import padded_in_features
from bno_kernels.triton.runtime import Config

MS = [1, 3, 16, 33]  # GEMV batch 1, GEMV odd batch, GEMV largest, GEMM with a partial M tile
NS = [8, 13, 64]
KS = [32, 37, 128]


def _case(m: int, n: int, k: int, seed: int = 0) -> tuple[torch.Tensor, PackedTernaryWeight, torch.Tensor]:
    g = torch.Generator().manual_seed(seed * 7919 + m * 131 + n * 17 + k)
    w = torch.randint(-1, 2, (n, k), generator=g, dtype=torch.int8)  # (N, K)
    x = torch.randn((m, k), generator=g) * 2  # (M, K)
    xq, _ = quantize_activations(x)  # (M, K) int8
    return x, PackedTernaryWeight.from_ternary(w, layout="triton"), xq


def _pad(xq: torch.Tensor) -> torch.Tensor:
    out = torch.zeros((xq.shape[0], padded_in_features(xq.shape[1])), dtype=torch.int8)  # (M, K_pad)
    out[:, : xq.shape[1]] = xq
    return out


@pytest.mark.parametrize("k", KS)
@pytest.mark.parametrize("n", NS)
@pytest.mark.parametrize("m", MS)
def test_int32_exact_every_shape_class(m: int, n: int, k: int) -> None:
    _, w, xq = _case(m, n, k)
    acc = ternary_matmul_int32_triton(xq, w.data, n, k)
    assert acc.dtype == torch.int32 and tuple(acc.shape) == (m, n)
    assert torch.equal(acc, int_matmul_reference(xq, w))


def test_int32_extreme_values() -> None:
    # |xq| = 128 / 127 with all-(+1) and all-(-1) weights: the largest partial sums, sign-extension of bytes.
    n, k = 5, 67
    w = torch.ones((n, k), dtype=torch.int8)
    w[1] = -1
    w[2, ::2] = 0
    packed = PackedTernaryWeight.from_ternary(w, layout="triton")
    xq = torch.full((3, k), 127, dtype=torch.int8)
    xq[1] = -128
    xq[2, ::3] = -128
    for rows in (xq, xq.repeat(7, 1)):  # GEMV (3 rows) and GEMM (21 rows)
        acc = ternary_matmul_int32_triton(rows, packed.data, n, k)
        assert torch.equal(acc, int_matmul_reference(rows, packed))


@pytest.mark.parametrize(
    "meta",
    [
        {"BLOCK_N": 16, "BLOCK_KW": 2, "SPLIT_K": 1},  # several K iterations, one split
        {"BLOCK_N": 8, "BLOCK_KW": 2, "SPLIT_K": 3},  # uneven splits, several N tiles
        {"BLOCK_N": 32, "BLOCK_KW": 4, "SPLIT_K": 8},  # more splits than words: empty programs
    ],
)
@pytest.mark.parametrize("m", [1, 5])
def test_gemv_configurations(meta: dict[str, int], m: int) -> None:
    n, k = 13, 150  # KW = 10
    _, w, xq = _case(m, n, k, seed=1)
    ref = int_matmul_reference(xq, w)
    for _ in range(2):  # the split-K workspace must be clean again for the next call
        acc = gemv_int32(_pad(xq), w.data, n, config=Config(meta))
        assert torch.equal(acc, ref)
        work, tickets = _workspace(xq.device, n)
        assert int(work.abs().sum()) == 0 and int(tickets.abs().sum()) == 0, "workspace left dirty"


@pytest.mark.parametrize(
    "meta",
    [
        {"BLOCK_N": 16, "BLOCK_KW": 2, "SPLIT_K": 1},
        {"BLOCK_N": 8, "BLOCK_KW": 2, "SPLIT_K": 3},
        {"BLOCK_N": 32, "BLOCK_KW": 4, "SPLIT_K": 8},
    ],
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_batch1_fused_quantization_configurations(meta: dict[str, int], dtype: torch.dtype) -> None:
    n, k = 13, 150  # KW = 10, K_pad = 160: the last plane is partly padding
    x, w, _ = _case(1, n, k, seed=6)
    x = x.to(dtype)
    x[0, 7] = 0.0
    x[0, 0] = 254.0  # amax 254 -> s = 0.5: odd integers below become exact .5 ties
    x[0, 1:6] = torch.tensor([1.0, 3.0, 5.0, -1.0, -3.0], dtype=dtype)
    ws = torch.rand(n) + 0.05
    y = gemv_fused(x, w.data, n, ws, dtype, config=Config(meta))
    assert torch.equal(y, ternary_matmul_reference(x, w, ws))


@pytest.mark.parametrize(
    "meta",
    [
        {"BLOCK_M": 16, "BLOCK_N": 16, "BLOCK_KW": 4, "GROUP_M": 1},
        {"BLOCK_M": 32, "BLOCK_N": 16, "BLOCK_KW": 8, "GROUP_M": 2},
        {"BLOCK_M": 16, "BLOCK_N": 32, "BLOCK_KW": 4, "GROUP_M": 4},
    ],
)
def test_gemm_configurations(meta: dict[str, int]) -> None:
    m, n, k = 50, 40, 150
    _, w, xq = _case(m, n, k, seed=2)
    acc = gemm(_pad(xq), w.data, n, config=Config(meta))
    assert torch.equal(acc, int_matmul_reference(xq, w))


@settings(max_examples=12, deadline=None)
@given(
    m=st.integers(1, 40), n=st.integers(1, 40), k=st.integers(1, 100), seed=st.integers(0, 10_000)
)
def test_int32_exact_random_shapes(m: int, n: int, k: int, seed: int) -> None:
    _, w, xq = _case(m, n, k, seed)
    assert torch.equal(ternary_matmul_int32_triton(xq, w.data, n, k), int_matmul_reference(xq, w))


@pytest.mark.parametrize("per_channel", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("m", [1, 3, 16, 33])
def test_scaled_matches_reference(m: int, dtype: torch.dtype, per_channel: bool) -> None:
    n, k = 13, 37
    x, w, _ = _case(m, n, k, seed=3)
    x = x.to(dtype)
    ws = torch.rand(n) + 0.05 if per_channel else torch.tensor(0.37)
    y = ternary_matmul_triton(x, w, ws)
    ref = ternary_matmul_reference(x, w, ws)
    assert y.dtype == dtype and tuple(y.shape) == (m, n)
    torch.testing.assert_close(y, ref, rtol=1e-6, atol=0)  # the contract: close after scaling
    assert torch.equal(y, ref), "same fp32 epilogue order and rounding as the reference: identical bits"


def test_out_dtype_and_leading_dims() -> None:
    n, k = 8, 32
    x, w, _ = _case(6, n, k, seed=4)
    x3 = x.reshape(2, 3, k).to(torch.bfloat16)  # (B, T, K)
    y = ternary_matmul_triton(x3, w, 0.5, out_dtype=torch.float32)
    ref = ternary_matmul_reference(x3, w, 0.5, out_dtype=torch.float32)
    assert y.dtype == torch.float32 and tuple(y.shape) == (2, 3, n)
    assert torch.equal(y, ref)


def test_dispatch_forced_triton_backend_runs_these_kernels() -> None:
    n, k = 13, 37
    x, w, _ = _case(20, n, k, seed=5)
    y = ternary_matmul(x, w, torch.tensor(0.25), backend="triton")
    assert torch.equal(y, ternary_matmul_reference(x, w, torch.tensor(0.25)))


def test_empty_batch() -> None:
    _, w, _ = _case(1, 8, 32)
    y = ternary_matmul_packed(torch.empty((0, 32)), w.data, 8, 32, 1.0)
    assert tuple(y.shape) == (0, 8)


def test_errors_name_the_problem() -> None:
    x, w, _ = _case(2, 8, 32)
    cpu_w = PackedTernaryWeight.from_ternary(w.to_ternary(), layout="cpu")
    with pytest.raises(ValueError, match="layout 'cpu'"):
        ternary_matmul_triton(x, cpu_w, 1.0)
    with pytest.raises(ValueError, match="expects K=40"):
        ternary_matmul_packed(x, w.data, 8, 40, 1.0)
    with pytest.raises(ValueError, match="must be int32"):
        ternary_matmul_packed(x, w.data.to(torch.int64), 8, 32, 1.0)
    with pytest.raises(ValueError, match="weight_scale"):
        ternary_matmul_triton(x, w, torch.ones(3))
    with pytest.raises(TypeError, match="floating-point"):
        ternary_matmul_triton(x.to(torch.int32), w, 1.0)


def test_gemv_autotune_pruning_keeps_register_sized_accumulators() -> None:
    from bno_kernels.triton.gemv import _MAX_ACC_REGS, GEMV, _prune

    configs = [c.to_triton() for c in GEMV.gpu_configs]
    for block_m in (1, 2, 4, 8, 16):
        kept = _prune(configs, {}, BLOCK_M=block_m)
        assert kept, f"no configuration left for BLOCK_M={block_m}"
        for c in kept:
            regs = block_m * c.kwargs["BLOCK_KW"] * c.kwargs["BLOCK_N"] / (32 * c.num_warps)
            assert regs <= _MAX_ACC_REGS, f"BLOCK_M={block_m}: {c} needs {regs} accumulator registers"
    assert len(_prune(configs, {}, BLOCK_M=1)) == len(configs)


def test_bench_gpu_validates_arguments_before_touching_a_gpu() -> None:
    from bno_foundation.cli import EXIT_USER_ERROR
    from bno_kernels.triton.bench_gpu import main

    with pytest.raises(SystemExit) as info:
        main(["--batch", "17"])
    assert info.value.code == EXIT_USER_ERROR
