"""Quality gates: a DAG of gate programs run in parallel, cached by input hash, recorded, hooked into git.

The layer below the orchestrator (it imports nothing from ``orchestrator`` and nothing heavy at module level).
"""
