"""Reading an agent CLI's event stream line by line: progress records, the count of model turns, and when
the orchestrator must stop the run.

The three CLIs stream JSON Lines on stdout (what each emits was taken from the tested versions in
:mod:`.clis`, run against the scripted model server):

claude   ``-p --output-format stream-json --verbose``: ``{"type": "system", "subtype": "init", "session_id"}``;
         ``{"type": "assistant", "message": {"id", "content": [text | tool_use blocks]}}`` (one per content
         block; a new ``message.id`` is a new model turn; ``"error": "authentication_failed"`` etc. on a
         synthetic message when the API call failed); ``{"type": "user", "message": {"content":
         [tool_result]}}``; ``{"type": "system", "subtype": "api_retry"}``; last ``{"type": "result",
         "subtype", "is_error", "num_turns", "total_cost_usd", "usage", "session_id", "result",
         "permission_denials", "errors"}``
codex    ``exec --json``: ``thread.started`` (``thread_id``), ``turn.started``, ``item.started`` /
         ``item.completed`` (items ``file_change`` with ``changes: [{path, kind}]``, ``command_execution``
         with ``command``, ``mcp_tool_call``, ``web_search``, ``agent_message`` with ``text``),
         ``error`` (``message``; ``Reconnecting... 1/5 ...`` while it retries), ``turn.completed``
         (``usage``) or ``turn.failed`` (``error.message``). One codex "turn" is the whole exec; the model
         turns inside it are not delimited, so the orchestrator counts tool calls.
gemini   ``--output-format stream-json``: ``init`` (``session_id``, ``model``), ``message`` (``role``,
         ``content``, ``delta: true`` for streamed assistant text), ``tool_use`` (``tool_name``,
         ``tool_id``, ``parameters``), ``tool_result`` (``tool_id``, ``status``, ``error``), ``error``,
         last ``result`` (``status``, ``error: {type, message}``, ``stats: {input_tokens,
         output_tokens, tool_calls, models}``).

A :class:`StreamMonitor` turns these into :mod:`.progress` records (through its ``emit`` function) and
sets :attr:`StreamMonitor.stop` when the run has to end: codex printing ``Reconnecting... waiting for
network`` (it would retry forever: a network error) or making more tool calls than the agent's max turns
(codex has no turn limit of its own: error kind ``turn_limit``). Claude and gemini enforce their own turn
limit (``--max-turns``, ``model.maxSessionTurns``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

CLAUDE_EDIT_TOOLS = ("Write", "Edit", "MultiEdit", "NotebookEdit")
GEMINI_EDIT_TOOLS = ("write_file", "replace", "edit")
CODEX_TOOL_ITEMS = ("command_execution", "file_change", "mcp_tool_call", "web_search")
CODEX_CHANGE_VERBS = {"add": "Write", "update": "Edit", "delete": "Delete"}
CODEX_RECONNECT = "Reconnecting... waiting for network"
DENIED = re.compile(r"not in workspace|outside the allowed workspace|outside of the project|permission denied|"
                    r"requested permissions|haven't granted|rejected by user approval|not allowed|denied",
                    re.IGNORECASE)

Emit = Callable[[str, str], object]


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def decode_event(line: str) -> dict[str, Any] | None:
    """The JSON object on ``line`` (optionally after gemini's ``[ERROR] `` prefix), or None."""
    text = line.strip()
    if text.startswith("[ERROR] "):
        text = text.removeprefix("[ERROR] ").lstrip()
    if not text.startswith("{"):
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


class StreamMonitor:
    """Follows one run's stdout (:meth:`feed_line` per line, :meth:`finish` at the end).

    ``emit(kind, text)`` receives the progress records (None: count only, e.g. to parse a finished run).
    ``max_turns``: the agent's turn limit; with ``enforce_turns`` (codex) :attr:`stop` is set to
    ``("turn_limit", message)`` once the run makes more tool calls than that.
    """

    def __init__(self, kind: str, *, worktree: Path | None = None, max_turns: int | None = None,
                 emit: Emit | None = None, enforce_turns: bool = False) -> None:
        if kind not in ("claude", "codex", "gemini"):
            raise ValueError(f"no stream format is known for the {kind} executor")
        self.kind = kind
        self.max_turns = max_turns
        self.enforce_turns = enforce_turns
        self._emit_to = emit
        self._roots = [str(worktree), str(worktree.resolve())] if worktree is not None else []
        self.turns = 0  # model turns (codex: tool calls)
        self.tool_calls = 0
        self.denials = 0  # tool calls refused as outside the worktree or not permitted (gemini, codex)
        self.final_message: str | None = None
        self.session_id: str | None = None
        self.api_error: str | None = None  # claude's error code on a failed API call (authentication_failed ...)
        self.stop: tuple[str, str] | None = None  # (error kind, message): the run must end now
        self._seen: set[str] = set()  # claude message ids, codex item ids
        self._tool_names: dict[str, str] = {}
        self._text = ""  # gemini's assistant text being streamed
        self._in_turn = False  # gemini: the model is answering

    # ------------------------------------------------------------------ input

    def feed_line(self, line: str) -> None:
        """One line of stdout, without its newline."""
        if self.kind == "codex" and CODEX_RECONNECT in line and self.stop is None:
            self.stop = ("network", CODEX_RECONNECT)
        event = decode_event(line)
        if event is None:
            return
        if self.kind == "claude":
            self._claude(event)
        elif self.kind == "codex":
            self._codex(event)
        else:
            self._gemini(event)

    def feed_text(self, text: str) -> StreamMonitor:
        """Every line of a finished run's stdout, then :meth:`finish` (for parsing after the fact)."""
        for line in text.splitlines():
            self.feed_line(line)
        self.finish()
        return self

    def finish(self) -> None:
        """The stream ended: report text still being streamed."""
        if self.kind == "gemini":
            self._flush_text()

    # ------------------------------------------------------------------ helpers

    def _emit(self, kind: str, text: str) -> None:
        if self._emit_to is not None and text.strip():
            self._emit_to(kind, text)

    def _turn(self) -> None:
        self.turns += 1
        limit = f"/{self.max_turns}" if self.max_turns else ""
        self._emit("turn", f"turn {self.turns}{limit}")

    def _rel(self, path: Any) -> str:
        """``path`` relative to the worktree when it is inside it, else as given."""
        text = _str(path)
        for root in self._roots:
            if text == root:
                return "."
            if text.startswith(root.rstrip("/") + "/"):
                return text[len(root.rstrip("/")) + 1:]
        return text

    def _count_tool(self) -> None:
        self.tool_calls += 1
        if (self.enforce_turns and self.max_turns and self.tool_calls > self.max_turns
                and self.stop is None):
            self.stop = ("turn_limit", f"the agent made more than its {self.max_turns} turns (tool calls); "
                                       "the orchestrator stopped it")

    # ------------------------------------------------------------------ claude

    def _claude(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if isinstance(event.get("session_id"), str):
            self.session_id = event["session_id"]
        if kind == "system" and event.get("subtype") == "api_retry":
            what = event.get("error_status") or event.get("error") or "error"
            self._emit("error", f"API retry {event.get('attempt')}/{event.get('max_retries')}: {what}")
        elif kind == "assistant":
            self._claude_assistant(event)
        elif kind == "user":
            for block in _list(_dict(event.get("message")).get("content")):
                block = _dict(block)
                if block.get("type") == "tool_result" and block.get("is_error"):
                    name = self._tool_names.get(_str(block.get("tool_use_id")), "tool")
                    text = _content_text(block.get("content"))
                    self._emit("error", f"{name} failed: {text}")

    def _claude_assistant(self, event: dict[str, Any]) -> None:
        message = _dict(event.get("message"))
        blocks = [_dict(b) for b in _list(message.get("content"))]
        if isinstance(event.get("error"), str) and event["error"]:  # a synthetic message: the API call failed
            self.api_error = event["error"]
            text = " ".join(_str(b.get("text")) for b in blocks if b.get("type") == "text")
            self._emit("error", f"{self.api_error}: {text}" if text else self.api_error)
            return
        top = event.get("parent_tool_use_id") is None  # not a subagent's message
        message_id = _str(message.get("id"))
        if top and message_id and message_id not in self._seen:
            self._seen.add(message_id)
            self._turn()
        for block in blocks:
            if block.get("type") == "text" and _str(block.get("text")).strip():
                text = _str(block.get("text")).strip()
                if top:
                    self.final_message = text
                self._emit("message", f"{'assistant' if top else 'subagent'}: {text}")
            elif block.get("type") == "tool_use":
                name = _str(block.get("name")) or "tool"
                self._tool_names[_str(block.get("id"))] = name
                self._count_tool()
                self._emit(*self._claude_tool(name, _dict(block.get("input"))))

    def _claude_tool(self, name: str, args: dict[str, Any]) -> tuple[str, str]:
        if name in CLAUDE_EDIT_TOOLS:
            return "edit", f"{name} {self._rel(args.get('file_path') or args.get('notebook_path'))}"
        if name == "Bash":
            return "tool", f"Bash: {_str(args.get('command'))}"
        for key in ("file_path", "path", "pattern", "url", "query", "description", "prompt"):
            if _str(args.get(key)):
                value = args[key]
                return "tool", f"{name} {self._rel(value) if key.endswith('path') else value}"
        return "tool", name

    # ------------------------------------------------------------------ codex

    def _codex(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "thread.started" and isinstance(event.get("thread_id"), str):
            self.session_id = event["thread_id"]
        elif kind in ("item.started", "item.completed"):
            item = _dict(event.get("item"))
            item_type, item_id = _str(item.get("type")), _str(item.get("id"))
            if item_type in CODEX_TOOL_ITEMS and item_id not in self._seen:
                self._seen.add(item_id)
                self._turn()
                self._count_tool()
                self._emit(*self._codex_tool(item_type, item))
            if kind == "item.completed":
                self._codex_completed(item_type, item)
        elif kind == "error":
            self._emit("error", _str(event.get("message")))
        elif kind == "turn.failed":
            error = event.get("error")
            self._emit("error", _str(_dict(error).get("message")) or _str(error) or "turn failed")

    def _codex_tool(self, item_type: str, item: dict[str, Any]) -> tuple[str, str]:
        if item_type == "file_change":
            changes = [_dict(c) for c in _list(item.get("changes"))]
            verbs = {CODEX_CHANGE_VERBS.get(_str(c.get("kind")), "Edit") for c in changes}
            verb = verbs.pop() if len(verbs) == 1 else "Edit"
            return "edit", f"{verb} {', '.join(self._rel(c.get('path')) for c in changes)}"
        if item_type == "command_execution":
            return "tool", f"$ {_str(item.get('command'))}"
        if item_type == "mcp_tool_call":
            return "tool", f"{_str(item.get('server'))}.{_str(item.get('tool'))}"
        return "tool", f"web search: {_str(item.get('query'))}"

    def _codex_completed(self, item_type: str, item: dict[str, Any]) -> None:
        if item_type == "agent_message" and _str(item.get("text")).strip():
            self.final_message = _str(item.get("text")).strip()
            self._emit("message", f"assistant: {self.final_message}")
        elif item_type == "file_change" and item.get("status") == "failed":
            self._emit("error", f"file change failed: {', '.join(self._rel(_dict(c).get('path')) for c in _list(item.get('changes')))}")
        elif item_type == "error":
            self._emit("error", _str(item.get("message")))

    # ------------------------------------------------------------------ gemini

    def _gemini(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "init" and isinstance(event.get("session_id"), str):
            self.session_id = event["session_id"]
        elif kind == "message":
            if event.get("role") != "assistant":
                self._flush_text()
                self._in_turn = False
                return
            if not self._in_turn:
                self._in_turn = True
                self._turn()
            content = _str(event.get("content"))
            self._text = self._text + content if event.get("delta") else content
        elif kind == "tool_use":
            if not self._in_turn:
                self._in_turn = True
                self._turn()
            self._flush_text()
            name = _str(event.get("tool_name")) or "tool"
            self._tool_names[_str(event.get("tool_id"))] = name
            self._count_tool()
            self._emit(*self._gemini_tool(name, _dict(event.get("parameters"))))
        elif kind == "tool_result":
            self._flush_text()
            self._in_turn = False
            if event.get("status") == "error":
                error = _dict(event.get("error"))
                text = _str(error.get("message")) or _str(event.get("output")) or "error"
                if DENIED.search(text) or "denied" in _str(error.get("type")):
                    self.denials += 1
                name = self._tool_names.get(_str(event.get("tool_id")), "tool")
                self._emit("error", f"{name} failed: {text}")
        elif kind == "result":
            self._flush_text()
        elif kind == "error":
            self._emit("error", _str(event.get("message")) or json.dumps(event))

    def _gemini_tool(self, name: str, args: dict[str, Any]) -> tuple[str, str]:
        path = args.get("file_path") or args.get("absolute_path") or args.get("path")
        if name in GEMINI_EDIT_TOOLS:
            return "edit", f"{name} {self._rel(path)}"
        if _str(args.get("command")):
            return "tool", f"{name}: {args['command']}"
        detail = self._rel(path) if _str(path) else _str(args.get("pattern") or args.get("query") or args.get("url"))
        return "tool", f"{name} {detail}".strip()

    def _flush_text(self) -> None:
        text = self._text.strip()
        self._text = ""
        if text:
            self.final_message = text
            self._emit("message", f"assistant: {text}")


def _content_text(content: Any) -> str:
    """The text of a tool result's ``content`` (a string or text blocks)."""
    if isinstance(content, str):
        return content
    return " ".join(_str(_dict(b).get("text")) for b in _list(content))
