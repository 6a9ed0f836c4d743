"""Tokenizers for the generation engine.

* :class:`ByteTokenizer`: the offline default. Token ``b`` (0..255) is the byte ``b`` of the UTF-8 text;
  256 is BOS and 257 is EOS. It needs no files, so a random-weight model can run anywhere.
* :class:`HFTokenizer`: any Hugging Face ``tokenizer.json`` through the ``tokenizers`` library, with the
  BOS/EOS ids and the chat template taken from the model directory's ``tokenizer_config.json``,
  ``generation_config.json`` and ``config.json`` when present.

:func:`load_tokenizer` picks one for a model directory. :class:`IncrementalDecoder` turns a stream of
token ids into text pieces without splitting a multi-byte character.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from bno_bitnet.errors import CheckpointError
from bno_foundation.jsonfile import read_json_object

REPLACEMENT_CHAR = "\ufffd"


@runtime_checkable
class Tokenizer(Protocol):
    """What the engine needs of a tokenizer."""

    @property
    def vocab_size(self) -> int:
        """Number of token ids this tokenizer can produce or decode (ids are ``0 .. vocab_size - 1``)."""
        ...

    @property
    def bos_token_id(self) -> int | None:
        """The id put before a prompt when ``add_bos`` is asked, or None."""
        ...

    @property
    def eos_token_ids(self) -> tuple[int, ...]:
        """Ids that end a generation by default."""
        ...

    def encode(self, text: str, *, add_bos: bool = False) -> list[int]:
        """Token ids of ``text``."""
        ...

    def decode(self, ids: Sequence[int], *, skip_special: bool = True) -> str:
        """Text of ``ids``."""
        ...

    def apply_chat_template(self, messages: Sequence[dict[str, str]]) -> str:
        """The prompt text of a conversation, ending where the assistant's reply begins."""
        ...


def _simple_chat_prompt(messages: Sequence[dict[str, str]]) -> str:
    """A plain-text conversation format for tokenizers without a chat template."""
    lines = []
    for message in messages:
        role = message.get("role", "user").capitalize()
        lines.append(f"{role}: {message.get('content', '')}")
    lines.append("Assistant:")
    return "\n".join(lines)


class ByteTokenizer:
    """UTF-8 bytes as tokens: ids 0..255 are bytes, 256 is BOS, 257 is EOS (vocabulary 258)."""

    BOS = 256
    EOS = 257

    @property
    def vocab_size(self) -> int:
        """258: the 256 byte values plus BOS and EOS."""
        return 258

    @property
    def bos_token_id(self) -> int | None:
        """256."""
        return self.BOS

    @property
    def eos_token_ids(self) -> tuple[int, ...]:
        """(257,)."""
        return (self.EOS,)

    def encode(self, text: str, *, add_bos: bool = False) -> list[int]:
        """The UTF-8 bytes of ``text`` (after BOS when ``add_bos``)."""
        ids = list(text.encode("utf-8"))
        return [self.BOS, *ids] if add_bos else ids

    def decode(self, ids: Sequence[int], *, skip_special: bool = True) -> str:
        """Bytes back to text; invalid UTF-8 becomes U+FFFD. Specials are dropped or shown as ``<s>``/``</s>``."""
        out = bytearray()
        for tok in ids:
            tok = int(tok)
            if 0 <= tok < 256:
                out.append(tok)
            elif tok in (self.BOS, self.EOS):
                if not skip_special:
                    out.extend(b"<s>" if tok == self.BOS else b"</s>")
            else:
                out.extend(REPLACEMENT_CHAR.encode("utf-8"))
        return out.decode("utf-8", errors="replace")

    def apply_chat_template(self, messages: Sequence[dict[str, str]]) -> str:
        """``Role: content`` lines, then ``Assistant:``."""
        return _simple_chat_prompt(messages)


def _token_text(value: Any) -> str | None:
    """A special token as written in tokenizer_config.json: a string or an AddedToken dict."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("content"), str):
        return str(value["content"])
    return None


class HFTokenizer:
    """A Hugging Face ``tokenizer.json`` (fast tokenizer) through the ``tokenizers`` library."""

    def __init__(self, tokenizer: Any, *, bos_token_id: int | None, eos_token_ids: Sequence[int],
                 chat_template: str | None = None, bos_token: str | None = None,
                 eos_token: str | None = None, source: str = "") -> None:
        self._tok = tokenizer
        self._bos = bos_token_id
        self._eos = tuple(int(t) for t in eos_token_ids)
        self._chat_template = chat_template
        self._bos_text = bos_token
        self._eos_text = eos_token
        self.source = source

    @classmethod
    def from_dir(cls, model_dir: str | Path) -> HFTokenizer:
        """Load ``tokenizer.json`` and the special ids/chat template from the files beside it."""
        from tokenizers import Tokenizer as RustTokenizer

        directory = Path(model_dir)
        path = directory / "tokenizer.json"
        try:
            tok = RustTokenizer.from_file(str(path))
        except Exception as exc:  # the Rust side raises a bare Exception on malformed files
            raise CheckpointError(f"{path}: not a valid Hugging Face tokenizer file ({exc})") from exc
        config: dict[str, Any] = {}
        for name in ("config.json", "generation_config.json", "tokenizer_config.json"):
            if (directory / name).is_file():
                config[name] = read_json_object(directory / name, error=CheckpointError)
        tok_cfg = config.get("tokenizer_config.json", {})
        bos_text = _token_text(tok_cfg.get("bos_token"))
        eos_text = _token_text(tok_cfg.get("eos_token"))

        def ids_of(key: str, text: str | None) -> list[int]:
            for name in ("generation_config.json", "config.json"):
                value = config.get(name, {}).get(key)
                if isinstance(value, int) and not isinstance(value, bool):
                    return [value]
                if isinstance(value, list) and all(isinstance(v, int) for v in value):
                    return [int(v) for v in value]
            if text is not None:
                found = tok.token_to_id(text)
                if found is not None:
                    return [int(found)]
            return []

        bos = ids_of("bos_token_id", bos_text)
        eos = ids_of("eos_token_id", eos_text)
        template = tok_cfg.get("chat_template")
        if isinstance(template, list):  # named templates: [{"name": "default", "template": "..."}]
            named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
            template = named.get("default")
        return cls(tok, bos_token_id=bos[0] if bos else None, eos_token_ids=eos,
                   chat_template=template if isinstance(template, str) else None,
                   bos_token=bos_text, eos_token=eos_text, source=str(path))

    @property
    def vocab_size(self) -> int:
        """Size of the vocabulary including added tokens."""
        return int(self._tok.get_vocab_size(with_added_tokens=True))

    @property
    def bos_token_id(self) -> int | None:
        """BOS id from the model directory's configs, or None."""
        return self._bos

    @property
    def eos_token_ids(self) -> tuple[int, ...]:
        """EOS ids from the model directory's configs (may be several)."""
        return self._eos

    def encode(self, text: str, *, add_bos: bool = False) -> list[int]:
        """Token ids of ``text`` without the tokenizer's own post-processing; BOS first when ``add_bos``."""
        ids = [int(t) for t in self._tok.encode(text, add_special_tokens=False).ids]
        if add_bos and self._bos is not None and (not ids or ids[0] != self._bos):
            ids.insert(0, self._bos)
        return ids

    def decode(self, ids: Sequence[int], *, skip_special: bool = True) -> str:
        """Text of ``ids``."""
        return str(self._tok.decode([int(t) for t in ids], skip_special_tokens=skip_special))

    def apply_chat_template(self, messages: Sequence[dict[str, str]]) -> str:
        """Render the directory's Jinja2 chat template (sandboxed), or the plain format without one."""
        if self._chat_template is None:
            return _simple_chat_prompt(messages)
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        try:
            template = env.from_string(self._chat_template)
            return template.render(messages=list(messages), add_generation_prompt=True,
                                   bos_token=self._bos_text or "", eos_token=self._eos_text or "")
        except Exception as exc:  # a template error is a problem of the model directory
            raise CheckpointError(f"{self.source}: chat_template of tokenizer_config.json fails: {exc}") from exc


def load_tokenizer(model_dir: str | Path | None) -> Tokenizer:
    """The tokenizer of a model directory: its ``tokenizer.json`` when it has one, else bytes."""
    if model_dir is not None and (Path(model_dir) / "tokenizer.json").is_file():
        return HFTokenizer.from_dir(model_dir)
    return ByteTokenizer()


class IncrementalDecoder:
    """Turns token ids, one at a time, into text pieces.

    It decodes a short window of recent ids (the text-generation-inference scheme: a prefix already
    emitted plus the new ids) and emits only text that is complete, holding back a trailing U+FFFD that
    may be the first bytes of a character not yet finished. Each step costs O(window), not O(length).
    """

    def __init__(self, tokenizer: Tokenizer) -> None:
        self.tokenizer = tokenizer
        self._ids: list[int] = []
        self._prefix = 0  # start of the window of ids decoded for context
        self._read = 0  # ids before this have been emitted

    def push(self, token_id: int) -> str:
        """Add one id; return the text it completes (possibly empty)."""
        self._ids.append(int(token_id))
        prefix_text = self.tokenizer.decode(self._ids[self._prefix:self._read])
        new_text = self.tokenizer.decode(self._ids[self._prefix:])
        if len(new_text) > len(prefix_text) and not new_text.endswith(REPLACEMENT_CHAR):
            self._prefix, self._read = self._read, len(self._ids)
            return new_text[len(prefix_text):]
        return ""

    def flush(self) -> str:
        """The text still held back (an unfinished character shows as U+FFFD)."""
        prefix_text = self.tokenizer.decode(self._ids[self._prefix:self._read])
        new_text = self.tokenizer.decode(self._ids[self._prefix:])
        self._prefix = self._read = len(self._ids)
        return new_text[len(prefix_text):]
