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


# --- hostile input: bounded aliases and nesting, tags that cannot hold their value, duplicate keys ---

BILLION_LAUGHS = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{name}: &{name} [{', '.join([f'*{prev}'] * 9)}]\n"
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True)
)


def test_alias_bomb_is_refused_before_anything_expands_it() -> None:
    assert len(BILLION_LAUGHS.encode()) < 400  # the 353-byte class of bomb: 9**9 values once expanded
    with pytest.raises(ConfigError) as info:
        parse_yaml(BILLION_LAUGHS, "bomb.yaml")
    assert "expands to more than" in str(info.value)
    assert info.value.path == "bomb.yaml" and info.value.line is not None


def test_shared_anchors_within_the_bound_still_load() -> None:
    located = parse_yaml("base: &b {timeout: 5}\nlint: *b\ntest: *b\n", "g.yaml")
    assert located.data == {"base": {"timeout": 5}, "lint": {"timeout": 5}, "test": {"timeout": 5}}


@pytest.mark.parametrize("text", ["[" * 5000 + "]" * 5000,
                                  "a:\n" + "".join("  " * i + "-\n" for i in range(1, 300))])
def test_deep_nesting_is_refused_with_a_line(text: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_yaml(text, "deep.yaml")
    assert "nests deeper than" in str(info.value) and info.value.line is not None


def test_recursive_alias_is_refused() -> None:
    with pytest.raises(ConfigError, match="refers to itself"):
        parse_yaml("a: &x [1, *x]\n", "r.yaml")


@pytest.mark.parametrize(("text", "line", "needle"), [
    ("name: ok\nsize: !!int abc\n", 2, "'abc' is not a valid !!int value"),
    ("when: !!timestamp 2026-13-45\n", 1, "'2026-13-45' is not a valid !!timestamp value"),
    ("when: !!timestamp soon\n", 1, "'soon' is not a valid !!timestamp value"),
    ("x: 1\ny: \x07\n", 2, "U+0007"),
    ("x: 1\ny: \x00\n", 2, "U+0000"),
])
def test_scalars_and_characters_that_cannot_load_name_their_line(text: str, line: int, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_yaml(text, "bad.yaml")
    assert info.value.line == line and needle in str(info.value)


def test_duplicate_key_names_both_lines() -> None:
    with pytest.raises(ConfigError) as info:
        parse_yaml("routing:\n  bugfix: [a]\n  feature: [b]\n  bugfix: [c]\n", "routing.yaml")
    err = info.value
    assert (err.line, err.field) == (4, "routing.bugfix")
    assert "given at line 2" in str(err)
