"""User text on a terminal: shown as text, never as markup, emoji codes or terminal control.

Task titles, agent output, file names and YAML values are untrusted. Printed through Rich as they are, a
title holding ``[/]`` raises a markup error, ``[link=...]`` hides a URL behind other text, ``:smile:``
turns into an emoji, and an escape sequence or NUL reaches the terminal (it can retitle the window, move
the cursor, or hide the lines before it). Two tools:

* :func:`visible` turns every control character but newline and tab into a visible form (``\\x1b`` ->
  ``␛``, NUL -> ``␀``, DEL -> ``␡``, C1 controls and the other format/line separators -> ``\\u0085``-style
  escapes), so the text can be shown and still tells what was there.
* :class:`SafeConsole` is a Rich console whose every string (``print`` arguments, table cells, panel
  titles: anything Rich turns into text through ``render_str``) goes through :func:`visible` with markup,
  emoji and highlighting off. Styling is done with :class:`rich.text.Text` objects, which it leaves as
  they are; build them with ``Text(user_text, style=...)`` or ``Text.assemble``. (Rich parses a
  ``Panel``'s ``title``/``subtitle`` strings as markup itself, bypassing the console: pass them as
  ``Text``.)
"""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.text import Text

_PICTURES = {0x7F: "␡"}
_PICTURES.update({code: chr(0x2400 + code) for code in range(0x20)})  # ␀ .. ␟ (U+2400 + code)
# C0 controls but \t and \n, DEL, C1 controls, and the Unicode line/paragraph separators and bidi overrides
# (a right-to-left override makes "txt.exe" show as "exe.txt")
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f\x80-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _show(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    return _PICTURES.get(code) or f"\\u{code:04x}"


def escaped(char: str) -> str:
    """One character as a Python-style escape (``\\x1b``, ``\\u202e``): the form gate logs and JUnit
    reports use to show a character they cannot carry."""
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(text: str) -> str:
    """``text`` with its control characters made visible (newlines and tabs kept)."""
    return _CONTROL.sub(_show, text)


@functools.cache
def _console_class() -> type[Any]:
    from rich.console import Console

    class SafeConsole(Console):
        """A Rich console that shows every string as plain visible text (see the module docstring)."""

        def __init__(self, **kwargs: Any) -> None:
            kwargs.setdefault("highlight", False)
            super().__init__(markup=False, emoji=False, **kwargs)

        def render_str(self, text: str, **kwargs: Any) -> Text:
            kwargs.update(markup=False, emoji=False, highlight=False)
            return super().render_str(visible(text), **kwargs)

    return SafeConsole


def safe_console(**kwargs: Any) -> Any:
    """A :class:`SafeConsole` (a ``rich.console.Console``); ``kwargs`` go to Rich (``file``, ``width``, ...).

    Rich is imported on the first call only: the CLIs start without it.
    """
    return _console_class()(**kwargs)
