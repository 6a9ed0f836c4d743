"""Tokenizers: bytes by default, a Hugging Face tokenizer.json when the model directory has one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bno_bitnet.errors import CheckpointError
from bno_bitnet.tokenizer import ByteTokenizer, HFTokenizer, IncrementalDecoder, Tokenizer, load_tokenizer


def test_byte_tokenizer_round_trips_unicode() -> None:
    tok = ByteTokenizer()
    text = "héllo, 世界 🙂"
    ids = tok.encode(text, add_bos=True)
    assert ids[0] == tok.BOS and all(0 <= i < 256 for i in ids[1:])
    assert tok.decode(ids) == text
    assert tok.decode([*ids, tok.EOS], skip_special=False).endswith("</s>")
    assert tok.decode([65, 9999]) == "A\ufffd"
    assert isinstance(tok, Tokenizer)


def test_incremental_decoder_never_splits_a_character() -> None:
    tok = ByteTokenizer()
    text = "a世🙂b"
    decoder = IncrementalDecoder(tok)
    pieces = [decoder.push(i) for i in tok.encode(text)]
    assert "".join(pieces) + decoder.flush() == text
    assert all("\ufffd" not in p for p in pieces)
    assert pieces[1] == "" and pieces[3] == "世"
    dangling = IncrementalDecoder(tok)
    assert dangling.push(0xE4) == ""
    assert dangling.flush() == "\ufffd"


def _write_wordlevel_tokenizer(directory: Path) -> None:
    from tokenizers import Tokenizer as RustTokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace

    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, "hello": 3, "world": 4, "!": 5}
    tok = RustTokenizer(WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = Whitespace()  # type: ignore[assignment]
    tok.add_special_tokens(["<s>", "</s>"])
    tok.save(str(directory / "tokenizer.json"))


def test_hf_tokenizer_from_model_dir(tmp_path: Path) -> None:
    _write_wordlevel_tokenizer(tmp_path)
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({
        "bos_token": "<s>", "eos_token": {"content": "</s>"},
        "chat_template": "{{ bos_token }}{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n"
                         "{% endfor %}{% if add_generation_prompt %}[assistant]{% endif %}",
    }))
    tok = load_tokenizer(tmp_path)
    assert isinstance(tok, HFTokenizer)
    assert tok.bos_token_id == 1 and tok.eos_token_ids == (2,)
    assert tok.vocab_size == 6
    assert tok.encode("hello world !", add_bos=True) == [1, 3, 4, 5]
    assert tok.decode([1, 3, 4, 2]) == "hello world"
    prompt = tok.apply_chat_template([{"role": "user", "content": "hi"}])
    assert prompt == "<s>[user] hi\n[assistant]"


def test_hf_tokenizer_ids_from_config_json(tmp_path: Path) -> None:
    _write_wordlevel_tokenizer(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"bos_token_id": 1, "eos_token_id": [2, 5]}))
    tok = load_tokenizer(tmp_path)
    assert tok.eos_token_ids == (2, 5)
    assert tok.apply_chat_template([{"role": "user", "content": "x"}]).endswith("Assistant:")


def test_default_is_bytes(tmp_path: Path) -> None:
    assert isinstance(load_tokenizer(tmp_path), ByteTokenizer)
    assert isinstance(load_tokenizer(None), ByteTokenizer)


def test_corrupt_tokenizer_files_name_the_file(tmp_path: Path) -> None:
    (tmp_path / "tokenizer.json").write_text("{not json")
    with pytest.raises(CheckpointError, match=r"tokenizer\.json"):
        load_tokenizer(tmp_path)
    _write_wordlevel_tokenizer(tmp_path)
    (tmp_path / "tokenizer_config.json").write_text('{"bos_token": "<s>",\n "eos_token": }')
    with pytest.raises(CheckpointError, match=r"tokenizer_config\.json:2:15: invalid JSON"):
        load_tokenizer(tmp_path)
