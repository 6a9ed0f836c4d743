"""``bitnet bench kernels`` at a tiny shape: the JSON structure and sane (positive, finite) ratios."""

from __future__ import annotations

import json
import math
from types import ModuleType

import pytest

from bno_bitnet.cli import main
from bno_kernels.bench import BenchConfig, BenchError, Shape, parse_ms, parse_shapes, run_bench


def _finite_positive(v: object) -> bool:
    return isinstance(v, float) and math.isfinite(v) and v > 0


def test_run_bench_tiny(native_cpu: ModuleType) -> None:
    cfg = BenchConfig(
        shapes=[Shape("tiny", 64, 48)],
        ms=[1, 3],
        repeat=2,
        min_time_s=0.0,
        llc_bytes=1 << 14,
        copy_bytes=1 << 20,
    )
    seen: list[tuple[int, int]] = []
    report = run_bench(cfg, lambda _what, done, total: seen.append((done, total)))
    assert seen[-1] == (3, 3)  # copy bandwidth + 2 (shape, M) rows
    assert report["info"]["backend"] == "cpu"
    assert _finite_positive(report["copy"]["gbps"])
    rows = report["results"]
    assert [(r["shape"], r["m"]) for r in rows] == [("64x48", 1), ("64x48", 3)]
    for r in rows:
        assert set(r["time_s"]) == {"ours", "fp32", "bf16", "reference"}
        assert all(len(v) == 2 for v in r["time_samples_s"].values())
        assert set(r["speedup"]) == {"vs_fp32", "vs_bf16", "vs_reference"}
        assert all(_finite_positive(v) for v in r["speedup"].values())
        assert all(_finite_positive(v) for v in r["gbps"].values())
        assert _finite_positive(r["share_of_copy"]["ours"])
        # the working-set rule: 2 x LLC / packed bytes copies of the layer, at least 2
        assert r["layers"]["ours"] == max(2, math.ceil(2 * (1 << 14) / r["weight_bytes"]["ours"]))
    assert _finite_positive(report["summary"]["decode_min_speedup_vs_fp32"])
    assert _finite_positive(report["summary"]["decode_min_share_of_read"])
    assert _finite_positive(report["copy"]["read_gbps"])


def test_cli_json(native_cpu: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "bench",
            "kernels",
            "--shapes",
            "32x16",
            "--m",
            "2",
            "--repeat",
            "1",
            "--baselines",
            "fp32",
            "--min-time",
            "0",
            "--llc-mib",
            "0.01",
            "--json",
            "--no-progress",
        ]
    )
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    (row,) = report["results"]
    assert row["k"] == 32 and row["n"] == 16 and row["m"] == 2
    assert set(row["time_s"]) == {"ours", "fp32"}
    assert _finite_positive(row["speedup"]["vs_fp32"])


def test_cli_rejects_bad_shapes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "kernels", "--shapes", "12by4", "--json"]) == 2
    assert "--shapes" in capsys.readouterr().err


def test_parsers() -> None:
    assert [s.label for s in parse_shapes(None)] == [
        "2560x2560",
        "2560x6912",
        "6912x2560",
        "2560x3840",
        "2560x13824",
    ]
    assert [s.name for s in parse_shapes(None, quick=True)] == ["attn.o", "mlp.down"]
    assert parse_shapes("mlp.up, 7x9")[1] == Shape("7x9", 7, 9)
    assert parse_ms(None) == [1, 8, 32, 128]
    assert parse_ms("1,4") == [1, 4]
    with pytest.raises(BenchError, match="positive"):
        parse_ms("0")
    with pytest.raises(BenchError, match="KxN"):
        parse_shapes("10x")


def test_cli_table(native_cpu: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["bench", "kernels", "--shapes", "32x16", "--m", "1", "--repeat", "1", "--min-time", "0"]
    code = main([*args, "--baselines", "fp32", "--llc-mib", "0.01", "--no-progress"])
    assert code == 0
    out = capsys.readouterr().out
    assert "32x16" in out and "x fp32" in out and "measured copy" in out
    assert "decode (M=1): speedup vs dense fp32" in out
