"""YAML errors name the file, line, column and field."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ConfigDict

from bno_foundation.errors import ConfigError
from bno_foundation.yamlio import parse_yaml, validate


class Gate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    command: list[str]
    timeout: float = 60


class Doc(BaseModel):
    gates: dict[str, Gate]


def test_syntax_error_has_line_and_column() -> None:
    with pytest.raises(ConfigError) as info:
        parse_yaml("gates:\n  build: [a, b\n", "g.yaml")
    assert info.value.path == "g.yaml"
    assert info.value.line is not None and info.value.line >= 2
    assert str(info.value).startswith("g.yaml:")


def test_validation_error_points_at_the_field() -> None:
    located = parse_yaml("gates:\n  build:\n    command: [make]\n    timeout: soon\n", "g.yaml")
    with pytest.raises(ConfigError) as info:
        validate(Doc, located)
    err = info.value
    assert (err.line, err.field) == (4, "gates.build.timeout")
    assert str(err).startswith("g.yaml:4:5: field 'gates.build.timeout': ")


def test_unknown_and_missing_fields() -> None:
    located = parse_yaml("gates:\n  build:\n    cmd: [make]\n", "g.yaml")
    with pytest.raises(ConfigError) as info:
        validate(Doc, located)
    assert info.value.field in {"gates.build.command", "gates.build.cmd"}
    assert info.value.line == 3 or info.value.line == 2


def test_line_offset_for_front_matter() -> None:
    located = parse_yaml("name: x\ncapacity: many\n", "a.md", line_offset=1)
    assert located.where(("capacity",)) == (3, 1)


def test_safe_loader_refuses_python_tags() -> None:
    with pytest.raises(ConfigError):
        parse_yaml("x: !!python/object/apply:os.system ['echo hi']\n", "evil.yaml")
