"""What the scripted model does, one step per model turn, independent of the vendor's format."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field


@dataclass(frozen=True)
class WriteFile:
    """Ask the CLI to write ``content`` to ``path`` with its own file-writing tool.

    ``path`` is relative to the agent's working directory, or absolute (to test an attempt to write
    outside the worktree).
    """

    path: str
    content: str


@dataclass(frozen=True)
class Reply:
    """Answer with plain text and no tool call: the agent's turn ends."""

    text: str


@dataclass(frozen=True)
class HttpFailure:
    """Answer the model request with an HTTP error in the vendor's error format."""

    status: int
    message: str


Step = WriteFile | Reply | HttpFailure


@dataclass
class Scenario:
    """The steps, consumed one per main model request; when they run out the model says ``done``.

    ``repeat_last``: keep answering with the last step (e.g. a tool call forever, to reach a turn limit).
    """

    steps: list[Step] = field(default_factory=list)
    repeat_last: bool = False
    final_text: str = "done"
    _index: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def next_step(self) -> Step:
        """The step for the next main model request (thread-safe)."""
        with self._lock:
            if self._index < len(self.steps):
                step = self.steps[self._index]
                self._index += 1
                return step
            if self.repeat_last and self.steps:
                return self.steps[-1]
            return Reply(self.final_text)

    @property
    def consumed(self) -> int:
        """How many scripted steps were used."""
        return self._index
