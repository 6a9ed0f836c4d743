"""A preallocated key/value cache for :class:`bno_bitnet.model.BitNetForCausalLM`.

Storage: keys and values ``(L, B, H_kv, S_max, D)`` each, a validity mask ``(B, S_max)`` and, per row,
the number of real (non-padding) tokens seen so far. A forward call with ``T`` tokens writes slots
``[length, length + T)`` of every row; the slots of left padding are marked invalid (from the call's
``attention_mask``) and never attended to. Each query attends to the valid slots at or before its own
slot, so batched prompts of different lengths are LEFT-padded to a common length and then decoded in
lock step; the model derives RoPE positions from the real-token counts (padding does not count).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from bno_bitnet.errors import ContextLengthError

if TYPE_CHECKING:
    from bno_bitnet.model import BitNetConfig


class KVCache:
    """Preallocated keys/values for every layer of one batch.

    ``dtype`` fp32 (the default) is recommended for bf16 models too: attention runs in the cache's dtype,
    and on the CPU fp32 attention is much faster than bf16.

    Attributes: ``keys``/``values`` (L, B, H_kv, S_max, D) in ``dtype``; ``valid`` (B, S_max) bool;
    ``seen`` (B,) int64 real tokens per row; ``length`` slots written so far (same for every row).
    """

    def __init__(
        self,
        config: BitNetConfig,
        batch_size: int,
        max_seq_len: int,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
    ) -> None:
        assert batch_size > 0, f"batch_size must be positive, got {batch_size}"
        assert max_seq_len > 0, f"max_seq_len must be positive, got {max_seq_len}"
        shape = (config.num_hidden_layers, batch_size, config.num_key_value_heads, max_seq_len, config.head_dim)
        self.keys = torch.zeros(shape, dtype=dtype, device=device)  # (L, B, H_kv, S_max, D)
        self.values = torch.zeros(shape, dtype=dtype, device=device)  # (L, B, H_kv, S_max, D)
        self.valid = torch.zeros((batch_size, max_seq_len), dtype=torch.bool, device=device)  # (B, S_max)
        self.seen = torch.zeros(batch_size, dtype=torch.long, device=device)  # (B,)
        self.length = 0
        self.batch_size = batch_size
        self.max_seq_len = max_seq_len

    def reserve(self, num_tokens: int, attention_mask: torch.Tensor | None) -> int:
        """Claim slots for ``num_tokens`` new tokens; mark them valid per ``attention_mask`` (B, T).

        Returns the first slot. Raises :class:`ContextLengthError` when they do not fit.
        """
        start = self.length
        if start + num_tokens > self.max_seq_len:
            raise ContextLengthError(
                f"KV cache holds {self.max_seq_len} tokens: {start} used, {num_tokens} more do not fit"
            )
        if attention_mask is None:
            self.valid[:, start : start + num_tokens] = True
        else:
            assert tuple(attention_mask.shape) == (self.batch_size, num_tokens), (
                f"attention_mask shape {tuple(attention_mask.shape)} != ({self.batch_size}, {num_tokens})"
            )
            self.valid[:, start : start + num_tokens] = attention_mask.to(torch.bool)
        return start

    def commit(self, num_tokens: int, real_tokens: torch.Tensor) -> None:
        """Finish a forward: ``length += num_tokens``; ``seen += real_tokens`` (B,)."""
        self.length += num_tokens
        self.seen += real_tokens

    def select_rows(self, index: torch.Tensor) -> None:
        """Keep only the batch rows ``index`` (LongTensor (B',), in order), e.g. the rows still generating.

        ``length`` is unchanged: the kept rows go on writing at the same slots.
        """
        assert index.dim() == 1, f"index must be 1-D, got shape {tuple(index.shape)}"
        self.keys = self.keys.index_select(1, index)  # (L, B', H_kv, S_max, D)
        self.values = self.values.index_select(1, index)  # (L, B', H_kv, S_max, D)
        self.valid = self.valid.index_select(0, index)  # (B', S_max)
        self.seen = self.seen.index_select(0, index)  # (B',)
        self.batch_size = int(index.numel())

    def reset(self) -> None:
        """Forget every token (keeps the storage)."""
        self.length = 0
        self.valid.zero_()
        self.seen.zero_()

    @property
    def nbytes(self) -> int:
        """Bytes held by the keys and values."""
        return 2 * self.keys.numel() * self.keys.element_size()
