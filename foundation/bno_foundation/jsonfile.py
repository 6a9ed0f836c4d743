"""Reading JSON files whose errors name the file, line and column (model configs, shard indexes, ...)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bno_foundation.errors import ConfigError

#: The largest JSON file read (model configs and shard indexes are kilobytes; tokenizer configs with many
#: added tokens reach a few megabytes).
MAX_JSON_BYTES = 64 * 1024 * 1024


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def read_json_object(path: Path, *, error: type[Exception] = ConfigError,
                     max_bytes: int = MAX_JSON_BYTES) -> dict[str, Any]:
    """The JSON object in ``path``.

    A missing, unreadable, oversized (more than ``max_bytes``) or malformed file, ``NaN``/``Infinity``
    (not JSON, though Python writes them), nesting too deep to read, or a top level that is not an
    object raises ``error`` (a subclass of the project's errors taking one message, e.g. BitNet's
    ``CheckpointError``) naming the file, and the line and column of a syntax error.
    """
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise error(f"{path}: {size:,} bytes is larger than the {max_bytes:,} bytes a JSON file may have here")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{path}: cannot read ({exc})") from None
    try:
        data = json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise error(f"{path}:{exc.lineno}:{exc.colno}: invalid JSON ({exc.msg})") from None
    except ValueError as exc:
        raise error(f"{path}: invalid JSON ({exc})") from None
    except RecursionError:
        raise error(f"{path}: invalid JSON (nested too deeply to read)") from None
    if not isinstance(data, dict):
        raise error(f"{path}: expected a JSON object at the top level")
    return data
