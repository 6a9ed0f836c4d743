"""The gates' leaf of the project's error tree (see :mod:`bno_foundation.errors`)."""

from __future__ import annotations

from bno_foundation.errors import ConfigError, UserError

__all__ = ["ConfigError", "GateError", "UserError"]


class GateError(UserError):
    """A gate run was refused (unknown gate, bad hook setup, no such ref)."""
