"""The sprint board: a thin Textual app over :mod:`bno_orchestrator.tui.data`.

One column per workflow state; cards show the score, the agent and the latest gate verdict. Keys:
``h/j/k/l`` or arrows move the cursor, ``H``/``L`` (shift+arrows) move the card to the previous/next
state, ``m`` lists the moves allowed from here, ``/`` filters (``agent:code label:perf words``), ``enter``
toggles the detail pane, ``r`` reloads, ``ctrl+p`` opens the command palette, ``q`` quits. Every move goes
through :mod:`bno_orchestrator.workflow`, so an illegal one is refused with the allowed moves shown. The
board polls ``Store.events(since=last_id)`` and redraws when the log grew (another terminal, a hook).

The detail pane shows the selected task's last dispatch attempt (outcome, cost, tokens, turns, session, the
agent's final message as plain text); while that attempt runs, a timer re-reads the tail of its live
progress file (only the selected task's, only its end) and shows the last lines.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, cast

from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.css.query import NoMatches
from textual.screen import ModalScreen, Screen
from textual.widgets import Footer, Input, OptionList, Static
from textual.widgets.option_list import Option

from bno_orchestrator.errors import UserError
from bno_orchestrator.rules import ScoringConfig
from bno_orchestrator.tui.data import (
    DISPATCH_SECTION,
    GATE_BADGES,
    GATE_STYLES,
    PROGRESS_LINES,
    Card,
    Column,
    Detail,
    ProgressEntry,
    Snapshot,
    adjacent_state,
    columns,
    detail,
    load_snapshot,
    move_card,
    read_progress_tail,
    running_progress_file,
)
from bno_orchestrator.workflow import Workflow

if TYPE_CHECKING:
    from bno_orchestrator.store import Store


def card_text(card: Card) -> Text:
    """A card's content (rich Text, so user text is never read as markup)."""
    text = Text()
    text.append(card.id, style="bold")
    text.append(f"  {card.score:.2f}", style="cyan")
    text.append("\n")
    text.append(card.title)
    text.append("\n")
    text.append(f"@{card.agent}" if card.agent else "@-", style="magenta")
    badge = GATE_BADGES[card.gate]
    text.append(f" {badge}", style=GATE_STYLES.get(card.gate, "dim"))
    if card.blocked:
        text.append(" blocked" if card.status == "blocked" else " waiting", style="bold yellow")
    if card.escalation_level:
        text.append(f" esc{card.escalation_level}", style="red")
    return text


PROGRESS_STYLES: dict[str, str] = {"error": "bold red", "edit": "yellow", "tool": "cyan", "turn": "dim"}
OUTCOME_STYLES: dict[str, str] = {"ok": "green", "running": "bold cyan", "error": "bold red", "failed": "red",
                                  "timed_out": "red", "interrupted": "yellow", "unfinished": "yellow"}


def detail_text(info: Detail, progress: tuple[ProgressEntry, ...] = (), *, following: bool = False) -> Text:
    """The detail pane's content: every line appended as plain text (a title, an error or an agent's final
    message is never read as markup). ``progress``: the live tail shown under the last dispatch while
    ``following`` its progress file."""
    text = Text()
    text.append(f"{info.task_id}: {info.title}\n", style="bold")
    for section in info.sections:
        text.append(f"\n{section.title}\n", style="bold underline")
        for line in section.lines:
            style = ""
            if section.title == DISPATCH_SECTION and line.startswith("outcome: ") and info.dispatch is not None:
                style = OUTCOME_STYLES.get(info.dispatch.state, "")
            text.append(f"  {line}\n", style=style)
        if section.title == DISPATCH_SECTION and following:
            if progress:
                text.append(f"  progress (last {len(progress)}, live):\n", style="bold")
                for entry in progress:
                    text.append(f"    {entry.line()}\n", style=PROGRESS_STYLES.get(entry.kind, ""))
            else:
                text.append("  progress: nothing recorded yet\n", style="dim")
    return text


class CardView(Static):
    """One card."""

    def __init__(self, card: Card, *, selected: bool) -> None:
        super().__init__(card_text(card), classes="card -selected" if selected else "card")
        self.card = card


class ColumnView(Vertical):
    """One workflow state: a header and its cards."""

    def __init__(self, column: Column, *, active: bool, selected_row: int | None) -> None:
        super().__init__(classes="column -active" if active else "column")
        self.column = column
        self._selected_row = selected_row

    def compose(self) -> ComposeResult:
        column = self.column
        shown = f"{len(column.cards)} of {column.total}" if len(column.cards) != column.total else f"{column.total}"
        title = Text(column.state, style="bold")
        title.append(f"\n{shown} card{'' if column.total == 1 else 's'}", style="dim")
        yield Static(title, classes="column-title")
        with VerticalScroll(classes="column-body"):
            for row, card in enumerate(column.cards):
                yield CardView(card, selected=row == self._selected_row)


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
        with Vertical(id="move-dialog"):
            yield Static(Text(f"Move {self.task_id} from {self.current} to:"), id="move-title")
            yield OptionList(*[Option(state, id=state) for state in self.allowed], id="move-options")

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        """Close with the chosen state."""
        self.dismiss(event.option.id)

    def action_cancel(self) -> None:
        """Close without moving."""
        self.dismiss(None)


class BoardCommands(Provider):
    """Command palette entries: moves of the selected card, columns, filter, detail, refresh."""

    def _commands(self) -> list[tuple[str, Callable[[], Any], str]]:
        app = cast("BoardApp", self.app)
        out: list[tuple[str, Callable[[], Any], str]] = []
        card = app.selected_card()
        if card is not None:
            for state in app.allowed_moves(card.id):
                out.append((f"Move {card.id} to {state}", partial(app.move_selected, state),
                            "through the workflow's rules"))
        for index, state in enumerate(app.snapshot.states if app.snapshot else ()):
            out.append((f"Go to column {state}", partial(app.go_to_column, index), "move the cursor"))
        out.append(("Filter cards", app.action_filter, "agent:NAME label:X type:X comp:X state:X gate:failed "
                    "is:blocked and words"))
        out.append(("Clear filter", app.clear_filter, "show every card"))
        out.append(("Toggle detail pane", app.action_toggle_detail, "routing, events, gate history"))
        out.append(("Refresh from the store", app.action_refresh, "re-read tasks and events"))
        return out

    async def discover(self) -> Hits:
        """Every command, for an empty query."""
        for name, callback, help_text in self._commands():
            yield DiscoveryHit(name, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        """Commands matching ``query``."""
        matcher = self.matcher(query)
        for name, callback, help_text in self._commands():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), callback, help=help_text)


class BoardApp(App[None]):
    """The sprint board over one store."""

    CSS_PATH = "board.tcss"
    TITLE = "orchestrator board"
    COMMANDS = App.COMMANDS | {BoardCommands}
    AUTO_FOCUS = None  # keys go to the board, not to the (hidden) filter box
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("h,left", "cursor(-1, 0)", "Left", show=False),
        Binding("l,right", "cursor(1, 0)", "Right", show=False),
        Binding("k,up", "cursor(0, -1)", "Up", show=False),
        Binding("j,down", "cursor(0, 1)", "Down", show=False),
        Binding("H,shift+left", "shift(-1)", "Move back"),
        Binding("L,shift+right", "shift(1)", "Move on"),
        Binding("m", "move_menu", "Move to..."),
        Binding("slash", "filter", "Filter"),
        Binding("enter", "toggle_detail", "Detail"),
        Binding("escape", "escape", "Clear", show=False),
        Binding("r", "refresh", "Refresh"),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(self, store: Store, workflow: Workflow, scoring: ScoringConfig | None = None, *, actor: str,
                 poll_interval: float = 2.0, progress_interval: float = 1.0, root: Path | None = None) -> None:
        super().__init__()
        self.store = store
        self.progress_interval = progress_interval
        # relative log paths are taken from the repository (the store lives in REPO/.orchestrator/)
        self.root = root if root is not None else Path(store.path).resolve().parent.parent
        self.current_detail: Detail | None = None
        self.progress_file: Path | None = None  # the selected task's running attempt's progress file
        self.progress: tuple[ProgressEntry, ...] = ()
        self.workflow = workflow
        self.scoring = scoring or ScoringConfig()
        self.actor = actor
        self.poll_interval = poll_interval
        self.snapshot: Snapshot | None = None
        self.board_columns: tuple[Column, ...] = ()
        self.filter_text = ""
        self.col = 0
        self.rows: dict[str, int] = {}
        self.show_detail = False
        self.last_message = ""

    # ------------------------------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        yield Static(id="status")
        with Horizontal(id="main"):
            yield Horizontal(id="board")
            with VerticalScroll(id="detail"):
                yield Static(id="detail-body")
        yield Input(placeholder="filter: agent:NAME label:X type:X comp:X state:X gate:failed is:blocked words",
                    id="filter")
        yield Footer()

    async def on_mount(self) -> None:
        """Read the store and start polling it."""
        self._base().query_one("#detail").display = False
        self._base().query_one("#filter").display = False
        await self.reload()
        if self.poll_interval > 0:
            self.set_interval(self.poll_interval, self.poll)
        if self.progress_interval > 0:
            self.set_interval(self.progress_interval, self.refresh_progress)

    def _base(self) -> Screen[Any]:
        """The board's screen (a dialog or the command palette may be on top of it)."""
        return self.screen_stack[0]

    # -------------------------------------------------------------------------------------- data

    async def reload(self) -> None:
        """Re-read the store and redraw."""
        self.snapshot = load_snapshot(self.store, self.workflow, self.scoring)
        await self.redraw()

    async def poll(self) -> None:
        """Redraw when the event log grew since the last read."""
        last = self.snapshot.last_event_id if self.snapshot else 0
        if not self.store.events(since=last):
            return
        try:
            await self.reload()
        except NoMatches:  # the app is shutting down and its widgets are gone
            return

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

    async def redraw(self, keep: str | None = None) -> None:
        """Lay the columns out again (the cursor stays on the same card when it is still shown)."""
        assert self.snapshot is not None, "redraw before the first reload"
        current = self.selected_card()
        keep = keep or (current.id if current else None)
        try:
            self.board_columns = columns(self.snapshot, self.filter_text)
        except UserError as exc:
            self.board_columns = columns(self.snapshot, "")
            self.notify(str(exc), severity="error")
        if keep is not None:
            for index, column in enumerate(self.board_columns):
                for row, card in enumerate(column.cards):
                    if card.id == keep:
                        self.col = index
                        self.rows[column.state] = row
        self.col = max(0, min(self.col, len(self.board_columns) - 1))
        board = self._base().query_one("#board", Horizontal)
        await board.remove_children()
        views = []
        for index, column in enumerate(self.board_columns):
            row = min(self.rows.get(column.state, 0), max(len(column.cards) - 1, 0))
            self.rows[column.state] = row
            views.append(ColumnView(column, active=index == self.col, selected_row=row if index == self.col else None))
        await board.mount_all(views)
        self._update_cursor()

    def _update_cursor(self) -> None:
        for index, view in enumerate(self._base().query(ColumnView)):
            view.set_class(index == self.col, "-active")
            row = self.rows.get(view.column.state, 0)
            for card_index, card_view in enumerate(view.query(CardView)):
                selected = index == self.col and card_index == row
                card_view.set_class(selected, "-selected")
        self._update_status()
        self._update_detail()
        self.call_after_refresh(self._scroll_to_cursor)

    def _scroll_to_cursor(self) -> None:
        """Bring the active column and the selected card into view (after a layout change)."""
        views = list(self._base().query(ColumnView))
        if 0 <= self.col < len(views):
            views[self.col].scroll_visible(animate=False, immediate=True)
            for card_view in views[self.col].query(CardView):
                if card_view.has_class("-selected"):
                    card_view.scroll_visible(animate=False, immediate=True)

    def _update_status(self) -> None:
        snapshot = self.snapshot
        total = len(snapshot.tasks) if snapshot else 0
        shown = sum(len(c.cards) for c in self.board_columns)
        card = self.selected_card()
        parts = [f"{shown}/{total} tasks" if self.filter_text else f"{total} tasks",
                 f"last event #{snapshot.last_event_id if snapshot else 0}", f"as {self.actor}"]
        if self.filter_text:
            parts.append(f"filter: {self.filter_text}")
        if card is not None:
            parts.append(f"selected {card.id} ({card.status})")
        self._base().query_one("#status", Static).update(Text(" | ".join(parts)))

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

    # ----------------------------------------------------------------------------------- actions

    def action_cursor(self, dx: int, dy: int) -> None:
        """Move the cursor by columns (``dx``) or rows (``dy``)."""
        if not self.board_columns:
            return
        self.col = max(0, min(self.col + dx, len(self.board_columns) - 1))
        column = self.board_columns[self.col]
        row = self.rows.get(column.state, 0) + dy
        self.rows[column.state] = max(0, min(row, len(column.cards) - 1)) if column.cards else 0
        self._update_cursor()

    def go_to_column(self, index: int) -> None:
        """Put the cursor on column ``index``."""
        self.action_cursor(index - self.col, 0)

    async def move_selected(self, to: str) -> bool:
        """Move the selected card to ``to`` through the workflow; a refusal is shown with the allowed moves."""
        card = self.selected_card()
        if card is None:
            self.notify("no card selected", severity="warning")
            return False
        result = move_card(self.store, self.workflow, card.id, to, actor=self.actor)
        self.last_message = result.message
        self.notify(result.message, severity="information" if result.ok else "error",
                    title="moved" if result.ok else "refused")
        if result.ok:
            self.snapshot = load_snapshot(self.store, self.workflow, self.scoring)
            await self.redraw(keep=card.id)
        return result.ok

    async def action_shift(self, step: int) -> None:
        """Move the selected card to the neighbouring column's state."""
        card = self.selected_card()
        if card is None or self.snapshot is None:
            return
        target = adjacent_state(self.snapshot.states, card.status, step)
        if target is None:
            self.notify(f"{card.id}: no column {'before' if step < 0 else 'after'} {card.status}", severity="warning")
            return
        await self.move_selected(target)

    def action_move_menu(self) -> None:
        """Offer the moves allowed from the selected card's state."""
        card = self.selected_card()
        if card is None:
            return
        allowed = self.allowed_moves(card.id)
        if not allowed:
            self.notify(f"{card.id}: {self.actor} may not move it from {card.status}", severity="warning")
            return

        async def chosen(state: str | None) -> None:
            if state:
                await self.move_selected(state)

        self.push_screen(MoveScreen(card.id, card.status, allowed), chosen)

    def action_filter(self) -> None:
        """Show the filter box."""
        box = self._base().query_one("#filter", Input)
        box.display = True
        box.value = self.filter_text
        box.focus()

    async def on_input_changed(self, event: Input.Changed) -> None:
        """Filter as the user types."""
        if event.input.id == "filter" and event.value != self.filter_text:
            self.filter_text = event.value
            await self.redraw()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Keep the filter, hide the box."""
        if event.input.id == "filter":
            event.input.display = False
            self.set_focus(None)

    async def clear_filter(self) -> None:
        """Show every card again."""
        self.filter_text = ""
        box = self._base().query_one("#filter", Input)
        box.value = ""
        box.display = False
        await self.redraw()

    async def action_escape(self) -> None:
        """Hide the filter box, else clear the filter, else close the detail pane."""
        box = self._base().query_one("#filter", Input)
        if box.display:
            box.display = False
            self.set_focus(None)
        elif self.filter_text:
            await self.clear_filter()
        elif self.show_detail:
            self.action_toggle_detail()

    def action_toggle_detail(self) -> None:
        """Show or hide the detail pane."""
        self.show_detail = not self.show_detail
        self._base().query_one("#detail").display = self.show_detail
        self._update_detail()
        self.call_after_refresh(self._scroll_to_cursor)

    async def action_refresh(self) -> None:
        """Re-read the store."""
        await self.reload()
