"""YAML loading that remembers where every value came from.

``load_yaml`` parses with ``yaml.SafeLoader`` only and returns :class:`Located` data: the plain Python
value plus a map from each key path to its (line, column). ``validate`` turns a pydantic
``ValidationError`` into a :class:`ConfigError` naming the file, the line and column of the offending
value, and the field path. Lines and columns are 1-based.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from bno_foundation.errors import ConfigError

KeyPath = tuple[str | int, ...]
M = TypeVar("M", bound=BaseModel)


@dataclass
class Located:
    """A parsed YAML document and the position of each value in it."""

    data: Any
    path: str
    positions: dict[KeyPath, tuple[int, int]] = field(default_factory=dict)
    line_offset: int = 0  # added to every line (front matter starts after the opening '---')

    def where(self, key_path: Sequence[str | int]) -> tuple[int | None, int | None]:
        """The (line, column) of the value at ``key_path``, or of its nearest located ancestor."""
        keys = tuple(key_path)
        while True:
            if keys in self.positions:
                line, column = self.positions[keys]
                return line + self.line_offset, column
            if not keys:
                return None, None
            keys = keys[:-1]

    def error(self, message: str, key_path: Sequence[str | int] = ()) -> ConfigError:
        """A ConfigError pointing at ``key_path`` in this document."""
        line, column = self.where(key_path)
        name = ".".join(str(k) for k in key_path) or None
        return ConfigError(message, path=self.path, line=line, column=column, field=name)


def _collect_positions(node: yaml.Node, prefix: KeyPath, out: dict[KeyPath, tuple[int, int]]) -> None:
    out[prefix] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.start_mark)
            out.setdefault((*prefix, key), (key_node.start_mark.line + 1, key_node.start_mark.column + 1))
            _collect_positions(value_node, (*prefix, key), out)
            # the key's own position is more useful for "missing/extra field" errors than the value's
            out[(*prefix, key)] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _collect_positions(item, (*prefix, index), out)


def _duplicate_key(node: yaml.Node, prefix: KeyPath) -> tuple[KeyPath, yaml.Node] | None:
    """The first key given twice in one mapping (YAML forbids it; PyYAML would keep the last silently)."""
    if isinstance(node, yaml.MappingNode):
        seen: set[object] = set()
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                if key_node.value in seen:
                    return (*prefix, key_node.value), key_node
                seen.add(key_node.value)
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.start_mark)
            found = _duplicate_key(value_node, (*prefix, key))
            if found:
                return found
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            found = _duplicate_key(item, (*prefix, index))
            if found:
                return found
    return None


def parse_yaml(text: str, path: str | Path, *, line_offset: int = 0) -> Located:
    """Parse ``text`` (from ``path``) with the safe loader, keeping positions.

    Raises ConfigError with the file, line and column of a syntax error.
    """
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 + line_offset if mark else None
        column = mark.column + 1 if mark else None
        reason = " ".join(str(p) for p in (exc.context, exc.problem) if p) or str(exc)
        raise ConfigError(f"invalid YAML: {reason}", path=path, line=line, column=column) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {exc}", path=path) from None
    finally:
        loader.dispose()
    positions: dict[KeyPath, tuple[int, int]] = {}
    if node is not None:
        duplicate = _duplicate_key(node, ())
        if duplicate is not None:
            key_path, key_node = duplicate
            raise ConfigError(f"duplicate key {key_path[-1]!r}: it is given twice in the same mapping",
                              path=path, line=key_node.start_mark.line + 1 + line_offset,
                              column=key_node.start_mark.column + 1, field=".".join(str(k) for k in key_path))
        _collect_positions(node, (), positions)
    return Located(data=data, path=str(path), positions=positions, line_offset=line_offset)


def load_yaml(path: str | Path) -> Located:
    """Read and parse a YAML file; a missing or unreadable file is a ConfigError naming it."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("file not found", path=path) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read file: {exc}", path=path) from None
    return parse_yaml(text, path)


def validate(model: type[M], located: Located, *, key_path: Sequence[str | int] = (), data: Any = None) -> M:
    """Validate the value at ``key_path`` (or ``data`` when given) against ``model``.

    The first pydantic error becomes a ConfigError with the file, line, column and dotted field path.
    """
    value = data if data is not None else _get(located.data, key_path)
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc: KeyPath = (*key_path, *(p for p in first["loc"] if isinstance(p, str | int)))
        message = first["msg"]
        if first["type"] == "missing":
            message = "required field is missing"
        elif first["type"] == "extra_forbidden":
            message = "unknown field"
        raise located.error(message, loc) from None


def _get(data: Any, key_path: Sequence[str | int]) -> Any:
    for key in key_path:
        data = data[key]
    return data
