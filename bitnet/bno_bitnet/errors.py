"""BitNet's leaves of the project's error tree (see :mod:`bno_foundation.errors`).

:class:`BitNetError` is a ``UserError`` (the CLI exits 2) and a ``ValueError``, so library users can
catch bad input the usual way. A bad model or training configuration raises the project's one
:class:`~bno_foundation.errors.ConfigError` (also a ``ValueError``), which names the file and field.
"""

from __future__ import annotations

from bno_foundation.errors import ConfigError, UserError

__all__ = ["BitNetError", "CheckpointError", "ConfigError", "ContextLengthError"]


class BitNetError(UserError, ValueError):
    """Base of every BitNet-specific error raised on purpose (bad input, a refused operation)."""


class CheckpointError(BitNetError):
    """A model directory or checkpoint is missing, corrupt or inconsistent.

    The message names the file and the tensor or config field.
    """


class ContextLengthError(BitNetError):
    """A prompt (plus the tokens asked for) does not fit in the model's context."""
