"""BitNetConfig, BitNetForCausalLM (modes, fused projections), KV cache, left padding, int8 head, memory."""

from __future__ import annotations

import pytest
import torch

from bno_bitnet.errors import ConfigError, ContextLengthError
from bno_bitnet.hf import from_pretrained, save_pretrained
from bno_bitnet.kv_cache import KVCache
from bno_bitnet.layers import BitLinear
from bno_bitnet.model import BitNetConfig, BitNetForCausalLM, DecoderLayer
from bno_bitnet.shapes import shape_config
from bno_kernels.shapes import HEAD_DIM_2B4T, PROJECTIONS_2B4T
from tests.bitnet.conftest import TinyHfDir
from tests.bitnet.tiny import config_kwargs


def _model(config: BitNetConfig, seed: int = 0) -> BitNetForCausalLM:
    torch.manual_seed(seed)
    return BitNetForCausalLM(config, "train").eval()


def test_config_round_trip_and_legacy_rope(tiny_config: BitNetConfig) -> None:
    d = tiny_config.to_hf_dict()
    assert d["rope_parameters"]["rope_theta"] == tiny_config.rope_theta
    assert BitNetConfig.from_hf_dict(d) == tiny_config
    legacy = {k: v for k, v in d.items() if k != "rope_parameters"}
    legacy["rope_theta"] = 10000.0
    assert BitNetConfig.from_hf_dict(legacy).rope_theta == 10000.0


def test_2b4t_shape_has_the_kernel_benchmarks_matmuls() -> None:
    config = shape_config("2b4t")
    assert config.head_dim == HEAD_DIM_2B4T == 128
    assert {name.split(".")[1]: shape for name, shape in config.linear_shapes().items()} == PROJECTIONS_2B4T


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"hidden_size": None}, "hidden_size"),
        ({"num_key_value_heads": 3}, "num_key_value_heads"),
        ({"hidden_act": "silu"}, "hidden_act"),
        ({"rope_parameters": {"rope_type": "yarn", "rope_theta": 1.0}}, "rope_type"),
        ({"vocab_size": -5}, "vocab_size"),
        # untrusted sizes are bounded before anything is allocated
        ({"num_hidden_layers": 1_000_000_000}, "num_hidden_layers"),
        ({"num_hidden_layers": 1e9}, "num_hidden_layers"),
        ({"vocab_size": 1 << 40}, "vocab_size"),
        ({"rms_norm_eps": float("nan")}, "rms_norm_eps"),
        ({"rope_parameters": {"rope_type": "default", "rope_theta": float("inf")}}, "rope_theta"),
        ({"hidden_size": 16_384, "intermediate_size": 262_144, "num_hidden_layers": 1024,
          "num_attention_heads": 128, "num_key_value_heads": 128}, "parameters"),
    ],
)
def test_config_errors_name_file_and_field(tiny_config: BitNetConfig, change: dict[str, object], field: str) -> None:
    d = tiny_config.to_hf_dict()
    for key, value in change.items():
        if value is None:
            del d[key]
        else:
            d[key] = value
    with pytest.raises(ConfigError, match=field) as info:
        BitNetConfig.from_hf_dict(d, "some/dir/config.json")
    assert "some/dir/config.json" in str(info.value)


def test_one_fused_layout_in_both_modes(tiny_config: BitNetConfig, tiny_input_ids: torch.Tensor) -> None:
    model = _model(tiny_config)
    c = tiny_config
    with torch.no_grad():
        ref = model(tiny_input_ids)
        model.convert_("inference")
        out = model(tiny_input_ids)
    layer = model.model.layers[0]
    assert isinstance(layer, DecoderLayer)
    for mode in ("inference", "train"):
        projections = {n: m for n, m in layer.named_modules() if isinstance(m, BitLinear)}
        assert list(projections) == ["self_attn.qkv_proj", "self_attn.o_proj", "mlp.gate_up_proj", "mlp.down_proj"]
        assert projections["self_attn.qkv_proj"].segments == (c.q_size, c.kv_size, c.kv_size)
        assert projections["mlp.gate_up_proj"].segments == (c.intermediate_size, c.intermediate_size)
        assert all(m.mode == mode for m in projections.values())
        if mode == "inference":
            model.convert_("train")
    model.convert_("inference")
    assert ref.dtype == torch.float32 and ref.shape == (2, 11, tiny_config.vocab_size)
    assert (out - ref).abs().max() <= 1e-4
    with torch.no_grad():
        back = model.convert_("train")(tiny_input_ids)
    assert (back - ref).abs().max() <= 1e-4


@pytest.mark.parametrize("config_name", ["gqa", "odd"])
def test_cached_decode_equals_full_sequence(config_name: str, tiny_input_ids: torch.Tensor) -> None:
    config = BitNetConfig(**config_kwargs(config_name))
    model = _model(config).convert_("inference")
    ids = tiny_input_ids
    with torch.no_grad():
        full = model(ids)
        cache = KVCache(config, batch_size=2, max_seq_len=16)
        parts = [model(ids[:, :5], kv_cache=cache)]
        for t in range(5, ids.shape[1]):
            parts.append(model(ids[:, t : t + 1], kv_cache=cache))
    assert cache.length == ids.shape[1]
    stepwise = torch.cat(parts, dim=1)
    assert (stepwise - full).abs().max() <= 1e-4


def test_left_padded_batch_equals_prompts_alone(tiny_config: BitNetConfig) -> None:
    model = _model(tiny_config, seed=3).convert_("inference")
    gen = torch.Generator().manual_seed(7)
    prompts = [torch.randint(3, 100, (n,), generator=gen) for n in (7, 4)]
    width = max(len(p) for p in prompts)
    ids = torch.zeros(2, width, dtype=torch.long)
    mask = torch.zeros(2, width, dtype=torch.long)
    for row, p in enumerate(prompts):
        ids[row, width - len(p) :] = p
        mask[row, width - len(p) :] = 1
    nxt = torch.tensor([[11], [12]])
    with torch.no_grad():
        batched = model(ids, attention_mask=mask)  # no cache
        cache = KVCache(tiny_config, batch_size=2, max_seq_len=12)
        prefill = model(ids, attention_mask=mask, kv_cache=cache)
        step = model(nxt, kv_cache=cache, attention_mask=torch.ones(2, 1, dtype=torch.long))
        for row, p in enumerate(prompts):
            alone = model(torch.cat([p, nxt[row]])[None])  # (1, n + 1, V)
            n = len(p)
            assert (batched[row, width - n :] - alone[0, :n]).abs().max() <= 1e-4
            assert (prefill[row, width - n :] - alone[0, :n]).abs().max() <= 1e-4
            assert (step[row, 0] - alone[0, n]).abs().max() <= 1e-4
    assert cache.seen.tolist() == [8, 5]


def test_cache_overflow_raises(tiny_config: BitNetConfig) -> None:
    model = _model(tiny_config).convert_("inference")
    cache = KVCache(tiny_config, batch_size=1, max_seq_len=4)
    with torch.no_grad():
        model(torch.tensor([[1, 2, 3]]), kv_cache=cache)
        with pytest.raises(ContextLengthError, match="4 tokens"):
            model(torch.tensor([[4, 5]]), kv_cache=cache)


def test_int8_head_close_and_reported(tiny_config: BitNetConfig, tiny_input_ids: torch.Tensor) -> None:
    model = _model(tiny_config).convert_("inference")
    with torch.no_grad():
        ref = model(tiny_input_ids)
        model.quantize_head_int8()
        out = model(tiny_input_ids)
        last = model(tiny_input_ids, num_logits_to_keep=1)
    assert model.lm_head is None and model.head_int8 is not None
    assert (out - ref).abs().max() <= 0.02 * ref.abs().max()
    torch.testing.assert_close(last, out[:, -1:])
    report = model.memory_report()
    assert report["lm_head"] == 0
    # the int8 table, its fp32 row scales and its int32 row sums (the native kernel's offset term)
    assert report["lm_head_int8"] == tiny_config.vocab_size * tiny_config.hidden_size + tiny_config.vocab_size * 8


def test_loaded_packed_model_is_under_2_1_bits(tmp_path: object) -> None:
    from pathlib import Path

    config = BitNetConfig(vocab_size=64, hidden_size=256, intermediate_size=688, num_hidden_layers=1,
                          num_attention_heads=4, num_key_value_heads=2)
    torch.manual_seed(0)
    model = BitNetForCausalLM(config, "inference")
    out = save_pretrained(model, Path(str(tmp_path)) / "m")
    loaded = from_pretrained(out)
    counts = loaded.parameter_counts()
    report = loaded.memory_report()
    assert report["latent_weights"] == 0
    bits = 8 * report["ternary_packed"] / counts["ternary"]
    assert bits <= 2.1, f"{bits:.3f} bits per ternary weight"
    assert loaded.ternary_bits_per_weight() == pytest.approx(bits)
    dense = [n for n, t in [*loaded.named_parameters(), *loaded.named_buffers()]
             if "proj" in n and t.dim() == 2]
    assert dense == []


def test_bfloat16_model_tracks_float32(tiny_hf_dir: TinyHfDir, tiny_input_ids: torch.Tensor) -> None:
    path = tiny_hf_dir("packed-autobitlinear", "gqa")
    ref = from_pretrained(path)
    bf16 = from_pretrained(path, dtype=torch.bfloat16)
    assert bf16.model.embed_tokens.weight.dtype == torch.bfloat16
    with torch.no_grad():
        a, b = ref(tiny_input_ids), bf16(tiny_input_ids)
    assert b.dtype == torch.float32
    assert (a - b).abs().max() <= 0.05 * a.abs().max(), float((a - b).abs().max())
    assert bf16.memory_report()["embedding"] == ref.memory_report()["embedding"] // 2


def test_bf16_model_with_fp32_cache_decodes(tiny_config: BitNetConfig, tiny_input_ids: torch.Tensor) -> None:
    torch.manual_seed(0)
    model = BitNetForCausalLM(tiny_config, "train", dtype=torch.bfloat16).eval().convert_("inference")
    with torch.no_grad():
        full = model(tiny_input_ids)
        cache = KVCache(tiny_config, batch_size=2, max_seq_len=16, dtype=torch.float32)
        parts = [model(tiny_input_ids[:, :6], kv_cache=cache)]
        parts += [model(tiny_input_ids[:, t : t + 1], kv_cache=cache) for t in range(6, tiny_input_ids.shape[1])]
    stepwise = torch.cat(parts, dim=1)
    assert stepwise.dtype == torch.float32 and torch.isfinite(stepwise).all()
    assert (stepwise - full).abs().max() <= 0.05 * full.abs().max()
