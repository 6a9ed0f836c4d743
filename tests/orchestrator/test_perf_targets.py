"""The 10,000-task figure: scoring and routing a large backlog (measured and printed, never asserted).

Run ``pytest tests/orchestrator/test_perf_targets.py -s`` to see the figures; the assertions check that
the large run is correct (every task decided, capacity respected, blocked tasks never routed).
"""

from __future__ import annotations

import random
import time
from collections import Counter

from bno_orchestrator.config import load_agent_specs
from bno_orchestrator.models import Task
from bno_orchestrator.paths import data_root
from bno_orchestrator.routing import route
from bno_orchestrator.rules import ScoringConfig
from bno_orchestrator.scoring import score_tasks
from tests.orchestrator.core_fixtures import START, shipped_rules

N_TASKS = 10_000


def _backlog(n: int) -> list[Task]:
    rules = shipped_rules()
    rng = random.Random(1234)
    types, components = sorted(rules.task_types), sorted(rules.components)
    tasks = []
    for i in range(n):
        deps = [f"T-{rng.randrange(1, i + 1):05d}"] if i > 10 and rng.random() < 0.2 else []
        tasks.append(Task(
            id=f"T-{i + 1:05d}", title=f"task {i}", type=rng.choice(types),
            components=rng.sample(components, rng.randint(0, 2)), complexity=rng.randint(1, 4),
            impact=rng.randint(1, 5), urgency=rng.randint(1, 5), depends_on=deps,
        ))
    return tasks


def test_score_and_route_10k_tasks() -> None:
    tasks = _backlog(N_TASKS)
    agents = load_agent_specs(data_root())
    rules = shipped_rules()
    wall0, cpu0 = time.perf_counter(), time.process_time()
    scores = score_tasks(tasks, ScoringConfig(), now=START)
    wall1, cpu1 = time.perf_counter(), time.process_time()
    decisions = route(tasks, scores, agents, rules)
    wall2, cpu2 = time.perf_counter(), time.process_time()
    print(f"\n{N_TASKS} tasks: scoring {wall1 - wall0:.3f} s wall ({cpu1 - cpu0:.3f} s CPU), "
          f"routing {wall2 - wall1:.3f} s wall ({cpu2 - cpu1:.3f} s CPU), "
          f"total {wall2 - wall0:.3f} s wall ({cpu2 - cpu0:.3f} s CPU)")
    assert len(decisions) == N_TASKS
    outcomes = Counter(d.outcome for d in decisions)
    blocked = {t.id for t in tasks if scores[t.id].blocked}
    assert outcomes["blocked"] == len(blocked) and not any(d.routed for d in decisions if d.task_id in blocked)
    per_agent = Counter(d.primary for d in decisions if d.primary is not None)
    assert per_agent and all(per_agent[name] <= agents[name].capacity for name in per_agent)
    assert outcomes["routed"] == sum(per_agent.values()) and outcomes["deferred"] > 0
