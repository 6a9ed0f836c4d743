"""Live progress of an executor run: small records made from the agent CLI's streamed events.

While claude, codex or gemini runs, each event it streams (a model turn, a tool call, a file edit, a message,
an error) becomes one :class:`Progress` record. Each record is appended as one JSON line to the attempt's
progress file, ``.orchestrator/logs/<task-id>/<attempt>.progress.jsonl`` (:func:`progress_path`), and handed
to the caller's callback (``run_executor(..., on_progress=...)``).

The file is written for readers that follow it while the run goes on (the board): every line is complete
JSON, written with one ``write`` and flushed at once, so a reader sees whole lines only (it may see the last
line without its newline for an instant: read up to the last ``\\n``). The keys of a line:

==========  ===================================================================================
``t``       when the orchestrator read the event, ISO-8601 in UTC (``2026-01-05T10:00:00.123+00:00``)
``kind``    ``turn`` | ``tool`` | ``edit`` | ``message`` | ``error`` (:data:`PROGRESS_KINDS`)
``text``    one line, at most :data:`TEXT_LIMIT` characters (``Write mod.txt``, ``assistant: ...``)
==========  ===================================================================================
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

PROGRESS_KINDS = ("turn", "tool", "edit", "message", "error")
TEXT_LIMIT = 200
PROGRESS_SUFFIX = ".progress.jsonl"


@dataclass(frozen=True)
class Progress:
    """One thing the agent did, as the board shows it: ``kind`` (one of :data:`PROGRESS_KINDS`) and one
    line of ``text``, read at ``time`` (UTC)."""

    time: datetime
    kind: str
    text: str

    def __post_init__(self) -> None:
        if self.kind not in PROGRESS_KINDS:
            raise ValueError(f"progress kind {self.kind!r} is none of {', '.join(PROGRESS_KINDS)}")

    def as_json(self) -> dict[str, str]:
        """The line written to the progress file: ``{"t": ISO-8601 UTC, "kind": ..., "text": ...}``."""
        return {"t": self.time.astimezone(UTC).isoformat(timespec="milliseconds"), "kind": self.kind,
                "text": self.text}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Progress:
        """A record read back from a progress-file line (a ValueError when it is no such record)."""
        try:
            return cls(datetime.fromisoformat(str(data["t"])), str(data["kind"]), str(data["text"]))
        except KeyError as exc:
            raise ValueError(f"a progress line needs the key {exc.args[0]!r}: {data!r}") from None


ProgressCallback = Callable[[Progress], None]


def progress_path(log_file: Path) -> Path:
    """The progress file of the attempt whose log is ``log_file`` (``3.log`` -> ``3.progress.jsonl``)."""
    return log_file.with_suffix(PROGRESS_SUFFIX)


def one_line(text: str, limit: int = TEXT_LIMIT) -> str:
    """``text`` on one line (runs of whitespace become one space), cut to ``limit`` characters with ``…``."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: max(0, limit - 1)] + "…"


def read_progress(path: Path) -> list[Progress]:
    """The records of a progress file so far (a missing file has none; a line still being written is
    left out)."""
    try:
        data = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    records: list[Progress] = []
    for line in data.split("\n")[:-1]:  # only lines that have their newline are complete
        if line.strip():
            records.append(Progress.from_json(json.loads(line)))
    return records


class ProgressSink:
    """Where the records of one run go: appended to the progress file (one flushed JSON line each), then
    passed to the callback, in the calling thread.

    An exception raised by the callback is not caught: it stops the run like an interrupt does (the
    executor kills the CLI's process group) and propagates to the caller of ``run_executor``.
    """

    def __init__(self, path: Path, callback: ProgressCallback | None = None) -> None:
        self.path = path
        self.callback = callback
        self.count = 0
        self._handle: IO[bytes] | None = None

    def __enter__(self) -> ProgressSink:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = open(self.path, "ab")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def emit(self, kind: str, text: str) -> Progress:
        """Record one event now: ``text`` is made one line (:func:`one_line`)."""
        record = Progress(datetime.now(UTC), kind, one_line(text))
        if self._handle is None:
            raise RuntimeError("ProgressSink.emit outside its `with` block: the progress file is not open")
        line = json.dumps(record.as_json(), ensure_ascii=False) + "\n"
        self._handle.write(line.encode("utf-8"))
        self._handle.flush()
        self.count += 1
        if self.callback is not None:
            self.callback(record)
        return record
