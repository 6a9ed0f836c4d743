"""How an agent's cost is written for people: one formatter for the CLI, the board and the reports."""

from __future__ import annotations


def usd(value: float | None) -> str:
    """``$1.23`` (``$0.0042`` under a cent, so a small cost never reads as nothing); ``unknown`` for None."""
    if value is None:
        return "unknown"
    return f"${value:,.2f}" if value >= 0.01 or value == 0 else f"${value:.4f}"
