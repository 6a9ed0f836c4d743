"""The GGUF writer for the llama.cpp comparison: read back with the gguf package's own reader, the TQ2_0
tensors dequantize to exactly our ternary codes times beta (beta in fp16, as TQ2_0 stores it)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from bno_bitnet.errors import ConfigError
from bno_bitnet.gguf_export import write_gguf
from bno_bitnet.model import BitNetConfig, BitNetForCausalLM
from bno_bitnet.shapes import build_random_model

gguf = pytest.importorskip("gguf")


def _config(**changes: object) -> BitNetConfig:
    fields: dict[str, object] = dict(vocab_size=512, hidden_size=256, intermediate_size=512, num_hidden_layers=2,
                                     num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                                     tie_word_embeddings=True, bos_token_id=300, eos_token_id=301)
    fields.update(changes)
    return BitNetConfig(**fields)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def model() -> BitNetForCausalLM:
    return build_random_model(_config(), seed=3)


def _tensors(path: Path) -> dict[str, object]:
    return {t.name: t for t in gguf.GGUFReader(str(path)).tensors}


@pytest.mark.parametrize("head", ["f16", "q8_0"])
def test_ternary_tensors_are_our_codes_times_beta(model: BitNetForCausalLM, tmp_path: Path, head: str) -> None:
    path = write_gguf(model, tmp_path / "m.gguf", head=head)
    tensors = _tensors(path)
    c = model.config
    assert len(tensors) == 2 + 11 * c.num_hidden_layers  # embedding, final norm; 4 norms + 7 projections per layer
    layer: object = model.model.layers[1]
    qkv_codes, qkv_beta = layer.self_attn.qkv_proj.ternary()  # type: ignore[attr-defined]
    down_codes, down_beta = layer.mlp.down_proj.ternary()  # type: ignore[attr-defined]
    qkv_rows = qkv_beta.expand(qkv_codes.shape[0]) if qkv_beta.dim() == 0 else qkv_beta
    for name, codes, beta in (("attn_q", qkv_codes[: c.q_size], qkv_rows[: c.q_size]),
                              ("attn_v", qkv_codes[c.q_size + c.kv_size :], qkv_rows[c.q_size + c.kv_size :]),
                              ("ffn_down", down_codes, down_beta.expand(down_codes.shape[0]))):
        t: object = tensors[f"blk.1.{name}.weight"]
        assert t.tensor_type == gguf.GGMLQuantizationType.TQ2_0  # type: ignore[attr-defined]
        got = gguf.quants.dequantize(t.data, t.tensor_type)  # type: ignore[attr-defined]
        expected = codes.float().numpy() * beta.half().float().numpy()[:, None]
        assert got.shape == expected.shape
        assert np.array_equal(got, expected), name
    embd: object = tensors["token_embd.weight"]
    table = gguf.quants.dequantize(embd.data, embd.tensor_type)  # type: ignore[attr-defined]
    float_table = model.model.embed_tokens.weight.detach().float().numpy()
    if head == "f16":
        assert np.array_equal(table, float_table.astype(np.float16).astype(np.float32))
    else:
        assert np.abs(table - float_table).max() <= np.abs(float_table).max() / 127 + 1e-6
    norm: object = tensors["blk.0.attn_sub_norm.weight"]
    assert norm.tensor_type == gguf.GGMLQuantizationType.F32  # type: ignore[attr-defined]


def test_metadata_describes_the_model(model: BitNetForCausalLM, tmp_path: Path) -> None:
    reader = gguf.GGUFReader(str(write_gguf(model, tmp_path / "m.gguf")))

    def value(key: str) -> object:
        field = reader.fields[key]
        return field.contents()

    c = model.config
    assert value("general.architecture") == "bitnet"
    assert value("bitnet.block_count") == c.num_hidden_layers
    assert value("bitnet.embedding_length") == c.hidden_size
    assert value("bitnet.attention.head_count_kv") == c.num_key_value_heads
    assert value("tokenizer.ggml.bos_token_id") == 300
    assert len(value("tokenizer.ggml.tokens")) == c.vocab_size  # type: ignore[arg-type]
    assert not list(tmp_path.glob("*.partial")), "written through a temporary file"


def test_refusals(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="tied"):
        write_gguf(build_random_model(_config(tie_word_embeddings=False), seed=0), tmp_path / "a.gguf")
    with pytest.raises(ConfigError, match="divisible by 256"):
        write_gguf(build_random_model("tiny", seed=0), tmp_path / "b.gguf")
    with pytest.raises(ConfigError, match="inference mode"):
        write_gguf(BitNetForCausalLM(_config(), mode="train"), tmp_path / "c.gguf")
    with pytest.raises(ConfigError, match="gguf-head"):
        write_gguf(build_random_model(_config(), seed=0), tmp_path / "d.gguf", head="q4_0")
    assert not list(tmp_path.iterdir())


def test_llama_cpp_loads_and_runs_it(model: BitNetForCausalLM, tmp_path: Path) -> None:
    """With the bench extra (llama-cpp-python; outside CI, it builds llama.cpp), llama.cpp runs the file."""
    pytest.importorskip("llama_cpp", reason="llama-cpp-python (the bench extra, outside CI) is absent")
    from bno_bitnet import bench_llamacpp

    for head in ("f16", "q6_k"):
        path = write_gguf(model, tmp_path / f"m-{head}.gguf", head=head)
        llm = bench_llamacpp.load(path, threads=1, context=64, batch=16)
        run = bench_llamacpp.generate(llm, [1, 2, 3, 4, 5], 4)
        assert run.decode_steps == 3 and run.prefill_s > 0
    assert torch.get_num_threads() >= 1


def test_compare_llama_cpp_without_the_bench_extra_is_one_clear_line(monkeypatch: pytest.MonkeyPatch,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    import sys

    from bno_bitnet.cli import main

    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # import fails as when it is absent
    assert main(["bench", "e2e", "--shape", "tiny", "--compare", "llama.cpp"]) == 2
    err = capsys.readouterr().err
    assert "llama-cpp-python" in err and "[bench]" in err and len(err.strip().splitlines()) == 1
