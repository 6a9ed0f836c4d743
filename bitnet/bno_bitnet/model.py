"""The BitNet b1.58 causal LM (transformers' ``BitNetForCausalLM`` architecture) and its config.

Architecture (docs/architecture.md, "BitNet b1.58"): Llama-style pre-norm decoder blocks without biases; attention with RoPE
and GQA whose output passes ``attn_sub_norm`` before ``o_proj``; a ReLU² MLP
``down(ffn_sub_norm(relu(gate(x))² · up(x)))``; every projection inside the blocks is a
:class:`bno_bitnet.layers.BitLinear`; embeddings, norms and the head stay high precision (an optional
per-row int8 head is offered for fast decoding).

One layout in both modes (as in gpt-fast): q|k|v and gate|up are each one fused :class:`BitLinear` whose
row blocks keep their own per-tensor beta, so the result is that of the separate projections (the
activation quantization is shared). :data:`FUSED_PROJECTIONS` maps them to transformers' separate
projections; :mod:`bno_bitnet.hf` fuses at load and splits at save. Modes: ``"train"`` keeps latent float
weights (straight-through fake quantization), ``"inference"`` packed 2-bit weights and the kernels.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from bno_bitnet.errors import BitNetError, ConfigError
from bno_bitnet.kv_cache import KVCache
from bno_bitnet.layers import BitLinear, check_mode
from bno_kernels.reference import quantize_activations

# Each ternary projection of a decoder layer (module path) -> the transformers projections it fuses, in
# row order. The order of the whole table is transformers' (q, k, v, o, gate, up, down).
FUSED_PROJECTIONS: dict[str, tuple[str, ...]] = {
    "self_attn.qkv_proj": ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"),
    "self_attn.o_proj": ("self_attn.o_proj",),
    "mlp.gate_up_proj": ("mlp.gate_proj", "mlp.up_proj"),
    "mlp.down_proj": ("mlp.down_proj",),
}

_REQUIRED_FIELDS = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads")

# Upper bounds checked before anything is allocated: a config is untrusted input, and one that asks for a
# billion layers must be an error, not an hour of allocation. Each is far above any published model
# (2B4T: vocab 128,256, hidden 2,560, intermediate 6,912, 30 layers, 20 heads, head_dim 128, 4,096 positions).
SIZE_LIMITS: dict[str, int] = {
    "vocab_size": 1 << 22,
    "hidden_size": 1 << 16,
    "intermediate_size": 1 << 18,
    "num_hidden_layers": 1 << 10,
    "num_attention_heads": 1 << 10,
    "num_key_value_heads": 1 << 10,
    "max_position_embeddings": 1 << 22,
    "head_dim": 1 << 11,
}
#: The most parameters a config may describe (10x the largest ternary models published).
MAX_PARAMETERS = 1_000_000_000_000


@dataclass
class BitNetConfig:
    """The shape and hyper-parameters of a BitNet model (the fields of transformers' ``BitNetConfig``)."""

    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    max_position_embeddings: int = 2048
    rms_norm_eps: float = 1e-5
    rope_theta: float = 500000.0
    tie_word_embeddings: bool = False
    head_dim: int = 0  # 0 -> derived: hidden_size // num_attention_heads
    bos_token_id: int | None = None
    eos_token_id: int | list[int] | None = None
    pad_token_id: int | None = None
    initializer_range: float = 0.02
    extra: dict[str, Any] = field(default_factory=dict)  # other config.json keys, written back unchanged

    def __post_init__(self) -> None:
        if self.head_dim == 0 and self.num_attention_heads > 0:
            self.head_dim = self.hidden_size // self.num_attention_heads
        self.validate()

    def validate(self, path: str = "config") -> None:
        """Raise :class:`ConfigError` naming the field when the config cannot describe a model."""
        for name in (*_REQUIRED_FIELDS, "num_key_value_heads", "max_position_embeddings", "head_dim"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ConfigError(f"{path}: field {name!r} must be a positive integer, got {value!r}")
            if value > SIZE_LIMITS[name]:
                raise ConfigError(f"{path}: field {name!r} is {value:,}, above the limit of {SIZE_LIMITS[name]:,}")
        for name in ("rms_norm_eps", "rope_theta", "initializer_range"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
                raise ConfigError(f"{path}: field {name!r} must be a positive finite number, got {value!r}")
        parameters = self.vocab_size * self.hidden_size * (1 if self.tie_word_embeddings else 2) + (
            self.num_hidden_layers * sum(o * i for o, i in self.linear_shapes().values()))
        if parameters > MAX_PARAMETERS:
            raise ConfigError(f"{path}: the config describes {parameters:,} parameters, above the limit of "
                              f"{MAX_PARAMETERS:,} (check hidden_size, intermediate_size and num_hidden_layers)")
        if self.num_attention_heads % self.num_key_value_heads:
            raise ConfigError(
                f"{path}: field 'num_key_value_heads' ({self.num_key_value_heads}) must divide "
                f"num_attention_heads ({self.num_attention_heads})"
            )
        if self.head_dim % 2:
            raise ConfigError(f"{path}: field 'head_dim' must be even for RoPE, got {self.head_dim}")

    # ---------------------------------------------------------------- derived sizes
    @property
    def q_size(self) -> int:
        """Output features of q_proj: num_attention_heads * head_dim."""
        return self.num_attention_heads * self.head_dim

    @property
    def kv_size(self) -> int:
        """Output features of k_proj and v_proj: num_key_value_heads * head_dim."""
        return self.num_key_value_heads * self.head_dim

    def linear_shapes(self) -> dict[str, tuple[int, int]]:
        """(out_features, in_features) of each ternary projection of one layer, by HF module path."""
        h, i = self.hidden_size, self.intermediate_size
        return {
            "self_attn.q_proj": (self.q_size, h),
            "self_attn.k_proj": (self.kv_size, h),
            "self_attn.v_proj": (self.kv_size, h),
            "self_attn.o_proj": (h, self.q_size),
            "mlp.gate_proj": (i, h),
            "mlp.up_proj": (i, h),
            "mlp.down_proj": (h, i),
        }

    # ---------------------------------------------------------------- HF config.json
    @classmethod
    def from_hf_dict(cls, d: dict[str, Any], path: str = "config.json") -> BitNetConfig:
        """Build from a transformers ``config.json`` dict; :class:`ConfigError` names ``path`` and the field."""
        if not isinstance(d, dict):
            raise ConfigError(f"{path}: expected a JSON object, got {type(d).__name__}")
        for name in _REQUIRED_FIELDS:
            if name not in d:
                raise ConfigError(f"{path}: required field {name!r} is missing")
        model_type = d.get("model_type", "bitnet")
        if model_type != "bitnet":
            raise ConfigError(f"{path}: field 'model_type' must be 'bitnet', got {model_type!r}")
        act = d.get("hidden_act", "relu2")
        if act != "relu2":
            raise ConfigError(f"{path}: field 'hidden_act' must be 'relu2' (ReLU²), got {act!r}")
        if d.get("attention_bias", False):
            raise ConfigError(f"{path}: field 'attention_bias' is true; BitNet projections have no bias")
        rope = d.get("rope_parameters") or d.get("rope_scaling") or {}
        if not isinstance(rope, dict):
            raise ConfigError(f"{path}: field 'rope_parameters' must be an object, got {rope!r}")
        rope_type = rope.get("rope_type", rope.get("type", "default"))
        if rope_type != "default":
            raise ConfigError(f"{path}: field 'rope_parameters.rope_type' {rope_type!r} is unsupported (default only)")
        theta = rope.get("rope_theta", d.get("rope_theta", 500000.0))
        if theta is None:
            theta = 500000.0
        heads = d["num_attention_heads"]
        kv = d.get("num_key_value_heads")
        known = {
            *_REQUIRED_FIELDS, "num_key_value_heads", "max_position_embeddings", "rms_norm_eps", "rope_theta",
            "rope_parameters", "rope_scaling", "tie_word_embeddings", "head_dim", "bos_token_id", "eos_token_id",
            "pad_token_id", "initializer_range", "model_type", "hidden_act", "attention_bias",
            "quantization_config", "architectures", "dtype", "torch_dtype", "transformers_version",
            "attention_dropout", "use_cache",
        }
        try:
            return cls(
                vocab_size=d["vocab_size"],
                hidden_size=d["hidden_size"],
                intermediate_size=d["intermediate_size"],
                num_hidden_layers=d["num_hidden_layers"],
                num_attention_heads=heads,
                num_key_value_heads=heads if kv is None else kv,
                max_position_embeddings=d.get("max_position_embeddings", 2048),
                rms_norm_eps=d.get("rms_norm_eps", 1e-5),
                rope_theta=theta,
                tie_word_embeddings=bool(d.get("tie_word_embeddings", False)),
                head_dim=d.get("head_dim") or 0,
                bos_token_id=d.get("bos_token_id"),
                eos_token_id=d.get("eos_token_id"),
                pad_token_id=d.get("pad_token_id"),
                initializer_range=d.get("initializer_range", 0.02),
                extra={k: v for k, v in d.items() if k not in known},
            )
        except ConfigError as exc:
            raise ConfigError(str(exc).replace("config:", f"{path}:", 1)) from None
        except TypeError as exc:  # a non-numeric value in a comparison
            raise ConfigError(f"{path}: invalid field value ({exc})") from None

    def to_hf_dict(self) -> dict[str, Any]:
        """The transformers ``config.json`` fields (without ``quantization_config``)."""
        d: dict[str, Any] = dict(self.extra)
        d.update(
            architectures=["BitNetForCausalLM"], model_type="bitnet", hidden_act="relu2", attention_bias=False,
            attention_dropout=0.0, vocab_size=self.vocab_size, hidden_size=self.hidden_size,
            intermediate_size=self.intermediate_size, num_hidden_layers=self.num_hidden_layers,
            num_attention_heads=self.num_attention_heads, num_key_value_heads=self.num_key_value_heads,
            max_position_embeddings=self.max_position_embeddings, rms_norm_eps=self.rms_norm_eps,
            rope_parameters={"rope_theta": self.rope_theta, "rope_type": "default"},
            tie_word_embeddings=self.tie_word_embeddings, bos_token_id=self.bos_token_id,
            eos_token_id=self.eos_token_id, pad_token_id=self.pad_token_id,
            initializer_range=self.initializer_range, use_cache=True,
        )
        if self.head_dim != self.hidden_size // self.num_attention_heads:
            d["head_dim"] = self.head_dim
        return d

    def to_dict(self) -> dict[str, Any]:
        """All fields as a plain dict (for ``bitnet info``)."""
        return asdict(self)


class RMSNorm(nn.Module):
    """``weight * x / sqrt(mean(x²) + eps)`` over the last dim, computed in fp32 (as transformers does)."""

    def __init__(self, size: int, eps: float, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size, dtype=dtype))
        self.eps = eps
        self.shape = (size,)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (..., H) -> (..., H)."""
        if x.dtype == torch.float32 and self.weight.dtype == torch.float32:
            return F.rms_norm(x, self.shape, self.weight, self.eps)
        return self.weight * F.rms_norm(x.float(), self.shape, None, self.eps).to(x.dtype)


def _apply_rope(x: torch.Tensor, cos: torch.Tensor, sin_signed: torch.Tensor) -> torch.Tensor:
    """RoPE: x (B, T, H, D), cos/sin_signed (B, T, 1, D) -> (B, T, H, D).

    ``x * cos + rotate_half(x) * sin`` with ``rotate_half(x) = cat(-x2, x1)``, computed as
    ``x * cos + roll(x, D/2) * cat(-sin1, sin2)``: the same products (negation is exact), fewer ops.
    """
    return x * cos + x.roll(x.shape[-1] // 2, dims=-1) * sin_signed


class Attention(nn.Module):
    """Self-attention with RoPE, GQA and ``attn_sub_norm`` before ``o_proj``; q|k|v fused in one projection."""

    def __init__(self, config: BitNetConfig, mode: str, dtype: torch.dtype, init: bool) -> None:
        super().__init__()
        c = config
        self.num_heads, self.num_kv_heads, self.head_dim = c.num_attention_heads, c.num_key_value_heads, c.head_dim
        self.qkv_proj = BitLinear(c.hidden_size, c.q_size + 2 * c.kv_size, mode=mode, dtype=dtype, init=init,
                                  segments=(c.q_size, c.kv_size, c.kv_size))
        self.o_proj = BitLinear(c.q_size, c.hidden_size, mode=mode, dtype=dtype, init=init)
        self.attn_sub_norm = RMSNorm(c.q_size, c.rms_norm_eps, dtype)

    def forward(
        self,
        x: torch.Tensor,  # (B, T, H)
        cos: torch.Tensor,  # (B, T, 1, D)
        sin: torch.Tensor,  # (B, T, 1, D), sign-folded (see _apply_rope)
        mask: torch.Tensor | None,  # (B, 1, T, S) additive (0 / -inf) in the K/V dtype, or None: causal
        cache: KVCache | None,
        layer: int,
        start: int,
    ) -> torch.Tensor:
        """x (B, T, H) -> (B, T, H); with ``cache``, this layer's K/V go to cache slots ``start .. start + T``."""
        b, t, _ = x.shape
        hq, hkv, d = self.num_heads, self.num_kv_heads, self.head_dim
        qkv = self.qkv_proj(x)  # (B, T, Hq*D + 2 Hkv*D)
        qk = qkv[..., : (hq + hkv) * d].view(b, t, hq + hkv, d)  # (B, T, Hq + Hkv, D)
        v = qkv[..., (hq + hkv) * d :].view(b, t, hkv, d)  # (B, T, Hkv, D)
        qk = _apply_rope(qk, cos, sin)  # (B, T, Hq + Hkv, D): q and k rotated in one pass
        q = qk[:, :, :hq].transpose(1, 2)  # (B, Hq, T, D)
        k = qk[:, :, hq:].transpose(1, 2)  # (B, Hkv, T, D)
        v = v.transpose(1, 2)  # (B, Hkv, T, D)
        if cache is not None:
            end = start + t
            cache.keys[layer, :, :, start:end] = k
            cache.values[layer, :, :, start:end] = v
            k = cache.keys[layer, :, :, :end]  # (B, Hkv, S, D)
            v = cache.values[layer, :, :, :end]
        o = _attention(q, k, v, mask, hq != hkv)  # (B, Hq, T, D)
        o = o.transpose(1, 2).reshape(b, t, hq * d)  # (B, T, Hq*D)
        out: torch.Tensor = self.o_proj(self.attn_sub_norm(o))  # (B, T, H)
        return out


class MLP(nn.Module):
    """``down(ffn_sub_norm(relu(gate(x))² · up(x)))``; gate|up fused in one projection."""

    def __init__(self, config: BitNetConfig, mode: str, dtype: torch.dtype, init: bool) -> None:
        super().__init__()
        h, i = config.hidden_size, config.intermediate_size
        self.intermediate_size = i
        self.gate_up_proj = BitLinear(h, 2 * i, mode=mode, dtype=dtype, init=init, segments=(i, i))
        self.down_proj = BitLinear(i, h, mode=mode, dtype=dtype, init=init)
        self.ffn_sub_norm = RMSNorm(i, config.rms_norm_eps, dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, T, H) -> (B, T, H)."""
        gate, up = self.gate_up_proj(x).split(self.intermediate_size, dim=-1)  # (B, T, I) x 2
        out: torch.Tensor = self.down_proj(self.ffn_sub_norm(torch.relu(gate).square() * up))  # (B, T, H)
        return out


class DecoderLayer(nn.Module):
    """Pre-norm block: ``x + attn(norm(x))`` then ``x + mlp(norm(x))``."""

    def __init__(self, config: BitNetConfig, mode: str, dtype: torch.dtype, init: bool) -> None:
        super().__init__()
        self.self_attn = Attention(config, mode, dtype, init)
        self.mlp = MLP(config, mode, dtype, init)
        self.input_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps, dtype)
        self.post_attention_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps, dtype)

    def forward(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        mask: torch.Tensor | None,
        cache: KVCache | None,
        layer: int,
        start: int,
    ) -> torch.Tensor:
        """x (B, T, H) -> (B, T, H)."""
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, mask, cache, layer, start)
        return x + self.mlp(self.post_attention_layernorm(x))


HEAD_PRECISIONS: tuple[str, ...] = ("float", "int8", "q4")
_NATIVE_HEAD_MAX_ROWS = 64  # logits rows up to which the native head kernels run (decode, last-token prefill)


def _native_head_ops(h: torch.Tensor, *, only_if_fast: bool = True) -> Any:
    """The native CPU kernels' module when they should run this head call, else None. ``only_if_fast``:
    only where they beat torch's matmuls (AVX512-VNNI); the 4-bit head has no torch equivalent and takes
    the native kernel wherever it loads."""
    if h.device.type != "cpu" or h.reshape(-1, h.shape[-1]).shape[0] > _NATIVE_HEAD_MAX_ROWS:
        return None
    from bno_kernels.cpu import ops

    usable = ops.heads_are_fast() if only_if_fast else ops.available()
    return ops if usable else None


class Int8Head(nn.Module):
    """A per-row int8 output head: ``logits = (h @ Wq^T) * scale``; Wq int8 (V, H), scale (V,).

    The activations are quantized per token (absmax int8) and multiplied exactly in int32. On the CPU,
    up to 64 rows run in the native kernel (``head_int8``, the kernels' threads), more in ``torch._int_mm``;
    both give the same logits bit for bit.
    """

    def __init__(self, weight: torch.Tensor, chunk_rows: int = 8192) -> None:
        """Quantize ``weight`` (V, H) float, ``chunk_rows`` rows at a time."""
        super().__init__()
        v, _ = weight.shape
        w_int8 = torch.empty(weight.shape, dtype=torch.int8, device=weight.device)  # (V, H)
        scale = torch.empty(v, dtype=torch.float32, device=weight.device)  # (V,)
        with torch.no_grad():
            for r in range(0, v, chunk_rows):  # row chunks: no fp32 copy of the whole table
                w = weight[r : r + chunk_rows].detach().float()  # (C, H)
                s = w.abs().amax(dim=1).clamp(min=1e-8) / 127.0  # (C,)
                w_int8[r : r + chunk_rows] = torch.round(w / s[:, None]).clamp(-127, 127).to(torch.int8)
                scale[r : r + chunk_rows] = s
        self.weight_int8 = nn.Buffer(w_int8)
        self.scale = nn.Buffer(scale)
        self.row_sum = nn.Buffer(w_int8.sum(dim=1, dtype=torch.int32), persistent=False)  # (V,) for the kernel

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """h (..., H) -> logits (..., V) float32. On the CPU: int8 x int8 -> int32."""
        flat = h.reshape(-1, h.shape[-1]).float()  # (M, H)
        ops = _native_head_ops(flat)
        if ops is not None:
            y = ops.head_int8_cpu(flat, self.weight_int8, self.scale, self.row_sum)  # (M, V)
        elif flat.device.type == "cpu":
            hq, s = quantize_activations(flat)  # (M, H) int8, (M, 1): the kernels' quantizer
            y = torch._int_mm(hq, self.weight_int8.t()).float() * (self.scale[None, :] / s)  # (M, V)
        else:
            y = F.linear(flat, self.weight_int8.float()) * self.scale
        return y.reshape(*h.shape[:-1], -1)


class Q4Head(nn.Module):
    """A 4-bit grouped output head (32 columns per fp16 scale; layout :mod:`bno_kernels.cpu.q4`).

    ``logits = sum_g d_g (q - 8) . xq / s`` with per-token absmax int8 activations, the native kernel
    ``head_q4`` on the CPU; elsewhere (or without the native kernel) the table is dequantized in row chunks.
    4.5 bits per weight: the least bytes per decoded token, at a logits error reported by
    ``bitnet bench e2e --head q4``.
    """

    def __init__(self, weight: torch.Tensor) -> None:
        """Quantize ``weight`` (V, H) float (row chunks: no float copy of the whole table)."""
        super().__init__()
        from bno_kernels.cpu import q4

        self.in_features = int(weight.shape[1])
        codes, scales = q4.quantize(weight)
        self.codes = nn.Buffer(codes.to(weight.device))  # (V, Kp/2) uint8
        self.scales = nn.Buffer(scales.to(weight.device))  # (V, Kp/32) int16 (fp16 bits)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """h (..., H) -> logits (..., V) float32."""
        flat = h.reshape(-1, h.shape[-1]).float()  # (M, H)
        ops = _native_head_ops(flat, only_if_fast=False)
        if ops is not None:
            y = ops.head_q4_cpu(flat, self.codes, self.scales)  # (M, V)
        else:
            from bno_kernels.cpu import q4

            hq8, s = quantize_activations(flat)  # (M, H), (M, 1)
            hq = hq8.float()
            parts = []
            for r in range(0, self.codes.shape[0], 8192):  # (C, H) dequantized rows at a time
                w = q4.dequantize(self.codes[r : r + 8192], self.scales[r : r + 8192], self.in_features)
                parts.append(hq @ w.to(hq.device).t())
            y = torch.cat(parts, dim=-1) / s  # (M, V)
        return y.reshape(*h.shape[:-1], -1)


class Int8Embedding(nn.Module):
    """A tied embedding looked up from the int8 head's table: ``E[ids] = Wq[ids] * scale[ids]``.

    Shares the :class:`Int8Head` buffers (no copy), so a tied model with an int8 head keeps one int8
    table instead of a float embedding plus an int8 head. Lossy (per-row int8), so it is opt-in.
    """

    def __init__(self, head: Int8Head) -> None:
        super().__init__()
        self.head = [head]  # a plain list: the buffers belong to (and are counted under) the head

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        """input_ids (B, T) -> embeddings (B, T, H) float32."""
        head = self.head[0]
        return head.weight_int8[input_ids].float() * head.scale[input_ids].unsqueeze(-1)

    @property
    def weight(self) -> torch.Tensor:
        raise BitNetError(
            "this model looks its embeddings up in the int8 head's table (int8_embedding=True): it has no "
            "float embedding to save; save the model before quantizing its head"
        )


class BitNetModel(nn.Module):
    """Embeddings, decoder layers and the final norm (transformers' ``model.*`` names)."""

    def __init__(self, config: BitNetConfig, mode: str, dtype: torch.dtype, init: bool,
                 embed_dtype: torch.dtype | None = None) -> None:
        super().__init__()
        emb = torch.empty(config.vocab_size, config.hidden_size, dtype=embed_dtype or dtype)
        if init:
            nn.init.normal_(emb, std=config.initializer_range)
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size, _weight=emb)
        self.layers = nn.ModuleList(DecoderLayer(config, mode, dtype, init) for _ in range(config.num_hidden_layers))
        self.norm = RMSNorm(config.hidden_size, config.rms_norm_eps, dtype)


class BitNetForCausalLM(nn.Module):
    """A BitNet b1.58 causal LM. ``forward(input_ids) -> logits (B, T, V) float32``.

    ``mode``: "train" (latent weights, STE) or "inference" (packed weights, :func:`bno_kernels.ternary_matmul`).
    ``dtype``: the high-precision dtype of embeddings, norms, head and activations (fp32 or bf16).
    ``lm_head_int8``: replace the head by a per-row int8 copy (inference speed; the tied embedding stays).
    ``init``: random initialization; ``False`` leaves weights uninitialized for a loader to fill.
    """

    def __init__(
        self,
        config: BitNetConfig,
        mode: str = "train",
        *,
        dtype: torch.dtype = torch.float32,
        lm_head_int8: bool = False,
        init: bool = True,
        embed_dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.mode = check_mode(mode)
        self.dtype = dtype
        self.embed_dtype = embed_dtype or dtype
        self.model = BitNetModel(config, mode, dtype, init, self.embed_dtype)
        self.lm_head: nn.Linear | None = None
        if not config.tie_word_embeddings:
            self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False, device="meta")
            head = torch.empty(config.vocab_size, config.hidden_size, dtype=self.embed_dtype)
            if init:
                nn.init.normal_(head, std=config.initializer_range)
            self.lm_head.weight = nn.Parameter(head)
        self.head_int8: Int8Head | Q4Head | None = None  # a quantized head, when one replaces the float head
        if lm_head_int8:
            self.quantize_head_int8()
        inv_freq = 1.0 / (config.rope_theta ** (torch.arange(0, config.head_dim, 2, dtype=torch.float) / config.head_dim))
        self.inv_freq = nn.Buffer(inv_freq, persistent=False)  # (D/2,)
        self._rope_cache: tuple[torch.Tensor, torch.Tensor] | None = None
        self._fusable: bool | None = None  # whether every layer fits the native fused decode (see _fused_decode)

    # ---------------------------------------------------------------- checkpoints
    @classmethod
    def from_pretrained(cls, path: str | os.PathLike[str], **kwargs: Any) -> BitNetForCausalLM:
        """Load a Hugging Face directory (see :func:`bno_bitnet.hf.from_pretrained` for the keywords)."""
        from bno_bitnet.hf import from_pretrained

        return from_pretrained(path, **kwargs)

    def save_pretrained(self, path: str | os.PathLike[str], **kwargs: Any) -> Path:
        """Write a Hugging Face directory (see :func:`bno_bitnet.hf.save_pretrained` for the keywords)."""
        from bno_bitnet.hf import save_pretrained

        return save_pretrained(self, path, **kwargs)

    # ---------------------------------------------------------------- weights
    def head_weight(self) -> torch.Tensor:
        """The float head weight (V, H): lm_head's, or the embedding when tied."""
        return self.lm_head.weight if self.lm_head is not None else self.model.embed_tokens.weight

    def quantize_head_int8(self, int8_embedding: bool = False) -> None:
        """Use a per-row int8 copy of the head for the logits (drops an untied float head).

        ``int8_embedding`` (tied models only): also look the embeddings up in that int8 table and drop the
        float embedding, so one int8 table serves both (about 0.65 GB less for 2B4T in bf16).
        """
        self.quantize_head("int8", int8_embedding=int8_embedding)

    def quantize_head(self, precision: str, *, int8_embedding: bool = False) -> None:
        """Compute the logits with a quantized copy of the head: ``precision`` "int8" (per-row int8) or "q4"
        (4-bit, groups of 32); "float" keeps the float head. Drops an untied float head.

        ``int8_embedding`` (int8, tied models only): the embeddings are looked up in the int8 table too.
        """
        if precision not in HEAD_PRECISIONS:
            raise ConfigError(f"head precision {precision!r}: expected one of {', '.join(HEAD_PRECISIONS)}")
        if int8_embedding and precision != "int8":
            raise ConfigError("int8_embedding needs the int8 head (its table serves the lookups)")
        if int8_embedding and not self.config.tie_word_embeddings:
            raise ConfigError("int8_embedding needs tied embeddings (tie_word_embeddings: true)")
        if precision == "float":
            return
        if self.head_int8 is not None:
            raise ConfigError("the head is already quantized; quantize it once, from the float head")
        head = Int8Head(self.head_weight()) if precision == "int8" else Q4Head(self.head_weight())
        self.head_int8 = head
        self.lm_head = None  # tied: the embedding stays for the lookup; untied: the float head is dropped
        if int8_embedding:
            assert isinstance(head, Int8Head)
            self.model.embed_tokens = Int8Embedding(head)  # type: ignore[assignment]

    @property
    def head_precision(self) -> str:
        """"float", "int8" or "q4": how the logits are computed."""
        if isinstance(self.head_int8, Int8Head):
            return "int8"
        if isinstance(self.head_int8, Q4Head):
            return "q4"
        return "float"

    def convert_(self, mode: str) -> BitNetForCausalLM:
        """Switch every projection to ``mode`` in place (train -> inference quantizes and packs; the reverse
        installs latent weights that quantize back exactly)."""
        check_mode(mode)
        if mode == self.mode:
            return self
        targets = [(name, m) for name, m in self.named_modules() if isinstance(m, BitLinear)]
        for name, module in targets:
            self.set_submodule(name, module.converted(mode, dtype=self.dtype))
        self.mode = mode
        self._fusable = None
        return self

    def _apply(self, fn: Any, recurse: bool = True) -> BitNetForCausalLM:
        self._fusable = None  # .to() may change devices, dtypes or layouts
        super()._apply(fn, recurse)
        return self

    # ---------------------------------------------------------------- forward
    def _rope(self, positions: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """cos, sign-folded sin (B, T, 1, D) for positions (B, T), from tables grown on demand."""
        need = int(positions.max().item()) + 1 if positions.numel() else 1
        cached = self._rope_cache
        if cached is None or cached[0].shape[0] < need or cached[0].dtype != dtype or cached[0].device != positions.device:
            n = max(need, self.config.max_position_embeddings)
            pos = torch.arange(n, device=positions.device, dtype=torch.float32)
            freqs = pos[:, None] * self.inv_freq.to(positions.device)[None, :]  # (S, D/2)
            emb = torch.cat((freqs, freqs), dim=-1)  # (S, D), as transformers computes it
            half = emb.shape[-1] // 2
            sin = emb.sin()
            sin_signed = torch.cat((-sin[:, :half], sin[:, half:]), dim=-1)  # (S, D)
            cached = (emb.cos().to(dtype), sin_signed.to(dtype))
            self._rope_cache = cached
        return cached[0][positions].unsqueeze(2), cached[1][positions].unsqueeze(2)

    def forward(
        self,
        input_ids: torch.Tensor,  # (B, T) int64
        *,
        kv_cache: KVCache | None = None,
        position_ids: torch.Tensor | None = None,  # (B, T)
        attention_mask: torch.Tensor | None = None,  # (B, T): 1 real token, 0 left padding
        num_logits_to_keep: int = 0,  # > 0: logits of the last n positions only
    ) -> torch.Tensor:
        """Logits (B, T, V) float32 (or (B, n, V) with ``num_logits_to_keep=n``).

        Without a cache: a causal pass over ``input_ids``. With ``kv_cache`` the tokens are appended after
        the cached ones. ``position_ids`` default to the count of real tokens before each one (padding is
        not counted), continuing from the cache.
        """
        b, t = input_ids.shape
        device = input_ids.device
        real = attention_mask.to(torch.bool) if attention_mask is not None else None  # (B, T)
        if position_ids is None:
            if real is not None:
                position_ids = (real.long().cumsum(-1) - 1).clamp(min=0)  # (B, T)
            else:
                position_ids = torch.arange(t, device=device).expand(b, t)
            if kv_cache is not None:
                position_ids = position_ids + kv_cache.seen[:, None]
        start = 0
        mask: torch.Tensor | None = None
        fused = kv_cache is not None and t == 1 and self._fused_decode_ready(kv_cache)
        if kv_cache is not None:
            assert kv_cache.batch_size == b, f"KV cache batch {kv_cache.batch_size} != input batch {b}"
            start = kv_cache.reserve(t, real)
            if not fused:
                valid = kv_cache.valid[:, : start + t]  # (B, S)
                mask = _attention_mask(valid, start, t, kv_cache.keys.dtype)
        elif real is not None:
            mask = _attention_mask(real, 0, t, self.dtype)
        cos, sin = self._rope(position_ids, self.dtype)  # (B, T, 1, D) x 2
        x = self.model.embed_tokens(input_ids).to(self.dtype)  # (B, T, H)
        if fused:
            assert kv_cache is not None
            x = self._fused_decode(x, cos, sin, kv_cache, start)
        else:
            for idx, layer in enumerate(self.model.layers):
                x = layer(x, cos, sin, mask, kv_cache, idx, start)
        if kv_cache is not None:
            kv_cache.commit(t, real.sum(-1) if real is not None else torch.full((b,), t, device=device))
        if num_logits_to_keep > 0:
            x = x[:, -num_logits_to_keep:]
        h = self.model.norm(x)  # (B, T, H)
        if self.head_int8 is not None:
            return self.head_int8(h).float()
        w = self.head_weight()
        if w.dtype == torch.bfloat16 and (ops := _native_head_ops(h)) is not None:
            return ops.head_bf16_cpu(h.reshape(-1, h.shape[-1]), w).reshape(*h.shape[:-1], -1)  # (B, T, V)
        return F.linear(h.to(w.dtype), w).float()  # (B, T, V)

    def _fused_decode_ready(self, cache: KVCache) -> bool:
        """Whether a one-token step can run every layer as one native call (:meth:`_fused_decode`): CPU,
        fp32 activations and cache, packed CPU-layout projections without bias, the native kernel loaded.
        ``BITNET_FUSED_DECODE=0`` turns it off (the torch path computes the same, op by op)."""
        if os.environ.get("BITNET_FUSED_DECODE", "1") == "0":
            return False
        if cache.keys.dtype != torch.float32 or cache.keys.device.type != "cpu":
            return False
        if self._fusable is None:
            self._fusable = self._check_fusable()
        return self._fusable

    def _check_fusable(self) -> bool:
        if self.mode != "inference" or self.dtype != torch.float32:
            return False
        for layer in self.model.layers:
            assert isinstance(layer, DecoderLayer)
            attn, mlp = layer.self_attn, layer.mlp
            projections = (attn.qkv_proj, attn.o_proj, mlp.gate_up_proj, mlp.down_proj)
            if not all(isinstance(p, BitLinear) for p in projections):  # e.g. a dense twin's nn.Linear
                return False
        for module in self.model.layers.modules():
            if isinstance(module, BitLinear):
                scale = module.weight_scale
                if (module.packed is None or module.packed.layout != "cpu" or module.packed.device.type != "cpu"
                        or module.bias is not None or scale is None or scale.dtype != torch.float32):
                    return False
            elif isinstance(module, RMSNorm) and module.weight.dtype != torch.float32:
                return False
        from bno_kernels.cpu import ops

        return ops.available()

    def _fused_decode(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, cache: KVCache,
                      start: int) -> torch.Tensor:
        """Every decoder layer for one new token per row, one native call per layer: x (B, 1, H) -> (B, 1, H).

        The same arithmetic as :class:`DecoderLayer` (in another summation order), without the ~25 torch
        ops and their Python dispatch per layer. cos/sin (B, 1, 1, D).
        """
        from bno_kernels.cpu import ops

        native = ops.load()
        c = self.config
        b = x.shape[0]
        h = x.reshape(b, -1).contiguous()  # (B, H)
        cos2 = cos.reshape(b, -1).contiguous()  # (B, D)
        sin2 = sin.reshape(b, -1).contiguous()  # (B, D)
        valid = cache.valid
        for idx, layer in enumerate(self.model.layers):
            assert isinstance(layer, DecoderLayer)
            attn, mlp = layer.self_attn, layer.mlp
            h = native.decode_layer(
                h, layer.input_layernorm.weight, layer.post_attention_layernorm.weight, attn.attn_sub_norm.weight,
                mlp.ffn_sub_norm.weight, c.rms_norm_eps,
                *_packed_args(attn.qkv_proj), *_packed_args(attn.o_proj), *_packed_args(mlp.gate_up_proj),
                *_packed_args(mlp.down_proj), cos2, sin2, cache.keys[idx], cache.values[idx], valid, start,
                c.num_attention_heads, c.num_key_value_heads, c.intermediate_size,
            )  # (B, H)
        return h.reshape(b, 1, -1)

    # ---------------------------------------------------------------- accounting
    def parameter_counts(self) -> dict[str, int]:
        """Logical parameter counts by kind: ternary, embedding, lm_head (0 when tied), norm."""
        c = self.config
        ternary = c.num_hidden_layers * sum(n * k for n, k in c.linear_shapes().values())
        norms = sum(p.numel() for name, p in self.named_parameters() if name.endswith("norm.weight"))
        return {
            "ternary": ternary,
            "embedding": c.vocab_size * c.hidden_size,
            "lm_head": 0 if c.tie_word_embeddings else c.vocab_size * c.hidden_size,
            "norm": norms,
        }

    def memory_report(self) -> dict[str, int]:
        """Resident bytes by kind of tensor (each storage counted once)."""
        kinds: dict[str, int] = {
            "ternary_packed": 0, "ternary_scales": 0, "latent_weights": 0, "embedding": 0, "lm_head": 0,
            "lm_head_int8": 0, "lm_head_q4": 0, "norm": 0, "other": 0,
        }
        seen: set[int] = set()

        def add(kind: str, t: torch.Tensor) -> None:
            key = t.untyped_storage().data_ptr()
            if key in seen or t.device.type == "meta":
                return
            seen.add(key)
            kinds[kind] += t.untyped_storage().nbytes()

        for module in self.modules():
            if isinstance(module, BitLinear):
                if module.packed is not None:
                    add("ternary_packed", module.packed.data)
                if module.weight_scale is not None:
                    add("ternary_scales", module.weight_scale)
                if module.weight is not None:
                    add("latent_weights", module.weight)
                if module.bias is not None:
                    add("other", module.bias)
            elif isinstance(module, Int8Head):
                add("lm_head_int8", module.weight_int8)
                add("lm_head_int8", module.scale)
                add("lm_head_int8", module.row_sum)
            elif isinstance(module, Q4Head):
                add("lm_head_q4", module.codes)
                add("lm_head_q4", module.scales)
            elif isinstance(module, RMSNorm):
                add("norm", module.weight)
        if isinstance(self.model.embed_tokens, nn.Embedding):  # an Int8Embedding's table is the head's
            add("embedding", self.model.embed_tokens.weight)
        if self.lm_head is not None:
            add("lm_head", self.lm_head.weight)
        return kinds

    def ternary_bits_per_weight(self) -> float:
        """Bits of packed storage per ternary weight (inference mode; scales excluded)."""
        report = self.memory_report()
        return 8.0 * report["ternary_packed"] / self.parameter_counts()["ternary"]


def _packed_args(layer: BitLinear) -> tuple[torch.Tensor, torch.Tensor]:
    """(packed data, fp32 weight scale) of a projection, as the native fused decode takes them."""
    assert layer.packed is not None and layer.weight_scale is not None
    scale = layer.weight_scale if layer.weight_scale.is_contiguous() else layer.weight_scale.contiguous()
    return layer.packed.data, scale.reshape(-1)


def _attention_mask(valid: torch.Tensor, start: int, t: int, dtype: torch.dtype) -> torch.Tensor:
    """(B, 1, T, S) additive mask (0 allowed, -inf masked) in ``dtype``, built once per forward.

    Query slot ``start + i`` sees the valid key slots ``<=`` its own, and always itself (so padding
    queries never get an all-masked row). valid (B, S) bool with ``S = start + t``.
    """
    s = valid.shape[1]
    q_slot = torch.arange(start, start + t, device=valid.device)[:, None]  # (T, 1)
    k_slot = torch.arange(s, device=valid.device)[None, :]  # (1, S)
    allowed = (valid[:, None, :] & (k_slot <= q_slot)) | (k_slot == q_slot)  # (B, T, S)
    bias = torch.zeros(allowed.shape, dtype=dtype, device=valid.device)
    return bias.masked_fill_(~allowed, float("-inf")).unsqueeze(1)  # (B, 1, T, S)


def _attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None, gqa: bool) -> torch.Tensor:
    """SDPA in the dtype of k/v (a KV cache may be kept in fp32 for a bf16 model). (B, Hq, T, D) out.

    q (B, Hq, T, D), k/v (B, Hkv, S, D), mask (B, 1, T, S) additive in k's dtype or None (causal). One new
    token per row (decode) runs single-threaded on the CPU: the work is tiny and waking a thread team costs
    far more (10x and worse on a loaded machine). The kernel is the same as for a full pass, so cached and
    uncached logits agree.
    """
    dtype = q.dtype
    if k.dtype != dtype:
        q = q.to(k.dtype)
    threads = torch.get_num_threads() if q.shape[2] == 1 and q.device.type == "cpu" else 1
    if threads > 1:
        torch.set_num_threads(1)
    try:
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=mask is None, enable_gqa=gqa)
    finally:
        if threads > 1:
            torch.set_num_threads(threads)
    return o.to(dtype)
