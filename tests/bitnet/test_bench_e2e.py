"""``bitnet bench e2e`` on a tiny shape: the structure and sanity of the figures (never their size)."""

from __future__ import annotations

import json
import os

import pytest
import torch

from bno_bitnet.bench_e2e import (
    E2EReport,
    choose_compare_layers,
    format_report,
    parse_compare,
    peak_rss_bytes,
    reset_peak_rss,
    rss_bytes,
    run_e2e,
    tensor_bytes,
)
from bno_bitnet.cli import main
from bno_bitnet.engine import Engine
from bno_bitnet.errors import ConfigError
from bno_bitnet.layers import BitLinear
from bno_bitnet.sampling import GenerationConfig
from bno_bitnet.shapes import build_dense_model, build_random_model, dense_twin, shape_config


@pytest.fixture(scope="module")
def report() -> E2EReport:
    return run_e2e(shape="tiny", threads=1, prompt_len=12, new_tokens=4, compare=("dense", "transformers"),
                   int8_head=True, layers=2, compare_layers=1, isolate=False)


def test_report_has_every_model_and_positive_figures(report: E2EReport) -> None:
    names = [m.name for m in report.measurements]
    assert names[0] == "bitnet (packed)" and names[1] == "bitnet (packed, int8 head)"
    assert any(n.startswith("bitnet (packed) @1L") for n in names)
    assert any(n.startswith("dense fp32 torch @1L") for n in names)
    assert any(n.startswith("transformers BitNet") for n in names)
    for m in report.measurements:
        assert m.prefill_tokens_per_s > 0 and m.decode_tokens_per_s > 0 and m.time_to_first_token_s > 0
        assert m.peak_rss_bytes > 0 and m.tensor_bytes > 0 and m.prompt_len == 12 and m.new_tokens == 4
        assert m.decode_cpu_ms_per_token > 0 and m.prefill_cpu_s > 0
    assert [m.layers for m in report.measurements[:2]] == [2, 2]
    assert all(m.layers == 1 for m in report.measurements[2:])
    assert report.compare_layers == 1 and report.layers == 2 and report.threads == 1
    for base in ("dense", "transformers"):
        for kind in ("decode_speedup", "prefill_speedup", "ttft_speedup", "memory_saving", "decode_cpu_time_ratio"):
            assert report.ratios[f"{kind}_vs_{base}"] >= 0
        assert report.ratios[f"decode_speedup_vs_{base}"] > 0
    assert any("equal depth (1 layers)" in n for n in report.notes)
    assert report.targets == {}  # targets only apply to the full 2B4T shape
    assert not any(k.startswith("int8_head_") for k in report.ratios)  # baselines ran at another depth


def test_ratios_follow_from_the_measurements(report: E2EReport) -> None:
    by_name = {m.name.split(" @")[0]: m for m in report.measurements if m.layers == 1}
    ours, dense = by_name["bitnet (packed)"], by_name["dense fp32 torch"]
    assert report.ratios["decode_speedup_vs_dense"] == pytest.approx(
        ours.decode_tokens_per_s / dense.decode_tokens_per_s)
    assert report.ratios["prefill_speedup_vs_dense"] == pytest.approx(
        ours.prefill_tokens_per_s / dense.prefill_tokens_per_s)


def test_text_and_json_output(report: E2EReport) -> None:
    text = format_report(report)
    assert "prefill tok/s" in text and "decode_speedup_vs_dense" in text and "note:" in text
    data = json.loads(json.dumps(report.to_json()))
    assert len(data["measurements"]) == len(report.measurements)


def test_cli_json(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["bench", "e2e", "--shape", "tiny", "--layers", "1", "--prompt-len", "8", "--new-tokens", "3",
                 "--compare", "dense", "--threads", "1", "--json"])  # each model in a spawned process
    out, _ = capsys.readouterr()
    assert code == 0
    data = json.loads(out)
    assert [m["name"] for m in data["measurements"]] == ["bitnet (packed)", "dense fp32 torch @1L"]
    assert data["ratios"]["decode_speedup_vs_dense"] > 0
    assert data["peak_rss_per_phase"] is True
    assert any("fresh process" in n for n in data["notes"])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--shape", "tiny", "--compare", "dense,llama"], "unknown baseline(s) llama"),
        (["--shape", "huge"], "unknown shape 'huge'"),
        (["--shape", "tiny", "--prompt-len", "0"], "--prompt-len: must be >= 1"),
        (["--shape", "tiny", "--new-tokens", "1"], "--new-tokens: must be >= 2"),
        (["--shape", "tiny", "--prompt-len", "250", "--new-tokens", "10"], "exceed the context (256)"),
        (["--shape", "tiny", "--compare-layers", "5"], "--compare-layers: must be in 1..2"),
        ([], "give a MODEL directory or --shape NAME"),
    ],
)
def test_bad_arguments(capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    code = main(["bench", "e2e", *argv])
    _, err = capsys.readouterr()
    assert code == 2 and message in err


def test_compare_depth_is_cut_to_fit_memory() -> None:
    config = shape_config("2b4t")
    assert choose_compare_layers(config, None, ["dense"], 64 * 10**9) == (30, None)
    layers, note = choose_compare_layers(config, None, ["dense"], 8 * 10**9)
    assert 1 <= layers < 30 and note is not None and "cut to" in note
    assert choose_compare_layers(config, 4, ["dense"], 1) == (4, None)
    assert choose_compare_layers(config, None, [], 1) == (30, None)
    assert parse_compare("none") == [] and parse_compare("Dense, transformers") == ["dense", "transformers"]
    with pytest.raises(ConfigError, match="bogus"):
        parse_compare("bogus")


def test_memory_readings() -> None:
    assert rss_bytes() > 0 and peak_rss_bytes() >= rss_bytes() - 16 * 2**20
    if reset_peak_rss():
        assert peak_rss_bytes() <= rss_bytes() + 16 * 2**20


def test_packed_model_is_small_and_dense_twin_has_the_same_weights() -> None:
    packed = build_random_model("tiny", seed=4)
    dense = build_dense_model("tiny", seed=4)
    n_ternary = packed.parameter_counts()["ternary"]
    assert tensor_bytes(dense) - tensor_bytes(packed) > 3 * n_ternary  # fp32 vs ~2 bits per weight
    assert torch.equal(packed.model.embed_tokens.weight.float(), dense.model.embed_tokens.weight)
    gate_up = packed.model.layers[0].get_submodule("mlp.gate_up_proj")
    assert isinstance(gate_up, BitLinear)
    wq, scale = gate_up.ternary()
    dense_w = dense.model.layers[0].get_submodule("mlp.gate_up_proj").weight
    torch.testing.assert_close(dense_w, wq.float() * scale[:, None])
    # the dense twin of the packed model (what a model directory gets) is the same dense model
    twin = dense_twin(packed).state_dict()
    assert twin.keys() == dense.state_dict().keys()
    assert all(torch.equal(t, dense.state_dict()[k]) for k, t in twin.items())
    # the dense twin runs the same architecture: its greedy tokens mostly agree with the packed model
    cfg = GenerationConfig(max_new_tokens=1, stop_at_eos=False)
    prompts = [[256, i, i + 1, i + 2] for i in range(0, 200, 10)]
    a = [r.token_ids[0] for r in Engine(packed).generate(prompts, cfg)]
    b = [r.token_ids[0] for r in Engine(dense).generate(prompts, cfg)]
    assert sum(x == y for x, y in zip(a, b, strict=True)) >= len(prompts) // 2


def test_model_directory_source(tmp_path: pytest.TempPathFactory) -> None:
    from pathlib import Path

    from bno_bitnet.hf import save_pretrained

    model_dir = save_pretrained(build_random_model("tiny", seed=5), Path(str(tmp_path)) / "m")
    report = run_e2e(model_dir=model_dir, threads=1, prompt_len=8, new_tokens=3, compare=("dense",),
                     int8_head=True, isolate=False)
    assert report.source == str(model_dir) and report.compare_layers == 2
    assert [m.name for m in report.measurements] == [
        "bitnet (packed)", "bitnet (packed, int8 head)", "dense fp32 torch @2L"]
    assert report.ratios["decode_speedup_vs_dense"] > 0
    assert report.ratios["int8_head_decode_speedup_vs_dense"] > 0  # same depth: the int8 head is compared too
    with pytest.raises(ConfigError, match="--layers only applies with --shape"):
        run_e2e(model_dir=model_dir, layers=1, compare=())


def test_spread_and_head_parsing() -> None:
    from bno_bitnet.bench_e2e import parse_heads, spread

    assert spread([10.0, 11.0, 9.0]) == pytest.approx(0.2)
    assert spread([5.0]) == 0.0
    assert parse_heads("int8, Q4") == ["int8", "q4"]
    assert parse_heads("") == ["float"]
    with pytest.raises(ConfigError, match="unknown precision"):
        parse_heads("int4")


def test_busy_process_spins_on_its_core_and_is_reaped() -> None:
    from bno_bitnet.bench_e2e import busy_process

    with busy_process(0) as pid:
        assert os.sched_getaffinity(pid) == {0}
        assert os.path.exists(f"/proc/{pid}")
    assert not os.path.exists(f"/proc/{pid}"), "the busy process is killed and reaped"
    with pytest.raises(ConfigError, match="busy-core"), busy_process(10_000):
        pass


def test_quantized_heads_and_busy_runs_are_reported() -> None:
    report = run_e2e(shape="tiny", layers=1, threads=1, prompt_len=8, new_tokens=4, compare=[], repeats=2,
                     heads=["int8", "q4"], busy_core=0, isolate=False)
    by_head = {m.head: m for m in report.measurements}
    assert set(by_head) == {"float", "int8", "q4"}
    assert by_head["float"].logits_rel_rms_error is None
    for head in ("int8", "q4"):
        m = by_head[head]
        assert m.logits_rel_rms_error is not None and 0 < m.logits_rel_rms_error < 0.5
        assert m.top1_agreement is not None and 0 <= m.top1_agreement <= 1
    for m in report.measurements:
        assert len(m.decode_runs) == 2 and len(m.busy_decode_runs) == 2 and m.busy_core == 0
        assert m.bytes_per_token > 0 and m.read_bytes_per_s > 0
    assert by_head["q4"].bytes_per_token < by_head["int8"].bytes_per_token
    text = format_report(report)
    assert "steadiness" in text and "head precision vs the float head" in text and "GB/s read" in text
