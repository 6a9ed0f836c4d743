"""BitNet b1.58 in PyTorch: ternary quantization, packed 2-bit weights, model, inference, training.

``import bitnet`` is cheap: the public names below are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY = {
    "BitNetConfig": "bitnet.model",
    "BitNetForCausalLM": "bitnet.model",
    "KVCache": "bitnet.kv_cache",
    "BitLinear": "bitnet.layers",
    "QuantizeConfig": "bitnet.layers",
    "quantize_": "bitnet.layers",
    "from_pretrained": "bitnet.hf",
    "save_pretrained": "bitnet.hf",
    "inspect_checkpoint": "bitnet.hf",
}

__all__ = [
    "BitLinear",
    "BitNetConfig",
    "BitNetForCausalLM",
    "KVCache",
    "QuantizeConfig",
    "from_pretrained",
    "inspect_checkpoint",
    "quantize_",
    "save_pretrained",
]

if TYPE_CHECKING:
    from bitnet.hf import from_pretrained, inspect_checkpoint, save_pretrained
    from bitnet.kv_cache import KVCache
    from bitnet.layers import BitLinear, QuantizeConfig, quantize_
    from bitnet.model import BitNetConfig, BitNetForCausalLM


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'bitnet' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
