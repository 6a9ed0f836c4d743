"""The BitNet b1.58 causal LM (transformers' ``BitNetForCausalLM`` architecture) and its config.

Architecture (docs/architecture.md, "BitNet b1.58"): Llama-style pre-norm decoder blocks without biases; attention with RoPE
and GQA whose output passes ``attn_sub_norm`` before ``o_proj``; a ReLU² MLP
``down(ffn_sub_norm(relu(gate(x))² · up(x)))``; every projection inside the blocks is a
:class:`bno_bitnet.layers.BitLinear`; embeddings, norms and the head stay high precision (an optional
per-row int8 head is offered for fast decoding).

Modes: ``"train"`` keeps separate q/k/v and gate/up projections with latent weights (parameter names
match transformers'); ``"inference"`` fuses q|k|v and gate|up into one packed weight each with
per-output-channel scales, which gives the same result (the activation quantization is shared).
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

Ternary = tuple[torch.Tensor, torch.Tensor]  # (wq int8 (N, K), beta fp32 0-d)

_REQUIRED_FIELDS = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads")


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
        for name in ("rms_norm_eps", "rope_theta"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ConfigError(f"{path}: field {name!r} must be a positive number, got {value!r}")
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

    # ---------------------------------------------------------------- presets and HF config.json
    @classmethod
    def shape_2b4t(cls) -> BitNetConfig:
        """The shape of microsoft/bitnet-b1.58-2B-4T (random weights are the caller's business)."""
        return cls(
            vocab_size=128256, hidden_size=2560, intermediate_size=6912, num_hidden_layers=30,
            num_attention_heads=20, num_key_value_heads=5, max_position_embeddings=4096, rms_norm_eps=1e-5,
            rope_theta=500000.0, tie_word_embeddings=True, bos_token_id=128000, eos_token_id=128001,
        )

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
    """Self-attention with RoPE, GQA, ``attn_sub_norm`` before ``o_proj``; fused q|k|v in inference mode."""

    def __init__(self, config: BitNetConfig, mode: str, dtype: torch.dtype, init: bool) -> None:
        super().__init__()
        c = config
        self.num_heads, self.num_kv_heads, self.head_dim = c.num_attention_heads, c.num_key_value_heads, c.head_dim
        self.split = (c.q_size, c.kv_size, c.kv_size)
        self.qkv_proj: BitLinear | None = None
        self.q_proj: BitLinear | None = None
        self.k_proj: BitLinear | None = None
        self.v_proj: BitLinear | None = None
        if mode == "inference":
            self.qkv_proj = BitLinear(c.hidden_size, sum(self.split), mode=mode, dtype=dtype, init=False)
            if init:
                _random_fill(self.qkv_proj, self.split)
        else:
            self.q_proj = BitLinear(c.hidden_size, c.q_size, mode=mode, dtype=dtype, init=init)
            self.k_proj = BitLinear(c.hidden_size, c.kv_size, mode=mode, dtype=dtype, init=init)
            self.v_proj = BitLinear(c.hidden_size, c.kv_size, mode=mode, dtype=dtype, init=init)
        self.o_proj = BitLinear(c.q_size, c.hidden_size, mode=mode, dtype=dtype, init=init and mode == "train")
        if init and mode == "inference":
            _random_fill(self.o_proj, (c.hidden_size,))
        self.attn_sub_norm = RMSNorm(c.q_size, c.rms_norm_eps, dtype)

    @staticmethod
    def _shapes(c: BitNetConfig) -> list[tuple[int, int]]:
        return [(c.q_size, c.hidden_size), (c.kv_size, c.hidden_size), (c.kv_size, c.hidden_size)]

    def set_ternary(self, weights: dict[str, Ternary], mode: str, dtype: torch.dtype) -> None:
        """Install q/k/v (and o when given) from ternary matrices + per-tensor betas."""
        if mode == "inference":
            self.qkv_proj = fuse_ternary([weights["q"], weights["k"], weights["v"]], dtype)
        else:
            self.q_proj = BitLinear.from_ternary(*weights["q"], mode=mode, dtype=dtype)
            self.k_proj = BitLinear.from_ternary(*weights["k"], mode=mode, dtype=dtype)
            self.v_proj = BitLinear.from_ternary(*weights["v"], mode=mode, dtype=dtype)
        if "o" in weights:
            self.o_proj = BitLinear.from_ternary(*weights["o"], mode=mode, dtype=dtype)

    def ternary(self) -> dict[str, Ternary]:
        """q, k, v, o as ternary matrices with per-tensor betas."""
        if self.qkv_proj is not None:
            q, k, v = split_ternary(self.qkv_proj, self.split)
        else:
            assert self.q_proj is not None and self.k_proj is not None and self.v_proj is not None
            q, k, v = self.q_proj.ternary(), self.k_proj.ternary(), self.v_proj.ternary()
        return {"q": q, "k": k, "v": v, "o": _per_tensor(self.o_proj)}

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
        b, t, _ = x.shape
        hq, hkv, d = self.num_heads, self.num_kv_heads, self.head_dim
        nqk = self.split[0] + self.split[1]
        if self.qkv_proj is not None:
            qkv = self.qkv_proj(x)  # (B, T, Nq + 2 Nkv)
            qk = qkv[..., :nqk].view(b, t, hq + hkv, d)  # (B, T, Hq + Hkv, D)
            v = qkv[..., nqk:].view(b, t, hkv, d)  # (B, T, Hkv, D)
        else:
            assert self.q_proj is not None and self.k_proj is not None and self.v_proj is not None
            qk = torch.cat((self.q_proj(x), self.k_proj(x)), dim=-1).view(b, t, hq + hkv, d)
            v = self.v_proj(x).view(b, t, hkv, d)
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
        o = o.transpose(1, 2).reshape(b, t, self.num_heads * self.head_dim)  # (B, T, Hq*D)
        out: torch.Tensor = self.o_proj(self.attn_sub_norm(o))  # (B, T, H)
        return out


class MLP(nn.Module):
    """``down(ffn_sub_norm(relu(gate(x))² · up(x)))``; fused gate|up in inference mode."""

    def __init__(self, config: BitNetConfig, mode: str, dtype: torch.dtype, init: bool) -> None:
        super().__init__()
        h, i = config.hidden_size, config.intermediate_size
        self.intermediate_size = i
        self.gate_up_proj: BitLinear | None = None
        self.gate_proj: BitLinear | None = None
        self.up_proj: BitLinear | None = None
        if mode == "inference":
            self.gate_up_proj = BitLinear(h, 2 * i, mode=mode, dtype=dtype, init=False)
            if init:
                _random_fill(self.gate_up_proj, (i, i))
        else:
            self.gate_proj = BitLinear(h, i, mode=mode, dtype=dtype, init=init)
            self.up_proj = BitLinear(h, i, mode=mode, dtype=dtype, init=init)
        self.down_proj = BitLinear(i, h, mode=mode, dtype=dtype, init=init and mode == "train")
        if init and mode == "inference":
            _random_fill(self.down_proj, (h,))
        self.ffn_sub_norm = RMSNorm(i, config.rms_norm_eps, dtype)

    def set_ternary(self, weights: dict[str, Ternary], mode: str, dtype: torch.dtype) -> None:
        """Install gate/up (and down when given) from ternary matrices + per-tensor betas."""
        if mode == "inference":
            self.gate_up_proj = fuse_ternary([weights["gate"], weights["up"]], dtype)
        else:
            self.gate_proj = BitLinear.from_ternary(*weights["gate"], mode=mode, dtype=dtype)
            self.up_proj = BitLinear.from_ternary(*weights["up"], mode=mode, dtype=dtype)
        if "down" in weights:
            self.down_proj = BitLinear.from_ternary(*weights["down"], mode=mode, dtype=dtype)

    def ternary(self) -> dict[str, Ternary]:
        """gate, up, down as ternary matrices with per-tensor betas."""
        if self.gate_up_proj is not None:
            gate, up = split_ternary(self.gate_up_proj, (self.intermediate_size, self.intermediate_size))
        else:
            assert self.gate_proj is not None and self.up_proj is not None
            gate, up = self.gate_proj.ternary(), self.up_proj.ternary()
        return {"gate": gate, "up": up, "down": _per_tensor(self.down_proj)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, T, H) -> (B, T, H)."""
        if self.gate_up_proj is not None:
            gate, up = self.gate_up_proj(x).split(self.intermediate_size, dim=-1)  # (B, T, I) x 2
        else:
            assert self.gate_proj is not None and self.up_proj is not None
            gate, up = self.gate_proj(x), self.up_proj(x)
        out: torch.Tensor = self.down_proj(self.ffn_sub_norm(torch.relu(gate).square() * up))
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


class Int8Head(nn.Module):
    """A per-row int8 output head: ``logits = (h @ Wq^T) * scale``; Wq int8 (V, H), scale (V,)."""

    def __init__(self, weight: torch.Tensor, dtype: torch.dtype, chunk_rows: int = 8192) -> None:
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

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """h (..., H) -> logits (..., V) float32. On the CPU: int8 x int8 -> int32 (``torch._int_mm``)."""
        flat = h.reshape(-1, h.shape[-1]).float()  # (M, H)
        if flat.device.type == "cpu":
            s = 127.0 / flat.abs().amax(dim=-1, keepdim=True).clamp(min=1e-5)  # (M, 1) per-token absmax
            hq = torch.round(flat * s).clamp(-128, 127).to(torch.int8)  # (M, H)
            y = torch._int_mm(hq, self.weight_int8.t()).float() * (self.scale[None, :] / s)  # (M, V)
        else:
            y = F.linear(flat, self.weight_int8.float()) * self.scale
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
        self.head_int8: Int8Head | None = None
        if lm_head_int8:
            self.quantize_head_int8()
        inv_freq = 1.0 / (config.rope_theta ** (torch.arange(0, config.head_dim, 2, dtype=torch.float) / config.head_dim))
        self.inv_freq = nn.Buffer(inv_freq, persistent=False)  # (D/2,)
        self._rope_cache: tuple[torch.Tensor, torch.Tensor] | None = None

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
        if int8_embedding and not self.config.tie_word_embeddings:
            raise ConfigError("int8_embedding needs tied embeddings (tie_word_embeddings: true)")
        self.head_int8 = Int8Head(self.head_weight(), self.dtype)
        self.lm_head = None  # tied: the embedding stays for the lookup; untied: the float head is dropped
        if int8_embedding:
            self.model.embed_tokens = Int8Embedding(self.head_int8)  # type: ignore[assignment]

    def ternary_weights(self) -> dict[str, Ternary]:
        """Every ternary projection as (wq int8 (N, K), beta 0-d fp32), keyed by its HF module path."""
        out: dict[str, Ternary] = {}
        for idx, layer in enumerate(self.model.layers):
            assert isinstance(layer, DecoderLayer)
            for short, value in layer.self_attn.ternary().items():
                out[f"model.layers.{idx}.self_attn.{short}_proj"] = value
            for short, value in layer.mlp.ternary().items():
                out[f"model.layers.{idx}.mlp.{short}_proj"] = value
        return out

    def convert_(self, mode: str) -> BitNetForCausalLM:
        """Switch every projection to ``mode`` in place (train -> inference quantizes, packs and fuses)."""
        check_mode(mode)
        if mode == self.mode:
            return self
        for layer in self.model.layers:
            assert isinstance(layer, DecoderLayer)
            layer.self_attn.set_ternary(layer.self_attn.ternary(), mode, self.dtype)
            layer.mlp.set_ternary(layer.mlp.ternary(), mode, self.dtype)
            if mode == "inference":
                layer.self_attn.q_proj = layer.self_attn.k_proj = layer.self_attn.v_proj = None
                layer.mlp.gate_proj = layer.mlp.up_proj = None
            else:
                layer.self_attn.qkv_proj = None
                layer.mlp.gate_up_proj = None
        self.mode = mode
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
        if kv_cache is not None:
            assert kv_cache.batch_size == b, f"KV cache batch {kv_cache.batch_size} != input batch {b}"
            start = kv_cache.reserve(t, real)
            valid = kv_cache.valid[:, : start + t]  # (B, S)
            mask = _attention_mask(valid, start, t, kv_cache.keys.dtype)
        elif real is not None:
            mask = _attention_mask(real, 0, t, self.dtype)
        cos, sin = self._rope(position_ids, self.dtype)  # (B, T, 1, D) x 2
        x = self.model.embed_tokens(input_ids).to(self.dtype)  # (B, T, H)
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
        return F.linear(h.to(w.dtype), w).float()  # (B, T, V)

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
            "lm_head_int8": 0, "norm": 0, "other": 0,
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


def _random_fill(layer: BitLinear, segments: tuple[int, ...]) -> None:
    """Random ternary weights (P(-1) = P(+1) = 1/4, P(0) = 1/2) for an inference layer; beta = 1/sqrt(K).

    Fast path for the CPU layout without padding: random packed bytes whose invalid code 3 fields are
    mapped to code 1 (weight 0). Otherwise a random int8 matrix is packed.
    """
    from bno_kernels.cpu import layout as cpu_layout
    from bno_kernels.packed import PackedTernaryWeight

    n, k = layer.out_features, layer.in_features
    assert sum(segments) == n, f"segments {segments} do not add up to {n} rows"
    beta = 1.0 / math.sqrt(k)
    scale = torch.full((n,), beta) if len(segments) > 1 else torch.tensor(beta)
    if n % cpu_layout.TILE_N == 0 and k % cpu_layout.GROUP_K == 0:
        data = torch.empty(cpu_layout.packed_shape(n, k), dtype=torch.uint8).random_()
        data ^= (data & 0xAA) & ((data & 0x55) << 1)  # code 3 (0b11) -> code 1 (0b01): weight 0
        layer.packed = PackedTernaryWeight(data, n, k, "cpu")
        layer.weight_scale = scale
        return
    probs = torch.tensor([0.25, 0.5, 0.25])
    wq = (torch.multinomial(probs, n * k, replacement=True) - 1).to(torch.int8).view(n, k)
    layer.set_ternary(wq, scale)


def _per_tensor(layer: BitLinear) -> Ternary:
    wq, ws = layer.ternary()
    assert ws.numel() == 1, "expected a per-tensor scale on an unfused projection"
    return wq, ws.reshape(()).float()


def fuse_ternary(parts: list[Ternary], dtype: torch.dtype) -> BitLinear:
    """One inference-mode BitLinear for projections sharing an input: rows concatenated, scale per channel."""
    wq = torch.cat([p[0] for p in parts], dim=0)  # (sum N_i, K)
    scale = torch.cat([p[1].float().reshape(()).expand(p[0].shape[0]) for p in parts])  # (sum N_i,)
    return BitLinear.from_ternary(wq, scale, mode="inference", dtype=dtype)


def split_ternary(layer: BitLinear, sizes: tuple[int, ...]) -> list[Ternary]:
    """Inverse of :func:`fuse_ternary`: per-segment (wq, beta); each segment's scale must be constant."""
    wq, ws = layer.ternary()
    ws = ws.float().expand(wq.shape[0]) if ws.dim() == 0 else ws.float()
    out: list[Ternary] = []
    for w_part, s_part in zip(wq.split(list(sizes)), ws.split(list(sizes)), strict=True):
        assert bool((s_part == s_part[0]).all()), "a fused segment has more than one scale"
        out.append((w_part.contiguous(), s_part[0].clone()))
    return out
