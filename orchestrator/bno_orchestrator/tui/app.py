"""The sprint board: a thin Textual app over :mod:`bno_orchestrator.tui.data`.

One column per workflow state, sized to the terminal, all drawn by one :class:`BoardView` that renders
only the cards in sight, so the board stays interactive with thousands of tasks. The data
layer's :class:`~bno_orchestrator.tui.data.BoardModel` keeps the cards between changes: a key moves a
cursor (two cards repaint), the filter re-filters the cards in memory (nothing is rebuilt, the board never
goes blank) and a store change re-reads only the tasks its events name and repaints only the columns whose
cards changed. The board polls ``Store.events(since=last_id)`` (another terminal, a hook, a dispatcher).

Keys (``?`` lists them all): ``h/j/k/l`` or arrows and ``tab`` move the cursor, ``H``/``L`` move the card
back/forward through the workflow, ``m`` offers every allowed move, ``b`` blocks and ``E`` escalates
(asking for the reason, stored in the event), ``a`` adds, ``e`` edits, ``x`` deletes (after a confirm that
asks for the reason), ``u`` undoes the board's last action (a move, an edit, an add or a delete), ``/``
filters, ``s`` saves the filter, ``f`` recalls a saved one, ``enter`` toggles the detail pane (with the last
dispatch attempt and, while it runs, the tail of its live progress file).

Information is never carried by colour alone: the cursor is a marker and bold, gate verdicts are ``✓``/
``✗``, blocked and escalated cards say so in words; with ``NO_COLOR`` the cards use no colour at all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, cast

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.cache import LRUCache
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.css.query import NoMatches
from textual.events import Click, MouseScrollDown, MouseScrollUp
from textual.fuzzy import Matcher
from textual.geometry import Region
from textual.markup import escape as escape_markup
from textual.message import Message
from textual.reactive import reactive
from textual.screen import ModalScreen, Screen
from textual.strip import Strip
from textual.widget import Widget
from textual.widgets import Footer, Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from bno_foundation.terminal import visible
from bno_orchestrator.errors import UserError
from bno_orchestrator.rules import ScoringConfig
from bno_orchestrator.tui.data import (
    DISPATCH_SECTION,
    GATE_BADGES,
    PROGRESS_LINES,
    BoardModel,
    Card,
    Column,
    Detail,
    MoveResult,
    ProgressEntry,
    Refresh,
    Snapshot,
    detail,
    load_snapshot,
    move_card,
    needs_reason,
    read_progress_tail,
    refresh_snapshot,
    running_progress_file,
    step_target,
    truncate,
)
from bno_orchestrator.tui.edits import (
    FORM_FIELDS,
    UndoEntry,
    add_entry,
    add_from_form,
    delete_from_board,
    edit_from_form,
    form_values,
    undo,
)
from bno_orchestrator.tui.filters import delete_filter, filters_path, load_filters, save_filter
from bno_orchestrator.workflow import Workflow

if TYPE_CHECKING:
    from textual.notifications import SeverityLevel

    from bno_orchestrator.store import Store

CARD_HEIGHT = 5  # id and score, two lines of title, agent and flags, a gap
TITLE_LINES = 2
HEADER_LINES = 2  # a column's state, then how many cards
MIN_WIDTH = 16  # the narrowest column with cards
MIN_EMPTY_WIDTH = 11  # the narrowest empty column
SELECTED_MARK = "▶"


def card_text(card: Card) -> Text:
    """A card's content in one piece (rich Text, so user text is never read as markup; its control characters
    are made visible)."""
    text = Text()
    text.append(visible(card.id), style="bold")
    text.append(f" {score_label(card.score)} {GATE_BADGES[card.gate]}\n")
    text.append(visible(card.title))
    text.append(visible(f"\n{card_flags(card)}"))
    return text


def score_label(score: float) -> str:
    """A score in at most four characters where it can: ``12.5``, ``3``, ``0.75``, ``140``."""
    text = f"{score:.2f}".rstrip("0").rstrip(".")
    return text if len(text) <= 4 else f"{score:.3g}"


def card_flags(card: Card) -> str:
    """The card's last line in words, flags first so a narrow column keeps them: ``blocked esc2 @agent +1``
    (``@-`` when unassigned)."""
    parts = []
    if card.blocked:
        parts.append("blocked" if card.status == "blocked" else "waiting")
    if card.escalation_level:
        parts.append(f"esc{card.escalation_level}")
    parts.append(f"@{card.agent}" if card.agent else "@-")
    if card.support:
        parts.append(f"+{len(card.support)}")
    return " ".join(parts)


def fit(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters with ``…`` (one line)."""
    line = truncate(text, width, 1)
    return line[0] if line else ""


PROGRESS_STYLES: dict[str, str] = {"error": "bold red", "edit": "yellow", "tool": "cyan", "turn": "italic"}
OUTCOME_STYLES: dict[str, str] = {"ok": "green", "running": "bold cyan", "error": "bold red", "failed": "red",
                                  "timed_out": "red", "interrupted": "yellow", "unfinished": "yellow"}


def detail_text(info: Detail, progress: tuple[ProgressEntry, ...] = (), *, following: bool = False) -> Text:
    """The detail pane's content: every line appended as plain text (a title, an error or an agent's final
    message is never read as markup, and its control characters are made visible). ``progress``: the live
    tail shown under the last dispatch while ``following`` its progress file."""
    text = Text()
    text.append(visible(f"{info.task_id}: {info.title}\n"), style="bold")
    for section in info.sections:
        text.append(visible(f"\n{section.title}\n"), style="bold underline")
        for line in section.lines:
            style = ""
            if section.title == DISPATCH_SECTION and line.startswith("outcome: ") and info.dispatch is not None:
                style = OUTCOME_STYLES.get(info.dispatch.state, "")
            text.append(visible(f"  {line}\n"), style=style)
        if section.title == DISPATCH_SECTION and following:
            if progress:
                text.append(f"  progress (last {len(progress)}, live):\n", style="bold")
                for entry in progress:
                    text.append(visible(f"    {entry.line()}\n"), style=PROGRESS_STYLES.get(entry.kind, ""))
            else:
                text.append("  progress: nothing recorded yet\n", style="italic")
    return text


# -------------------------------------------------------------------------------------------- widgets


class TextLine(Widget):
    """A fixed-height text (the status line, a column header): a new ``text`` repaints this widget only,
    where ``Static.update`` would lay the whole screen out again."""

    text: reactive[Text] = reactive(Text, layout=False)

    def render(self) -> Text:
        """The text, as plain text (never markup)."""
        return self.text


@dataclass(frozen=True, slots=True)
class Slot:
    """Where one column is drawn: its index in the board, its first cell and its width."""

    index: int
    x: int
    width: int


def column_slots(columns: tuple[Column, ...], width: int, active: int, first: int) -> tuple[int, tuple[Slot, ...]]:
    """Lay the columns out in ``width`` cells (one between columns): a column with cards gets three shares
    of the width, an empty one one share, none less than its minimum. When they do not all fit, a window of
    neighbouring columns that holds ``active`` is shown, starting at ``first`` where it can. Returns the
    window's first index and the slots."""
    count = len(columns)
    if count == 0 or width <= 0:
        return 0, ()
    weights = [3 if column.cards else 1 for column in columns]
    minimum = [MIN_WIDTH if column.cards else MIN_EMPTY_WIDTH for column in columns]
    first = max(0, min(first, active, count - 1))

    def fits(start: int, stop: int) -> bool:
        return sum(minimum[start:stop]) + (stop - start - 1) <= width

    while first < active and not fits(first, active + 1):
        first += 1
    stop = first + 1
    while stop < count and fits(first, stop + 1):
        stop += 1
    while first > 0 and fits(first - 1, stop):
        first -= 1
    room = width - (stop - first - 1)
    widths = minimum[first:stop]
    extra = max(room - sum(widths), 0)
    shares = sum(weights[first:stop])
    widths = [size + extra * weight // shares for size, weight in zip(widths, weights[first:stop], strict=True)]
    spare = max(room - sum(widths), 0)
    for index in range(spare):  # the rounding remainder, one cell each from the left
        widths[index % len(widths)] += 1
    slots, x = [], 0
    for offset, size in enumerate(widths):
        size = min(size, max(width - x, 0))
        slots.append(Slot(first + offset, x, size))
        x += size + 1
    return first, tuple(slot for slot in slots if slot.width > 0)


class BoardView(Widget, can_focus=False):
    """Every column of the board in one widget that draws itself line by line (Textual's line API): only
    the cards in sight are drawn, whatever the count, and the screen holds one widget for the whole board,
    so a repaint costs the visible cells only. A cursor move repaints the two cards concerned; new columns
    (a filter, a store change) repaint the board. Cards are cached per (card, width, selected).

    Clicks select a card (:class:`BoardView.Clicked`); the mouse wheel scrolls the column under it."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {"board--header", "board--header-active", "board--rule",
                                             "card--id", "card--selected", "card--failed", "card--passed",
                                             "card--flag"}

    class Clicked(Message):
        """A card was clicked."""

        def __init__(self, column: int, row: int) -> None:
            super().__init__()
            self.column = column
            self.row = row

    class LaidOut(Message):
        """The columns in sight changed with the widget's size."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.columns: tuple[Column, ...] = ()
        self.active = 0
        self.rows: dict[str, int] = {}
        self.offsets: dict[str, int] = {}  # the first card in sight, per state
        self.first = 0  # the first column in sight when they do not all fit
        self._lines: LRUCache[tuple[Card, int, bool], list[Strip]] = LRUCache(1024)
        self._slots: tuple[Slot, ...] = ()

    # -------------------------------------------------------------------------------- state

    @property
    def per_page(self) -> int:
        """Cards in sight in a column (a part-shown last one counts)."""
        return max((self.size.height - HEADER_LINES + CARD_HEIGHT - 1) // CARD_HEIGHT, 1)

    @property
    def slots(self) -> tuple[Slot, ...]:
        """The columns in sight and where they are drawn."""
        return self._slots

    def show(self, columns: tuple[Column, ...], active: int, rows: dict[str, int]) -> None:
        """Draw ``columns`` with the cursor on column ``active`` at ``rows`` (the whole board repaints)."""
        self.columns = columns
        self._place(active, rows)
        self.refresh()

    def move_cursor(self, active: int, rows: dict[str, int]) -> None:
        """Move the cursor: only the cards that lose and gain it repaint, unless the view scrolls."""
        before = self._cursor_region()
        slots, offsets = self._slots, dict(self.offsets)
        self._place(active, rows)
        if slots != self._slots or offsets != self.offsets:
            self.refresh()
            return
        for region in (before, self._cursor_region()):
            if region is not None:
                self.refresh(region)

    def _place(self, active: int, rows: dict[str, int]) -> None:
        self.active = active
        self.rows = dict(rows)
        self.first, self._slots = column_slots(self.columns, self.size.width, active, self.first)
        if 0 <= active < len(self.columns):
            state = self.columns[active].state
            row, top = self.rows.get(state, 0), self.offsets.get(state, 0)
            if row < top:
                top = row
            elif row >= top + self.per_page - 1 and self.per_page > 1:
                top = row - (self.per_page - 2)  # the selected card wholly in sight
            self.offsets[state] = max(0, min(top, max(len(self.columns[active].cards) - 1, 0)))

    def _cursor_region(self) -> Region | None:
        for slot in self._slots:
            if slot.index == self.active:
                state = self.columns[slot.index].state
                line = HEADER_LINES + (self.rows.get(state, 0) - self.offsets.get(state, 0)) * CARD_HEIGHT
                return Region(slot.x, line, slot.width, CARD_HEIGHT)
        return None

    def on_resize(self) -> None:
        """Lay the columns out again for the new size."""
        self._lines.clear()
        before = self._slots
        self._place(self.active, self.rows)
        self.refresh()
        if before != self._slots:
            self.post_message(self.LaidOut())

    def notify_style_update(self) -> None:
        """A theme change restyles the cards."""
        super().notify_style_update()
        self._lines.clear()

    def _slot_at(self, x: int) -> Slot | None:
        return next((slot for slot in self._slots if slot.x <= x < slot.x + slot.width), None)

    def on_click(self, event: Click) -> None:
        """Select the clicked card."""
        slot = self._slot_at(event.x)
        if slot is None or event.y < HEADER_LINES:
            return
        column = self.columns[slot.index]
        row = (event.y - HEADER_LINES) // CARD_HEIGHT + self.offsets.get(column.state, 0)
        if 0 <= row < len(column.cards):
            self.post_message(self.Clicked(slot.index, row))

    def _scroll(self, x: int, cards: int) -> None:
        slot = self._slot_at(x)
        if slot is None:
            return
        column = self.columns[slot.index]
        top = self.offsets.get(column.state, 0) + cards
        self.offsets[column.state] = max(0, min(top, max(len(column.cards) - self.per_page + 1, 0)))
        self.refresh()

    def on_mouse_scroll_down(self, event: MouseScrollDown) -> None:
        """Scroll the column under the pointer."""
        self._scroll(event.x, 1)

    def on_mouse_scroll_up(self, event: MouseScrollUp) -> None:
        """Scroll the column under the pointer."""
        self._scroll(event.x, -1)

    # ------------------------------------------------------------------------------ drawing

    def _style(self, name: str, *, partial: bool = True) -> Style:
        # partial: only what the rule sets (a card's piece over the card's own colours); whole: the rule's
        # colours resolved against the widget's background (a header's $text on its $panel)
        style = self.get_component_rich_style(name, partial=partial)
        if self.app.no_color:  # keep bold, italic, underline and reverse: the meaning never rests on colour
            return Style(bold=style.bold, italic=style.italic, underline=style.underline, reverse=style.reverse)
        return style

    def card_strips(self, card: Card, width: int, selected: bool) -> list[Strip]:
        """The :data:`CARD_HEIGHT` lines of ``card`` at ``width`` cells (cached)."""
        key = (card, width, selected)
        cached = self._lines.get(key)
        if cached is not None:
            return cached
        inner = max(width - 2, 1)
        plain = self.rich_style
        base = plain + (self._style("card--selected") if selected else Style())
        gate_style = self._style(f"card--{card.gate}") if card.gate in ("passed", "failed") else Style()
        head = [(fit(visible(f"{card.id} {score_label(card.score)}"), max(inner - 2, 1)), self._style("card--id")),
                (" ", Style()), (GATE_BADGES[card.gate], gate_style)]
        title = list(truncate(visible(card.title), inner, TITLE_LINES))  # drawn as segments: never markup
        title += [""] * (TITLE_LINES - len(title))
        flag_style = self._style("card--flag") if card.blocked or card.escalation_level else Style()
        rows: list[list[tuple[str, Style]]] = [head, *([(line, Style())] for line in title),
                                               [(fit(visible(card_flags(card)), inner), flag_style)]]
        strips = []
        for index, row in enumerate(rows):
            mark = SELECTED_MARK if selected and index == 0 else " "
            segments = [Segment(mark, base), *(Segment(text, base + style) for text, style in row)]
            strips.append(Strip(segments).crop_extend(0, width, base))
        strips.append(Strip.blank(width, plain))
        self._lines[key] = strips
        return strips

    def _header(self, column: Column, slot: Slot, line: int) -> Strip:
        active = slot.index == self.active
        style = self._style("board--header-active" if active else "board--header", partial=False)
        mark = " "
        if line == 0:
            mark, text = ("▸" if active else " "), column.state
        else:
            shown = len(column.cards)
            count = f"{shown} of {column.total}" if shown != column.total else f"{column.total}"
            text = f"{count} card{'' if column.total == 1 else 's'}"
            top = self.offsets.get(column.state, 0)
            if top > 0 or top + self.per_page < shown:
                text += f" {'↑' if top > 0 else ''}{'↓' if top + self.per_page < shown else ''}"
        segments = [Segment(mark, style), Segment(fit(text, max(slot.width - 1, 0)), style)]
        return Strip(segments).crop_extend(0, slot.width, style)

    def render_line(self, y: int) -> Strip:
        """Line ``y`` of the board: the headers, then the cards in sight of each column side by side."""
        width = self.size.width
        plain = self.rich_style
        if not self._slots:
            return Strip.blank(width, plain)
        rule = Strip([Segment("│", self._style("board--rule"))], 1)
        pieces: list[Strip] = []
        for slot in self._slots:
            if pieces:
                pieces.append(rule)
            column = self.columns[slot.index]
            if y < HEADER_LINES:
                pieces.append(self._header(column, slot, y))
                continue
            row, part = divmod(y - HEADER_LINES, CARD_HEIGHT)
            row += self.offsets.get(column.state, 0)
            if 0 <= row < len(column.cards):
                selected = slot.index == self.active and row == self.rows.get(column.state, 0)
                pieces.append(self.card_strips(column.cards[row], slot.width, selected)[part])
            else:
                pieces.append(Strip.blank(slot.width, plain))
        return Strip.join(pieces).crop_extend(0, width, plain)


# -------------------------------------------------------------------------------------------- dialogs


class MoveScreen(ModalScreen[str | None]):
    """Pick one of the moves the workflow allows from the card's state."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]
    AUTO_FOCUS = "#move-options"

    def __init__(self, task_id: str, current: str, allowed: list[str]) -> None:
        super().__init__()
        self.task_id = task_id
        self.current = current
        self.allowed = allowed

    def compose(self) -> ComposeResult:
        with Vertical(id="move-dialog", classes="dialog"):
            yield Static(Text(visible(f"Move {self.task_id} from {self.current} to:")), id="move-title")
            yield OptionList(*[Option(Text(visible(state)), id=state) for state in self.allowed], id="move-options")

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        """Close with the chosen state."""
        self.dismiss(event.option.id)

    def action_cancel(self) -> None:
        """Close without moving."""
        self.dismiss(None)


class PromptScreen(ModalScreen[str | None]):
    """Ask for one line of text (a reason, a name); ``enter`` answers, ``escape`` cancels. A ``required``
    answer must not be blank."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]
    AUTO_FOCUS = "#prompt-input"

    def __init__(self, question: str, *, placeholder: str = "", value: str = "", required: bool = True) -> None:
        super().__init__()
        self.question = question
        self.placeholder = placeholder
        self.value = value
        self.required = required

    def compose(self) -> ComposeResult:
        with Vertical(id="prompt-dialog", classes="dialog"):
            yield Static(Text(visible(self.question)), id="prompt-question")
            yield Input(value=self.value, placeholder=self.placeholder, id="prompt-input")
            yield Static(Text("enter: ok   escape: cancel"), id="prompt-hint")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Answer (a blank required answer is refused where it is typed)."""
        event.stop()
        if self.required and not event.value.strip():
            self.query_one("#prompt-hint", Static).update(Text("an answer is required (escape cancels)"))
            return
        self.dismiss(event.value.strip())

    def action_cancel(self) -> None:
        """Close without an answer."""
        self.dismiss(None)


class TaskFormScreen(ModalScreen[dict[str, str] | None]):
    """The add / edit form: title, priority (1..5), labels (comma separated), assignee. ``tab`` moves
    between the fields, ``enter`` saves, ``escape`` cancels."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel"),
                                             Binding("ctrl+s", "save", "Save")]
    AUTO_FOCUS = "#form-title"

    def __init__(self, heading: str, values: dict[str, str]) -> None:
        super().__init__()
        self.heading = heading
        self.values = values

    def compose(self) -> ComposeResult:
        with Vertical(id="form-dialog", classes="dialog"):
            yield Static(Text(visible(self.heading), style="bold"))
            for name in FORM_FIELDS:
                yield Label(Text(name))
                # a stored value is shown with its control characters visible; left as shown, it is kept
                yield Input(value=visible(self.values.get(name, "")), id=f"form-{name}",
                            placeholder={"priority": "1..5 (blank: default)", "labels": "a, b",
                                         "assignee": "agent id (blank: none)"}.get(name, ""))
            yield Static(Text("enter: save   tab: next field   escape: cancel"), id="form-hint")

    def answer(self) -> dict[str, str]:
        """The fields as typed (a field left as shown keeps its stored value, control characters and all)."""
        answer = {}
        for name in FORM_FIELDS:
            typed = self.query_one(f"#form-{name}", Input).value
            stored = self.values.get(name, "")
            answer[name] = stored if typed == visible(stored) else typed
        return answer

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Save."""
        event.stop()
        self.action_save()

    def action_save(self) -> None:
        """Close with the fields."""
        self.dismiss(self.answer())

    def action_cancel(self) -> None:
        """Close without saving."""
        self.dismiss(None)


class PickScreen(ModalScreen[str | None]):
    """Pick one item (a saved filter); ``d`` removes the highlighted one through ``on_delete``."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel"),
                                             Binding("d", "delete", "Delete")]
    AUTO_FOCUS = "#pick-options"

    def __init__(self, heading: str, items: dict[str, str], on_delete: Callable[[str], dict[str, str]]) -> None:
        super().__init__()
        self.heading = heading
        self.items = items
        self.on_delete = on_delete

    def compose(self) -> ComposeResult:
        with Vertical(id="pick-dialog", classes="dialog"):
            yield Static(Text(visible(self.heading)))
            yield OptionList(*self._options(), id="pick-options")
            yield Static(Text("enter: apply   d: delete   escape: cancel"))

    def _options(self) -> list[Option]:
        return [Option(Text(visible(f"{name}: {query}")), id=name) for name, query in self.items.items()]

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        """Close with the chosen item's name."""
        self.dismiss(event.option.id)

    def action_delete(self) -> None:
        """Remove the highlighted item."""
        options = self.query_one(OptionList)
        if options.highlighted is None:
            return
        name = options.get_option_at_index(options.highlighted).id
        if name is None:
            return
        self.items = self.on_delete(name)
        options.clear_options()
        options.add_options(self._options())

    def action_cancel(self) -> None:
        """Close without choosing."""
        self.dismiss(None)


class HelpScreen(ModalScreen[None]):
    """Every key of the board, with what it does."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,question_mark,q", "close", "Close")]

    def __init__(self, keys: list[tuple[str, str]]) -> None:
        super().__init__()
        self.keys = keys

    def help_text(self) -> Text:
        """One line per key: the key in bold, padded, then what it does."""
        width = max((len(key) for key, _ in self.keys), default=0) + 2
        text = Text()
        text.append("Board keys\n\n", style="bold underline")
        for key, description in self.keys:
            text.append(key.ljust(width), style="bold")
            text.append(f"{description}\n")
        return text

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-dialog", classes="dialog"):
            yield Static(self.help_text(), id="help-body")
            yield Static(Text("escape or ? closes"))

    def action_close(self) -> None:
        """Close the help."""
        self.dismiss(None)


def key_label(keys: str) -> str:
    """``"k,up"`` -> ``"k / up"`` (Textual's key names, ``question_mark`` as ``?``)."""
    names = {"question_mark": "?", "slash": "/", "shift+tab": "shift+tab"}
    return " / ".join(names.get(k, k) for k in keys.split(","))


# ---------------------------------------------------------------------------------------------- board


class BoardScreen(Screen[None]):
    """The board: status line, the columns (:class:`BoardView`), the detail pane, the filter box."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("h,left", "app.cursor(-1, 0)", "Previous column", show=False),
        Binding("l,right", "app.cursor(1, 0)", "Next column", show=False),
        Binding("k,up", "app.cursor(0, -1)", "Card above", show=False),
        Binding("j,down", "app.cursor(0, 1)", "Card below", show=False),
        Binding("tab", "app.cursor(1, 0)", "Next column", show=False),
        Binding("shift+tab", "app.cursor(-1, 0)", "Previous column", show=False),
        Binding("g,home", "app.jump(-1)", "First card", show=False),
        Binding("G,end", "app.jump(1)", "Last card", show=False),
        Binding("pageup", "app.page(-1)", "Page up", show=False),
        Binding("pagedown", "app.page(1)", "Page down", show=False),
        Binding("H,shift+left", "app.step(-1)", "Move back"),
        Binding("L,shift+right", "app.step(1)", "Move on"),
        Binding("m", "app.move_menu", "Move to..."),
        Binding("b", "app.block", "Block", show=False),
        Binding("E", "app.escalate", "Escalate", show=False),
        Binding("a", "app.add", "Add"),
        Binding("e", "app.edit", "Edit"),
        Binding("x", "app.delete", "Delete (asks why)", show=False),
        Binding("u", "app.undo", "Undo"),
        Binding("slash", "app.filter", "Filter"),
        Binding("s", "app.save_filter", "Save filter", show=False),
        Binding("f", "app.saved_filters", "Saved filters", show=False),
        Binding("enter", "app.toggle_detail", "Detail"),
        Binding("escape", "app.escape", "Close filter / clear filter / close detail", show=False),
        Binding("r", "app.refresh", "Refresh", show=False),
        Binding("question_mark", "app.help", "Help"),
    ]

    def __init__(self, states: list[str]) -> None:
        super().__init__()
        self.states = states

    def compose(self) -> ComposeResult:
        yield TextLine(id="status")
        with Horizontal(id="main"):
            yield BoardView(id="board")
            with VerticalScroll(id="detail", can_focus=False):
                yield Static(id="detail-body")
        yield Input(placeholder="filter: agent:NAME label:X type:X comp:X state:X gate:failed is:blocked words",
                    id="filter")
        yield Footer()

    def on_mount(self) -> None:
        """Fill the columns from the store."""
        cast("BoardApp", self.app).start_board()


class BoardCommands(Provider):
    """Command palette entries: moves of the selected card, columns, saved filters, the board's actions."""

    def _commands(self) -> list[tuple[str, Callable[[], Any], str]]:
        app = cast("BoardApp", self.app)
        out: list[tuple[str, Callable[[], Any], str]] = []
        card = app.selected_card()
        if card is not None:
            for state in app.allowed_moves(card.id):
                out.append((f"Move {card.id} to {state}", partial(app.move_selected, state),
                            "through the workflow's rules"))
        for index, state in enumerate(app.workflow.states):
            out.append((f"Go to column {state}", partial(app.go_to_column, index), "move the cursor"))
        for name, query in app.saved_filters().items():
            out.append((f"Filter: {name}", partial(app.apply_filter, query), query))
        out.append(("Filter cards", app.action_filter, "agent:NAME label:X type:X comp:X state:X gate:failed "
                    "is:blocked and words"))
        out.append(("Clear filter", app.clear_filter, "show every card"))
        out.append(("Add a task", app.action_add, "title, priority, labels, assignee"))
        if card is not None:
            out.append((f"Delete {card.id}", app.action_delete, "asks for the reason; u undoes it"))
        out.append(("Undo the last board action", app.action_undo, "recorded as a new event"))
        out.append(("Toggle detail pane", app.action_toggle_detail, "routing, events, gate history"))
        out.append(("Refresh from the store", app.action_refresh, "re-read tasks and events"))
        out.append(("Help: every key", app.action_help, "the board's keys"))
        return out

    async def discover(self) -> Hits:
        """Every command, for an empty query (names and help shown as text: saved filters are user text)."""
        for name, callback, help_text in self._commands():
            shown = visible(name)
            yield DiscoveryHit(Content(shown), callback, text=shown, help=escape_markup(visible(help_text)))

    async def search(self, query: str) -> Hits:
        """Commands matching ``query``."""
        matcher = self.matcher(query)
        for name, callback, help_text in self._commands():
            shown = visible(name)
            score = matcher.match(shown)
            if score > 0:
                yield Hit(score, highlighted(matcher, shown), callback, text=shown,
                          help=escape_markup(visible(help_text)))


def highlighted(matcher: Matcher, candidate: str) -> Content:
    """``candidate`` as plain text with the characters ``matcher`` matched in its match style (Textual's
    ``Matcher.highlight`` reads the candidate as markup: a saved filter named ``[/]`` would break it)."""
    content = Content(candidate)
    _, offsets = matcher.fuzzy_search.match(matcher.query, candidate)
    for offset in offsets:
        if not candidate[offset].isspace():
            content = content.stylize(matcher.match_style, offset, offset + 1)
    return content


class BoardApp(App[None]):
    """The sprint board over one store."""

    CSS_PATH = "board.tcss"
    TITLE = "orchestrator board"
    COMMANDS = App.COMMANDS | {BoardCommands}
    AUTO_FOCUS = None  # keys go to the board, not to the (hidden) filter box
    BINDINGS: ClassVar[list[BindingType]] = [Binding("q", "quit", "Quit")]

    def __init__(self, store: Store, workflow: Workflow, scoring: ScoringConfig | None = None, *, actor: str,
                 poll_interval: float = 0.1, progress_interval: float = 1.0, root: Path | None = None,
                 filters_file: Path | None = None) -> None:
        super().__init__()
        self.store = store
        self.progress_interval = progress_interval
        # relative log paths are taken from the repository (the store lives in REPO/.orchestrator/)
        self.root = root if root is not None else Path(store.path).resolve().parent.parent
        self.filters_file = filters_file if filters_file is not None else filters_path(self.root)
        self.current_detail: Detail | None = None
        self.progress_file: Path | None = None  # the selected task's running attempt's progress file
        self.progress: tuple[ProgressEntry, ...] = ()
        self.workflow = workflow
        self.scoring = scoring or ScoringConfig()
        self.actor = actor
        self.poll_interval = poll_interval
        self.snapshot: Snapshot | None = None
        self.model: BoardModel | None = None
        self.filter_text = ""
        self.filter_error = ""
        self.col = 0
        self.rows: dict[str, int] = {}
        self.show_detail = False
        self.last_message = ""
        self.undo_stack: list[UndoEntry] = []

    def get_default_screen(self) -> BoardScreen:
        """The board is the base screen (dialogs open over it and do not see its keys)."""
        return BoardScreen(self.workflow.states)

    def start_board(self) -> None:
        """Read the store and start polling it (when the board screen is mounted)."""
        base = self._base()
        base.query_one("#detail").display = False
        base.query_one("#filter").display = False
        self.snapshot = load_snapshot(self.store, self.workflow, self.scoring)
        try:
            self.model = BoardModel(self.snapshot, self.filter_text)
        except UserError as exc:
            self.filter_error = str(exc)
            self.filter_text = ""
            self.model = BoardModel(self.snapshot)
        self._show(set(self.workflow.states))
        if self.poll_interval > 0:
            self.set_interval(self.poll_interval, self.poll)
        if self.progress_interval > 0:
            self.set_interval(self.progress_interval, self.refresh_progress)

    def _base(self) -> Screen[Any]:
        """The board's screen (a dialog or the command palette may be on top of it)."""
        return self.screen_stack[0]

    @property
    def board_columns(self) -> tuple[Column, ...]:
        """The columns as shown (after the filter)."""
        return self.model.columns if self.model is not None else ()

    @property
    def board_view(self) -> BoardView:
        """The widget that draws the columns."""
        return self._base().query_one(BoardView)

    # -------------------------------------------------------------------------------------- data

    async def reload(self) -> None:
        """Re-read the whole store (every score anew, for the clock) and redraw."""
        current = self.selected_card()
        self.snapshot = load_snapshot(self.store, self.workflow, self.scoring)
        self.model = BoardModel(self.snapshot, self.filter_text)
        self._show(set(self.workflow.states), current.id if current else None)

    async def poll(self) -> None:
        """Take the events appended since the last read (only the tasks they name are read again)."""
        self.sync()

    def sync(self, keep: str | None = None) -> bool:
        """Bring the board up to date with the store; True when something was new."""
        if self.snapshot is None:
            return False
        newer = refresh_snapshot(self.store, self.snapshot, self.scoring)
        if newer is None:
            return False
        self.snapshot = newer.snapshot
        try:
            self._take(newer, keep)
        except NoMatches:  # the app is shutting down and its widgets are gone
            return False
        return True

    def _take(self, refresh: Refresh, keep: str | None = None) -> None:
        assert self.model is not None, "the board model is built on mount"
        current = self.selected_card()
        keep = keep or (current.id if current else None)
        self._show(self.model.update(refresh), keep)

    def _show(self, changed: set[str], keep: str | None = None) -> None:
        """Put the cursor back on ``keep`` when it is still shown; repaint when columns in ``changed`` did."""
        if keep is not None and self.model is not None:
            where = self.model.locate(keep)
            if where is not None:
                self.col = where[0]
                self.rows[self.board_columns[where[0]].state] = where[1]
        self._update_cursor(repaint=bool(changed))

    def selected_card(self) -> Card | None:
        """The card under the cursor, if any."""
        if not self.board_columns:
            return None
        column = self.board_columns[self.col]
        row = self.rows.get(column.state, 0)
        return column.cards[row] if 0 <= row < len(column.cards) else None

    def allowed_moves(self, task_id: str) -> list[str]:
        """The states the board's actor may move ``task_id`` to."""
        task = self.snapshot.tasks.get(task_id) if self.snapshot else None
        return [] if task is None else self.workflow.allowed(task, self.actor)

    def _update_cursor(self, *, repaint: bool = False) -> None:
        columns = self.board_columns
        if not columns:
            return
        self.col = max(0, min(self.col, len(columns) - 1))
        column = columns[self.col]
        self.rows[column.state] = max(0, min(self.rows.get(column.state, 0), len(column.cards) - 1))
        view = self.board_view
        if repaint or view.columns is not columns:
            view.show(columns, self.col, self.rows)
        else:
            view.move_cursor(self.col, self.rows)
        self._update_status()
        self._update_detail()

    def _update_status(self) -> None:
        snapshot = self.snapshot
        total = len(snapshot.tasks) if snapshot else 0
        shown = self.model.shown if self.model else 0
        card = self.selected_card()
        parts = [f"{shown}/{total} tasks" if self.filter_text else f"{total} tasks",
                 f"last event #{snapshot.last_event_id if snapshot else 0}", f"as {self.actor}"]
        if self.filter_text:
            parts.append(f"filter: {self.filter_text}")
        if card is not None:
            parts.append(f"selected {card.id} ({card.status})")
        slots = self.board_view.slots
        if slots and len(slots) < len(self.board_columns):
            parts.append(f"columns {slots[0].index + 1}-{slots[-1].index + 1} of {len(self.board_columns)}")
        if self.filter_error:
            parts.append(f"filter not applied: {self.filter_error}")
        parts.append("? keys")
        self._base().query_one("#status", TextLine).text = Text(visible(" | ".join(parts)), no_wrap=True,
                                                                 overflow="ellipsis")

    def _update_detail(self) -> None:
        if not self.show_detail or self.snapshot is None:
            self.current_detail, self.progress_file, self.progress = None, None, ()
            return
        card = self.selected_card()
        body = self._base().query_one("#detail-body", Static)
        if card is None:
            self.current_detail, self.progress_file, self.progress = None, None, ()
            body.update(Text("no card selected"))
            return
        info = detail(self.snapshot, card.id, self.workflow, self.actor)
        self.current_detail = info
        self.progress_file = running_progress_file(info.dispatch, self.root)
        self.progress = read_progress_tail(self.progress_file, PROGRESS_LINES) if self.progress_file else ()
        body.update(detail_text(info, self.progress, following=self.progress_file is not None))

    def refresh_progress(self) -> None:
        """Re-read the tail of the selected task's progress file (nothing to do unless the pane is open on a
        running attempt) and redraw the pane when it changed."""
        if not self.show_detail or self.progress_file is None or self.current_detail is None:
            return
        tail = read_progress_tail(self.progress_file, PROGRESS_LINES)
        if tail == self.progress:
            return
        self.progress = tail
        try:
            body = self._base().query_one("#detail-body", Static)
        except NoMatches:  # shutting down
            return
        body.update(detail_text(self.current_detail, tail, following=True))

    # ----------------------------------------------------------------------------------- cursor

    def action_cursor(self, dx: int, dy: int) -> None:
        """Move the cursor by columns (``dx``) or rows (``dy``)."""
        if not self.board_columns:
            return
        self.col = max(0, min(self.col + dx, len(self.board_columns) - 1))
        column = self.board_columns[self.col]
        row = self.rows.get(column.state, 0) + dy
        self.rows[column.state] = max(0, min(row, len(column.cards) - 1)) if column.cards else 0
        self._update_cursor()

    def action_jump(self, end: int) -> None:
        """The first (``end`` < 0) or last card of the column."""
        if self.board_columns:
            column = self.board_columns[self.col]
            self.rows[column.state] = 0 if end < 0 else max(len(column.cards) - 1, 0)
            self._update_cursor()

    def action_page(self, pages: int) -> None:
        """A screenful of cards up or down."""
        self.action_cursor(0, pages * max(self.board_view.per_page - 1, 1))

    def go_to_column(self, index: int) -> None:
        """Put the cursor on column ``index``."""
        self.action_cursor(index - self.col, 0)

    def on_board_view_laid_out(self) -> None:
        """The status line names the columns in sight when not all fit."""
        self._update_status()

    def on_board_view_clicked(self, message: BoardView.Clicked) -> None:
        """Put the cursor on the clicked card."""
        if 0 <= message.column < len(self.board_columns):
            self.col = message.column
            self.rows[self.board_columns[message.column].state] = message.row
            self._update_cursor()

    # ------------------------------------------------------------------------------------- moves

    def notify(self, message: str, *, title: str = "", severity: SeverityLevel = "information",
               timeout: float | None = None, markup: bool = False) -> None:
        """Textual's toast, its message always plain text (``markup`` is ignored): refusals and reasons quote
        titles and agent names, which are never read as markup, and their control characters are made
        visible."""
        super().notify(visible(message), title=visible(title), severity=severity, timeout=timeout, markup=False)

    def _tell(self, result: MoveResult, title: str) -> None:
        self.last_message = result.message
        self.notify(result.message, severity="information" if result.ok else "error",
                    title=title if result.ok else "refused")

    async def move_selected(self, to: str, reason: str = "") -> bool:
        """Move the selected card to ``to`` through the workflow; a refusal is shown with the allowed moves.
        A move to blocked or escalated asks for the reason first (it is stored in the event)."""
        card = self.selected_card()
        if card is None:
            self.notify("no card selected", severity="warning")
            return False
        if needs_reason(to) and not reason and to in self.allowed_moves(card.id):
            def answered(text: str | None) -> None:
                if text:
                    self.call_later(self.move_selected, to, text)

            self.push_screen(PromptScreen(f"Why does {card.id} move to {to}? (recorded in the event)",
                                          placeholder="the reason"), answered)
            return False
        result = move_card(self.store, self.workflow, card.id, to, actor=self.actor, reason=reason)
        self._tell(result, "moved")
        if result.ok:
            self.undo_stack.append(UndoEntry("move", card.id, f"move of {card.id} {card.status} -> {to}",
                                             {"from": card.status}))
            self.sync(keep=card.id)
        return result.ok

    async def action_step(self, step: int) -> None:
        """Move the selected card forward (``step`` > 0) or back along the workflow's main line."""
        card = self.selected_card()
        task = self.snapshot.tasks.get(card.id) if card is not None and self.snapshot else None
        if card is None or task is None:
            return
        target, why = step_target(self.workflow, task, self.actor, step)
        if target is None:
            self.last_message = why
            self.notify(why, severity="warning", title="no move")
            return
        await self.move_selected(target)

    async def action_block(self) -> None:
        """Block the selected card (asks for the reason)."""
        await self.move_selected("blocked")

    async def action_escalate(self) -> None:
        """Escalate the selected card (asks for the reason)."""
        await self.move_selected("escalated")

    def action_move_menu(self) -> None:
        """Offer the moves allowed from the selected card's state."""
        card = self.selected_card()
        if card is None:
            return
        allowed = self.allowed_moves(card.id)
        if not allowed:
            self.last_message = f"{card.id}: {self.actor} may not move it from {card.status}"
            self.notify(self.last_message, severity="warning")
            return

        def chosen(state: str | None) -> None:
            if state:
                self.call_later(self.move_selected, state)

        self.push_screen(MoveScreen(card.id, card.status, allowed), chosen)

    # ------------------------------------------------------------------------------- add and edit

    def action_add(self) -> None:
        """Add a task (a small form)."""
        def saved(values: dict[str, str] | None) -> None:
            if values is None:
                return
            try:
                task = add_from_form(self.store, values, actor=self.actor)
            except UserError as exc:
                self._tell(MoveResult(False, str(exc)), "added")
                return
            self.undo_stack.append(add_entry(self.store, task))
            self._tell(MoveResult(True, f"added {task.id}"), "added")
            self.sync(keep=task.id)

        self.push_screen(TaskFormScreen("Add a task", form_values(None)), saved)

    def action_edit(self) -> None:
        """Edit the selected card's title, priority, labels and assignee."""
        card = self.selected_card()
        task = self.snapshot.tasks.get(card.id) if card is not None and self.snapshot else None
        if task is None:
            return

        def saved(values: dict[str, str] | None) -> None:
            if values is None:
                return
            try:
                _, entry = edit_from_form(self.store, task, values, actor=self.actor)
            except UserError as exc:
                self._tell(MoveResult(False, str(exc)), "edited")
                return
            if entry is None:
                self._tell(MoveResult(True, f"{task.id}: nothing changed"), "edited")
                return
            self.undo_stack.append(entry)
            self._tell(MoveResult(True, f"edited {task.id}"), "edited")
            self.sync(keep=task.id)

        self.push_screen(TaskFormScreen(f"Edit {task.id}", form_values(task)), saved)

    def action_delete(self) -> None:
        """Delete the selected card after a confirm that asks for the reason (recorded in the event; ``u``
        restores it). A card other tasks depend on is refused, naming them."""
        card = self.selected_card()
        task = self.snapshot.tasks.get(card.id) if card is not None and self.snapshot else None
        if task is None:
            self.notify("no card selected", severity="warning")
            return

        def answered(reason: str | None) -> None:
            if not reason:
                return
            result, entry = delete_from_board(self.store, task, reason, actor=self.actor)
            self._tell(result, "deleted")
            if entry is not None:
                self.undo_stack.append(entry)
                self.sync()

        self.push_screen(PromptScreen(f"Delete {task.id} ({visible(task.title)})? Give the reason to confirm "
                                      "(escape cancels)", placeholder="why it goes"), answered)

    def action_undo(self) -> None:
        """Undo the board's last move, edit, add or delete (written as a new event)."""
        if not self.undo_stack:
            self._tell(MoveResult(False, "nothing to undo"), "undone")
            return
        entry = self.undo_stack.pop()
        result = undo(self.store, self.workflow, entry, actor=self.actor)
        self._tell(result, "undone")
        if not result.ok:
            self.undo_stack.append(entry)
        self.sync(keep=entry.task_id)

    # ------------------------------------------------------------------------------------ filter

    def action_filter(self) -> None:
        """Show the filter box."""
        box = self._base().query_one("#filter", Input)
        box.display = True
        box.value = self.filter_text
        box.focus()

    def apply_filter(self, query: str) -> bool:
        """Filter the cards already read (no rebuild); a bad query keeps the current filter and says why."""
        if self.model is None:
            return False
        try:
            changed = self.model.set_filter(query)
        except UserError as exc:
            self.filter_error = str(exc)
            self._update_status()
            return False
        self.filter_text, self.filter_error = query, ""
        current = self.selected_card()
        self._show(changed, current.id if current else None)
        return True

    def on_input_changed(self, event: Input.Changed) -> None:
        """Filter as the user types."""
        if event.input.id == "filter" and event.value != self.filter_text:
            self.apply_filter(event.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Keep the filter, hide the box."""
        if event.input.id == "filter":
            event.input.display = False
            self.set_focus(None)

    def clear_filter(self) -> None:
        """Show every card again."""
        box = self._base().query_one("#filter", Input)
        box.value = ""
        box.display = False
        self.apply_filter("")

    def saved_filters(self) -> dict[str, str]:
        """The repository's saved filters (nothing when the file is damaged: the status line says why)."""
        try:
            return load_filters(self.filters_file)
        except UserError as exc:
            self.last_message = str(exc)
            return {}

    def action_save_filter(self) -> None:
        """Save the current filter under a name (``.orchestrator/board-filters.json``)."""
        query = self.filter_text

        def named(name: str | None) -> None:
            if not name:
                return
            try:
                save_filter(self.filters_file, name, query)
            except UserError as exc:
                self._tell(MoveResult(False, str(exc)), "saved")
                return
            self._tell(MoveResult(True, f"saved filter {name!r}: {query}"), "saved")

        if not query.strip():
            self._tell(MoveResult(False, "nothing to save: the filter is empty (/ to filter)"), "saved")
            return
        self.push_screen(PromptScreen(f"Save the filter {query!r} as:", placeholder="a name"), named)

    def action_saved_filters(self) -> None:
        """Pick a saved filter."""
        filters = self.saved_filters()
        if not filters:
            self._tell(MoveResult(False, "no saved filters yet (s saves the current one)"), "filters")
            return

        def chosen(name: str | None) -> None:
            query = self.saved_filters().get(name or "")
            if query is not None:
                self.apply_filter(query)

        self.push_screen(PickScreen("Saved filters", filters, partial(delete_filter, self.filters_file)), chosen)

    # ------------------------------------------------------------------------------------- other

    def action_escape(self) -> None:
        """Hide the filter box, else clear the filter, else close the detail pane."""
        box = self._base().query_one("#filter", Input)
        if box.display:
            box.display = False
            self.set_focus(None)
        elif self.filter_text:
            self.clear_filter()
        elif self.show_detail:
            self.action_toggle_detail()

    def action_toggle_detail(self) -> None:
        """Show or hide the detail pane."""
        self.show_detail = not self.show_detail
        self._base().query_one("#detail").display = self.show_detail
        self._update_detail()

    async def action_refresh(self) -> None:
        """Re-read the store."""
        await self.reload()

    def help_keys(self) -> list[tuple[str, str]]:
        """Every key of the board and the app, with its description."""
        out = []
        for binding in [*BoardScreen.BINDINGS, *self.BINDINGS]:
            assert isinstance(binding, Binding), "the board's bindings are Binding objects"
            out.append((key_label(binding.key), binding.description))
        out.append(("ctrl+p", "Command palette (moves, columns, saved filters)"))
        return out

    def action_help(self) -> None:
        """Show every key."""
        self.push_screen(HelpScreen(self.help_keys()))
