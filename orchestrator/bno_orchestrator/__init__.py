"""BitNet Orchestrator: specialist agents and hard quality gates for an ML code base.

Nothing in this package imports torch or triton at module level: its commands run inside git hooks
and must start fast.
"""

__version__ = "0.1.0"
