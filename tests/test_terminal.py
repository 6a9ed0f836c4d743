"""User text reaches the terminal as text: no markup, no emoji codes, no control sequences."""

from __future__ import annotations

import io

import hypothesis
import hypothesis.strategies as st
from rich.table import Table
from rich.text import Text

from bno_foundation.terminal import safe_console, visible


def _printed(*objects: object) -> str:
    buffer = io.StringIO()
    console = safe_console(file=buffer, width=100, color_system=None)
    console.print(*objects)
    return buffer.getvalue()


def test_markup_and_emoji_codes_print_as_written() -> None:
    title = "fix [/] then [link=https://evil.example]docs[/link] :smile: [bold]x"
    assert _printed(title).rstrip("\n") == title


def test_control_characters_are_made_visible() -> None:
    out = _printed("retitle \x1b]0;pwned\x07 clear \x1b[2J nul \x00 del \x7f rtl \u202eexe.txt")
    assert "\x1b" not in out and "\x00" not in out and "\x07" not in out and "\u202e" not in out
    assert "␛]0;pwned␇" in out and "␛[2J" in out and "nul ␀" in out and "del ␡" in out and "\\u202e" in out


def test_table_cells_are_text_too() -> None:
    table = Table("id", "title")
    table.add_row("T-1", "[/] \x1b[31mred")
    out = _printed(table)
    assert "[/] ␛[31mred" in out and "\x1b" not in out


def test_styled_text_objects_are_kept() -> None:
    buffer = io.StringIO()
    console = safe_console(file=buffer, width=60, force_terminal=True, color_system="standard")
    console.print(Text.assemble(("added ", ""), ("T-1", "bold")), "[/]")
    out = buffer.getvalue()
    assert "\x1b[1mT-1" in out and "[/]" in out  # our own style is applied; the user's text is literal


@hypothesis.given(st.text(max_size=80))
def test_visible_leaves_no_control_character(text: str) -> None:
    shown = visible(text)
    assert all(ch in "\n\t" or (ord(ch) >= 0x20 and not 0x7F <= ord(ch) <= 0x9F) for ch in shown)
    assert _printed(text) is not None  # never raises, whatever the text
