"""The orchestrator's exception tree.

Every error a user can cause derives from :class:`UserError` (exit code 2); the base and
:class:`ConfigError` come from :mod:`quality_gates.errors`, the lower layer. Anything else that escapes a
command is an internal error (exit code 3) and is logged with its traceback.
"""

from __future__ import annotations

from quality_gates.errors import ConfigError, GateError, UserError

__all__ = [
    "ConfigError",
    "GateError",
    "NotFoundError",
    "StoreError",
    "TransitionError",
    "UserError",
]


class NotFoundError(UserError):
    """A task, agent, gate or file that was asked for does not exist."""


class TransitionError(UserError):
    """A state transition the workflow does not allow (the message lists the allowed ones)."""


class StoreError(Exception):
    """The SQLite store is unusable (corrupt, locked for too long, a newer schema): an internal error."""
