"""The router: backlog -> primary agent, support agents and coordination strategy, with reasons.

A pure, deterministic function of (tasks, scores, agents, rules, track record, load, streaks):

1. Tasks are taken best score first (blocked ones are never routed).
2. Each candidate agent earns points from ``routing.yaml``: task-type primary/secondary, component
   owner/secondary, and its own front matter (``task_types``/``components``).
3. Candidates whose complexity range excludes the task or who are at capacity drop out; one who has had
   ``max_consecutive_high`` high-complexity tasks in a row drops out of another one while anyone else is
   eligible (the burnout rule and rotation).
4. The most points win; ties go to the better first-pass gate record on this task type, then the lower
   load, then the id - so results repeat exactly and improve as history accumulates.
5. The complexity rule gives the coordination strategy, the team size (support agents) and the
   escalation path; ``support_rules`` add QA, documentation or security support.

Cost: O(n log n) for the sort plus O(candidates) per task.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bno_orchestrator.events import EventKind, TaskDeferred, TaskRouted
from bno_orchestrator.models import Event, Task, TaskStatus
from bno_orchestrator.rules import RoutingRules
from bno_orchestrator.scoring import Score
from bno_orchestrator.workload import AgentLike, TrackRecord

if TYPE_CHECKING:
    from bno_orchestrator.config import Config
    from bno_orchestrator.store import Store

NEUTRAL_RECORD = 0.5  # the track record assumed for an agent with too few gate runs on a task type


@dataclass(slots=True)
class Candidate:
    """One agent considered for a task."""

    agent: str
    points: float
    hits: tuple[str, ...]
    record: float | None
    record_text: str
    load: int
    capacity: int
    excluded: str = ""  # why it cannot take the task ("" when eligible)

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"agent": self.agent, "points": self.points, "hits": list(self.hits), "record": self.record,
                "record_text": self.record_text, "load": self.load, "capacity": self.capacity,
                "excluded": self.excluded}


@dataclass(slots=True)
class Decision:
    """What the router decided for one task, and why."""

    task_id: str
    score: float
    complexity: int
    task_type: str
    primary: str | None
    secondary: tuple[str, ...] = ()
    strategy: str | None = None
    coordination: str = ""
    escalation: tuple[str, ...] = ()
    reasons: tuple[str, ...] = ()
    candidates: tuple[Candidate, ...] = ()
    outcome: str = "routed"  # routed | deferred | blocked | manual

    @property
    def routed(self) -> bool:
        """True when the task gets a primary agent."""
        return self.primary is not None

    def payload(self) -> dict[str, Any]:
        """The payload of the ``task.routed`` / ``task.deferred`` event."""
        return {
            "primary": self.primary, "secondary": list(self.secondary), "strategy": self.strategy,
            "coordination": self.coordination, "escalation_path": list(self.escalation), "score": self.score,
            "complexity": self.complexity, "task_type": self.task_type, "outcome": self.outcome,
            "reasons": list(self.reasons), "candidates": [c.as_json() for c in self.candidates],
        }

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready dict (``route --json``)."""
        return {"task_id": self.task_id, **self.payload()}


@dataclass(slots=True)
class _Index:
    by_type: dict[str, list[str]] = field(default_factory=dict)
    by_component: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def build(cls, agents: Mapping[str, AgentLike]) -> _Index:
        index = cls()
        for name in sorted(agents):
            for task_type in agents[name].task_types:
                index.by_type.setdefault(task_type, []).append(name)
            for component in agents[name].components:
                index.by_component.setdefault(component, []).append(name)
        return index


def _candidates(task: Task, rules: RoutingRules, index: _Index) -> dict[str, tuple[float, list[str]]]:
    weights = rules.weights
    found: dict[str, tuple[float, list[str]]] = {}

    def add(agent: str, points: float, why: str) -> None:
        total, hits = found.get(agent, (0.0, []))
        hits.append(why)
        found[agent] = (total + points, hits)

    type_rule = rules.task_types.get(task.type)
    if type_rule is not None:
        add(type_rule.primary, weights.type_primary, f"type primary ({task.type})")
        for agent in type_rule.secondary:
            add(agent, weights.type_secondary, f"type secondary ({task.type})")
    for component in task.components:
        rule = rules.components.get(component)
        if rule is None:
            continue
        add(rule.primary, weights.component_primary, f"owner ({component})")
        for agent in rule.secondary:
            add(agent, weights.component_secondary, f"secondary ({component})")
    declared = set(index.by_type.get(task.type, ()))
    for component in task.components:
        declared.update(index.by_component.get(component, ()))
    for agent in sorted(declared):
        add(agent, weights.declared, "self-declared")
    return found


def _tie_reason(winner: Candidate, runner: Candidate) -> str:
    if winner.points != runner.points:
        return f"{winner.points:g} points vs {runner.points:g} for {runner.agent}"
    win_rec = NEUTRAL_RECORD if winner.record is None else winner.record
    run_rec = NEUTRAL_RECORD if runner.record is None else runner.record
    if win_rec != run_rec:
        return (f"tie at {winner.points:g} points with {runner.agent} broken by track record "
                f"({winner.record_text} vs {runner.record_text})")
    if winner.load != runner.load:
        return f"tie at {winner.points:g} points with {runner.agent} broken by load ({winner.load} vs {runner.load})"
    return f"tie at {winner.points:g} points with {runner.agent} broken by id"


def route(
    tasks: Iterable[Task],
    scores: Mapping[str, Score],
    agents: Mapping[str, AgentLike],
    rules: RoutingRules,
    *,
    track: TrackRecord | None = None,
    load: Mapping[str, int] | None = None,
    streaks: Mapping[str, int] | None = None,
) -> list[Decision]:
    """Route the backlog tasks among ``tasks``; returns one decision per backlog task, in routing order.

    ``load`` (agent -> tasks held) and ``streaks`` (agent -> high-complexity tasks in a row) are the
    starting state; the router updates private copies as it assigns.
    """
    track = track or TrackRecord()
    loads = dict(load or {})
    runs = dict(streaks or {})
    workload = rules.workload
    index = _Index.build(agents)
    records: dict[tuple[str, str], tuple[float | None, str]] = {}
    matrix_memo: dict[tuple[str, tuple[str, ...]], dict[str, tuple[float, list[str]]]] = {}
    stable_deferrals: dict[tuple[tuple[str, tuple[str, ...]], int], tuple[tuple[Candidate, ...], tuple[str, ...]]] = {}
    levels = {level: rules.complexity_rule(level) for level in (1, 2, 3, 4)}
    backlog = [t for t in tasks if t.status == TaskStatus.BACKLOG]
    backlog.sort(key=lambda t: (scores[t.id].blocked, -scores[t.id].value, t.id))
    decisions: list[Decision] = []
    for task in backlog:
        score = scores[task.id]
        rule = levels[task.complexity]
        base: dict[str, Any] = {"task_id": task.id, "score": score.value, "complexity": task.complexity,
                                "task_type": task.type}
        if score.blocked:
            decisions.append(Decision(**base, primary=None, outcome="blocked",
                                      reasons=(f"blocked by unfinished {', '.join(score.blocked_by)}",)))
            continue
        if task.assignees:
            primary = task.assignees[0]
            loads[primary] = loads.get(primary, 0) + 1
            decisions.append(Decision(
                **base, primary=primary, secondary=tuple(task.assignees[1:]), strategy=rule.strategy,
                coordination=rule.coordination, escalation=tuple(rule.escalation), outcome="manual",
                reasons=(f"assigned by hand to {primary}",),
            ))
            continue
        memo_key = (task.type, tuple(task.components))
        stable = stable_deferrals.get((memo_key, task.complexity))
        if stable is not None:
            # every candidate was out for capacity or complexity; within one pass loads only grow
            decisions.append(Decision(**base, primary=None, outcome="deferred", candidates=stable[0],
                                      reasons=stable[1]))
            continue
        found = matrix_memo.get(memo_key)
        if found is None:
            found = matrix_memo[memo_key] = _candidates(task, rules, index)
        high = task.complexity >= workload.high_complexity
        candidates: list[Candidate] = []
        for agent, (points, hits) in found.items():
            spec = agents.get(agent)
            held = loads.get(agent, 0)
            capacity = spec.capacity if spec is not None else 0
            excluded = ""
            if spec is None:
                excluded = "not a known agent"
            elif not spec.complexity[0] <= task.complexity <= spec.complexity[1]:
                excluded = f"takes complexity {spec.complexity[0]}..{spec.complexity[1]}"
            elif held >= capacity:
                excluded = f"at capacity ({held}/{capacity})"
            elif high and runs.get(agent, 0) >= workload.max_consecutive_high:
                excluded = f"burnout rule ({runs[agent]} high-complexity tasks in a row)"
            key = (agent, task.type)
            record = records.get(key)
            if record is None:
                record = records[key] = (track.rate(agent, task.type, workload.track_record_min_runs),
                                         track.summary(agent, task.type))
            candidates.append(Candidate(agent, points, tuple(hits), record[0], record[1], held, capacity, excluded))

        def order(c: Candidate) -> tuple[float, float, int, str]:
            return (-c.points, -(NEUTRAL_RECORD if c.record is None else c.record), c.load, c.agent)

        candidates.sort(key=order)
        eligible = [c for c in candidates if not c.excluded]
        reasons: list[str] = []
        if not eligible:
            # the burnout rule yields when nobody else can take the task (no deadlock on high-only work)
            rested = [c for c in candidates if c.excluded.startswith("burnout")]
            if rested:
                eligible = rested
                reasons.append("burnout rule waived: no other eligible agent")
        if not eligible:
            why = "; ".join(f"{c.agent}: {c.excluded}" for c in candidates) or f"no rule or agent for type {task.type!r}"
            frozen = (tuple(candidates), (f"deferred: {why}",))
            stable_deferrals[(memo_key, task.complexity)] = frozen
            decisions.append(Decision(**base, primary=None, outcome="deferred", candidates=frozen[0],
                                      reasons=frozen[1]))
            continue
        winner = eligible[0]
        reasons.insert(0, f"{winner.agent}: {winner.points:g} points ({', '.join(winner.hits)})")
        if len(eligible) > 1:
            reasons.append(_tie_reason(winner, eligible[1]))
        for c in candidates:
            if c.excluded and order(c) < order(winner):
                reasons.append(f"{c.agent} skipped: {c.excluded}")
        team_max = rule.team[1] - 1
        secondary = [c.agent for c in candidates if c.agent != winner.agent and c.agent in agents][:team_max]
        if len(secondary) < rule.team[0] - 1:
            for agent in agents[winner.agent].secondary:
                if agent != winner.agent and agent not in secondary and agent in agents:
                    secondary.append(agent)
                if len(secondary) >= rule.team[0] - 1:
                    break
        for support in rules.support_rules:
            if support.matches(task) and support.add != winner.agent and support.add not in secondary:
                secondary.append(support.add)
                reasons.append(f"support rule {support.id}: {support.add} ({support.reason})")
        reasons.append(f"complexity {task.complexity_name}: {rule.strategy} ({rule.coordination})")
        loads[winner.agent] = winner.load + 1
        runs[winner.agent] = runs.get(winner.agent, 0) + 1 if high else 0
        decisions.append(Decision(
            **base, primary=winner.agent, secondary=tuple(secondary), strategy=rule.strategy,
            coordination=rule.coordination, escalation=tuple(rule.escalation), reasons=tuple(reasons),
            candidates=tuple(candidates),
        ))
    return decisions


ROUTER = "router"


def route_backlog(store: Store, config: Config, *, dry_run: bool = False, scorer: str | None = None) -> list[Decision]:
    """Route the store's backlog with ``config``; unless ``dry_run``, record each decision as an event.

    Routed tasks get a ``task.routed`` event (the projection assigns them and moves them to ``assigned``);
    a deferred task gets a ``task.deferred`` event when its reason differs from its last one. Everything
    happens inside one write transaction, so a concurrent change cannot slip between reading and writing.
    """
    from bno_orchestrator.scoring import score_tasks
    from bno_orchestrator.workload import current_load, high_streaks

    with store.write() as tx:
        tasks = tx.tasks()
        events = tx.events()
        scores = score_tasks(tasks, config.scoring, now=tx.now(), scorer=scorer)
        types = {t.id: t.type for t in tasks}
        track = TrackRecord.from_events(events, types)
        streaks = high_streaks(events, config.routing.workload.high_complexity)
        load = {agent: len(ids) for agent, ids in current_load(tasks, config.workflow.load_states()).items()}
        decisions = route(tasks, scores, config.agents, config.routing, track=track, load=load, streaks=streaks)
        if dry_run:
            return decisions
        last_deferral: dict[str, list[str]] = {}
        for event in events:
            if event.task_id is not None and event.kind in (EventKind.TASK_DEFERRED, EventKind.TASK_ROUTED):
                deferred = event.kind == EventKind.TASK_DEFERRED
                last_deferral[event.task_id] = list(event.payload.get("reasons", [])) if deferred else []
        target = TaskStatus.ASSIGNED.value
        by_id = {t.id: t for t in tasks}
        for decision in decisions:
            if decision.routed:
                config.workflow.check(by_id[decision.task_id], target, ROUTER)
                tx.append(Event.of(TaskRouted(decision.payload(), target), actor=ROUTER, task_id=decision.task_id,
                                   reason="; ".join(decision.reasons)))
            elif last_deferral.get(decision.task_id) != list(decision.reasons):
                tx.append(Event.of(TaskDeferred(decision.payload()), actor=ROUTER, task_id=decision.task_id,
                                   reason="; ".join(decision.reasons)))
        return decisions
