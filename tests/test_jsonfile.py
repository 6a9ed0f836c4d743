"""JSON files read from model directories are bounded and strict: size cap, no NaN/Infinity, deep nesting
is an error naming the file (issue: hostile input)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bno_foundation.errors import ConfigError
from bno_foundation.jsonfile import read_json_object


@pytest.mark.parametrize(("text", "needle"), [
    ('{"rms_norm_eps": NaN}', "NaN is not a JSON number"),
    ('{"rope_theta": Infinity}', "Infinity is not a JSON number"),
    ('{"a": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested too deeply"),
    ('{"a": 1,}', "config.json:1:9: invalid JSON"),
    ("[1, 2]", "expected a JSON object"),
])
def test_bad_json_names_the_file(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "config.json"
    path.write_text(text)
    with pytest.raises(ConfigError, match=r"config\.json") as info:
        read_json_object(path)
    assert needle in str(info.value)


def test_oversized_json_is_refused_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text('{"pad": "' + "x" * 2048 + '"}')
    with pytest.raises(ConfigError, match="larger than the 1,024 bytes"):
        read_json_object(path, max_bytes=1024)
    assert read_json_object(path)["pad"] == "x" * 2048
