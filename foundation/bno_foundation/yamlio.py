"""YAML loading that remembers where every value came from.

``load_yaml`` parses with ``yaml.SafeLoader`` only and returns :class:`Located` data: the plain Python
value plus a map from each key path to its (line, column). ``validate`` turns a pydantic
``ValidationError`` into a :class:`ConfigError` naming the file, the line and column of the offending
value, and the field path. Lines and columns are 1-based.

Untrusted YAML is bounded before anything is built from it: the composed node graph is measured as if
every alias were expanded, and a document that expands to more than :data:`MAX_EXPANDED_NODES` values or
nests deeper than :data:`MAX_DEPTH` is refused (a few hundred bytes of "billion laughs" aliases would
otherwise cost minutes and gigabytes in any walk over the data). A scalar whose tag cannot hold its
value (``!!int abc``, ``!!timestamp 2026-13-45``) is an error at its line, and so is a key given twice,
naming both lines.
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

#: The most values a document may hold once every alias is expanded.
MAX_EXPANDED_NODES = 100_000
#: The deepest nesting of mappings and sequences a document may have.
MAX_DEPTH = 64
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


def _collect_positions(root: yaml.Node, out: dict[KeyPath, tuple[int, int]]) -> None:
    """Record the position of every key path (iteratively: the depth is bounded, not the recursion)."""
    stack: list[tuple[yaml.Node, KeyPath]] = [(root, ())]
    while stack:
        node, prefix = stack.pop()
        out.setdefault(prefix, (node.start_mark.line + 1, node.start_mark.column + 1))
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                key = _key_name(key_node)
                # the key's own position is more useful for "missing/extra field" errors than the value's
                out[(*prefix, key)] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
                stack.append((value_node, (*prefix, key)))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, (*prefix, index)) for index, item in enumerate(node.value))


def _key_name(key_node: yaml.Node) -> str:
    return str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else str(key_node.start_mark)


def _check_bounds(root: yaml.Node, path: str | Path, line_offset: int) -> None:
    """Refuse a document that is too deep, or too large once its aliases are expanded.

    Each distinct node is visited once (aliases share nodes), so this costs the size of the text, not of
    the expansion: sizes are summed bottom-up over a post-order walk.
    """
    expanded: dict[int, int] = {}
    stack: list[tuple[yaml.Node, int, bool]] = [(root, 1, False)]
    on_path: set[int] = set()
    while stack:
        node, depth, children_done = stack.pop()
        ident = id(node)
        if depth > MAX_DEPTH:
            raise ConfigError(f"YAML nests deeper than {MAX_DEPTH} levels", path=path,
                              line=node.start_mark.line + 1 + line_offset, column=node.start_mark.column + 1)
        children: list[yaml.Node] = []
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                children += [key_node, value_node]
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        if children_done:
            on_path.discard(ident)
            expanded[ident] = 1 + sum(expanded[id(child)] for child in children)
            if expanded[ident] > MAX_EXPANDED_NODES:
                raise ConfigError(
                    f"YAML expands to more than {MAX_EXPANDED_NODES:,} values (through its aliases): refused",
                    path=path, line=node.start_mark.line + 1 + line_offset, column=node.start_mark.column + 1)
            continue
        if ident in expanded:
            continue
        if ident in on_path:  # a recursive alias: PyYAML can compose one; nothing here may walk it
            raise ConfigError("YAML alias refers to itself (a recursive structure)", path=path,
                              line=node.start_mark.line + 1 + line_offset, column=node.start_mark.column + 1)
        on_path.add(ident)
        stack.append((node, depth, True))
        stack.extend((child, depth + 1, False) for child in children if id(child) not in expanded)


def _duplicate_key(root: yaml.Node) -> tuple[KeyPath, yaml.Node, yaml.Node] | None:
    """The first key given twice in one mapping, with both key nodes (PyYAML would keep the last silently)."""
    stack: list[tuple[yaml.Node, KeyPath]] = [(root, ())]
    seen_nodes: set[int] = set()
    while stack:
        node, prefix = stack.pop()
        if id(node) in seen_nodes:
            continue
        seen_nodes.add(id(node))
        if isinstance(node, yaml.MappingNode):
            first: dict[object, yaml.Node] = {}
            for key_node, value_node in node.value:
                if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                    if key_node.value in first:
                        return (*prefix, key_node.value), first[key_node.value], key_node
                    first[key_node.value] = key_node
                stack.append((value_node, (*prefix, _key_name(key_node))))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, (*prefix, index)) for index, item in enumerate(node.value))
    return None


class _TooDeep(Exception):
    def __init__(self, mark: yaml.Mark) -> None:
        super().__init__()
        self.mark = mark


class _Loader(yaml.SafeLoader):
    """The safe loader, refusing deep nesting while it composes (before Python's recursion limit), and
    reporting a scalar that its tag cannot hold at the scalar's own line."""

    _depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _TooDeep(self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, TypeError, OverflowError, AttributeError, KeyError, IndexError) as exc:
            # PyYAML's constructors fail on values their tag cannot hold with whatever Python raises
            # (!!timestamp x: AttributeError inside the constructor)
            tag = node.tag.rsplit(":", 1)[-1]
            value = node.value if isinstance(node, yaml.ScalarNode) else type(node).__name__
            detail = f" ({exc})" if isinstance(exc, ValueError | OverflowError) else ""
            raise yaml.constructor.ConstructorError(
                None, None, f"{value!r} is not a valid !!{tag} value{detail}", node.start_mark) from None


def _mark_of_reader_error(exc: yaml.reader.ReaderError, text: str) -> tuple[int, int]:
    before = text[: exc.position]
    return before.count("\n") + 1, exc.position - (before.rfind("\n") + 1) + 1


def parse_yaml(text: str, path: str | Path, *, line_offset: int = 0) -> Located:
    """Parse ``text`` (from ``path``) with the safe loader, keeping positions.

    Raises ConfigError with the file, line and column of a syntax error, of a value its tag cannot hold,
    of a duplicate key (naming the first line too), or of the node where the document grows past the
    bounds on alias expansion and nesting.
    """
    loader: _Loader | None = None
    try:
        loader = _Loader(text)
        node = loader.get_single_node()
        if node is not None:
            _check_bounds(node, path, line_offset)
            duplicate = _duplicate_key(node)
            if duplicate is not None:
                key_path, first_node, key_node = duplicate
                raise ConfigError(
                    f"duplicate key {key_path[-1]!r}: given at line {first_node.start_mark.line + 1 + line_offset}"
                    f" and again at line {key_node.start_mark.line + 1 + line_offset} (a mapping may not repeat a key)",
                    path=path, line=key_node.start_mark.line + 1 + line_offset,
                    column=key_node.start_mark.column + 1, field=".".join(str(k) for k in key_path))
        data = loader.construct_document(node) if node is not None else None
    except yaml.reader.ReaderError as exc:
        at_line, at_column = _mark_of_reader_error(exc, text)
        raise ConfigError(f"invalid YAML: {exc.reason} (character U+{int(exc.character):04X} is not allowed)",
                          path=path, line=at_line + line_offset, column=at_column) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 + line_offset if mark else None
        column = mark.column + 1 if mark else None
        reason = " ".join(str(p) for p in (exc.context, exc.problem) if p) or str(exc)
        raise ConfigError(f"invalid YAML: {reason}", path=path, line=line, column=column) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {exc}", path=path) from None
    except _TooDeep as exc:
        raise ConfigError(f"YAML nests deeper than {MAX_DEPTH} levels", path=path,
                          line=exc.mark.line + 1 + line_offset, column=exc.mark.column + 1) from None
    finally:
        if loader is not None:
            loader.dispose()
    positions: dict[KeyPath, tuple[int, int]] = {}
    if node is not None:
        _collect_positions(node, positions)
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
