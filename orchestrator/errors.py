"""The orchestrator's exception tree.

Every error a user can cause derives from :class:`UserError` (exit code 2). Anything else that
escapes a command is an internal error (exit code 3) and is logged with its traceback.
"""

from __future__ import annotations

from pathlib import Path


class OrchestratorError(Exception):
    """Base of every error this package raises on purpose."""


class UserError(OrchestratorError):
    """Bad input or a refused operation: the message says what and where; exit code 2."""


class ConfigError(UserError):
    """A YAML or Markdown front-matter file is invalid.

    The message names the file and, when known, the line, column and field.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        line: int | None = None,
        column: int | None = None,
        field: str | None = None,
    ) -> None:
        self.path = str(path) if path is not None else None
        self.line = line
        self.column = column
        self.field = field
        self.reason = message
        super().__init__(self._format())

    def _format(self) -> str:
        where = ""
        if self.path:
            where = self.path
            if self.line is not None:
                where += f":{self.line}"
                if self.column is not None:
                    where += f":{self.column}"
            where += ": "
        field = f"field '{self.field}': " if self.field else ""
        return f"{where}{field}{self.reason}"


class NotFoundError(UserError):
    """A task, agent, gate or file that was asked for does not exist."""


class TransitionError(UserError):
    """A state transition the workflow does not allow."""


class StoreError(OrchestratorError):
    """The SQLite store is unusable (corrupt, locked for too long, newer schema)."""
