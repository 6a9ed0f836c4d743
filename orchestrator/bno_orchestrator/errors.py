"""The orchestrator's leaves of the project's error tree (see :mod:`bno_foundation.errors`).

Every error a user can cause derives from :class:`UserError` (exit code 2); anything else that escapes a
command is an internal error (exit code 3) and is logged with its traceback.
"""

from __future__ import annotations

from bno_foundation.errors import ConfigError, NotFoundError, StoreError, UserError
from bno_quality_gates.errors import GateError

__all__ = [
    "ConfigError",
    "GateError",
    "NotFoundError",
    "StoreError",
    "TransitionError",
    "UserError",
]


class TransitionError(UserError):
    """A state transition the workflow does not allow (the message lists the allowed ones)."""
