"""Reading JSON files whose errors name the file, line and column (model configs, shard indexes, ...)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bno_foundation.errors import ConfigError


def read_json_object(path: Path, *, error: type[Exception] = ConfigError) -> dict[str, Any]:
    """The JSON object in ``path``.

    A missing, unreadable or malformed file, or a top level that is not an object, raises ``error`` (a
    subclass of the project's errors taking one message, e.g. BitNet's ``CheckpointError``) naming the
    file, and the line and column of a syntax error.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{path}: cannot read ({exc})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise error(f"{path}:{exc.lineno}:{exc.colno}: invalid JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise error(f"{path}: expected a JSON object at the top level")
    return data
