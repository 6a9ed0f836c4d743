"""Quality gates: a DAG of gate programs run in parallel, cached by input hash, recorded, hooked into git.

The layer below the orchestrator. It knows no repository: which gates run, on which packages and
commands, comes from the gates file (``workflows/gates.yaml`` by default) and its ``params``; it imports
nothing of the orchestrator or of BitNet, and nothing heavy at module level. Its own command line,
``quality-gates`` (:mod:`bno_quality_gates.cli`), is what the git hooks call.
"""

from __future__ import annotations

STATE_DIR_NAME = ".orchestrator"  # REPO/.orchestrator: records, caches and the SQLite file shared with the store
STORE_FILE_NAME = "state.db"
GATES_FILE = "workflows/gates.yaml"  # a repository's own gates file, relative to its root
