"""Repository globs (``**``, ``*``, ``?``, ``[abc]``) over ``/``-separated relative paths; imports nothing heavy."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable


@functools.lru_cache(maxsize=1024)
def glob_regex(pattern: str) -> re.Pattern[str]:
    """Compile a repository glob (``**``, ``*``, ``?``, ``[abc]``) to a regex over ``/``-separated paths.

    A pattern ending in ``/`` (or naming a directory with ``/**``) matches everything below it.

    >>> bool(glob_regex("bitnet/**/*.py").match("bitnet/commands/doctor.py"))
    True
    >>> bool(glob_regex("bitnet/*.py").match("bitnet/commands/doctor.py"))
    False
    """
    if pattern.endswith("/"):
        pattern += "**"
    out: list[str] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif ch == "*":
            out.append("[^/]*")
            i += 1
        elif ch == "?":
            out.append("[^/]")
            i += 1
        elif ch == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                out.append(re.escape(ch))
                i += 1
            else:
                body = pattern[i + 1 : end].replace("\\", "\\\\")
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append(f"[{body}]")
                i = end + 1
        else:
            out.append(re.escape(ch))
            i += 1
    return re.compile("".join(out) + r"\Z")


def matches(path: str, globs: Iterable[str]) -> bool:
    """Whether the repository-relative ``path`` matches any of ``globs``."""
    return any(glob_regex(g).match(path) for g in globs)
