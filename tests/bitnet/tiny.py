"""Tiny random BitNet models built with transformers, offline, saved in each Hugging Face form.

Shared by the BitNet test modules of several helpers (through the fixtures in ``conftest.py``):
:func:`make_tiny_hf_dir` writes a directory in one of the three forms; :func:`hf_logits` runs
transformers' own BitNet on it (the parity oracle). transformers decorates its BitNet helpers with
``torch.compile``; they run eagerly here (dynamo disabled around the calls), which is the same math
without a slow CPU compile.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import torch

# Shapes cover GQA and MHA, tied and untied heads, and sizes not divisible by 4 or 128.
TINY_CONFIGS: dict[str, dict[str, Any]] = {
    # GQA 4/2, untied, every out_features a multiple of 4 (transformers can load it packed).
    "gqa": dict(vocab_size=120, hidden_size=64, intermediate_size=96, num_attention_heads=4,
                num_key_value_heads=2, tie_word_embeddings=False),
    # MHA, tied embeddings, intermediate 90 (not a multiple of 4).
    "mha_tied": dict(vocab_size=101, hidden_size=48, intermediate_size=90, num_attention_heads=4,
                     num_key_value_heads=4, tie_word_embeddings=True),
    # GQA 4/1 with head_dim 18: k/v have 18 rows (not a multiple of 4), hidden 72, intermediate 90.
    "odd": dict(vocab_size=257, hidden_size=72, intermediate_size=90, num_attention_heads=4,
                num_key_value_heads=1, tie_word_embeddings=False),
}
HF_FORMS: tuple[str, ...] = ("latent", "packed-autobitlinear", "packed-bitlinear")


def config_kwargs(name: str) -> dict[str, Any]:
    """transformers ``BitNetConfig`` keyword arguments of the named tiny config."""
    return dict(
        num_hidden_layers=2, max_position_embeddings=64, initializer_range=0.05, rms_norm_eps=1e-5,
        bos_token_id=1, eos_token_id=2, **TINY_CONFIGS[name],
    )


def out_features_divisible_by_4(name: str) -> bool:
    """Whether transformers can load the named config in a packed form (it needs out_features % 4 == 0)."""
    c = config_kwargs(name)
    head_dim = c["hidden_size"] // c["num_attention_heads"]
    sizes = [c["hidden_size"], c["intermediate_size"], c["num_key_value_heads"] * head_dim,
             c["num_attention_heads"] * head_dim]
    return all(n % 4 == 0 for n in sizes)


@contextlib.contextmanager
def eager_transformers() -> Iterator[None]:
    """Run transformers' torch.compile-decorated BitNet helpers eagerly."""
    import torch._dynamo

    with torch._dynamo.config.patch(disable=True):
        yield


def build_hf_model(name: str, seed: int = 0) -> Any:
    """A random transformers ``BitNetForCausalLM`` (fp32) with perturbed norm weights."""
    from transformers import BitNetConfig, BitNetForCausalLM

    torch.manual_seed(seed)
    model = BitNetForCausalLM(BitNetConfig(**config_kwargs(name)))
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if pname.endswith("norm.weight"):
                p.add_(0.2 * torch.randn_like(p))
    return model.eval()


def _hf_weight_quant(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """transformers' ``WeightQuant`` math: (ternary int8, beta) with beta = 1 / (1 / mean|w|)."""
    w = w.float()
    scale = 1.0 / w.abs().mean().clamp(min=1e-5)
    return (w * scale).round().clamp(-1, 1).to(torch.int8), 1.0 / scale


def write_hf_form(model: Any, path: Path, form: str) -> Path:
    """Save a transformers BitNet model in ``form`` ("latent", "packed-autobitlinear", "packed-bitlinear").

    latent: transformers' own ``save_pretrained`` with an online autobitlinear quantization_config. Packed:
    quantized with transformers' WeightQuant math and packed with transformers' ``pack_weights``.
    """
    from safetensors.torch import save_file
    from transformers.integrations.bitnet import pack_weights

    linear_class = "bitlinear" if form == "packed-bitlinear" else "autobitlinear"
    mode = "online" if form == "latent" else "offline"
    model.config.quantization_config = {"quant_method": "bitnet", "linear_class": linear_class,
                                        "quantization_mode": mode}
    path.mkdir(parents=True, exist_ok=True)
    if form == "latent":
        model.save_pretrained(str(path))
        return path
    tensors: dict[str, torch.Tensor] = {}
    for name, p in model.state_dict().items():
        if name == "lm_head.weight" and model.config.tie_word_embeddings:
            continue
        if name.endswith("_proj.weight"):
            wq, beta = _hf_weight_quant(p)
            tensors[name] = pack_weights(wq.clone()).contiguous()
            scale = beta if linear_class == "autobitlinear" else 1.0 / beta
            tensors[name[: -len("weight")] + "weight_scale"] = scale.reshape(1).float()
        else:
            tensors[name] = p.detach().clone().contiguous()
    save_file(tensors, str(path / "model.safetensors"), metadata={"format": "pt"})
    config = model.config.to_dict()
    (path / "config.json").write_text(json.dumps(config, indent=2, default=str), encoding="utf-8")
    return path


def make_tiny_hf_dir(root: Path, form: str, config: str = "gqa", seed: int = 0) -> Path:
    """Build the named tiny model with transformers (seeded, offline) and save it under ``root`` in ``form``."""
    assert form in HF_FORMS, f"unknown form {form!r}; expected one of {HF_FORMS}"
    return write_hf_form(build_hf_model(config, seed), root / f"{config}-{form}-s{seed}", form)


def load_hf(path: Path) -> Any:
    """transformers' ``BitNetForCausalLM.from_pretrained`` on a local directory, fp32."""
    from transformers import BitNetForCausalLM

    with eager_transformers():
        return BitNetForCausalLM.from_pretrained(str(path), dtype=torch.float32).eval()


def hf_logits(model_or_path: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Logits (B, T, V) float32 from transformers' BitNet (a loaded model or a directory)."""
    model = load_hf(model_or_path) if isinstance(model_or_path, Path) else model_or_path
    with eager_transformers(), torch.no_grad():
        out = model(input_ids=input_ids, attention_mask=attention_mask).logits
    return out.float()
