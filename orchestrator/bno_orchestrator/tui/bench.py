"""A benchmark of the sprint board at team scale: ``python -m bno_orchestrator.tui.bench --tasks 2000``.

:func:`generate_store` fills a fresh repository's store with ``tasks`` generated tasks (spread over every
workflow state, agents, labels, components and dependencies) in ONE write transaction through the store
API, so a 2,000-task store takes well under a second and tests can use it too.

The benchmark then drives the real :class:`~bno_orchestrator.tui.app.BoardApp` with Textual's Pilot and
prints, beside the issue's targets: the first paint (app start until the board shows its cards), the
latency of cursor keys (median and p95 over many presses), of a filter keystroke, and of an external event
(another store connection appends a move; the time until the board shows the card in its new column).
It is a benchmark, not a test: the figures depend on the machine and are only printed.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import random
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bno_orchestrator.store import Store
    from bno_orchestrator.tui.app import BoardApp

AGENTS: tuple[str, ...] = ("architect", "code", "debug", "documentation", "inference-engine", "performance",
                           "security", "test-utilities")
LABELS: tuple[str, ...] = ("perf", "api", "docs", "kv", "gemv", "release", "flaky", "ux")
COMPONENTS: tuple[str, ...] = ("kernels", "bitnet", "orchestrator", "quality_gates", "foundation")
WORDS: tuple[str, ...] = ("ternary", "kernel", "cache", "router", "board", "report", "gate", "latency",
                          "packing", "weights", "tokenizer", "docs", "migration", "timeout", "benchmark")
# how a generated board is spread over the shipped workflow's states (weights, in board order)
STATE_WEIGHTS: dict[str, int] = {"backlog": 40, "assigned": 10, "in_development": 10, "review": 8,
                                 "integration": 5, "qa": 5, "testing": 5, "done": 12, "blocked": 3,
                                 "escalated": 2}
START = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.UTC)


def generated_fields(count: int, seed: int = 15) -> list[dict[str, object]]:
    """The fields of ``count`` generated tasks (deterministic for a seed)."""
    rng = random.Random(seed)
    states = list(STATE_WEIGHTS)
    weights = list(STATE_WEIGHTS.values())
    out: list[dict[str, object]] = []
    for number in range(1, count + 1):
        state = rng.choices(states, weights)[0]
        title = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 9))).capitalize()
        fields: dict[str, object] = {
            "id": f"T-{number:04d}", "title": f"{title} {number}", "status": state,
            "impact": rng.randint(1, 5), "urgency": rng.randint(1, 5),
            "labels": rng.sample(LABELS, rng.randint(0, 2)), "components": rng.sample(COMPONENTS, 1),
            "complexity": rng.randint(1, 4),
        }
        if state != "backlog":
            fields["assignees"] = [rng.choice(AGENTS)]
        if state == "blocked":
            fields["blocked_reason"] = "waiting on hardware"
            fields["blocked_from"] = "in_development"
        if number > 10 and rng.random() < 0.05:
            fields["depends_on"] = [f"T-{rng.randint(1, number - 1):04d}"]
        out.append(fields)
    return out


def generate_store(store: Store, count: int, *, seed: int = 15, actor: str = "human:bench") -> int:
    """Append ``count`` generated tasks to ``store`` in one write transaction; returns the last event id."""
    from bno_orchestrator.events import TaskCreated
    from bno_orchestrator.models import Event

    last = 0
    with store.write() as tx:
        for number, fields in enumerate(generated_fields(count, seed)):
            when = START + dt.timedelta(minutes=number)
            event = Event.of(TaskCreated(fields), actor=actor, task_id=str(fields["id"]))
            last = tx.append(event.model_copy(update={"ts": when})).id or 0
    return last


def make_repo(path: Path, count: int, *, seed: int = 15) -> Path:
    """A repository at ``path`` (shipped configuration) whose store holds ``count`` generated tasks."""
    from bno_orchestrator.store import Store

    (path / ".git").mkdir(parents=True, exist_ok=True)
    with Store.open(path) as store:
        generate_store(store, count, seed=seed)
    return path


# ------------------------------------------------------------------------------------------ the benchmark

# the targets; a key's work is its CPU time (the Pilot's round trip adds its own idle detection,
# measured by the no-op key, so the wall-clock key rows are printed without a verdict)
TARGETS: dict[str, float] = {"first paint": 1.0, "key (cpu)": 0.050, "filter key (cpu)": 0.050,
                             "external event": 0.200}


@dataclass(frozen=True, slots=True)
class Figures:
    """Measured seconds: the first paint; each cursor key and filter keystroke as the Pilot's round trip
    (wall clock: press, then wait until the app is idle) and as the CPU time the process spent on it; a key
    the board does not bind (the Pilot's own round trip); each external event (wall clock)."""

    first_paint: float
    keys: tuple[float, ...]
    keys_cpu: tuple[float, ...]
    noop_keys: tuple[float, ...]
    filter_keys: tuple[float, ...]
    filter_cpu: tuple[float, ...]
    external: tuple[float, ...]


def percentile(values: Sequence[float], fraction: float) -> float:
    """The ``fraction`` quantile of ``values`` (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def _shown_in(app: BoardApp, task_id: str, state: str) -> bool:
    return any(card.id == task_id for column in app.board_columns if column.state == state for card in column.cards)


async def measure(repo: Path, *, keys: int = 200, events: int = 10, size: tuple[int, int] = (200, 50),
                  poll: float = 0.02) -> Figures:
    """Drive the board over ``repo``'s store with the Pilot and time it (see the module docstring)."""
    from bno_orchestrator.config import load_config
    from bno_orchestrator.store import Store
    from bno_orchestrator.tui.app import BoardApp
    from bno_orchestrator.workflow import move_task

    config = load_config(repo)
    with Store.open(repo) as store, Store.open(repo) as other:
        started = time.perf_counter()
        app = BoardApp(store, config.workflow, config.scoring, actor="human:bench", poll_interval=poll)
        async with app.run_test(size=size) as pilot:
            await pilot.pause()
            first_paint = time.perf_counter() - started
            async def timed(key: str) -> tuple[float, float]:
                wall, cpu = time.perf_counter(), time.process_time()
                await pilot.press(key)
                await pilot.pause()
                return time.perf_counter() - wall, time.process_time() - cpu

            noop = [(await timed("z"))[0] for _ in range(min(keys, 20))]
            key_times, key_cpu = [], []
            for number in range(keys):
                wall, cpu = await timed(("j", "j", "k", "l", "j", "h")[number % 6])
                key_times.append(wall)
                key_cpu.append(cpu)
            filter_times, filter_cpu = [], []
            await pilot.press("slash")
            for key in "label:perf kernel":
                wall, cpu = await timed(key if key != " " else "space")
                filter_times.append(wall)
                filter_cpu.append(cpu)
            await pilot.press("escape", "escape")
            await pilot.pause()
            external: list[float] = []
            backlog = [t for t in other.tasks(["backlog"])][:events]
            for task in backlog:
                began = time.perf_counter()
                move_task(other, config.workflow, task.id, "blocked", actor="human:other", reason="benchmark")
                while not _shown_in(app, task.id, "blocked"):
                    await pilot.pause(0.002)
                    if time.perf_counter() - began > 30:
                        raise TimeoutError(f"{task.id} not shown as blocked after 30 s")
                await pilot.pause()
                external.append(time.perf_counter() - began)
    return Figures(first_paint, tuple(key_times), tuple(key_cpu), tuple(noop), tuple(filter_times),
                   tuple(filter_cpu), tuple(external))


def report(figures: Figures, tasks: int) -> str:
    """The figures beside the issue's targets, one line each."""
    def row(name: str, values: Sequence[float]) -> str:
        if not values:
            return f"{name:<17} not measured"
        median, p95 = statistics.median(values), percentile(values, 0.95)
        figures = (f"{name:<17} median {median * 1000:8.1f} ms  p95 {p95 * 1000:8.1f} ms  max "
                   f"{max(values) * 1000:8.1f} ms  (n={len(values)})")
        if name not in TARGETS:
            return f"{figures}  (Pilot round trip, no target)"
        verdict = "meets" if p95 < TARGETS[name] else "MISSES"
        return f"{figures}  target p95 < {TARGETS[name] * 1000:.0f} ms: {verdict}"

    paint = figures.first_paint
    lines = [f"board benchmark, {tasks} tasks",
             f"{'first paint':<17} {paint * 1000:8.1f} ms  target < {TARGETS['first paint'] * 1000:.0f} ms: "
             f"{'meets' if paint < TARGETS['first paint'] else 'MISSES'}",
             row("key", figures.keys), row("key (cpu)", figures.keys_cpu), row("no-op key", figures.noop_keys),
             row("filter key", figures.filter_keys), row("filter key (cpu)", figures.filter_cpu),
             row("external event", figures.external),
             "key and filter key: the Pilot's round trip (press, wait until idle); (cpu): the process's CPU time "
             "for it; no-op key: an unbound key, the Pilot's own round trip"]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m bno_orchestrator.tui.bench --tasks 2000``."""
    parser = argparse.ArgumentParser(prog="python -m bno_orchestrator.tui.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=2000, help="generated tasks (default 2000)")
    parser.add_argument("--keys", type=int, default=200, help="cursor keys to time (default 200)")
    parser.add_argument("--events", type=int, default=10, help="external events to time (default 10)")
    parser.add_argument("--repo", type=Path, default=None, help="use this repository instead of a generated one")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="board-bench-") as tmp:
        repo = args.repo
        if repo is None:
            began = time.perf_counter()
            repo = make_repo(Path(tmp) / "repo", args.tasks)
            print(f"generated {args.tasks} tasks in {time.perf_counter() - began:.2f} s")
        figures = asyncio.run(measure(repo, keys=args.keys, events=args.events))
    print(report(figures, args.tasks))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
