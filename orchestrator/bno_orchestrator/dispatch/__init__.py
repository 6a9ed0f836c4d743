"""Dispatch: a routed task -> a prompt -> an executor in the task's own git worktree -> the gates decide.

* :mod:`.worktree`: ``.orchestrator/worktrees/<task-id>`` on branch ``orchestrator/<task-id>`` (GitPython);
  the user's working tree and index are never touched.
* :mod:`.prompt`: the routed primary agent's body rendered (sandboxed Jinja2) with the task, the worktree,
  the support agents and the last gate failures of the task.
* :mod:`.executors`: claude, codex, aider, gemini, shell and manual; argv lists only (no shell), stdin
  closed, a timeout kills the process group, output captured to ``.orchestrator/logs/<task-id>/<n>.log``.
* :mod:`.run`: pick the task, move it to ``in_development``, run the executor, verify the worktree with the
  gate DAG and record ``gates.verified``; the agent's own claim is recorded but never trusted.
"""

from __future__ import annotations

__all__ = ["DispatchOptions", "DispatchResult", "dispatch"]

from bno_orchestrator.dispatch.run import DispatchOptions, DispatchResult, dispatch
