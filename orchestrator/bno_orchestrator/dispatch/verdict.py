"""The gates' verdict on a task's worktree, and what a failed verdict sets off (escalation).

Used by dispatch's verification (the affected gates, after the agent ran) and by every pipeline state of
:mod:`.advance` (the gates ``development.yaml`` names for that state). The gates and their config always come
from the main repository (``paths.gates_file``), never from the worktree the agent could edit; results go to
the main repository's store.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bno_orchestrator.dispatch import worktree as wt
from bno_orchestrator.paths import state_dir, store_path

if TYPE_CHECKING:
    from bno_orchestrator.config import Config
    from bno_orchestrator.escalation import Escalation
    from bno_orchestrator.store import Store

AFFECTED = "affected"  # in a state's gate list: the gates the task's change touches
ALL = "all"  # every gate of gates.yaml


@dataclass
class Verification:
    """The gates' verdict on a worktree."""

    run_id: str
    passed: bool
    reason: str
    changed_files: list[str] = field(default_factory=list)
    gates: dict[str, str] = field(default_factory=dict)  # gate -> status
    run_dir: str | None = None
    ran: bool = True  # False: no gate was run (nothing changed, or nothing selected)

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"run_id": self.run_id, "passed": self.passed, "reason": self.reason,
                "changed_files": self.changed_files, "gates": self.gates, "run_dir": self.run_dir}


def gate_verdict(repo: Path, worktree: Path, base: str, selection: Sequence[str] = (AFFECTED,)) -> Verification:
    """Run the gates ``selection`` names (gate names, ``affected`` and/or ``all``) of ``repo``'s gates.yaml on
    ``worktree``, the change being everything since ``base``; the run is recorded in ``repo``'s store.

    A change no gate checks, or a selection that runs no gate, is no pass: verified means verified."""
    from bno_orchestrator.errors import ConfigError
    from bno_orchestrator.paths import gates_file
    from bno_quality_gates.results import new_run_id
    from bno_quality_gates.runner import Runner, RunOptions
    from bno_quality_gates.spec import load_gates

    changed = wt.changed_files(worktree, base)
    if not changed:
        return Verification(f"no-change-{new_run_id()}", False,
                            "the worktree changed no file since its base: nothing to verify", ran=False)
    path = gates_file(repo)
    config = load_gates(path)  # the repository's own gates, not the copy the agent could edit
    unknown = [name for name in selection if name not in (AFFECTED, ALL) and name not in config.gates]
    if unknown:
        raise ConfigError(f"gate(s) {', '.join(unknown)} named in workflows/development.yaml are not in {path}; "
                          f"its gates: {', '.join(config.gates)}", path=path, field="gates")
    if not selection:
        return Verification(f"no-gates-{new_run_id()}", False, "no gate is named: nothing verified the change",
                            changed, ran=False)
    options = RunOptions(repo=worktree, mode=AFFECTED, base=base, changed=changed, state_dir=state_dir(repo),
                         db_path=store_path(repo))
    if ALL in selection:
        options.mode = ALL
    elif list(selection) != [AFFECTED]:
        names = [n for n in selection if n != AFFECTED]
        if AFFECTED in selection:
            names += [n for n in Runner(config, options).plan().selected if n not in names]
        options.mode, options.only = "only", names
    record = Runner(config, options).run()
    gates = {r.gate: str(r.status) for r in record.results}
    passed = record.passed and bool(record.results)
    if not record.results:
        reason = f"no gate is affected by the {len(changed)} changed file(s): nothing verified the change"
    elif record.passed:
        reason = f"gate run {record.run_id} passed: " + ", ".join(f"{g} {s}" for g, s in gates.items())
    else:
        bad = [r for r in record.results if r.required and not r.ok]
        reason = f"gate run {record.run_id} failed: " + "; ".join(
            f"{r.gate} {r.status}" + (f" ({r.reason})" if r.reason else "") + _log_tail(r.log_path) for r in bad)
    return Verification(record.run_id, passed, reason, changed, gates, record.run_dir, ran=bool(record.results))


def escalate_task(store: Store, config: Config, task_id: str) -> list[Escalation]:
    """Evaluate the escalation rules now for ``task_id`` only and record what fires (one transaction)."""
    from bno_orchestrator.escalation import escalation_events, evaluate

    with store.write() as tx:
        due = [e for e in evaluate(tx.tasks(), tx.events(), config.escalation, config.workflow, now=tx.now())
               if e.task_id == task_id]
        for event in escalation_events(due):
            tx.append(event)
    return due


def _log_tail(log_path: str | None, lines: int = 3) -> str:
    """`` [log PATH: last lines]`` of a failed gate, so the cause shows where the verdict is read."""
    if not log_path:
        return ""
    try:
        text = Path(log_path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return f" [log {log_path}]"
    tail = " | ".join(line.strip() for line in text.strip().splitlines()[-lines:] if line.strip())
    return f" [log {log_path}: ...{tail[-300:]}]" if tail else f" [log {log_path}]"
