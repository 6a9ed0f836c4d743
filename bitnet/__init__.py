"""BitNet b1.58 in PyTorch: ternary quantization, packed 2-bit weights, model, inference, training."""

from __future__ import annotations

__version__ = "0.1.0"
