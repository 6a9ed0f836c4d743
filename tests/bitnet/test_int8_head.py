"""The int8 head, the int8 tied-embedding lookup that shares its table, and KVCache.select_rows."""

from __future__ import annotations

import pytest
import torch

from bno_bitnet.errors import BitNetError, ConfigError
from bno_bitnet.kv_cache import KVCache
from bno_bitnet.model import BitNetConfig, BitNetForCausalLM, Int8Embedding
from bno_bitnet.shapes import build_random_model


def _config(tied: bool = True) -> BitNetConfig:
    return BitNetConfig(vocab_size=211, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                        num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=tied)


def test_int8_embedding_shares_the_head_table_and_stays_close() -> None:
    torch.manual_seed(0)
    model = BitNetForCausalLM(_config(), mode="train").convert_("inference")
    ids = torch.tensor([[3, 17, 200, 5, 42]])
    with torch.no_grad():
        reference = model(ids)  # (1, T, V) float embedding and head
        float_table = model.model.embed_tokens.weight.detach().clone()  # (V, H)
        before = model.memory_report()
        model.quantize_head_int8(int8_embedding=True)
        assert isinstance(model.model.embed_tokens, Int8Embedding)
        head = model.head_int8
        assert head is not None
        looked_up = model.model.embed_tokens(ids)  # (1, T, H)
        expected = head.weight_int8[ids].float() * head.scale[ids].unsqueeze(-1)
        assert torch.equal(looked_up, expected), "the lookup must read the head's int8 table"
        # per-row int8: each element within half a quantization step of the float table
        step = head.scale[ids].unsqueeze(-1)  # (1, T, 1)
        assert bool(((looked_up - float_table[ids]).abs() <= step / 2 + 1e-7).all())
        after = model.memory_report()
        got = model(ids)
    assert after["embedding"] == 0 and before["embedding"] > 0, "the float embedding is dropped"
    assert after["lm_head_int8"] > 0
    assert torch.equal(got.argmax(-1), reference.argmax(-1)) or (got - reference).abs().max() < 0.1
    with pytest.raises(BitNetError, match="no float embedding to save"):
        _ = model.model.embed_tokens.weight


def test_int8_embedding_refused_for_untied_models() -> None:
    model = BitNetForCausalLM(_config(tied=False), mode="inference")
    with pytest.raises(ConfigError, match="tied"):
        model.quantize_head_int8(int8_embedding=True)


def test_random_shape_builder_accepts_int8_embedding() -> None:
    model = build_random_model("tiny", layers=1, int8_embedding=True)
    assert isinstance(model.model.embed_tokens, Int8Embedding)
    assert model(torch.tensor([[1, 2, 3]])).shape[-1] == model.config.vocab_size


def test_select_rows_keeps_the_chosen_rows() -> None:
    config = _config()
    cache = KVCache(config, batch_size=3, max_seq_len=8)
    cache.keys.normal_()
    cache.values.normal_()
    cache.valid[:, :2] = True
    cache.seen[:] = torch.tensor([2, 1, 2])
    keep = torch.tensor([2, 0])
    keys, values, valid, seen = cache.keys.clone(), cache.values.clone(), cache.valid.clone(), cache.seen.clone()
    length = cache.length
    cache.select_rows(keep)
    assert cache.batch_size == 2 and cache.length == length
    assert torch.equal(cache.keys, keys[:, keep]) and torch.equal(cache.values, values[:, keep])
    assert torch.equal(cache.valid, valid[keep]) and torch.equal(cache.seen, seen[keep])


def test_int8_head_native_and_torch_paths_agree_bit_for_bit() -> None:
    """Up to 64 rows go to the native kernel, more to torch._int_mm: the same logits either way."""
    from bno_bitnet.model import Int8Head

    torch.manual_seed(1)
    head = Int8Head(torch.randn(300, 64))
    h = torch.randn(70, 64) * 2  # (70, H): one call of 70 rows (torch), then row by row (native)
    together = head(h)  # (70, V)
    one_by_one = torch.cat([head(h[i : i + 1]) for i in range(70)])
    assert torch.equal(together, one_by_one)


def test_q4_head_is_close_to_the_float_head_and_smaller() -> None:
    torch.manual_seed(2)
    model = BitNetForCausalLM(_config(), mode="inference")
    ids = torch.tensor([[3, 17, 200, 5, 42, 8]])
    with torch.no_grad():
        reference = model(ids)  # (1, T, V)
        model.quantize_head("q4")
        got = model(ids)
    assert model.head_precision == "q4"
    report = model.memory_report()
    assert 0 < report["lm_head_q4"] < _config().vocab_size * _config().hidden_size  # under a byte per weight
    rel = float((got - reference).square().mean().sqrt() / reference.square().mean().sqrt())
    assert rel < 0.2, rel
    with pytest.raises(ConfigError, match="already quantized"):
        model.quantize_head("int8")
    with pytest.raises(ConfigError, match="expected one of"):
        BitNetForCausalLM(_config(), mode="inference").quantize_head("int3")
