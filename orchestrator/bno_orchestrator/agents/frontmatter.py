"""Split a Markdown file into YAML front matter and body, and parse the front matter.

Two parsers:

* :func:`parse_front_matter` is strict, for our own ``agents/*.md``: PyYAML's safe loader through
  :func:`bno_foundation.yamlio.parse_yaml` with the right line offset, so every error names the file, the
  line and column in the *file* (not in the front matter) and the field.
* :func:`parse_front_matter_lenient` is for foreign files (Claude Code and Copilot agents as published).
  Claude Code accepts front matter that is not strict YAML: plain scalars containing ``': '``, literal
  ``\\n`` sequences meant as line breaks, CRLF line endings, a byte-order mark, or no front matter at all.
  The lenient parser repairs these and records each repair (:class:`Repair`) so that the import report
  says what it changed.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bno_foundation.errors import ConfigError
from bno_foundation.yamlio import Located, parse_yaml

FENCE = "---"
_CLOSERS = ("---", "...")
_TOP_KEY = re.compile(r"^(?P<key>[A-Za-z_][\w.-]*)[ \t]*:(?:[ \t]+(?P<value>.*))?$")
# first characters that make a YAML value something other than a plain scalar
_NOT_PLAIN = tuple("\"'|>[{&*!%@`")


@dataclass(frozen=True)
class Split:
    """A Markdown file cut at its front-matter fences.

    ``front`` is the YAML text between the fences (None when the file has no front matter);
    ``front_line`` the file line (1-based) of its first line; ``body_line`` the file line where the body
    (leading blank lines removed) starts.
    """

    front: str | None
    body: str
    front_line: int
    body_line: int
    closed: bool = True


@dataclass(frozen=True)
class Repair:
    """One change the lenient parser made to read a foreign file."""

    message: str
    line: int | None = None
    field: str | None = None

    def as_text(self) -> str:
        """``line N: field 'x': message`` (the parts that are known)."""
        where = f"line {self.line}: " if self.line is not None else ""
        name = f"field '{self.field}': " if self.field else ""
        return f"{where}{name}{self.message}"


@dataclass
class LenientResult:
    """What :func:`parse_front_matter_lenient` read: the front matter, the body and the repairs made."""

    data: dict[str, Any]
    body: str
    body_line: int
    located: Located | None
    repairs: list[Repair] = field(default_factory=list)


def _strip_body(lines: list[str], start: int) -> tuple[str, int]:
    """Join ``lines[start:]`` without leading/trailing blank lines; return it and its first file line."""
    while start < len(lines) and not lines[start].strip():
        start += 1
    body = "\n".join(lines[start:]).rstrip()
    return (body + "\n" if body else ""), start + 1


def split_front_matter(text: str) -> Split:
    """Cut ``text`` (LF line endings expected) at the ``---`` fences of its front matter."""
    lines = text.split("\n")
    if not lines or lines[0].rstrip() != FENCE:
        body, body_line = _strip_body(lines, 0)
        return Split(front=None, body=body, front_line=1, body_line=body_line)
    for index in range(1, len(lines)):
        if lines[index].rstrip() in _CLOSERS:
            front = "\n".join(lines[1:index]) + "\n"
            body, body_line = _strip_body(lines, index + 1)
            return Split(front=front, body=body, front_line=2, body_line=body_line)
    front = "\n".join(lines[1:]) + "\n"
    return Split(front=front, body="", front_line=2, body_line=len(lines) + 1, closed=False)


def read_text(path: str | Path) -> str:
    """Read a UTF-8 file as it is on disk (CRLF kept, so that repairs can report it).

    A missing or undecodable file is a ConfigError naming it.
    """
    try:
        return Path(path).read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ConfigError("file not found", path=path) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text: {exc.reason} at byte {exc.start}", path=path) from None
    except OSError as exc:
        raise ConfigError(f"cannot read file: {exc.strerror or exc}", path=path) from None


def parse_front_matter(text: str, path: str | Path) -> tuple[Located, str, int]:
    """Strictly parse the front matter of ``text`` (the content of ``path``).

    Returns the located front-matter mapping (lines are file lines), the body and the body's first line.
    A byte-order mark and CRLF line endings are accepted; anything that is not strict YAML, a missing or
    unclosed front matter, or front matter that is not a mapping is a ConfigError naming file and line.
    """
    text = text.removeprefix("\ufeff").replace("\r\n", "\n")
    split = split_front_matter(text)
    if split.front is None:
        raise ConfigError("no front matter: the file must start with a '---' line", path=path, line=1, column=1)
    if not split.closed:
        raise ConfigError("the front matter opened on line 1 is never closed by a '---' line", path=path, line=1)
    located = parse_yaml(split.front, path, line_offset=split.front_line - 1)
    if located.data is None:
        raise ConfigError("the front matter is empty", path=path, line=split.front_line, column=1)
    if not isinstance(located.data, dict):
        line, column = located.where(())
        raise ConfigError(
            f"the front matter must be a mapping of fields, not a {type(located.data).__name__}",
            path=path,
            line=line,
            column=column,
        )
    return located, split.body, split.body_line


def _requote(front: str, front_line: int) -> tuple[str, list[Repair]]:
    """Quote every top-level plain scalar that strict YAML rejects or misreads.

    A plain value containing ``': '`` or ``' #'`` (and its indented continuation lines) becomes one
    double-quoted scalar; continuation lines become blank lines, so line numbers stay the same.
    """
    lines = front.split("\n")
    repairs: list[Repair] = []
    index = 0
    while index < len(lines):
        match = _TOP_KEY.match(lines[index])
        value = (match.group("value") or "").strip() if match else ""
        if not match or not value or value.startswith(_NOT_PLAIN):
            index += 1
            continue
        end = index + 1
        parts = [value]
        while end < len(lines) and lines[end][:1] in (" ", "\t") and lines[end].strip():
            parts.append(lines[end].strip())
            end += 1
        joined = " ".join(parts)
        if ": " in joined or " #" in joined or joined.endswith(":") or "\t" in joined:
            key = match.group("key")
            lines[index] = f"{key}: {json.dumps(joined, ensure_ascii=False)}"
            for blank in range(index + 1, end):
                lines[blank] = ""
            repairs.append(
                Repair(
                    "quoted a plain value that contains ': ' or ' #' (not valid in strict YAML)",
                    line=front_line + index,
                    field=key,
                )
            )
        index = end
    return "\n".join(lines), repairs


def _key_value_lines(front: str, front_line: int) -> tuple[dict[str, Any], list[Repair]]:
    """Last resort: read top-level ``key: value`` lines as text, skipping everything else."""
    data: dict[str, Any] = {}
    skipped = 0
    for _offset, line in enumerate(front.split("\n")):
        match = _TOP_KEY.match(line)
        if match and match.group("value"):
            value = match.group("value").strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
                value = value[1:-1]
            data[match.group("key")] = value
        elif line.strip():
            skipped += 1
    repairs = [Repair("front matter is not YAML even after quoting; read its 'key: value' lines as text", front_line)]
    if skipped:
        repairs.append(Repair(f"ignored {skipped} front-matter line(s) that are not 'key: value'", front_line))
    return data, repairs


def _unescape_newlines(data: dict[str, Any], located: Located | None) -> list[Repair]:
    """Turn literal ``\\n`` sequences in single-line top-level strings into line breaks."""
    repairs: list[Repair] = []
    for key, value in data.items():
        if isinstance(value, str) and "\\n" in value and "\n" not in value:
            count = value.count("\\n")
            data[key] = value.replace("\\n", "\n")
            line = located.where((key,))[0] if located else None
            repairs.append(Repair(f"turned {count} literal '\\n' sequence(s) into line breaks", line, key))
    return repairs


def parse_front_matter_lenient(text: str, path: str | Path) -> LenientResult:
    """Read the front matter of a foreign agent file as its tool would, recording every repair made."""
    repairs: list[Repair] = []
    if text.startswith("\ufeff"):
        text = text[1:]
        repairs.append(Repair("removed a byte-order mark", 1))
    if "\r\n" in text:
        text = text.replace("\r\n", "\n")
        repairs.append(Repair("converted CRLF line endings to LF"))
    split = split_front_matter(text)
    if split.front is None:
        repairs.append(Repair("no YAML front matter: the whole file is the prompt body", 1))
        return LenientResult({}, split.body, split.body_line, None, repairs)
    if not split.closed:
        repairs.append(Repair("the front matter is never closed by '---': read the whole file as body", 1))
        body = text.split("\n", 1)[1] if "\n" in text else ""
        return LenientResult({}, body.strip("\n") + "\n", 2, None, repairs)
    offset = split.front_line - 1
    located: Located | None
    try:
        located = parse_yaml(split.front, path, line_offset=offset)
    except ConfigError as first_error:
        quoted, quote_repairs = _requote(split.front, split.front_line)
        try:
            located = parse_yaml(quoted, path, line_offset=offset)
            repairs.append(Repair(f"strict YAML parse failed ({first_error.reason}, line {first_error.line})"))
            repairs.extend(quote_repairs)
        except ConfigError:
            data, kv_repairs = _key_value_lines(split.front, split.front_line)
            repairs.extend(kv_repairs)
            repairs.extend(_unescape_newlines(data, None))
            return LenientResult(data, split.body, split.body_line, None, repairs)
    data = located.data
    if data is None:
        repairs.append(Repair("the front matter is empty", split.front_line))
        data = {}
    elif not isinstance(data, dict):
        repairs.append(Repair(f"the front matter is a {type(data).__name__}, not a mapping: ignored", split.front_line))
        data = {}
    data = {str(k): v for k, v in data.items()}
    repairs.extend(_unescape_newlines(data, located))
    return LenientResult(data, split.body, split.body_line, located, repairs)
