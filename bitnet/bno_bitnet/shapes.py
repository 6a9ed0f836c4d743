"""Named model shapes, random-weight models built directly in packed form, and their dense fp32 twins.

``build_random_model("2b4t")`` makes a model of microsoft/bitnet-b1.58-2B-4T's shape whose ternary
projections are random codes packed one projection at a time: no dense fp32 copy of the model ever
exists (the largest temporary is one fused int8 (N, K) matrix). Embeddings (tied head) are bf16 by default.

Every ternary matrix comes from its own generator, seeded by ``(seed, layer, projection)``, so the same
seed gives the same weights at any depth and in any form. The dense twin (``nn.Linear`` layers holding
``Wq * beta``, for like-for-like benchmarks) is built by one routine, :func:`_densify_layer`, either from
the seed (:func:`build_dense_model`, one layer at a time) or from a loaded model (:func:`dense_twin`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
from torch import nn

from bno_bitnet.errors import ConfigError
from bno_bitnet.layers import BitLinear, Ternary, fuse_ternary
from bno_bitnet.model import FUSED_PROJECTIONS, BitNetConfig, BitNetForCausalLM, DecoderLayer
from bno_kernels.shapes import (
    HIDDEN_SIZE_2B4T,
    INTERMEDIATE_SIZE_2B4T,
    NUM_ATTENTION_HEADS_2B4T,
    NUM_KEY_VALUE_HEADS_2B4T,
)

PROJECTIONS: tuple[str, ...] = ("q", "k", "v", "o", "gate", "up", "down")
_EMBED_CHUNK_ROWS = 8192


def _2b4t() -> BitNetConfig:
    """The shape of microsoft/bitnet-b1.58-2B-4T (its config.json; the matmul dimensions are
    :mod:`bno_kernels.shapes`')."""
    return BitNetConfig(
        vocab_size=128256, hidden_size=HIDDEN_SIZE_2B4T, intermediate_size=INTERMEDIATE_SIZE_2B4T,
        num_hidden_layers=30, num_attention_heads=NUM_ATTENTION_HEADS_2B4T,
        num_key_value_heads=NUM_KEY_VALUE_HEADS_2B4T, max_position_embeddings=4096, rms_norm_eps=1e-5,
        rope_theta=500000.0, tie_word_embeddings=True, bos_token_id=128000, eos_token_id=128001,
    )


def _tiny() -> BitNetConfig:
    return BitNetConfig(vocab_size=320, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                        tie_word_embeddings=True, bos_token_id=256, eos_token_id=257)


SHAPES: dict[str, Callable[[], BitNetConfig]] = {
    "2b4t": _2b4t,
    "tiny": _tiny,
}


def shape_config(name: str, layers: int | None = None) -> BitNetConfig:
    """The config of a named shape (case-insensitive), optionally cut to ``layers`` layers."""
    key = name.strip().lower()
    if key not in SHAPES:
        raise ConfigError(f"unknown shape {name!r}; known shapes: {', '.join(sorted(SHAPES))}")
    config = SHAPES[key]()
    if layers is not None:
        if isinstance(layers, bool) or not isinstance(layers, int) or layers < 1:
            raise ConfigError(f"--layers: must be a positive integer, got {layers!r}")
        config.num_hidden_layers = layers
    return config


def random_ternary(seed: int, layer: int, projection: str, shape: tuple[int, int]) -> Ternary:
    """The ternary matrix of ``projection`` (q k v o gate up down) in ``layer``: int8 (N, K) codes in
    {-1, 0, 1} and beta (0-d fp32).

    Deterministic in ``(seed, layer, projection)``; beta = 1/sqrt(K) keeps activations O(1).
    """
    index = PROJECTIONS.index(projection)
    gen = torch.Generator(device="cpu")
    gen.manual_seed((seed * 1_000_003 + layer * 101 + index + 1) % 2**63)
    n, k = shape
    wq = torch.randint(-1, 2, (n, k), dtype=torch.int8, generator=gen)  # (N, K)
    return wq, torch.tensor(1.0 / math.sqrt(k), dtype=torch.float32)


def _random_projections(config: BitNetConfig, seed: int, layer: int) -> Iterator[tuple[str, Ternary]]:
    """Each fused projection of ``layer`` (module path, (wq (N, K), scale)), one at a time."""
    shapes = config.linear_shapes()  # transformers' name -> (N, K)
    for fused, parts in FUSED_PROJECTIONS.items():
        short = [p.split(".")[1].removesuffix("_proj") for p in parts]  # "self_attn.q_proj" -> "q"
        yield fused, fuse_ternary([random_ternary(seed, layer, s, shapes[p]) for s, p in zip(short, parts, strict=True)])


def fill_random_embedding(weight: torch.Tensor, seed: int, std: float,
                          round_to: torch.dtype | None = None) -> None:
    """Fill an embedding (V, H) in place with N(0, std), in row chunks (no fp32 copy of the whole table).

    The values depend on ``seed`` only; ``round_to`` rounds them through that dtype first (so an fp32
    table can hold exactly the values of a bf16 one).
    """
    gen = torch.Generator(device="cpu")
    gen.manual_seed((seed * 1_000_003 + 7_777_777) % 2**63)
    with torch.no_grad():
        for start in range(0, weight.shape[0], _EMBED_CHUNK_ROWS):
            rows = weight[start:start + _EMBED_CHUNK_ROWS]  # (C, H)
            values = torch.randn(rows.shape, generator=gen) * std
            rows.copy_(values if round_to is None else values.to(round_to))


def _new_model(cfg: BitNetConfig, dtype: torch.dtype, embed_dtype: torch.dtype) -> BitNetForCausalLM:
    """An uninitialized inference-mode model: activations in ``dtype``, embeddings stored in ``embed_dtype``."""
    return BitNetForCausalLM(cfg, "inference", dtype=dtype, embed_dtype=embed_dtype, init=False)


def _fill_embeddings(model: BitNetForCausalLM, cfg: BitNetConfig, seed: int,
                     round_to: torch.dtype | None = None) -> None:
    """Random embedding (and untied head); ``round_to``: round the values through that dtype first."""
    fill_random_embedding(model.model.embed_tokens.weight, seed, cfg.initializer_range, round_to)
    if model.lm_head is not None:
        fill_random_embedding(model.lm_head.weight, seed + 1, cfg.initializer_range, round_to)


def _check_shape_args(config: BitNetConfig | str, layers: int | None) -> BitNetConfig:
    if isinstance(config, str):
        return shape_config(config, layers)
    if layers is not None:
        raise ConfigError("layers: give it with a shape name, or set num_hidden_layers in the config")
    return config


def build_random_model(config: BitNetConfig | str, *, layers: int | None = None, seed: int = 0,
                       dtype: torch.dtype = torch.float32, embed_dtype: torch.dtype = torch.bfloat16,
                       lm_head_int8: bool = False, int8_embedding: bool = False) -> BitNetForCausalLM:
    """An inference-mode model of a shape (name or config) with random packed ternary weights.

    Built layer by layer: each projection's int8 codes are generated, packed and dropped before the next.
    ``dtype``: activations and norms; ``embed_dtype``: storage of the embedding (and untied head); bf16
    keeps 2B4T's table at 656 MB.
    """
    cfg = _check_shape_args(config, layers)
    for name, value in (("dtype", dtype), ("embed_dtype", embed_dtype)):
        if value not in (torch.float32, torch.bfloat16):
            raise ConfigError(f"{name}: expected float32 or bfloat16, got {value}")
    model = _new_model(cfg, dtype, embed_dtype)
    _fill_embeddings(model, cfg, seed)
    for idx, layer in enumerate(model.model.layers):
        for name, (wq, scale) in _random_projections(cfg, seed, idx):
            _bitlinear(layer, name).set_ternary(wq, scale)
    if lm_head_int8 or int8_embedding:
        model.quantize_head_int8(int8_embedding=int8_embedding)
    release_freed_memory()
    return model.eval()


def dense_linear(wq: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype) -> nn.Linear:
    """nn.Linear (no bias) holding ``wq * scale`` in ``dtype``: wq int8 (N, K), scale 0-d or (N,) per row."""
    n, k = wq.shape
    linear = nn.Linear(k, n, bias=False, device="meta")
    rows = scale.to(dtype).reshape(-1, 1) if scale.dim() else scale.to(dtype)  # (N, 1) or ()
    linear.weight = nn.Parameter(wq.to(dtype) * rows, requires_grad=False)  # (N, K)
    return linear


def _densify_layer(layer: DecoderLayer, projections: Iterable[tuple[str, Ternary]], dtype: torch.dtype) -> None:
    """Replace the named projections of ``layer`` by :func:`dense_linear` of the given ternary weights."""
    for name, (wq, scale) in projections:
        layer.set_submodule(name, dense_linear(wq, scale, dtype))


def build_dense_model(config: BitNetConfig | str, *, layers: int | None = None, seed: int = 0,
                      dtype: torch.dtype = torch.float32,
                      embed_values: torch.dtype = torch.bfloat16) -> BitNetForCausalLM:
    """The dense twin of :func:`build_random_model` (same seed, same weights): plain ``nn.Linear`` layers.

    Everything is stored in ``dtype`` (fp32 by default): weights ``Wq * beta``, and the embedding with the
    values of :func:`build_random_model`'s table of dtype ``embed_values``. Activations are not quantized:
    the usual dense baseline. Built one layer at a time (peak: the finished layers plus one).
    """
    cfg = _check_shape_args(config, layers)
    model = BitNetForCausalLM(cfg, "inference", dtype=dtype, init=False)
    _fill_embeddings(model, cfg, seed, round_to=embed_values)
    for idx, layer in enumerate(model.model.layers):
        assert isinstance(layer, DecoderLayer)
        _densify_layer(layer, _random_projections(cfg, seed, idx), dtype)
    release_freed_memory()
    return model.eval()


def dense_twin(model: BitNetForCausalLM) -> BitNetForCausalLM:
    """A dense fp32 copy of a model (``nn.Linear`` layers with ``Wq * beta``), built layer by layer."""
    dense = BitNetForCausalLM(model.config, "inference", dtype=torch.float32, init=False)
    with torch.no_grad():
        dense.model.embed_tokens.weight.copy_(model.model.embed_tokens.weight.float())
        if dense.lm_head is not None and model.lm_head is not None:
            dense.lm_head.weight.copy_(model.lm_head.weight.float())
        for name, param in model.named_parameters():
            if name.endswith("norm.weight"):
                dense.get_parameter(name).copy_(param.float())
    for src, dst in zip(model.model.layers, dense.model.layers, strict=True):
        assert isinstance(dst, DecoderLayer)
        _densify_layer(dst, ((name, _bitlinear(src, name).ternary()) for name in FUSED_PROJECTIONS), torch.float32)
    return dense.eval()


def _bitlinear(layer: nn.Module, name: str) -> BitLinear:
    module = layer.get_submodule(name)
    assert isinstance(module, BitLinear), f"{name} is a {type(module).__name__}, not a BitLinear"
    return module


def release_freed_memory() -> bool:
    """Hand memory freed by a build or a load (per-projection temporaries) back to the OS (glibc
    ``malloc_trim``).

    glibc keeps freed blocks below its mmap threshold in the heap (and raises that threshold after large
    frees), which otherwise shows as resident memory of the model. Returns False where there is no glibc.
    """
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


@functools.cache
def _malloc_trim() -> Any:
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def use_int8_head(model: BitNetForCausalLM, int8_embedding: bool = False) -> BitNetForCausalLM:
    """Switch ``model`` to a per-row int8 output head; ``int8_embedding`` (tied models) also looks the
    embeddings up in that int8 table and drops the float embedding."""
    model.quantize_head_int8(int8_embedding=int8_embedding)
    release_freed_memory()
    return model
