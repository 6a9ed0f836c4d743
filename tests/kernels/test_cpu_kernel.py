"""The native CPU kernel is exact against the reference: every code path, odd shapes, both scales."""

from __future__ import annotations

from types import ModuleType

import pytest
import torch

from bno_kernels.cpu import ops
from bno_kernels.packed import PackedTernaryWeight
from bno_kernels.reference import int_matmul_reference, quantize_activations, ternary_matmul_reference

# (N, K), odd N and K included; partial last super-tiles of 1, 2 and 3 tiles
SHAPES = [(13, 37), (16, 16), (1, 1), (70, 300), (33, 2563), (96, 64), (200, 48)]
MS = [1, 3, 16]


def _isas() -> list[str]:
    order = ["scalar", "avx2", "avx512"]
    return order[: order.index(ops.best_isa()) + 1]


def _case(m: int, n: int, k: int, seed: int) -> tuple[torch.Tensor, PackedTernaryWeight]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(m, k, generator=gen) * 3  # (M, K)
    w = torch.randint(-1, 2, (n, k), dtype=torch.int8, generator=gen)  # (N, K)
    return x, PackedTernaryWeight.from_ternary(w, layout="cpu")


def test_best_isa_is_known(native_cpu: ModuleType) -> None:
    assert ops.best_isa() in ("scalar", "avx2", "avx512")
    assert ops.available() and ops.unavailable_reason() == ""


@pytest.mark.parametrize(("n", "k"), SHAPES)
@pytest.mark.parametrize("m", MS)
def test_int32_accumulation_is_exact(native_cpu: ModuleType, m: int, n: int, k: int) -> None:
    x, packed = _case(m, n, k, seed=n * 1000 + k + m)
    xq, _ = quantize_activations(x)
    expected = int_matmul_reference(xq, packed)  # (M, N) int32
    for isa in _isas():
        got = ops.int_matmul_cpu(xq, packed, isa=isa)
        assert got.dtype == torch.int32
        assert torch.equal(got, expected), f"isa={isa} M={m} N={n} K={k}"


def test_int32_extreme_activations(native_cpu: ModuleType) -> None:
    k = 4099
    xq = torch.full((2, k), -128, dtype=torch.int8)
    xq[1] = 127
    w = torch.randint(-1, 2, (19, k), dtype=torch.int8, generator=torch.Generator().manual_seed(5))
    w[0] = 1
    w[1] = -1
    packed = PackedTernaryWeight.from_ternary(w)
    expected = int_matmul_reference(xq, packed)
    for isa in _isas():
        assert torch.equal(ops.int_matmul_cpu(xq, packed, isa=isa), expected), isa


@pytest.mark.parametrize("m", [1, 5, 16])
def test_fused_quantization_matches_reference(native_cpu: ModuleType, m: int) -> None:
    gen = torch.Generator().manual_seed(m)
    x = torch.randn(m, 77, generator=gen) * 10  # (M, K)
    x[0, :5] = torch.tensor([0.5, -0.5, 1.5, 2.5, 0.0])  # rounding ties
    xq, s = quantize_activations(x)
    for isa in _isas():
        q, sc = ops.quantize_cpu(x, isa=isa)
        assert torch.equal(q, xq) and torch.equal(sc, s), isa
        qb, sb = ops.quantize_cpu(x.bfloat16(), isa=isa)
        xqb, s_b = quantize_activations(x.bfloat16())
        assert torch.equal(qb, xqb) and torch.equal(sb, s_b), isa


@pytest.mark.parametrize(("n", "k"), [(13, 37), (70, 300), (40, 2563)])
@pytest.mark.parametrize("m", MS)
@pytest.mark.parametrize("per_channel", [False, True])
def test_float_result_matches_reference(
    native_cpu: ModuleType, m: int, n: int, k: int, per_channel: bool
) -> None:
    x, packed = _case(m, n, k, seed=7 * m + n)
    scale = torch.rand(n) + 0.05 if per_channel else torch.tensor(0.42)
    expected = ternary_matmul_reference(x, packed, scale)  # (M, N)
    for isa in _isas():
        got = ops.ternary_matmul_cpu(x, packed, scale, isa=isa)
        assert got.shape == (m, n) and got.dtype == torch.float32
        torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-6)
        assert torch.equal(got, expected), f"same fp32 ops in the same order: isa={isa}"


def test_batch_dims_bf16_and_out_dtype(native_cpu: ModuleType) -> None:
    x, packed = _case(6, 21, 50, seed=3)
    x3 = x.reshape(2, 3, 50).bfloat16()  # (B, T, K)
    got = ops.ternary_matmul_cpu(x3, packed, torch.tensor(0.5))
    assert got.shape == (2, 3, 21) and got.dtype == torch.bfloat16
    expected = ternary_matmul_reference(x3, packed, torch.tensor(0.5))
    torch.testing.assert_close(got, expected)
    got16 = ops.ternary_matmul_cpu(x.half(), packed, 0.5, out_dtype=torch.float32)
    torch.testing.assert_close(
        got16, ternary_matmul_reference(x.half(), packed, 0.5, out_dtype=torch.float32)
    )


def test_respects_thread_count(native_cpu: ModuleType) -> None:
    x, packed = _case(4, 200, 160, seed=11)
    expected = ops.ternary_matmul_cpu(x, packed, 1.0)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert torch.equal(ops.ternary_matmul_cpu(x, packed, 1.0), expected)
    finally:
        torch.set_num_threads(before)


def test_rejects_bad_operands(native_cpu: ModuleType) -> None:
    x, packed = _case(2, 16, 32, seed=1)
    with pytest.raises(ValueError, match="input features"):
        ops.ternary_matmul_cpu(x[:, :31], packed, 1.0)
    with pytest.raises(ValueError, match="weight_scale"):
        ops.ternary_matmul_cpu(x, packed, torch.ones(3))
    with pytest.raises(ValueError, match="unknown isa"):
        ops.int_matmul_cpu(torch.zeros(1, 32, dtype=torch.int8), packed, isa="sse")
    with pytest.raises(TypeError, match="int8"):
        ops.int_matmul_cpu(torch.zeros(1, 32), packed)
    broken = PackedTernaryWeight(packed.data[:64].contiguous(), 16, 32, "cpu")
    with pytest.raises(RuntimeError, match="must have shape"):
        ops.int_matmul_cpu(torch.zeros(1, 32, dtype=torch.int8), broken)


@pytest.mark.parametrize("scheduler", ["pool", "openmp", "auto"])
def test_schedulers_give_identical_results(native_cpu: ModuleType, scheduler: str) -> None:
    x, packed = _case(5, 300, 96, seed=21)
    expected = ternary_matmul_reference(x, packed, 0.25)
    before = ops.get_scheduler()
    try:
        ops.set_scheduler(scheduler)
        assert ops.get_scheduler() == scheduler
        for m in (1, 5):
            assert torch.equal(ops.ternary_matmul_cpu(x[:m], packed, 0.25), expected[:m])
        with ops.kernel_threads():  # the kernels' own threads: the pool runs every call under "auto"
            for m in (1, 5):
                assert torch.equal(ops.ternary_matmul_cpu(x[:m], packed, 0.25), expected[:m])
    finally:
        ops.set_scheduler(before)
    with pytest.raises(ValueError, match="unknown scheduler"):
        ops.set_scheduler("tbb")


def test_pool_runs_every_chunk_exactly_once(native_cpu: ModuleType) -> None:
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        for n in (1, 2, 3, 97):
            counts = native_cpu.scheduler_selftest(n, 2000)  # (n,) runs per chunk
            assert counts.tolist() == [1] * n, n
    finally:
        torch.set_num_threads(before)


def test_kernel_threads_gives_torch_one_thread_and_restores_both(native_cpu: ModuleType) -> None:
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        assert ops.get_num_threads() == 2  # follows torch by default
        with ops.kernel_threads() as kernel:
            assert kernel == 2
            assert torch.get_num_threads() == 1
            assert ops.get_num_threads() == 2  # the kernels keep both threads
        assert torch.get_num_threads() == 2
        assert ops.get_num_threads() == 2
        torch.set_num_threads(1)
        assert ops.get_num_threads() == 1  # following torch again, not pinned at 2
        ops.set_num_threads(2)
        with ops.kernel_threads() as kernel:
            assert kernel == 2
        assert ops.get_num_threads() == 2  # an explicit setting survives the block
    finally:
        ops.set_num_threads(0)
        torch.set_num_threads(before)
    with pytest.raises(ValueError, match="non-negative"):
        ops.set_num_threads(-1)


def test_pool_stats_count_worker_chunks(native_cpu: ModuleType) -> None:
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        ops.set_scheduler("pool")
        start = ops.pool_stats()
        for _ in range(20):
            assert native_cpu.scheduler_selftest(64, 20000).tolist() == [1] * 64
        now = ops.pool_stats()
        assert now.stalls >= start.stalls and now.solo_calls >= start.solo_calls
        assert now.worker_chunks >= start.worker_chunks
    finally:
        ops.set_scheduler("auto")
        torch.set_num_threads(before)


def test_read_bandwidth_is_positive(native_cpu: ModuleType) -> None:
    assert ops.read_bandwidth(8 * 1024 * 1024, repeats=1) > 0
