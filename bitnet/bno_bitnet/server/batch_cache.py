"""A KV cache for continuous batching: rows join and leave between decode steps.

It is a :class:`~bno_bitnet.kv_cache.KVCache` (the model's forward takes it as is) whose slots are shared
by every row and whose ``valid`` mask says which slots hold a row's tokens. A joining row brings its own
prefilled single-row cache; its prompt's keys and values go into the slots just before the current length
(the slots before them are invalid for it). A prompt longer than the current length first shifts every row
right. When the last slot is used, the rows are compacted: each row's valid slots move right-aligned to
the shortest common length; if that is still full, the storage doubles. RoPE positions travel with the
keys (they were rotated at their real positions), so moving a slot changes nothing a row computes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from bno_bitnet.kv_cache import KVCache

if TYPE_CHECKING:
    from bno_bitnet.model import BitNetConfig


class BatchKVCache(KVCache):
    """The running batch's cache (see the module docstring). ``limit``: the most slots it may hold."""

    def __init__(self, config: BitNetConfig, first: KVCache, limit: int) -> None:
        capacity = min(limit, max(2 * first.length, first.length + 64))
        super().__init__(config, 1, capacity, first.keys.dtype, first.keys.device)
        self.limit = limit
        n = first.length
        self.keys[:, :, :, :n] = first.keys[:, :, :, :n]
        self.values[:, :, :, :n] = first.values[:, :, :, :n]
        self.valid[:, :n] = first.valid[:, :n]
        self.seen.copy_(first.seen)
        self.length = n

    def add_row(self, row: KVCache) -> None:
        """Append a prefilled single-row cache as the last batch row."""
        assert row.batch_size == 1, "a joining row is one prefilled request"
        n = row.length
        if n > self.length:
            self._shift_right(n - self.length)
        self._ensure_capacity(self.length + 1)
        shape = list(self.keys.shape)
        shape[1] = 1
        keys = torch.zeros(shape, dtype=self.keys.dtype, device=self.keys.device)  # (L, 1, Hkv, S, D)
        values = torch.zeros_like(keys)
        lo = self.length - n
        keys[:, :, :, lo : self.length] = row.keys[:, :, :, :n]
        values[:, :, :, lo : self.length] = row.values[:, :, :, :n]
        valid = torch.zeros((1, self.max_seq_len), dtype=torch.bool, device=self.valid.device)
        valid[:, lo : self.length] = row.valid[:, :n]
        self.keys = torch.cat((self.keys, keys), dim=1)
        self.values = torch.cat((self.values, values), dim=1)
        self.valid = torch.cat((self.valid, valid), dim=0)
        self.seen = torch.cat((self.seen, row.seen))
        self.batch_size += 1

    def make_room(self) -> None:
        """Make sure the next decode step has a slot: compact, then grow (up to ``limit``)."""
        if self.length < self.max_seq_len:
            return
        self.compact()
        if self.length >= self.max_seq_len:
            self._ensure_capacity(self.length + 1)

    def compact(self) -> None:
        """Move each row's valid slots right-aligned to the shortest length that holds every row."""
        counts = self.valid[:, : self.length].sum(dim=1)  # (B,)
        new_length = int(counts.max()) if counts.numel() else 0
        if new_length == self.length:
            return
        keys = torch.zeros_like(self.keys)
        values = torch.zeros_like(self.values)
        valid = torch.zeros_like(self.valid)
        for b in range(self.batch_size):
            slots = torch.nonzero(self.valid[b, : self.length]).flatten()  # (n_b,) in order
            lo = new_length - slots.numel()
            keys[:, b, :, lo:new_length] = self.keys[:, b, :, slots]
            values[:, b, :, lo:new_length] = self.values[:, b, :, slots]
            valid[b, lo:new_length] = True
        self.keys, self.values, self.valid = keys, values, valid
        self.length = new_length

    def _shift_right(self, by: int) -> None:
        self._ensure_capacity(self.length + by + 1)
        end = self.length
        self.keys[:, :, :, by : end + by] = self.keys[:, :, :, :end].clone()
        self.values[:, :, :, by : end + by] = self.values[:, :, :, :end].clone()
        self.valid[:, by : end + by] = self.valid[:, :end].clone()
        self.keys[:, :, :, :by] = 0
        self.values[:, :, :, :by] = 0
        self.valid[:, :by] = False
        self.length = end + by

    def _ensure_capacity(self, slots: int) -> None:
        if slots <= self.max_seq_len:
            return
        if slots > self.limit:
            raise RuntimeError(f"batch cache needs {slots} slots, more than its limit {self.limit}")
        capacity = min(self.limit, max(slots, 2 * self.max_seq_len))
        grow = capacity - self.max_seq_len
        pad = list(self.keys.shape)
        pad[3] = grow
        self.keys = torch.cat((self.keys, torch.zeros(pad, dtype=self.keys.dtype, device=self.keys.device)), dim=3)
        self.values = torch.cat((self.values, torch.zeros(pad, dtype=self.values.dtype, device=self.values.device)),
                                dim=3)
        self.valid = torch.cat((self.valid, torch.zeros((self.batch_size, grow), dtype=torch.bool,
                                                        device=self.valid.device)), dim=1)
        self.max_seq_len = capacity
