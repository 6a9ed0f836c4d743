"""The GPU benchmark script's code paths, run on the CPU in Triton's interpreter with CUDA timing faked.

No figure is checked (there are none to trust here): only that ``bno_kernels.triton.bench_gpu.run`` goes through
its exactness checks, rotations, graph capture calls and table without error, so the script does not rot
while no GPU is at hand.
"""

from __future__ import annotations

import contextlib
import os
import time
from typing import Any

os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest
import torch

from bno_kernels.triton import bench_gpu


class _FakeEvent:
    def __init__(self, enable_timing: bool = True) -> None:
        self.t = 0.0

    def record(self) -> None:
        self.t = time.perf_counter()

    def synchronize(self) -> None:
        return None

    def elapsed_time(self, other: _FakeEvent) -> float:
        return (other.t - self.t) * 1000.0 + 1e-6


class _FakeStream:
    cuda_stream = 0

    def wait_stream(self, other: Any) -> None:
        return None


class _FakeGraph:
    def replay(self) -> None:
        return None


def test_bench_gpu_runs_end_to_end_with_fake_cuda_timing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "Event", _FakeEvent)
    monkeypatch.setattr(torch.cuda, "Stream", _FakeStream)
    monkeypatch.setattr(torch.cuda, "current_stream", lambda *a: _FakeStream())
    monkeypatch.setattr(torch.cuda, "stream", lambda s: contextlib.nullcontext())
    monkeypatch.setattr(torch.cuda, "CUDAGraph", _FakeGraph)
    monkeypatch.setattr(torch.cuda, "graph", lambda g, stream=None: contextlib.nullcontext())
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda d: "fake")
    tiny = (("q_proj", 24, 40), ("k_proj", 8, 40), ("v_proj", 8, 40), ("o_proj", 24, 24),
            ("gate_proj", 40, 24), ("up_proj", 40, 24), ("down_proj", 24, 37))
    monkeypatch.setattr(bench_gpu, "SHAPES_2B4T", tiny)
    monkeypatch.setattr(bench_gpu, "COPY_BYTES", 1 << 16)
    monkeypatch.setattr(bench_gpu, "CHECK_SHAPE", (13, 37))
    monkeypatch.setattr(bench_gpu, "REPS", 1)

    result = bench_gpu.run(layers=2, batches=(1, 3), prefill=20, device=torch.device("cpu"))

    assert result["exact"] and all(result["exact"].values()), result["exact"]
    assert {"quant M=1", "scaled bf16 M=1", "gemv bytewise M=4",
            "gemm M=20"} <= set(result["exact"])
    assert len(result["decode"]) == 2 * 5 and len(result["prefill"]) == 5  # v/up share k/gate shapes
    assert result["sweep"]["layers"] == 2
    bench_gpu._print_table(result)
    printed = capsys.readouterr().out
    assert "decode GEMV" in printed and "prefill GEMM" in printed and "decode sweep" in printed
