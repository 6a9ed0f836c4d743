"""The one error tree of the project, shared by every package and both command lines.

::

    ProjectError                 base of every error raised on purpose
    ├── UserError                bad input or a refused operation: the CLIs print one line and exit 2
    │   ├── ConfigError          a file is invalid: names file, line, column and field (also a ValueError)
    │   └── NotFoundError        a task, agent, gate, file or checkpoint asked for does not exist
    └── StoreError               a store is unusable (locked too long, an I/O error): exit 3
        └── UnusableStoreError   (also a UserError: exit 2) a store file not to be trusted or used as asked,
                                 left untouched: damaged, emptied, newer schema, read-only, missing
                                 (bno_foundation.sqlite: DamagedStoreError, NewerStoreError, ...)

Packages add their own leaves (``GateError`` in the gates, ``TransitionError`` in the orchestrator,
``BitNetError`` and its kin in bitnet), always under one of these.
"""

from __future__ import annotations

from pathlib import Path


class ProjectError(Exception):
    """Base of every error the project raises on purpose."""


class UserError(ProjectError):
    """Bad input or a refused operation: the message says what and where; CLIs exit with code 2."""


class ConfigError(UserError, ValueError):
    """A configuration, YAML, JSON or front-matter file (or a config value) is invalid.

    The message names the file and, when known, the line, column and field:
    ``workflows/gates.yaml:12:5: field 'gates.test.timeout': expected a number``. It is also a
    ``ValueError`` so library users of the model code can catch bad configs the usual way.
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
    """A task, agent, gate, file or checkpoint that was asked for does not exist."""


class StoreError(ProjectError):
    """A store is unusable (corrupt, locked for too long, a newer schema): an internal error (exit 3)."""
