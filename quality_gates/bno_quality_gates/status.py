"""The named outcomes of a gate and the conditions a dependency can ask for.

Both are ``StrEnum``: they compare equal to, and serialise as, their plain string values, so records
written before they existed read back unchanged.
"""

from __future__ import annotations

from enum import StrEnum


class GateStatus(StrEnum):
    """The outcome of one gate in one run."""

    PASSED = "passed"
    FAILED = "failed"  # a non-zero exit, a timeout, or the program's own failed verdict
    ERRORED = "errored"  # could not run: missing program, or one of the gate's errored_exit_codes
    SKIPPED = "skipped"  # a condition was false: $SKIP, no GPU, a `.failed` dependency that passed
    OMITTED = "omitted"  # an upstream gate did not give what the dependency asks for
    CACHED = "cached"  # a pass replayed from an identical input hash

    @property
    def ok(self) -> bool:
        """Passed, or a replayed pass."""
        return self in (GateStatus.PASSED, GateStatus.CACHED)


class Condition(StrEnum):
    """What a dependency ``gate.CONDITION`` needs of its upstream gate."""

    PASSED = "passed"
    FAILED = "failed"
    COMPLETED = "completed"  # passed or failed, not errored/omitted/skipped
    ALWAYS = "always"
