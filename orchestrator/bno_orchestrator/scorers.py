"""The names of the scorers that rank the backlog: the one list everything else reads.

``workflows/scoring.yaml``'s ``scorer`` (:class:`bno_orchestrator.rules.ScoringConfig`), the ``--scorer``
choices of the command line and the registry of scoring functions (:data:`bno_orchestrator.scoring.SCORERS`)
all take their names from :class:`ScorerName`. This module imports nothing heavy, so the command line can
offer the names without loading pydantic.
"""

from __future__ import annotations

from enum import StrEnum


class ScorerName(StrEnum):
    """A scorer (see :mod:`bno_orchestrator.scoring` for the formulas)."""

    PRIORITY = "priority"  # Impact × Urgency × Dependencies / (Resources × Risk)
    TASKWARRIOR = "taskwarrior"  # Taskwarrior-style urgency: a sum of coefficient × factor
    WSJF = "wsjf"  # weighted shortest job first


SCORER_NAMES: tuple[str, ...] = tuple(name.value for name in ScorerName)
