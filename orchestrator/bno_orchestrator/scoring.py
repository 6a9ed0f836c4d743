"""Ranking the backlog: the priority formula, Taskwarrior-style urgency and WSJF.

Every scorer returns a :class:`Score` whose :class:`Term` list says, for each input, its value and where
it came from (``task`` field, ``default`` of ``workflows/scoring.yaml``, or ``derived`` from the
dependency graph), so ``orchestrator task explain ID`` can show the whole computation.

Dependencies count both ways: a task with an unfinished ``depends_on`` is *blocked* (ranked last and
never routed or dispatched), and a task that blocks unfinished tasks ranks higher (the priority formula's
Dependencies term, Taskwarrior's ``blocking`` coefficient, WSJF's risk reduction / opportunity enablement).
All scorers run in O(tasks + dependency edges).

:data:`SCORERS` is the registry: one scoring function per :class:`bno_orchestrator.scorers.ScorerName`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from bno_orchestrator.models import Task, TaskStatus, as_utc, unfinished_dependencies
from bno_orchestrator.rules import ScoringConfig
from bno_orchestrator.scorers import ScorerName

ACTIVE_STATES = frozenset({TaskStatus.IN_DEVELOPMENT, TaskStatus.REVIEW, TaskStatus.INTEGRATION,
                           TaskStatus.QA, TaskStatus.TESTING})


@dataclass(slots=True)
class Term:
    """One input of a score: its value and where it came from."""

    name: str
    value: float
    source: str  # "task", "default" or "derived"
    note: str = ""


@dataclass(slots=True)
class Score:
    """A task's score under one scorer, with the terms that produced it."""

    task_id: str
    scorer: str
    value: float
    formula: str
    terms: tuple[Term, ...]
    blocked_by: tuple[str, ...] = ()
    blocks: tuple[str, ...] = ()
    status_blocked: bool = False

    @property
    def blocked(self) -> bool:
        """True when the task waits on unfinished dependencies or is in the ``blocked`` state."""
        return bool(self.blocked_by) or self.status_blocked

    def as_json(self) -> dict[str, object]:
        """A JSON-ready dict (for ``--json``)."""
        return {
            "task_id": self.task_id, "scorer": self.scorer, "value": self.value, "formula": self.formula,
            "blocked": self.blocked, "blocked_by": list(self.blocked_by), "blocks": list(self.blocks),
            "terms": [{"name": t.name, "value": t.value, "source": t.source, "note": t.note} for t in self.terms],
        }


@dataclass(slots=True)
class DependencyIndex:
    """Who blocks whom among unfinished tasks (built once per scoring pass)."""

    blocked_by: dict[str, tuple[str, ...]] = field(default_factory=dict)
    blocks: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def build(cls, tasks: Mapping[str, Task]) -> DependencyIndex:
        """Index ``tasks``: a dependency is open while the task it names is not done (or unknown)."""
        blocked_by: dict[str, tuple[str, ...]] = {}
        blocks: dict[str, list[str]] = {}
        for task in tasks.values():
            if task.status == TaskStatus.DONE or not task.depends_on:
                continue
            waiting = unfinished_dependencies(task, tasks)
            for dep in waiting:
                blocks.setdefault(dep, []).append(task.id)
            if waiting:
                blocked_by[task.id] = tuple(waiting)
        return cls(blocked_by=blocked_by, blocks={k: tuple(sorted(v)) for k, v in blocks.items()})


@dataclass(frozen=True, slots=True)
class Standing:
    """What a scorer knows of a task beyond its fields: the unfinished tasks it blocks, whether it waits
    (on unfinished dependencies, or in the ``blocked`` state), and the time of scoring."""

    blocks: tuple[str, ...]
    blocked: bool
    now: dt.datetime


_TASK_NOTE: dict[str, str] = {}
_DEFAULT_NOTE: dict[str, str] = {}


def _term(name: str, task_value: int | None, default: int, what: str = "") -> Term:
    field_name = what or name
    if task_value is not None:
        note = _TASK_NOTE.get(field_name) or _TASK_NOTE.setdefault(field_name, f"task field {field_name}")
        return Term(name, float(task_value), "task", note)
    note = _DEFAULT_NOTE.get(field_name) or _DEFAULT_NOTE.setdefault(
        field_name, f"scoring.yaml default for {field_name}")
    return Term(name, float(default), "default", note)


def _blocking_note(blocks: tuple[str, ...]) -> str:
    if not blocks:
        return "blocks no unfinished task"
    return f"blocks {len(blocks)} unfinished task(s): {', '.join(blocks[:5])}{' ...' if len(blocks) > 5 else ''}"


def score_priority(task: Task, config: ScoringConfig, standing: Standing) -> tuple[float, str, tuple[Term, ...]]:
    """``Priority = (Impact × Urgency × Dependencies) / (Resources × Risk)``."""
    priority = config.priority
    blocks = standing.blocks
    impact = _term("impact", task.impact, priority.defaults.impact)
    urgency = _term("urgency", task.urgency, priority.defaults.urgency)
    derived = priority.dependencies_by_blocking[min(len(blocks), 2)]
    if task.dependencies is None:
        deps = Term("dependencies", float(derived), "derived", _blocking_note(blocks))
    elif derived > task.dependencies:
        deps = Term("dependencies", float(derived), "derived",
                    f"task field is {task.dependencies}, raised because it {_blocking_note(blocks)}")
    else:
        deps = Term("dependencies", float(task.dependencies), "task", "task field dependencies")
    resources = _term("resources", task.resources, priority.defaults.resources)
    risk = _term("risk", task.risk, priority.defaults.risk)
    value = impact.value * urgency.value * deps.value / (resources.value * risk.value)
    return value, "(impact × urgency × dependencies) / (resources × risk)", (impact, urgency, deps, resources, risk)


def _tag_factor(count: int) -> float:
    return 0.0 if count == 0 else 0.8 if count == 1 else 0.9 if count == 2 else 1.0


def _due_factor(due: dt.datetime | None, now: dt.datetime) -> tuple[float, str]:
    if due is None:
        return 0.0, "no due date"
    days_overdue = (now - as_utc(due)).total_seconds() / 86400.0
    if days_overdue >= 7.0:
        factor = 1.0
    elif days_overdue >= -14.0:
        factor = ((days_overdue + 14.0) * 0.8 / 21.0) + 0.2
    else:
        factor = 0.2
    when = f"{days_overdue:.1f} days overdue" if days_overdue >= 0 else f"due in {-days_overdue:.1f} days"
    return factor, when


def score_taskwarrior(task: Task, config: ScoringConfig, standing: Standing) -> tuple[float, str, tuple[Term, ...]]:
    """Taskwarrior-style urgency: the sum of coefficient × factor over the terms below."""
    tw = config.taskwarrior
    blocks, blocked, now = standing.blocks, standing.blocked, standing.now
    impact = task.impact if task.impact is not None else config.priority.defaults.impact
    source = "task" if task.impact is not None else "default"
    coefficient = tw.priority.get(impact, 0.0)
    terms = [Term("priority", coefficient, source, f"coefficient for impact {impact}")]
    created = task.created_at or now
    age_days = max(0.0, (now - as_utc(created)).total_seconds() / 86400.0)
    age_factor = min(1.0, age_days / tw.age_max_days)
    terms.append(Term("age", tw.age * age_factor, "derived", f"{age_days:.1f} days old × {tw.age} / {tw.age_max_days:g}"))
    terms.append(Term("blocking", tw.blocking if blocks else 0.0, "derived", _blocking_note(blocks)))
    terms.append(Term("blocked", tw.blocked if blocked else 0.0, "derived",
                      "waits on unfinished work" if blocked else "not blocked"))
    terms.append(Term("tags", tw.tags * _tag_factor(len(task.labels)), "task", f"{len(task.labels)} label(s)"))
    due_factor, due_note = _due_factor(task.due, now)
    terms.append(Term("due", tw.due * due_factor, "task" if task.due else "default", due_note))
    active = task.status in ACTIVE_STATES
    terms.append(Term("active", tw.active if active else 0.0, "derived", f"status {task.status.value}"))
    label_bonus = sum(tw.label_coefficients.get(label, 0.0) for label in task.labels)
    if label_bonus:
        terms.append(Term("labels", label_bonus, "task", "label coefficients"))
    return sum(t.value for t in terms), "sum of coefficient × factor", tuple(terms)


def _wsjf_term(name: str, own: int | None, priority_field: str, priority_value: int | None,
               priority_default: int) -> Term:
    """A WSJF term: the task's own field ``name`` when set, else the priority formula's ``priority_field`` term."""
    if own is not None:
        return Term(name, float(own), "task", f"task field {name}")
    base = _term(name, priority_value, priority_default, priority_field)
    return Term(name, base.value, base.source, f"from {base.note}")


def score_wsjf(task: Task, config: ScoringConfig, standing: Standing) -> tuple[float, str, tuple[Term, ...]]:
    """WSJF = (business value + time criticality + risk reduction) / job size."""
    defaults = config.priority.defaults
    blocks = standing.blocks
    value_term = _wsjf_term("business_value", task.business_value, "impact", task.impact, defaults.impact)
    time_term = _wsjf_term("time_criticality", task.time_criticality, "urgency", task.urgency, defaults.urgency)
    derived = config.wsjf.risk_reduction_by_blocking[min(len(blocks), 2)]
    if task.risk_reduction is None or derived > task.risk_reduction:
        risk_term = Term("risk_reduction", float(derived), "derived", _blocking_note(blocks))
    else:
        risk_term = Term("risk_reduction", float(task.risk_reduction), "task", "task field risk_reduction")
    if task.job_size is not None:
        size_term = Term("job_size", float(task.job_size), "task", "task field job_size")
    elif task.resources is not None:
        size_term = Term("job_size", float(task.resources), "task", "from task field resources")
    else:
        size_term = Term("job_size", float(config.wsjf.defaults.job_size), "default", "scoring.yaml wsjf default")
    cost = value_term.value + time_term.value + risk_term.value
    return (cost / size_term.value, "(business_value + time_criticality + risk_reduction) / job_size",
            (value_term, time_term, risk_term, size_term))


ScoreFunction = Callable[[Task, ScoringConfig, Standing], tuple[float, str, tuple[Term, ...]]]
# The registry: every scorer name, with the function that scores one task under it.
SCORERS: dict[ScorerName, ScoreFunction] = {
    ScorerName.PRIORITY: score_priority,
    ScorerName.TASKWARRIOR: score_taskwarrior,
    ScorerName.WSJF: score_wsjf,
}


def score_tasks(tasks: Iterable[Task], config: ScoringConfig, *, now: dt.datetime,
                scorer: str | None = None) -> dict[str, Score]:
    """Score every task with ``scorer`` (default: the one ``config`` names)."""
    by_id = {task.id: task for task in tasks}
    index = DependencyIndex.build(by_id)
    name = scorer or config.scorer
    if name not in SCORERS:
        raise ValueError(f"unknown scorer {name!r}; known: {', '.join(SCORERS)}")
    chosen = ScorerName(name)
    function = SCORERS[chosen]
    now = as_utc(now)
    scores: dict[str, Score] = {}
    for task in by_id.values():
        blocks = index.blocks.get(task.id, ()) if task.status != TaskStatus.DONE else ()
        blocked_by = index.blocked_by.get(task.id, ())
        status_blocked = task.status == TaskStatus.BLOCKED
        value, formula, terms = function(task, config, Standing(blocks, bool(blocked_by) or status_blocked, now))
        scores[task.id] = Score(task.id, chosen.value, value, formula, terms, blocked_by, blocks, status_blocked)
    return scores


def rank(scores: Mapping[str, Score]) -> list[str]:
    """Task ids best first: unblocked before blocked, then by score (high first), then by id."""
    return sorted(scores, key=lambda task_id: (scores[task_id].blocked, -scores[task_id].value, task_id))


def explain_lines(task: Task, score: Score) -> list[str]:
    """A plain-text explanation of ``score`` (what ``task explain`` prints without rich)."""
    lines = [f"{task.id} {task.title}", f"scorer: {score.scorer}   formula: {score.formula}"]
    for term in score.terms:
        lines.append(f"  {term.name:<17} {term.value:>8.3f}  [{term.source}] {term.note}")
    lines.append(f"  {'= score':<17} {score.value:>8.3f}")
    return lines + blocking_notes(task, score)


def blocking_notes(task: Task, score: Score) -> list[str]:
    """What holds ``task`` back and what it holds back: the lines under a score's explanation."""
    notes: list[str] = []
    if score.blocked_by:
        notes.append(f"blocked by unfinished: {', '.join(score.blocked_by)} (never routed or dispatched)")
    if score.status_blocked:
        notes.append(f"status is blocked: {task.blocked_reason or 'no reason recorded'}")
    if score.blocks:
        notes.append(f"blocks: {', '.join(score.blocks)}")
    return notes
