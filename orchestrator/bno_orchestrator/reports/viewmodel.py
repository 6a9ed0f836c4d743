"""The weekly report's view model: pure functions from the event log and the gate records to frozen data.

Nothing here reads a clock: the report window is an argument, and the state of every task is replayed
from the events stamped before the window's end, so the report of a past week is the same whatever
happened since. Every number carries its sources (event ids, gate run ids) so a reader can check it.
Iteration is sorted everywhere and floats are formatted with fixed precision by the templates, so the
same input gives byte-identical output.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bno_orchestrator.events import STATUS_KINDS, EventKind
from bno_orchestrator.models import Event, Task, TaskStatus, as_utc
from bno_orchestrator.rules import ScoringConfig
from bno_orchestrator.scoring import rank, score_tasks
from bno_orchestrator.store import replay
from bno_quality_gates.status import GateStatus

DAY = dt.timedelta(days=1)
WEEK = dt.timedelta(days=7)
STARTED_STATE = TaskStatus.IN_DEVELOPMENT.value
NOT_IN_FLIGHT = frozenset({TaskStatus.BACKLOG.value, TaskStatus.DONE.value})
OK_STATUSES = frozenset({GateStatus.PASSED, GateStatus.CACHED})
_WEEK_RE = re.compile(r"^(\d{4})-W(\d{2})$")


# ------------------------------------------------------------------------------------------------ window


@dataclass(frozen=True, slots=True)
class Window:
    """A half-open time window ``[start, end)`` in UTC."""

    start: dt.datetime
    end: dt.datetime

    def __post_init__(self) -> None:
        assert self.start.tzinfo is not None and self.end.tzinfo is not None, "window bounds must be aware"
        assert self.start < self.end, f"empty window {self.start} .. {self.end}"

    def __contains__(self, when: dt.datetime) -> bool:
        return self.start <= when < self.end

    def previous(self) -> Window:
        """The window of the same length just before this one."""
        length = self.end - self.start
        return Window(self.start - length, self.start)

    @property
    def label(self) -> str:
        """``2026-W02`` for an ISO week, else ``START..END`` (dates, end exclusive)."""
        iso = self.start.isocalendar()
        if self.start == iso_week_start(iso.year, iso.week) and self.end - self.start == WEEK:
            return f"{iso.year}-W{iso.week:02d}"
        return f"{self.start:%Y-%m-%d}..{self.end:%Y-%m-%d}"


def iso_week_start(year: int, week: int) -> dt.datetime:
    """Monday 00:00 UTC of ISO week ``week`` of ``year``."""
    return dt.datetime.combine(dt.date.fromisocalendar(year, week, 1), dt.time(), tzinfo=dt.UTC)


def week_window(spec: str) -> Window:
    """``"2026-W02"`` -> that ISO week, Monday 00:00 UTC to the next Monday (ValueError when malformed)."""
    match = _WEEK_RE.match(spec.strip())
    if not match:
        raise ValueError(f"a week is written YYYY-Www (e.g. 2026-W02), not {spec!r}")
    year, week = int(match.group(1)), int(match.group(2))
    try:
        start = iso_week_start(year, week)
    except ValueError as exc:
        raise ValueError(f"{spec}: {exc}") from None
    return Window(start, start + WEEK)


def window_ending(end: dt.datetime) -> Window:
    """The seven days before ``end`` (``end`` exclusive)."""
    end = as_utc(end)
    return Window(end - WEEK, end)


# ------------------------------------------------------------------------------------------ view model


@dataclass(frozen=True, slots=True)
class Metric:
    """One number of the report, last week's value for the delta, and where both come from."""

    key: str
    label: str
    value: int
    previous: int
    sources: str  # e.g. "events #3, #7-#9"
    ids: tuple[str, ...] = ()  # the tasks counted

    @property
    def delta(self) -> int:
        """This week minus last week."""
        return self.value - self.previous


@dataclass(frozen=True, slots=True)
class Reason:
    """One line behind the headline status."""

    level: str  # green | amber | red
    text: str
    sources: str


@dataclass(frozen=True, slots=True)
class BurnPoint:
    """Scope and done at one instant (the start of a day)."""

    day: str
    scope: int
    done: int


@dataclass(frozen=True, slots=True)
class VelocityWeek:
    """Tasks done in one week."""

    label: str
    done: int
    sources: str


@dataclass(frozen=True, slots=True)
class GateRate:
    """One gate's results over the runs of the window."""

    gate: str
    runs: int
    ok: int
    statuses: tuple[tuple[str, int], ...]
    rate: float | None
    previous_rate: float | None
    sources: str


@dataclass(frozen=True, slots=True)
class TestCounts:
    """The test counts of the latest run of the window that recorded them."""

    run_id: str
    gate: str
    when: str
    passed: int
    failed: int
    errors: int
    skipped: int
    total: int
    previous_total: int | None
    previous_run_id: str | None


@dataclass(frozen=True, slots=True)
class PerfTrend:
    """One benchmark metric on one machine: its latest candidate median and how it moved."""

    bench: str
    metric: str
    machine: str
    better: str
    runs_in_window: int
    latest: float
    latest_run: str
    ratio_vs_base: float | None  # candidate/baseline cost ratio in the latest run (>1 = worse)
    earlier: float | None
    earlier_run: str | None
    change: float | None  # latest / earlier - 1
    improved: bool | None


@dataclass(frozen=True, slots=True)
class AgingItem:
    """A blocked or aging task at the window's end."""

    id: str
    title: str
    status: str
    since: str
    age_days: float
    reason: str
    agent: str
    sources: str


@dataclass(frozen=True, slots=True)
class EscalationItem:
    """One ``task.escalated`` event of the window."""

    event_id: int
    when: str
    task_id: str
    title: str
    rule: str
    level: int
    action: str
    agents: tuple[str, ...]
    to: str
    reason: str


@dataclass(frozen=True, slots=True)
class DoneItem:
    """A task finished in the window."""

    id: str
    title: str
    agent: str
    when: str
    sources: str


@dataclass(frozen=True, slots=True)
class PlanItem:
    """A task in next week's plan."""

    id: str
    title: str
    status: str
    score: float
    agent: str
    due: str
    note: str


@dataclass(frozen=True, slots=True)
class CostRow:
    """What the dispatch attempts of the window cost, for one task, one agent or all of them.

    Sums cover the attempts that reported the number; the ``unknown_*`` counts say how many did not (an
    executor that reports no cost, an interrupted attempt), so an unknown cost is never counted as 0.
    ``cost_usd`` is None when no attempt reported a cost."""

    key: str  # the task id or agent name ("" for the total)
    title: str  # the task's title ("" for agents and the total)
    attempts: int
    cost_usd: float | None
    unknown_cost: int
    input_tokens: int | None
    output_tokens: int | None
    unknown_tokens: int  # attempts without input or output token counts
    turns: int | None
    unknown_turns: int
    errors: tuple[tuple[str, int], ...]  # error_kind (or timed_out / interrupted) -> attempts
    executors: tuple[str, ...]
    sources: str

    @property
    def known_cost(self) -> int:
        """Attempts that reported a cost."""
        return self.attempts - self.unknown_cost

    @property
    def failed(self) -> int:
        """Attempts that ended in an executor error, a timeout or an interruption."""
        return sum(n for _, n in self.errors)


@dataclass(frozen=True, slots=True)
class ExecutorError:
    """One attempt of the window that ended in an executor error, a timeout or an interruption."""

    event_id: int
    when: str
    task_id: str
    agent: str
    attempt: int | None
    kind: str  # error_kind, timed_out or interrupted
    message: str  # the CLI's error message, on one line (cut to ERROR_CHARS)


@dataclass(frozen=True, slots=True)
class CostSummary:
    """The cost of the window's dispatch attempts (``dispatch.finished`` events stamped inside it)."""

    total: CostRow
    by_agent: tuple[CostRow, ...]  # most expensive first, then by name
    by_task: tuple[CostRow, ...]
    previous: CostRow  # the window before, for comparison
    errors: tuple[ExecutorError, ...]  # oldest first, at most MAX_ERRORS
    errors_left_out: int = 0


@dataclass(frozen=True, slots=True)
class WeeklyReport:
    """Everything the weekly templates show; built by :func:`build_weekly`."""

    label: str
    start: str
    end: str
    status: str  # green | amber | red
    reasons: tuple[Reason, ...]
    last_event_id: int
    metrics: tuple[Metric, ...]
    done: tuple[DoneItem, ...]
    burnup: tuple[BurnPoint, ...]
    velocity: tuple[VelocityWeek, ...]
    velocity_mean: float
    runs: int
    runs_passed: int
    run_rate: float | None
    previous_run_rate: float | None
    run_sources: str
    gates: tuple[GateRate, ...]
    tests: TestCounts | None
    perf: tuple[PerfTrend, ...]
    blocked: tuple[AgingItem, ...]
    aging: tuple[AgingItem, ...]
    aging_days: float
    escalations: tuple[EscalationItem, ...]
    plan_continue: tuple[PlanItem, ...]
    plan_next: tuple[PlanItem, ...]
    plan_due: tuple[PlanItem, ...]
    scorer: str
    costs: CostSummary
    notes: tuple[str, ...] = field(default=())

    def metric(self, key: str) -> Metric:
        """The metric named ``key`` (KeyError when there is none)."""
        for metric in self.metrics:
            if metric.key == key:
                return metric
        raise KeyError(key)

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready dict (tuples become lists)."""
        data = dataclasses.asdict(self)
        for metric, raw in zip(self.metrics, data["metrics"], strict=True):
            raw["delta"] = metric.delta
        return data


# ------------------------------------------------------------------------------------------ sources


def event_sources(ids: Iterable[int | None]) -> str:
    """``events #3, #5-#7`` (sorted, consecutive ids as ranges); ``no events`` when empty."""
    numbers = sorted({i for i in ids if i is not None})
    if not numbers:
        return "no events"
    parts: list[str] = []
    first = last = numbers[0]
    for number in numbers[1:]:
        if number == last + 1:
            last = number
            continue
        parts.append(f"#{first}" if first == last else f"#{first}-#{last}")
        first = last = number
    parts.append(f"#{first}" if first == last else f"#{first}-#{last}")
    return ("event " if len(numbers) == 1 else "events ") + ", ".join(parts)


def run_sources(ids: Iterable[str]) -> str:
    """``runs A, B`` (sorted); ``no gate runs`` when empty."""
    unique = sorted(set(ids))
    if not unique:
        return "no gate runs"
    return ("run " if len(unique) == 1 else "runs ") + ", ".join(unique)


# ------------------------------------------------------------------------------------------ timelines


@dataclass(slots=True)
class _Timeline:
    """Per task: when it was created and each status it entered (ts, status, event id), in log order."""

    created: dict[str, tuple[dt.datetime, int]] = field(default_factory=dict)
    changes: dict[str, list[tuple[dt.datetime, str, int]]] = field(default_factory=dict)

    @classmethod
    def build(cls, events: Iterable[Event]) -> _Timeline:
        timeline = cls()
        current: dict[str, str] = {}
        for event in events:
            if event.task_id is None or event.ts is None or event.id is None or event.kind not in STATUS_KINDS:
                continue
            task_id = event.task_id
            if event.kind == EventKind.TASK_CREATED:
                if task_id in timeline.created:
                    continue
                timeline.created[task_id] = (event.ts, event.id)
                new = str(event.payload.get("task", {}).get("status") or TaskStatus.BACKLOG.value)
            else:
                if task_id not in timeline.created:
                    continue
                new = str(event.payload.get("to") or current.get(task_id, ""))
            if new and new != current.get(task_id):
                current[task_id] = new
                timeline.changes.setdefault(task_id, []).append((event.ts, new, event.id))
        return timeline

    def entries(self, state: str, window: Window) -> dict[str, int]:
        """Tasks that entered ``state`` inside ``window``: task id -> the event id (the first such entry)."""
        out: dict[str, int] = {}
        for task_id in sorted(self.changes):
            for ts, status, event_id in self.changes[task_id]:
                if status == state and ts in window:
                    out[task_id] = event_id
                    break
        return out

    def first_entries(self, state: str, window: Window) -> dict[str, int]:
        """Tasks whose first ever entry into ``state`` lies inside ``window``."""
        out: dict[str, int] = {}
        for task_id in sorted(self.changes):
            for ts, status, event_id in self.changes[task_id]:
                if status == state:
                    if ts in window:
                        out[task_id] = event_id
                    break
        return out

    def status_at(self, task_id: str, when: dt.datetime) -> tuple[str, dt.datetime, int] | None:
        """The task's status just before ``when``: (status, since, event id), or None if not created yet."""
        changes = self.changes.get(task_id, [])
        index = bisect_left([ts for ts, _, _ in changes], when)
        if index == 0:
            return None
        ts, status, event_id = changes[index - 1]
        return status, ts, event_id

    def created_before(self, when: dt.datetime) -> dict[str, int]:
        """Tasks created before ``when``: id -> creation event id."""
        return {task_id: eid for task_id, (ts, eid) in sorted(self.created.items()) if ts < when}


# ---------------------------------------------------------------------------------------- gate runs


def _run_time(run: Mapping[str, Any]) -> dt.datetime:
    return dt.datetime.fromtimestamp(float(run["started"]), dt.UTC)


def _run_key(run: Mapping[str, Any]) -> tuple[float, str]:
    return float(run["started"]), str(run["run_id"])


def _runs_in(runs: Sequence[Mapping[str, Any]], window: Window) -> list[Mapping[str, Any]]:
    return sorted((r for r in runs if _run_time(r) in window), key=_run_key)


def _run_passed(run: Mapping[str, Any]) -> bool:
    if "passed" in run:
        return bool(run["passed"])
    return all(r.get("status") in OK_STATUSES for r in run.get("results", []) if r.get("required"))


def _gate_rates(runs: Sequence[Mapping[str, Any]], previous: Sequence[Mapping[str, Any]]) -> tuple[GateRate, ...]:
    def tally(rs: Sequence[Mapping[str, Any]]) -> dict[str, tuple[dict[str, int], list[str]]]:
        out: dict[str, tuple[dict[str, int], list[str]]] = {}
        for run in rs:
            for result in run.get("results", []):
                statuses, ids = out.setdefault(str(result["gate"]), ({}, []))
                status = str(result["status"])
                statuses[status] = statuses.get(status, 0) + 1
                ids.append(str(run["run_id"]))
        return out

    now, before = tally(runs), tally(previous)
    rates: list[GateRate] = []
    for gate in sorted(now):
        statuses, ids = now[gate]
        total = sum(statuses.values())
        ok = sum(n for s, n in statuses.items() if s in OK_STATUSES)
        prev_rate = None
        if gate in before:
            prev_statuses = before[gate][0]
            prev_total = sum(prev_statuses.values())
            prev_rate = sum(n for s, n in prev_statuses.items() if s in OK_STATUSES) / prev_total
        rates.append(GateRate(gate, total, ok, tuple(sorted(statuses.items())), ok / total if total else None,
                              prev_rate, run_sources(ids)))
    return tuple(rates)


def _test_counts(runs: Sequence[Mapping[str, Any]], window: Window) -> TestCounts | None:
    """The latest recorded test counts inside the window, with the latest before it for the delta."""
    latest: tuple[Mapping[str, Any], Mapping[str, Any]] | None = None
    previous: tuple[Mapping[str, Any], Mapping[str, Any]] | None = None
    for run in sorted(runs, key=_run_key):
        when = _run_time(run)
        if when >= window.end:
            break
        for result in sorted(run.get("results", []), key=lambda r: str(r["gate"])):
            counts = result.get("counts") or {}
            if not isinstance(counts, Mapping) or "total" not in counts:
                continue
            if when in window:
                latest = (run, result)
            else:
                previous = (run, result)
    if latest is None:
        return None
    run, result = latest
    counts = result["counts"]
    return TestCounts(
        run_id=str(run["run_id"]), gate=str(result["gate"]), when=_run_time(run).strftime("%Y-%m-%d %H:%M"),
        passed=int(counts.get("passed", 0)), failed=int(counts.get("failed", 0)),
        errors=int(counts.get("errors", 0)), skipped=int(counts.get("skipped", 0)), total=int(counts["total"]),
        previous_total=None if previous is None else int(previous[1]["counts"]["total"]),
        previous_run_id=None if previous is None else str(previous[0]["run_id"]),
    )


def _perf_trends(runs: Sequence[Mapping[str, Any]], window: Window) -> tuple[PerfTrend, ...]:
    """Per (bench, metric, machine): candidate medians recorded by perf gates up to the window's end."""
    points: dict[tuple[str, str, str], list[tuple[dt.datetime, str, float, float | None, str]]] = {}
    for run in sorted(runs, key=_run_key):
        when = _run_time(run)
        if when >= window.end:
            break
        machine = str(run.get("machine", ""))
        for result in sorted(run.get("results", []), key=lambda r: str(r["gate"])):
            benches = (result.get("metrics") or {}).get("benches")
            if not isinstance(benches, Mapping):
                continue
            for bench in sorted(benches):
                metrics = benches[bench]
                if not isinstance(metrics, Mapping):
                    continue
                for key in sorted(metrics):
                    value = metrics[key]
                    if not isinstance(value, Mapping) or not isinstance(value.get("cand_median"), int | float):
                        continue
                    ratio = value.get("median_ratio")
                    ratio_value = float(ratio) if isinstance(ratio, int | float) and ratio == ratio else None
                    points.setdefault((str(bench), str(key), machine), []).append(
                        (when, str(run["run_id"]), float(value["cand_median"]), ratio_value,
                         str(value.get("better", "lower")))
                    )
    trends: list[PerfTrend] = []
    for (bench, key, machine), series in sorted(points.items()):
        inside = [p for p in series if p[0] in window]
        if not inside:
            continue
        latest = inside[-1]
        before = [p for p in series if p[0] < window.start]
        earlier = before[-1] if before else (inside[0] if len(inside) > 1 else None)
        change = improved = None
        if earlier is not None and earlier[2] != 0:
            change = latest[2] / earlier[2] - 1
            improved = (change < 0) if latest[4] == "lower" else (change > 0)
            if change == 0:
                improved = None
        trends.append(PerfTrend(
            bench=bench, metric=key, machine=machine, better=latest[4], runs_in_window=len(inside),
            latest=latest[2], latest_run=latest[1], ratio_vs_base=latest[3],
            earlier=None if earlier is None else earlier[2], earlier_run=None if earlier is None else earlier[1],
            change=change, improved=improved,
        ))
    return tuple(trends)


# ------------------------------------------------------------------------------------------- builder


# -------------------------------------------------------------------------------------------- costs

TIMED_OUT = "timed_out"
INTERRUPTED = "interrupted"
ERROR_CHARS = 300
MAX_ERRORS = 50


def _known_number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        return None
    return float(value)


def _known_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _error_of(payload: Mapping[str, Any]) -> str | None:
    """How an attempt failed as an executor: its ``error_kind``, else ``timed_out`` or ``interrupted``."""
    if payload.get("error_kind"):
        return str(payload["error_kind"])
    if payload.get("interrupted"):
        return INTERRUPTED
    if payload.get("timed_out"):
        return TIMED_OUT
    return None


def cost_row(key: str, title: str, events: Sequence[Event]) -> CostRow:
    """One row from ``dispatch.finished`` events."""
    cost = 0.0
    tokens_in = tokens_out = turns = 0
    unknown_cost = unknown_tokens = unknown_turns = 0
    any_cost = any_in = any_out = any_turns = False
    errors: dict[str, int] = {}
    executors: set[str] = set()
    for event in events:
        payload = event.payload
        value = _known_number(payload.get("cost_usd"))
        if value is None:
            unknown_cost += 1
        else:
            cost, any_cost = cost + value, True
        got_in, got_out = _known_int(payload.get("input_tokens")), _known_int(payload.get("output_tokens"))
        if got_in is None or got_out is None:
            unknown_tokens += 1
        if got_in is not None:
            tokens_in, any_in = tokens_in + got_in, True
        if got_out is not None:
            tokens_out, any_out = tokens_out + got_out, True
        got_turns = _known_int(payload.get("turns"))
        if got_turns is None:
            unknown_turns += 1
        else:
            turns, any_turns = turns + got_turns, True
        error = _error_of(payload)
        if error is not None:
            errors[error] = errors.get(error, 0) + 1
        kind = payload.get("kind") or payload.get("executor")
        if kind:
            executors.add(str(kind))
    return CostRow(
        key=key, title=title, attempts=len(events), cost_usd=cost if any_cost else None, unknown_cost=unknown_cost,
        input_tokens=tokens_in if any_in else None, output_tokens=tokens_out if any_out else None,
        unknown_tokens=unknown_tokens, turns=turns if any_turns else None, unknown_turns=unknown_turns,
        errors=tuple(sorted(errors.items())), executors=tuple(sorted(executors)),
        sources=event_sources(e.id for e in events),
    )


def _by_cost(row: CostRow) -> tuple[float, int, str]:
    return -(row.cost_usd or 0.0), -row.attempts, row.key


def cost_summary(events: Sequence[Event], window: Window, titles: Mapping[str, str]) -> CostSummary:
    """The cost of the dispatch attempts that finished inside ``window``: in all, per agent, per task."""

    def finished(w: Window) -> list[Event]:
        return [e for e in events
                if e.kind == EventKind.DISPATCH_FINISHED and e.ts is not None and e.ts in w and not e.payload.get("handoff")]

    now = finished(window)
    agents: dict[str, list[Event]] = {}
    tasks: dict[str, list[Event]] = {}
    errors: list[ExecutorError] = []
    for event in now:
        agents.setdefault(str(event.payload.get("agent") or "-"), []).append(event)
        tasks.setdefault(event.task_id or "-", []).append(event)
        kind = _error_of(event.payload)
        if kind is not None:
            message = " ".join(str(event.payload.get("error") or "").split())
            if len(message) > ERROR_CHARS:
                message = message[: ERROR_CHARS - 1] + "…"
            errors.append(ExecutorError(event.id or 0, _fmt_ts(event.ts), event.task_id or "",
                                        str(event.payload.get("agent") or ""),
                                        _known_int(event.payload.get("attempt")), kind, message))
    return CostSummary(
        total=cost_row("", "", now),
        by_agent=tuple(sorted((cost_row(a, "", es) for a, es in agents.items()), key=_by_cost)),
        by_task=tuple(sorted((cost_row(t, titles.get(t, ""), es) for t, es in tasks.items()), key=_by_cost)),
        previous=cost_row("", "", finished(window.previous())),
        errors=tuple(errors[:MAX_ERRORS]), errors_left_out=max(0, len(errors) - MAX_ERRORS),
    )


def _count_metric(key: str, label: str, now: Mapping[str, int], before: Mapping[str, int]) -> Metric:
    return Metric(key, label, len(now), len(before), event_sources(now.values()), tuple(sorted(now)))


def _in_flight(timeline: _Timeline, when: dt.datetime) -> dict[str, tuple[str, dt.datetime, int]]:
    out: dict[str, tuple[str, dt.datetime, int]] = {}
    for task_id in sorted(timeline.changes):
        state = timeline.status_at(task_id, when)
        if state is not None and state[0] not in NOT_IN_FLIGHT:
            out[task_id] = state
    return out


def _agent(task: Task) -> str:
    return task.assignees[0] if task.assignees else ""


def _fmt_ts(value: dt.datetime | None) -> str:
    return "" if value is None else as_utc(value).strftime("%Y-%m-%d %H:%M")


def build_weekly(
    events: Sequence[Event],
    gate_runs: Sequence[Mapping[str, Any]],
    window: Window,
    *,
    scoring: ScoringConfig | None = None,
    history_weeks: int = 6,
    aging_days: float = 3.0,
    plan_size: int = 5,
) -> WeeklyReport:
    """The weekly report of ``window`` from the log and the gate run records (``ResultsDB.run`` dicts).

    Only events stamped before ``window.end`` and runs started before it count, so the result depends on
    the inputs and the window alone.
    """
    assert history_weeks >= 1, "history_weeks must be at least 1"
    end = window.end
    seen = [e for e in sorted(events, key=lambda e: e.id or 0) if e.ts is not None and e.ts < end]
    tasks = replay(seen)
    timeline = _Timeline.build(seen)
    prev = window.previous()

    done_now, done_before = timeline.entries(TaskStatus.DONE.value, window), timeline.entries(TaskStatus.DONE.value, prev)
    started_now = timeline.first_entries(STARTED_STATE, window)
    started_before = timeline.first_entries(STARTED_STATE, prev)
    flight_now = _in_flight(timeline, window.end)
    flight_before = _in_flight(timeline, prev.end)
    scope_now, scope_before = timeline.created_before(window.end), timeline.created_before(prev.end)
    added_now = {t: e for t, e in scope_now.items() if timeline.created[t][0] in window}
    added_before = {t: e for t, e in scope_before.items() if timeline.created[t][0] in prev}
    metrics = (
        _count_metric("done", "Done", done_now, done_before),
        _count_metric("started", "Started", started_now, started_before),
        Metric("carried_over", "Carried over (in flight at week end)", len(flight_now), len(flight_before),
               event_sources(s[2] for s in flight_now.values()), tuple(sorted(flight_now))),
        _count_metric("scope_added", "Scope added (tasks created)", added_now, added_before),
        Metric("scope_total", "Scope (all tasks)", len(scope_now), len(scope_before),
               event_sources(scope_now.values()), ()),
    )

    when_by_event = {e.id: e.ts for e in seen}
    done_items = tuple(
        DoneItem(t, tasks[t].title, _agent(tasks[t]), _fmt_ts(when_by_event.get(eid)), event_sources([eid]))
        for t, eid in sorted(done_now.items(), key=lambda item: (item[1], item[0])) if t in tasks
    )

    # burn-up: one point per day over the history span, and velocity per week
    span_start = window.end - WEEK * history_weeks
    burnup: list[BurnPoint] = []
    day = span_start
    while day <= window.end:
        scope = sum(1 for ts, _ in timeline.created.values() if ts < day)
        done = sum(1 for t in timeline.changes
                   if (state := timeline.status_at(t, day)) is not None and state[0] == TaskStatus.DONE.value)
        burnup.append(BurnPoint(f"{day:%Y-%m-%d}", scope, done))
        day += DAY
    velocity: list[VelocityWeek] = []
    for index in range(history_weeks - 1, -1, -1):
        week = Window(window.end - WEEK * (index + 1), window.end - WEEK * index)
        entries = timeline.entries(TaskStatus.DONE.value, week)
        velocity.append(VelocityWeek(week.label, len(entries), event_sources(entries.values())))
    velocity_mean = sum(v.done for v in velocity) / len(velocity)

    # gates
    runs_now = _runs_in(gate_runs, window)
    runs_before = _runs_in(gate_runs, prev)
    passed_now = sum(1 for r in runs_now if _run_passed(r))
    passed_before = sum(1 for r in runs_before if _run_passed(r))
    run_rate = passed_now / len(runs_now) if runs_now else None
    previous_run_rate = passed_before / len(runs_before) if runs_before else None

    # blocked and aging, at the window's end
    blocked: list[AgingItem] = []
    aging: list[AgingItem] = []
    for task_id, (status, since, event_id) in flight_now.items():
        task = tasks.get(task_id)
        if task is None:
            continue
        age = (window.end - since).total_seconds() / 86400.0
        item = AgingItem(task_id, task.title, status, _fmt_ts(since), age,
                         (task.blocked_reason or "") if status == TaskStatus.BLOCKED.value else "",
                         _agent(task), event_sources([event_id]))
        if status == TaskStatus.BLOCKED.value:
            blocked.append(item)
        elif age >= aging_days:
            aging.append(item)
    blocked.sort(key=lambda i: (-i.age_days, i.id))
    aging.sort(key=lambda i: (-i.age_days, i.id))

    escalations = tuple(
        EscalationItem(
            event_id=e.id or 0, when=_fmt_ts(e.ts), task_id=e.task_id or "",
            title=tasks[e.task_id].title if e.task_id in tasks else "",
            rule=str(e.payload.get("rule", "")), level=int(e.payload.get("level", 0) or 0),
            action=str(e.payload.get("action", "")), agents=tuple(str(a) for a in e.payload.get("agents", [])),
            to=str(e.payload.get("to") or ""), reason=e.reason,
        )
        for e in seen if e.kind == EventKind.TASK_ESCALATED and e.ts is not None and e.ts in window
    )

    # next week's plan: work in flight, the best-ranked backlog, and what falls due
    config = scoring or ScoringConfig()
    scores = score_tasks(tasks.values(), config, now=window.end)
    ordered = rank(scores)

    def plan_item(task: Task, note: str) -> PlanItem:
        return PlanItem(task.id, task.title, task.status.value, scores[task.id].value, _agent(task),
                        _fmt_ts(task.due), note)

    plan_continue = tuple(
        plan_item(tasks[t], "blocked" if tasks[t].status == TaskStatus.BLOCKED else f"in {tasks[t].status.value}")
        for t in ordered if t in flight_now and t in tasks
    )
    plan_next = tuple(
        plan_item(tasks[t], "up next by score")
        for t in ordered if tasks[t].status == TaskStatus.BACKLOG and not scores[t].blocked
    )[:plan_size]
    next_week = Window(window.end, window.end + WEEK)
    plan_due = tuple(
        plan_item(task, "due next week")
        for task in sorted(tasks.values(), key=lambda t: (t.due or window.end, t.id))
        if task.due is not None and task.status != TaskStatus.DONE and as_utc(task.due) in next_week
    )

    # headline
    reasons: list[Reason] = []
    if runs_now and not _run_passed(runs_now[-1]):
        reasons.append(Reason("red", "the latest gate run of the week failed", run_sources([runs_now[-1]["run_id"]])))
    escalated_now = [t for t, s in flight_now.items() if s[0] == TaskStatus.ESCALATED.value]
    if escalated_now:
        reasons.append(Reason("red", f"{len(escalated_now)} task(s) escalated: {', '.join(escalated_now)}",
                              event_sources(flight_now[t][2] for t in escalated_now)))
    if blocked:
        reasons.append(Reason("amber", f"{len(blocked)} task(s) blocked: {', '.join(i.id for i in blocked)}",
                              event_sources(flight_now[i.id][2] for i in blocked)))
    if aging:
        reasons.append(Reason("amber", f"{len(aging)} task(s) in the same state for {aging_days:g}+ days",
                              event_sources(flight_now[i.id][2] for i in aging)))
    if not runs_now:
        reasons.append(Reason("amber", "no gate run recorded this week", "gate records"))
    if not reasons:
        reasons.append(Reason("green", "gates green, nothing blocked, aging or escalated",
                              run_sources(r["run_id"] for r in runs_now)))
    status = "red" if any(r.level == "red" for r in reasons) else "amber" if any(
        r.level == "amber" for r in reasons) else "green"

    return WeeklyReport(
        label=window.label, start=f"{window.start:%Y-%m-%d %H:%M}", end=f"{window.end:%Y-%m-%d %H:%M}",
        status=status, reasons=tuple(reasons), last_event_id=max((e.id or 0 for e in seen), default=0),
        metrics=metrics, done=done_items, burnup=tuple(burnup), velocity=tuple(velocity), velocity_mean=velocity_mean,
        runs=len(runs_now), runs_passed=passed_now, run_rate=run_rate, previous_run_rate=previous_run_rate,
        run_sources=run_sources(r["run_id"] for r in runs_now),
        gates=_gate_rates(runs_now, runs_before), tests=_test_counts(gate_runs, window),
        perf=_perf_trends(gate_runs, window), blocked=tuple(blocked), aging=tuple(aging), aging_days=aging_days,
        escalations=escalations, plan_continue=plan_continue, plan_next=plan_next, plan_due=plan_due,
        scorer=config.scorer.value, costs=cost_summary(seen, window, {t: task.title for t, task in tasks.items()}),
    )


# ------------------------------------------------------------------------------------------- loading


def gate_run_records(path: Any, *, until: dt.datetime | None = None) -> list[dict[str, Any]]:
    """Every gate run record in the SQLite file ``path`` (the ``ResultsDB.run`` dicts), oldest first;
    only those started before ``until`` when given."""
    from bno_quality_gates.results import ResultsDB

    with ResultsDB(path) as db:
        rows = db.runs(limit=-1)  # SQLite: a negative LIMIT means no limit
        records = []
        for row in sorted(rows, key=_run_key):
            if until is not None and _run_time(row) >= until:
                continue
            record = db.run(str(row["run_id"]))
            if record is not None:
                records.append(record)
    return records


def weekly_from_store(store: Any, window: Window, *, scoring: ScoringConfig | None = None,
                      history_weeks: int = 6, aging_days: float = 3.0) -> WeeklyReport:
    """:func:`build_weekly` over a :class:`~bno_orchestrator.store.Store` and the gate records in its file."""
    events = store.events()
    runs = gate_run_records(store.path, until=window.end)
    return build_weekly(events, runs, window, scoring=scoring, history_weeks=history_weeks, aging_days=aging_days)
