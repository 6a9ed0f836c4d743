"""The ``bitnet`` package's exception tree.

:class:`BitNetError` derives from ``ValueError`` so library users can catch bad input the usual way;
the CLI maps it to exit code 2.
"""

from __future__ import annotations


class BitNetError(ValueError):
    """Base of every error this package raises on purpose (bad input, a refused operation)."""


class CheckpointError(BitNetError):
    """A model directory or checkpoint is missing, corrupt or inconsistent.

    The message names the file and the tensor or config field.
    """


class ConfigError(BitNetError):
    """A model or training configuration is invalid (names the field)."""


class ContextLengthError(BitNetError):
    """A prompt (plus the tokens asked for) does not fit in the model's context."""
