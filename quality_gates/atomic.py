"""Atomic text writes: a reader sees the old file or the new one, never half of either.

The one writer the gates runner, the exporters and the orchestrator commands share: the text goes to a
temporary file beside the target (same folder, so ``os.replace`` is a rename on one filesystem), is flushed
and fsynced, then moved into place. Any failure removes the temporary file and leaves the target as it was.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def atomic_write(path: Path, text: str, *, mode: int | None = None) -> Path:
    """Write ``text`` (UTF-8, ``\\n`` line ends) to ``path`` through a temporary file and ``os.replace``.

    The parent folder is created if missing; ``mode`` (e.g. ``0o755`` for a hook script) is set on the
    temporary file before it is moved into place. Returns ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
