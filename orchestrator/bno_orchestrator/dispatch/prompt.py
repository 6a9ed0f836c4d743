"""The prompt handed to an executor: the routed primary agent's body rendered for one task.

Rendering goes through :func:`bno_orchestrator.agents.render.render_body` (a sandboxed, strict Jinja2
environment). The variables are the task (with its priority score), the worktree the agent works in, the
gates of the agent, and ``context``:

``context.secondary``      the support agents routed with the task, ``[{name, role, description}]``
``context.gate_failures``  the failures of the task's last gate run when it did not pass (gate, status,
                           reason, the tail of its log), so a retry starts from what the gates said
``context.attempt``        1 for the first dispatch of the task, 2 for the next...
``context.base``           the commit the worktree was made from
``context.notes``          a one-paragraph summary of the above, for bodies that print ``context.notes``

A body that never reads ``task`` (an imported prompt) gets a standard task section appended, so no
executor ever runs without the task.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bno_orchestrator.events import EventKind
from bno_orchestrator.models import Event, Task
from bno_quality_gates.status import GateStatus

if TYPE_CHECKING:
    from bno_orchestrator.agents import AgentSpec

LOG_TAIL_LINES = 12
MAX_FAILURE_CHARS = 2000

TASK_SECTION = """
{% if task.title %}

## The task
**{{ task.title }}** ({{ task.id }})

{{ task.description }}

- type: {{ task.type or "not set" }}; complexity: {{ task.complexity or "not set" }}; components: {{ task.components | join(", ") or "none named" }}
- work only in `{{ worktree }}` (the task's own git worktree); do not commit or push
{% if context.gate_failures %}

The last gate run on this worktree failed. Fix these first:
{% for failure in context.gate_failures %}
- {{ failure }}
{% endfor %}
{% endif %}
{% if context.notes %}

{{ context.notes }}
{% endif %}

Gates this change must pass: {{ gates | join(", ") or "the repository's gates" }}. The gates decide, not your report.
{% endif %}
"""


@dataclass
class PromptContext:
    """What the dispatcher knows beyond the task: support agents, attempt, last failures."""

    secondary: list[dict[str, str]] = field(default_factory=list)
    gate_failures: list[str] = field(default_factory=list)
    attempt: int = 1
    base: str = ""
    last_run: str | None = None

    def notes(self) -> str:
        """A plain-text summary (``context.notes``)."""
        parts = [f"Attempt {self.attempt} at this task" + (f", from commit {self.base[:12]}." if self.base else ".")]
        if self.secondary:
            names = ", ".join(f"{s['name']} ({s['role']})" for s in self.secondary)
            parts.append(f"Support agents who review this work: {names}.")
        if self.last_run:
            parts.append(f"The last gate run of this task ({self.last_run}) did not pass; its failures are listed above.")
        return " ".join(parts)

    def as_context(self) -> dict[str, Any]:
        """The ``context`` mapping of the template."""
        return {"secondary": list(self.secondary), "gate_failures": list(self.gate_failures),
                "attempt": self.attempt, "base": self.base, "notes": self.notes()}


def last_verification(events: Sequence[Event]) -> Event | None:
    """The task's latest ``gates.verified`` event (``events`` are the task's, oldest first)."""
    found = [e for e in events if e.kind == EventKind.GATES_VERIFIED]
    return found[-1] if found else None


def _tail(path: str | None, lines: int = LOG_TAIL_LINES) -> str:
    if not path:
        return ""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    kept = [line for line in text.splitlines() if line.strip()][-lines:]
    return "\n".join(f"    {line}" for line in kept)


def gate_failures(db_path: Path, run_id: str) -> list[str]:
    """One line (plus the log's tail) per required gate of run ``run_id`` that did not pass.

    Empty when the run is unknown to the gate tables (a run recorded elsewhere) or every gate passed.
    """
    from bno_quality_gates.results import ResultsDB

    if not Path(db_path).is_file():
        return []
    with ResultsDB(db_path) as db:
        record = db.run(run_id)
    if record is None:
        return []
    out: list[str] = []
    for result in record.get("results", []):
        if result.get("status") in (GateStatus.PASSED, GateStatus.CACHED) or not result.get("required", True):
            continue
        line = f"gate `{result['gate']}` {result['status']}"
        if result.get("reason"):
            line += f": {result['reason']}"
        if result.get("log_path"):
            line += f" (log: {result['log_path']})"
        tail = _tail(result.get("log_path"))
        if tail:
            line += "\n" + tail
        out.append(line[-MAX_FAILURE_CHARS:] if len(line) > MAX_FAILURE_CHARS else line)
    return out


def build_context(
    task: Task, events: Sequence[Event], agents: Mapping[str, AgentSpec], *, db_path: Path, attempt: int,
    base: str,
) -> PromptContext:
    """The :class:`PromptContext` of ``task`` from its events (support agents, last failed gate run)."""
    secondary = [
        {"name": name, "role": agents[name].role, "description": agents[name].description}
        for name in task.support if name in agents
    ]
    context = PromptContext(secondary=secondary, attempt=attempt, base=base)
    last = last_verification(events)
    if last is not None and last.payload.get("passed") is False:
        run_id = str(last.payload.get("run_id", ""))
        context.last_run = run_id
        context.gate_failures = gate_failures(db_path, run_id) or [last.reason or f"gate run {run_id} failed"]
    return context


def render_prompt(
    agent: AgentSpec, task: Task, *, worktree: Path, repo: Path, context: PromptContext,
    priority: float | None = None, agent_path: Path | None = None, repo_gates: Sequence[str] | None = None,
) -> str:
    """The prompt: ``agent``'s body rendered for ``task`` (plus the standard task section when the body
    never reads ``task``). Template errors are ConfigErrors naming the agent file.

    ``gates`` in the template: the agent's gates that the repository defines (``repo_gates``), else all of
    the repository's gates, since those are what verification runs.
    """
    from bno_orchestrator.agents.render import build_variables, render_template, template_variables

    data = task.model_dump(mode="json")
    data["priority"] = priority
    gates = list(agent.gates)
    if repo_gates is not None:
        gates = [g for g in agent.gates if g in repo_gates] or list(repo_gates)
    variables = build_variables(agent, data, worktree=worktree, repo=repo, gates=gates,
                                context=context.as_context())
    body = agent.body
    if "task" not in template_variables(body):
        body = body + TASK_SECTION
    text = render_template(body, variables, path=agent_path)
    return text.strip() + "\n"
