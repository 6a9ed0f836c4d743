"""Byte-level training data: the shipped corpus, fixed-length windows, and a resumable sharded sampler.

Tokens are those of :class:`bno_bitnet.tokenizer.ByteTokenizer`: ids 0..255 are UTF-8 bytes, 256 is BOS and
257 is EOS. Each document (one corpus file) becomes ``BOS, bytes..., EOS`` and the documents are
concatenated into one token stream; training samples are windows of ``seq_len + 1`` tokens of that
stream (inputs are the first ``seq_len``, targets the last ``seq_len``).

Sampling is deterministic given a seed and shards across data-parallel ranks exactly as
:class:`torch.utils.data.DistributedSampler` does (it *is* a DistributedSampler underneath), and its
position (epoch, batches consumed) is part of the training checkpoint, so a resumed run sees the same
batches a straight run would.

The shipped corpus (``bitnet/data/*.txt.gz``) is Jane Austen's six novels, public domain; see
``bitnet/data/SOURCES.md``.
"""

from __future__ import annotations

import gzip
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset, DistributedSampler

from bno_bitnet.errors import ConfigError
from bno_bitnet.tokenizer import ByteTokenizer

CORPUS_DIR = Path(__file__).resolve().parent / "data"
"""Directory of the shipped corpus files."""

BOS_ID = ByteTokenizer.BOS
EOS_ID = ByteTokenizer.EOS
VOCAB_SIZE = ByteTokenizer().vocab_size


def corpus_files(directory: str | Path | None = None) -> list[Path]:
    """The ``*.txt`` and ``*.txt.gz`` files of ``directory`` (default: the shipped corpus), sorted by name."""
    root = Path(directory) if directory is not None else CORPUS_DIR
    if not root.is_dir():
        raise ConfigError(f"{root}: corpus directory does not exist")
    files = sorted(p for p in root.iterdir() if p.is_file() and (p.name.endswith(".txt") or p.name.endswith(".txt.gz")))
    if not files:
        raise ConfigError(f"{root}: no *.txt or *.txt.gz files to train on")
    return files


def read_document(path: str | Path) -> bytes:
    """The bytes of one text file, gunzipped when the name ends in ``.gz``."""
    p = Path(path)
    try:
        if p.name.endswith(".gz"):
            with gzip.open(p, "rb") as fh:
                data = fh.read()
        else:
            data = p.read_bytes()
    except FileNotFoundError as exc:
        raise ConfigError(f"{p}: corpus file does not exist") from exc
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise ConfigError(f"{p}: cannot read corpus file ({exc})") from exc
    if not data:
        raise ConfigError(f"{p}: corpus file is empty")
    return data


def encode_documents(documents: Sequence[bytes]) -> torch.Tensor:
    """``BOS doc EOS BOS doc EOS ...`` as one (N,) int16 tensor of token ids (int16 holds 0..257)."""
    parts: list[torch.Tensor] = []
    for doc in documents:
        body = torch.frombuffer(bytearray(doc), dtype=torch.uint8).to(torch.int16)  # (len(doc),)
        parts.append(torch.tensor([BOS_ID], dtype=torch.int16))
        parts.append(body)
        parts.append(torch.tensor([EOS_ID], dtype=torch.int16))
    if not parts:
        raise ConfigError("no documents to encode")
    return torch.cat(parts)  # (N,)


@dataclass(frozen=True)
class Corpus:
    """A corpus split into train and validation token streams."""

    train: torch.Tensor  # (N_train,) int16
    val: torch.Tensor  # (N_val,) int16
    files: tuple[str, ...]

    @property
    def num_tokens(self) -> int:
        """Tokens in both splits."""
        return int(self.train.numel() + self.val.numel())


def load_corpus(paths: Sequence[str | Path] | None = None, *, val_fraction: float = 0.02) -> Corpus:
    """Read ``paths`` (default: the shipped corpus) into train/validation token streams.

    The last ``val_fraction`` of every document is held out for validation, so both splits cover
    every book.
    """
    if not 0.0 <= val_fraction < 0.5:
        raise ConfigError(f"val_fraction: must be in [0, 0.5), got {val_fraction}")
    files = [Path(p) for p in paths] if paths is not None else corpus_files()
    if not files:
        raise ConfigError("no corpus files given")
    train_docs: list[bytes] = []
    val_docs: list[bytes] = []
    for f in files:
        doc = read_document(f)
        cut = len(doc) - int(len(doc) * val_fraction)
        train_docs.append(doc[:cut])
        if cut < len(doc):
            val_docs.append(doc[cut:])
    val = encode_documents(val_docs) if val_docs else torch.empty(0, dtype=torch.int16)
    return Corpus(train=encode_documents(train_docs), val=val, files=tuple(str(f) for f in files))


class ByteWindowDataset(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Windows of a token stream: item ``i`` starts at ``i * stride`` and spans ``seq_len + 1`` tokens."""

    def __init__(self, tokens: torch.Tensor, seq_len: int, stride: int | None = None) -> None:
        if tokens.dim() != 1:
            raise ConfigError(f"tokens: expected a 1-d stream, got shape {tuple(tokens.shape)}")
        if seq_len < 1:
            raise ConfigError(f"seq_len: must be >= 1, got {seq_len}")
        stride = seq_len if stride is None else stride
        if stride < 1:
            raise ConfigError(f"stride: must be >= 1, got {stride}")
        if tokens.numel() < seq_len + 1:
            raise ConfigError(
                f"seq_len: {seq_len} needs at least {seq_len + 1} tokens, the stream has {tokens.numel()}"
            )
        self.tokens = tokens
        self.seq_len = seq_len
        self.stride = stride
        self._offsets = torch.arange(seq_len + 1)  # (T+1,)

    def __len__(self) -> int:
        return (self.tokens.numel() - self.seq_len - 1) // self.stride + 1

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not 0 <= index < len(self):
            raise IndexError(f"window {index} out of range 0..{len(self) - 1}")
        start = index * self.stride
        window = self.tokens[start:start + self.seq_len + 1].long()  # (T+1,)
        return window[:-1], window[1:]

    def batch(self, indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs and targets of several windows at once: two (B, T) int64 tensors."""
        starts = torch.tensor(list(indices), dtype=torch.long) * self.stride  # (B,)
        assert bool((starts >= 0).all()) and (not len(starts) or int(starts.max()) + self.seq_len < self.tokens.numel()), \
            "window index out of range"
        windows = self.tokens[starts[:, None] + self._offsets[None, :]].long()  # (B, T+1)
        return windows[:, :-1], windows[:, 1:]


class ShardedBatchSampler:
    """Per-rank batches of window indices, resumable.

    Each epoch the indices are shuffled with ``seed + epoch`` and split across ranks by a
    :class:`torch.utils.data.DistributedSampler` (padding so every rank gets the same count); each rank
    then takes consecutive groups of ``batch_size`` and drops a final partial batch, so every rank takes
    the same number of steps per epoch. :meth:`state_dict` records the epoch and the batches consumed.
    """

    def __init__(self, dataset: Dataset[Any], batch_size: int, *, rank: int = 0, world_size: int = 1,
                 seed: int = 0) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch_size: must be >= 1, got {batch_size}")
        if not 0 <= rank < world_size:
            raise ConfigError(f"rank: {rank} is not in 0..{world_size - 1}")
        self.sampler: DistributedSampler[Any] = DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=seed)
        self.batch_size = batch_size
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.batches_per_epoch = self.sampler.num_samples // batch_size
        if self.batches_per_epoch < 1:
            raise ConfigError(
                f"batch_size: {batch_size} windows per rank but each of {world_size} rank(s) gets only "
                f"{self.sampler.num_samples} per epoch; use a smaller batch, sequence or stride"
            )
        self.epoch = 0
        self.position = 0  # batches of this epoch already returned
        self._order: list[int] | None = None

    def _epoch_order(self) -> list[int]:
        if self._order is None:
            self.sampler.set_epoch(self.epoch)
            self._order = list(iter(self.sampler))
        return self._order

    def next_batch(self) -> list[int]:
        """The next batch of window indices for this rank (moves to the next epoch when one is used up)."""
        if self.position >= self.batches_per_epoch:
            self.epoch += 1
            self.position = 0
            self._order = None
        order = self._epoch_order()
        start = self.position * self.batch_size
        self.position += 1
        return order[start:start + self.batch_size]

    def state_dict(self) -> dict[str, int]:
        """Where the sampler is: enough, with the constructor arguments, to continue exactly."""
        return {"epoch": self.epoch, "position": self.position, "seed": self.seed,
                "world_size": self.world_size, "batch_size": self.batch_size}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Continue from a :meth:`state_dict`; the seed, world size and batch size must match."""
        for key in ("seed", "world_size", "batch_size"):
            if int(state[key]) != getattr(self, key):
                raise ConfigError(
                    f"{key}: the checkpoint's sampler used {state[key]}, this run uses {getattr(self, key)}"
                )
        self.epoch = int(state["epoch"])
        self.position = int(state["position"])
        self._order = None
