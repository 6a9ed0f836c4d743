"""BitNet b1.58 in PyTorch: ternary quantization, packed 2-bit weights, model, inference, training.

``import bno_bitnet`` is cheap: the public names below are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY = {
    "BitNetConfig": "bno_bitnet.model",
    "BitNetForCausalLM": "bno_bitnet.model",
    "KVCache": "bno_bitnet.kv_cache",
    "BitLinear": "bno_bitnet.layers",
    "QuantizeConfig": "bno_bitnet.layers",
    "quantize_": "bno_bitnet.layers",
    "from_pretrained": "bno_bitnet.hf",
    "save_pretrained": "bno_bitnet.hf",
    "inspect_checkpoint": "bno_bitnet.hf",
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
    from bno_bitnet.hf import from_pretrained, inspect_checkpoint, save_pretrained
    from bno_bitnet.kv_cache import KVCache
    from bno_bitnet.layers import BitLinear, QuantizeConfig, quantize_
    from bno_bitnet.model import BitNetConfig, BitNetForCausalLM


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'bitnet' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
