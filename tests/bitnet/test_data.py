"""The byte corpus, windows and the resumable sharded sampler (bitnet/data.py)."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
import torch
from torch.utils.data import DistributedSampler

from bno_bitnet.data import (
    BOS_ID,
    CORPUS_DIR,
    EOS_ID,
    VOCAB_SIZE,
    ByteWindowDataset,
    ShardedBatchSampler,
    corpus_files,
    encode_documents,
    load_corpus,
    read_document,
)
from bno_bitnet.errors import ConfigError
from bno_bitnet.tokenizer import ByteTokenizer


def test_shipped_corpus_is_small_english_and_documented() -> None:
    files = corpus_files()
    assert len(files) == 6, [f.name for f in files]
    assert sum(f.stat().st_size for f in files) <= 2 * 1024 * 1024, "corpus must stay <= 2 MB on disk"
    assert (CORPUS_DIR / "SOURCES.md").is_file()
    pride = read_document(CORPUS_DIR / "austen_pride_and_prejudice.txt.gz").decode("utf-8")
    assert "It is a truth universally acknowledged" in pride
    for f in files:
        text = read_document(f)
        assert b"gutenberg" not in text.lower(), f"{f.name} still carries the Project Gutenberg licence text"


def test_encode_documents_frames_each_document() -> None:
    tokens = encode_documents([b"ab", b"\xc3\xa9"])
    assert tokens.tolist() == [BOS_ID, 97, 98, EOS_ID, BOS_ID, 0xC3, 0xA9, EOS_ID]
    assert VOCAB_SIZE == ByteTokenizer().vocab_size == 258
    assert ByteTokenizer().decode(tokens.tolist()) == "abé"


def test_load_corpus_holds_out_the_tail_of_every_document(tmp_path: Path) -> None:
    a = tmp_path / "a.txt"
    a.write_bytes(b"0123456789" * 10)
    b = tmp_path / "b.txt.gz"
    with gzip.open(b, "wb") as fh:
        fh.write(b"abcdefghij" * 10)
    corpus = load_corpus([a, b], val_fraction=0.1)
    train_text = bytes(t for t in corpus.train.tolist() if t < 256)
    val_text = bytes(t for t in corpus.val.tolist() if t < 256)
    assert train_text == (b"0123456789" * 9) + (b"abcdefghij" * 9)
    assert val_text == b"0123456789" + b"abcdefghij"
    assert corpus.num_tokens == 200 + 8


def test_bad_corpus_inputs_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        read_document(tmp_path / "missing.txt")
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    with pytest.raises(ConfigError, match=r"empty\.txt: corpus file is empty"):
        read_document(empty)
    bad = tmp_path / "bad.txt.gz"
    bad.write_bytes(b"not gzip at all")
    with pytest.raises(ConfigError, match=r"bad\.txt\.gz: cannot read"):
        read_document(bad)
    empty_dir = tmp_path / "emptydir"
    empty_dir.mkdir()
    with pytest.raises(ConfigError, match=r"no \*\.txt"):
        corpus_files(empty_dir)
    with pytest.raises(ConfigError, match="does not exist"):
        corpus_files(tmp_path / "nothing-here")


def test_windows_and_batches_agree() -> None:
    tokens = torch.arange(100, dtype=torch.int16)
    ds = ByteWindowDataset(tokens, seq_len=8, stride=4)
    assert len(ds) == (100 - 9) // 4 + 1
    x, y = ds[3]
    assert x.tolist() == list(range(12, 20)) and y.tolist() == list(range(13, 21))
    bx, by = ds.batch([3, 0, len(ds) - 1])
    assert bx.shape == (3, 8) and bx.dtype == torch.int64
    assert torch.equal(bx[0], x) and torch.equal(by[0], y)
    assert int(by[2, -1]) <= 99
    with pytest.raises(IndexError):
        ds[len(ds)]
    with pytest.raises(ConfigError, match="seq_len"):
        ByteWindowDataset(torch.arange(5), seq_len=8)


def test_sampler_shards_like_distributed_sampler() -> None:
    ds = ByteWindowDataset(torch.arange(1000, dtype=torch.int16), seq_len=9)  # 99 windows
    world, batch = 2, 7
    for rank in range(world):
        ours = ShardedBatchSampler(ds, batch, rank=rank, world_size=world, seed=5)
        ref = DistributedSampler(ds, num_replicas=world, rank=rank, shuffle=True, seed=5)
        for epoch in range(2):
            ref.set_epoch(epoch)
            expected = list(iter(ref))
            got = [i for _ in range(ours.batches_per_epoch) for i in ours.next_batch()]
            assert got == expected[: ours.batches_per_epoch * batch], f"rank {rank} epoch {epoch}"
    # with an even count (no padding) the two ranks never share a window within an epoch
    even = ByteWindowDataset(torch.arange(1001, dtype=torch.int16), seq_len=9, stride=10)
    assert len(even) == 100
    r0 = ShardedBatchSampler(even, batch, rank=0, world_size=2, seed=5)
    r1 = ShardedBatchSampler(even, batch, rank=1, world_size=2, seed=5)
    seen0 = {i for _ in range(r0.batches_per_epoch) for i in r0.next_batch()}
    seen1 = {i for _ in range(r1.batches_per_epoch) for i in r1.next_batch()}
    assert not seen0 & seen1
    assert len(seen0) == len(seen1) == r0.batches_per_epoch * batch


def test_sampler_resumes_exactly_and_is_seeded() -> None:
    ds = ByteWindowDataset(torch.arange(500, dtype=torch.int16), seq_len=4)
    straight = ShardedBatchSampler(ds, 8, seed=1)
    batches = [straight.next_batch() for _ in range(40)]  # crosses epoch boundaries (12 per epoch)
    first = ShardedBatchSampler(ds, 8, seed=1)
    for _ in range(17):
        first.next_batch()
    state = first.state_dict()
    resumed = ShardedBatchSampler(ds, 8, seed=1)
    resumed.load_state_dict(state)
    assert [resumed.next_batch() for _ in range(23)] == batches[17:]
    other_seed = ShardedBatchSampler(ds, 8, seed=2)
    assert other_seed.next_batch() != batches[0]
    with pytest.raises(ConfigError, match="world_size"):
        ShardedBatchSampler(ds, 8, seed=1, world_size=2).load_state_dict(state)
    with pytest.raises(ConfigError, match="batch_size"):
        ShardedBatchSampler(ds, 1000)
