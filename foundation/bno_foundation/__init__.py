"""The foundation both products stand on: the CLI runner and exit codes, one error tree, YAML and JSON
files read with their locations, atomic files and directory swaps, SQLite opening and schema migrations,
and the toolchain checks behind both doctors.

It imports nothing heavy (no torch, triton, textual or rich at module level) and nothing of the project:
``bno_quality_gates`` and ``bno_orchestrator`` build on it on one side, ``bno_kernels`` and ``bno_bitnet``
on the other (see docs/architecture.md).
"""

from __future__ import annotations

__version__ = "0.1.0"
