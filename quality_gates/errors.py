"""The base of the error tree shared by ``quality_gates`` and ``orchestrator``.

``quality_gates`` is the lower layer (the orchestrator imports it, never the reverse), so the errors both
need live here and :mod:`orchestrator.errors` builds on them.
"""

from __future__ import annotations

from pathlib import Path


class UserError(Exception):
    """Bad input or a refused operation: the message says what and where; CLIs exit with code 2."""


class ConfigError(UserError):
    """A YAML or Markdown front-matter file is invalid.

    The message names the file and, when known, the line, column and field:
    ``workflows/gates.yaml:12:5: field 'gates.test.timeout': expected a number``.
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


class GateError(UserError):
    """A gate run was refused (unknown gate, bad hook setup, no such ref)."""
