"""The status report's view model: pure functions from the event log and the gate records to frozen data.

One builder (:func:`build_weekly`) serves the weekly, the daily and any ``--from/--to`` report: the window
decides the period, and the history (velocity, burn-up) is counted in periods of the window's length.
Every figure of the headline is taken from the same tables the report shows (:class:`Headline`), so the
summary cannot contradict them.

Nothing here reads a clock: the report window is an argument, and the state of every task is replayed
from the events stamped before the window's end, so the report of a past week is the same whatever
happened since. Every number carries its sources (event ids, gate run ids) so a reader can check it.
Iteration is sorted everywhere and floats are formatted with fixed precision by the templates, so the
same input gives byte-identical output.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import re
import statistics
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
EXECUTED_STATUSES = frozenset({GateStatus.PASSED, GateStatus.FAILED, GateStatus.ERRORED})
WORK_STATES = frozenset({TaskStatus.IN_DEVELOPMENT.value, TaskStatus.REVIEW.value, TaskStatus.INTEGRATION.value,
                         TaskStatus.QA.value, TaskStatus.TESTING.value})
REMOVAL_KINDS: dict[str, str] = {"task.deleted": "deleted", "task.cancelled": "cancelled"}
CANCELLED_STATE = "cancelled"
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
    def is_iso_week(self) -> bool:
        """Monday 00:00 UTC to the next Monday."""
        iso = self.start.isocalendar()
        return self.start == iso_week_start(iso.year, iso.week) and self.end - self.start == WEEK

    @property
    def is_day(self) -> bool:
        """One UTC calendar day."""
        return self.start == day_start(self.start) and self.end - self.start == DAY

    @property
    def period(self) -> str:
        """``week`` (seven days), ``day`` (24 hours) or ``period`` (any other length)."""
        length = self.end - self.start
        return "week" if length == WEEK else "day" if length == DAY else "period"

    @property
    def label(self) -> str:
        """``2026-W02`` for an ISO week, ``2026-01-12`` for a calendar day, else ``START..END`` (dates, end
        exclusive)."""
        if self.is_iso_week:
            iso = self.start.isocalendar()
            return f"{iso.year}-W{iso.week:02d}"
        if self.is_day:
            return f"{self.start:%Y-%m-%d}"
        return f"{self.start:%Y-%m-%d}..{self.end:%Y-%m-%d}"

    @property
    def short_label(self) -> str:
        """A chart's axis label: ``W02``, ``01-12``, else the start date ``01-05``."""
        if self.is_iso_week:
            return f"W{self.start.isocalendar().week:02d}"
        return f"{self.start:%m-%d}"


def iso_week_start(year: int, week: int) -> dt.datetime:
    """Monday 00:00 UTC of ISO week ``week`` of ``year``."""
    return dt.datetime.combine(dt.date.fromisocalendar(year, week, 1), dt.time(), tzinfo=dt.UTC)


def day_start(when: dt.datetime) -> dt.datetime:
    """00:00 UTC of ``when``'s day."""
    when = as_utc(when)
    return dt.datetime.combine(when.date(), dt.time(), tzinfo=dt.UTC)


def day_window(day: dt.date) -> Window:
    """The UTC calendar day ``day``."""
    start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    return Window(start, start + DAY)


def iso_week_of(when: dt.datetime) -> Window:
    """The ISO week holding ``when``."""
    iso = as_utc(when).isocalendar()
    start = iso_week_start(iso.year, iso.week)
    return Window(start, start + WEEK)


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
    """Tasks done in one period of the history (a week, a day, or the report's own length)."""

    label: str
    done: int
    sources: str
    short: str = ""  # the chart's axis label (``W02``, ``01-12``)


@dataclass(frozen=True, slots=True)
class GateRate:
    """One gate's results over the runs of the window."""

    gate: str
    runs: int  # results the gate produced in the window (replays left out)
    ok: int
    statuses: tuple[tuple[str, int], ...]
    rate: float | None
    previous_rate: float | None
    sources: str
    replays: int = 0  # cached passes replayed in the window: not new results, not counted above


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
    """One benchmark metric on one machine, from the perf gate's in-run ratios only.

    The perf gate measures the baseline and the candidate interleaved in the same run and records the
    median of their pair ratios as a cost ratio (above 1 = the candidate is worse, whichever direction is
    better). Only those ratios are compared over time; absolute figures of different runs (other days,
    other load) are never compared. Replayed (cached) perf results are counted apart: they are copies of
    an earlier measurement, not new ones."""

    bench: str
    metric: str
    machine: str
    better: str
    measurements: int  # fresh perf results with a ratio in the window
    replays: int  # cached perf results in the window (not counted)
    latest_ratio: float
    latest_run: str
    latest_confirm: float | None  # the confirmation ratio of the latest run, when it needed one
    latest_base: float | None  # the latest run's own baseline and candidate medians (same run)
    latest_cand: float | None
    median_ratio: float  # the median of the window's ratios
    best_ratio: float
    worst_ratio: float
    previous_median_ratio: float | None  # the median of the previous window's ratios on this machine
    previous_measurements: int
    sources: str
    latest_decision: str | None = None  # the gate's decision for the metric in the latest run (pass, ...)
    latest_interval: tuple[float, float] | None = None  # its interval for the ratio

    @property
    def worse(self) -> bool:
        """The latest run measured the candidate slower (or smaller, for higher-is-better) than its base."""
        return self.latest_ratio > 1.0


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
    event_id: int = 0  # the event that put the task in this state


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
    """A task finished in the window, with its lead time (created -> done) and cycle time (first entry
    into work -> done) in days; cycle time is None for a task that never entered a working state."""

    id: str
    title: str
    agent: str
    when: str
    sources: str
    type: str = ""
    lead_days: float | None = None
    cycle_days: float | None = None


@dataclass(frozen=True, slots=True)
class FlowStats:
    """Lead or cycle times (days) of the tasks done in the window."""

    name: str  # lead | cycle
    count: int
    missing: int  # tasks done without this figure (cycle: never entered a working state)
    median: float | None
    mean: float | None
    p85: float | None  # the 85th percentile (nearest rank)
    max: float | None
    ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class BreakdownRow:
    """Delivery figures for one agent or one task type."""

    key: str  # agent name or task type ("-" for none)
    done: int
    started: int
    in_flight: int  # at the window's end
    blocked: int  # at the window's end
    median_lead: float | None
    median_cycle: float | None
    done_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RemovedItem:
    """A task taken out of scope in the window: deleted, cancelled, or moved from work back to backlog."""

    id: str
    title: str
    how: str  # deleted | cancelled | back to backlog from STATE
    when: str
    reason: str
    sources: str
    event_id: int = 0


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
class Headline:
    """The figures of the headline, each taken from a table of the same report (see :func:`_headline`)."""

    done: int
    done_delta: int
    started: int
    carried_over: int
    removed: int
    runs: int
    runs_passed: int
    run_rate: float | None
    replay_runs: int
    escalation_events: int
    escalated_tasks: tuple[str, ...]  # tasks with an escalation event in the window
    escalated_at_end: tuple[str, ...]  # tasks in the escalated state at the window's end
    blocked: tuple[str, ...]
    aging: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class WeeklyReport:
    """Everything the report templates show; built by :func:`build_weekly` (any window: a week, a day or
    a ``--from/--to`` range; ``period`` says which)."""

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
    period: str = "week"  # week | day | period
    replay_runs: int = 0  # runs in the window that only replayed cached results (not counted in runs)
    replay_sources: str = "no gate runs"
    escalated: tuple[AgingItem, ...] = ()  # tasks in the escalated state at the window's end
    removed: tuple[RemovedItem, ...] = ()
    lead: FlowStats | None = None
    cycle: FlowStats | None = None
    by_agent: tuple[BreakdownRow, ...] = ()
    by_type: tuple[BreakdownRow, ...] = ()
    headline: Headline | None = None
    notes: tuple[str, ...] = field(default=())

    @property
    def this(self) -> str:
        """``this week``, ``this day`` or ``this period`` (for the templates)."""
        return f"this {self.period}"

    @property
    def last(self) -> str:
        """``last week``, ``the day before`` or ``the period before``."""
        return "last week" if self.period == "week" else f"the {self.period} before"

    @property
    def title(self) -> str:
        """``Weekly status``, ``Daily status`` or ``Status``."""
        return {"week": "Weekly status", "day": "Daily status"}.get(self.period, "Status")

    @property
    def perf_machines(self) -> tuple[str, ...]:
        """The machines with perf trends, sorted (one table each)."""
        return tuple(sorted({p.machine for p in self.perf}))

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
    gone: dict[str, dt.datetime] = field(default_factory=dict)  # deleted or cancelled: when (the first time)

    @classmethod
    def build(cls, events: Iterable[Event]) -> _Timeline:
        timeline = cls()
        current: dict[str, str] = {}
        for event in events:
            if event.task_id is None or event.ts is None or event.id is None:
                continue
            if removal_of(event) in ("deleted", "cancelled"):
                timeline.gone.setdefault(event.task_id, event.ts)
            if event.kind not in STATUS_KINDS:
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

    def first_entry_into(self, task_id: str, states: frozenset[str], *, before: dt.datetime) -> dt.datetime | None:
        """When the task first entered one of ``states`` before ``before`` (None if it never did)."""
        for ts, status, _ in self.changes.get(task_id, []):
            if ts >= before:
                break
            if status in states:
                return ts
        return None

    def gone_before(self, when: dt.datetime) -> frozenset[str]:
        """Tasks deleted or cancelled before ``when``."""
        return frozenset(t for t, ts in self.gone.items() if ts < when)

    def scope_at(self, when: dt.datetime) -> dict[str, int]:
        """The scope at ``when``: tasks created before it and not deleted or cancelled (id -> creation event)."""
        gone = self.gone_before(when)
        return {t: e for t, e in self.created_before(when).items() if t not in gone}

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


def is_replay(result: Mapping[str, Any]) -> bool:
    """A cached pass replayed from an earlier run (status ``cached``, or a ``cached_from`` run id): a copy of
    an old result, not a new one."""
    return result.get("status") == GateStatus.CACHED or bool(result.get("cached_from"))


def is_replay_run(run: Mapping[str, Any]) -> bool:
    """A run in which no gate executed: every result was replayed from the cache, skipped or omitted. It is
    not counted as a new run."""
    return not any(r.get("status") in EXECUTED_STATUSES and not is_replay(r) for r in run.get("results", []))


def _gate_rates(runs: Sequence[Mapping[str, Any]], previous: Sequence[Mapping[str, Any]],
                everything: Sequence[Mapping[str, Any]]) -> tuple[GateRate, ...]:
    """Per gate: the results of the new ``runs`` against the ``previous`` window's; the replays are counted
    over ``everything`` (the replay-only runs too)."""
    replays: dict[str, int] = {}
    for run in everything:
        for result in run.get("results", []):
            if is_replay(result):
                replays[str(result["gate"])] = replays.get(str(result["gate"]), 0) + 1

    def tally(rs: Sequence[Mapping[str, Any]]) -> dict[str, tuple[dict[str, int], list[str]]]:
        out: dict[str, tuple[dict[str, int], list[str]]] = {}
        for run in rs:
            for result in run.get("results", []):
                if is_replay(result):
                    continue
                statuses, ids = out.setdefault(str(result["gate"]), ({}, []))
                status = str(result["status"])
                statuses[status] = statuses.get(status, 0) + 1
                ids.append(str(run["run_id"]))
        return out

    now, before = tally(runs), tally(previous)
    rates: list[GateRate] = []
    for gate in sorted(set(now) | set(replays)):
        statuses, ids = now.get(gate, ({}, []))
        total = sum(statuses.values())
        ok = sum(n for s, n in statuses.items() if s in OK_STATUSES)
        prev_rate = None
        if gate in before:
            prev_statuses = before[gate][0]
            prev_total = sum(prev_statuses.values())
            prev_rate = sum(n for s, n in prev_statuses.items() if s in OK_STATUSES) / prev_total
        rates.append(GateRate(gate, total, ok, tuple(sorted(statuses.items())), ok / total if total else None,
                              prev_rate, run_sources(ids), replays.get(gate, 0)))
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
            if is_replay(result) or not isinstance(counts, Mapping) or "total" not in counts:
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


def _ratio(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) and value == value else None


def _median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


@dataclass(frozen=True, slots=True)
class _PerfPoint:
    when: dt.datetime
    run_id: str
    ratio: float | None  # None for a replay
    confirm: float | None
    base: float | None
    cand: float | None
    better: str
    decision: str | None
    interval: tuple[float, float] | None


def _interval(value: Any) -> tuple[float, float] | None:
    if isinstance(value, list | tuple) and len(value) == 2:
        low, high = _ratio(value[0]), _ratio(value[1])
        if low is not None and high is not None:
            return low, high
    return None


def _perf_trends(runs: Sequence[Mapping[str, Any]], window: Window) -> tuple[PerfTrend, ...]:
    """Per (bench, metric, machine): the in-run cost ratios the perf gate recorded in the window."""
    points: dict[tuple[str, str, str], list[_PerfPoint]] = {}
    previous = window.previous()
    for run in sorted(runs, key=_run_key):
        when = _run_time(run)
        if when >= window.end:
            break
        if when < previous.start:
            continue
        machine = str(run.get("machine", ""))
        for result in sorted(run.get("results", []), key=lambda r: str(r["gate"])):
            benches = (result.get("metrics") or {}).get("benches")
            if not isinstance(benches, Mapping):
                continue
            replay = is_replay(result)
            for bench in sorted(benches):
                metrics = benches[bench]
                if not isinstance(metrics, Mapping):
                    continue
                for key in sorted(metrics):
                    value = metrics[key]
                    if not isinstance(value, Mapping):
                        continue
                    ratio = _ratio(value.get("median_ratio"))
                    if ratio is None and not replay:
                        continue
                    points.setdefault((str(bench), str(key), machine), []).append(_PerfPoint(
                        when, str(run["run_id"]), None if replay else ratio, _ratio(value.get("confirm_ratio")),
                        _ratio(value.get("base_median")), _ratio(value.get("cand_median")),
                        str(value.get("better", "lower")),
                        str(value["decision"]) if value.get("decision") else None, _interval(value.get("interval")),
                    ))
    trends: list[PerfTrend] = []
    for (bench, key, machine), series in sorted(points.items()):
        inside = [p for p in series if p.when in window and p.ratio is not None]
        if not inside:
            continue
        replays = sum(1 for p in series if p.when in window and p.ratio is None)
        before = [p.ratio for p in series if p.when in previous and p.ratio is not None]
        ratios = [p.ratio for p in inside if p.ratio is not None]
        latest = inside[-1]
        assert latest.ratio is not None
        trends.append(PerfTrend(
            bench=bench, metric=key, machine=machine, better=latest.better, measurements=len(inside),
            replays=replays, latest_ratio=latest.ratio, latest_run=latest.run_id, latest_confirm=latest.confirm,
            latest_base=latest.base, latest_cand=latest.cand, median_ratio=statistics.median(ratios),
            best_ratio=min(ratios), worst_ratio=max(ratios), previous_median_ratio=_median(before),
            previous_measurements=len(before), sources=run_sources(p.run_id for p in inside),
            latest_decision=latest.decision, latest_interval=latest.interval,
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
    gone = timeline.gone_before(when)
    for task_id in sorted(timeline.changes):
        state = timeline.status_at(task_id, when)
        if state is not None and state[0] not in NOT_IN_FLIGHT and task_id not in gone:
            out[task_id] = state
    return out


def _agent(task: Task) -> str:
    return task.assignees[0] if task.assignees else ""


def _fmt_ts(value: dt.datetime | None) -> str:
    return "" if value is None else as_utc(value).strftime("%Y-%m-%d %H:%M")


def _days(delta: dt.timedelta) -> float:
    return delta.total_seconds() / 86400.0


def flow_stats(name: str, values: Mapping[str, float | None]) -> FlowStats:
    """Median, mean, 85th percentile (nearest rank) and maximum of the known ``values`` (task id -> days)."""
    known = sorted(v for v in values.values() if v is not None)
    ids = tuple(sorted(t for t, v in values.items() if v is not None))
    if not known:
        return FlowStats(name, 0, len(values), None, None, None, None, ())
    p85 = known[max(0, math.ceil(0.85 * len(known)) - 1)]
    return FlowStats(name, len(known), len(values) - len(known), statistics.median(known),
                     sum(known) / len(known), p85, known[-1], ids)


def _breakdown(keys: Mapping[str, str], done: Mapping[str, int], started: Mapping[str, int],
               flight: Mapping[str, tuple[str, dt.datetime, int]], items: Mapping[str, DoneItem]) -> tuple[BreakdownRow, ...]:
    """One row per key (agent or type) over the tasks done, started or in flight; most done first."""
    groups: dict[str, list[str]] = {}
    for task_id in sorted(set(done) | set(started) | set(flight)):
        groups.setdefault(keys.get(task_id) or "-", []).append(task_id)
    rows = []
    for key, ids in groups.items():
        done_ids = tuple(t for t in ids if t in done)
        rows.append(BreakdownRow(
            key=key, done=len(done_ids), started=sum(1 for t in ids if t in started),
            in_flight=sum(1 for t in ids if t in flight),
            blocked=sum(1 for t in ids if t in flight and flight[t][0] == TaskStatus.BLOCKED.value),
            median_lead=_median([v for t in done_ids if t in items and (v := items[t].lead_days) is not None]),
            median_cycle=_median([v for t in done_ids if t in items and (v := items[t].cycle_days) is not None]),
            done_ids=done_ids,
        ))
    return tuple(sorted(rows, key=lambda r: (-r.done, -r.started, -r.in_flight, r.key)))


def _removals(events: Sequence[Event], window: Window, titles: Mapping[str, str]) -> tuple[RemovedItem, ...]:
    """Tasks taken out of scope inside ``window`` (the last such event of each task)."""
    found: dict[str, RemovedItem] = {}
    for event in events:
        if event.task_id is None or event.ts is None or event.ts not in window:
            continue
        how = removal_of(event)
        if how is not None:
            found[event.task_id] = RemovedItem(event.task_id, titles.get(event.task_id, ""), how, _fmt_ts(event.ts),
                                               event.reason, event_sources([event.id]), event.id or 0)
    return tuple(sorted(found.values(), key=lambda i: (i.when, i.id)))


def removal_of(event: Event) -> str | None:
    """How ``event`` takes its task out of scope: ``deleted``, ``cancelled``, ``back to backlog from STATE``
    (work in flight returned to the backlog), or None."""
    if event.kind in REMOVAL_KINDS:
        return REMOVAL_KINDS[event.kind]
    if event.kind in STATUS_KINDS and event.payload.get("to") == CANCELLED_STATE:
        return "cancelled"
    source = str(event.payload.get("from") or "")
    if event.kind == EventKind.TASK_MOVED and event.payload.get("to") == TaskStatus.BACKLOG.value and \
            source not in NOT_IN_FLIGHT and source:
        return f"back to backlog from {source}"
    return None


def _headline(metrics: Sequence[Metric], runs: int, runs_passed: int, run_rate: float | None, replay_runs: int,
              escalations: Sequence[EscalationItem], escalated: Sequence[AgingItem], blocked: Sequence[AgingItem],
              aging: Sequence[AgingItem], removed: Sequence[RemovedItem]) -> Headline:
    """The headline's figures, read from the report's own tables (never counted a second way)."""
    by_key = {m.key: m for m in metrics}
    return Headline(
        done=by_key["done"].value, done_delta=by_key["done"].delta, started=by_key["started"].value,
        carried_over=by_key["carried_over"].value, removed=len(removed), runs=runs, runs_passed=runs_passed,
        run_rate=run_rate, replay_runs=replay_runs, escalation_events=len(escalations),
        escalated_tasks=tuple(sorted({e.task_id for e in escalations})),
        escalated_at_end=tuple(i.id for i in escalated), blocked=tuple(i.id for i in blocked),
        aging=tuple(i.id for i in aging),
    )


def _reasons(head: Headline, window: Window, latest_run: Mapping[str, Any] | None, aging_days: float,
             escalations: Sequence[EscalationItem], escalated: Sequence[AgingItem], blocked: Sequence[AgingItem],
             aging: Sequence[AgingItem], fresh_runs: Sequence[Mapping[str, Any]]) -> list[Reason]:
    """The lines behind the headline status, worded from the :class:`Headline` figures."""
    this = f"this {window.period}"
    reasons: list[Reason] = []
    if latest_run is not None and not _run_passed(latest_run):
        reasons.append(Reason("red", f"the latest gate run {this} failed", run_sources([latest_run["run_id"]])))
    if head.escalated_at_end:
        reasons.append(Reason("red", f"{len(head.escalated_at_end)} task(s) escalated at the {window.period}'s end: "
                                     f"{', '.join(head.escalated_at_end)}", event_sources(i.event_id for i in escalated)))
    if head.escalation_events:
        reasons.append(Reason("amber", f"{head.escalation_events} escalation event(s) {this} for "
                                       f"{', '.join(head.escalated_tasks)}",
                              event_sources(e.event_id for e in escalations)))
    if head.blocked:
        reasons.append(Reason("amber", f"{len(head.blocked)} task(s) blocked: {', '.join(head.blocked)}",
                              event_sources(i.event_id for i in blocked)))
    if head.aging:
        reasons.append(Reason("amber", f"{len(head.aging)} task(s) in the same state for {aging_days:g}+ days: "
                                       f"{', '.join(head.aging)}", event_sources(i.event_id for i in aging)))
    if not head.runs:
        reasons.append(Reason("amber", f"no new gate run recorded {this}"
                                       + (f" ({head.replay_runs} replay-only)" if head.replay_runs else ""),
                              "gate records"))
    if not reasons:
        reasons.append(Reason("green", "gates green, nothing blocked, aging or escalated",
                              run_sources(r["run_id"] for r in fresh_runs)))
    return reasons


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
    """The report of ``window`` from the log and the gate run records (``ResultsDB.run`` dicts).

    ``history_weeks`` counts periods of the window's length (weeks for a weekly report, days for a daily
    one). Only events stamped before ``window.end`` and runs started before it count, so the result depends
    on the inputs and the window alone.
    """
    assert history_weeks >= 1, "history_weeks must be at least 1"
    end = window.end
    period = end - window.start
    seen = [e for e in sorted(events, key=lambda e: e.id or 0) if e.ts is not None and e.ts < end]
    tasks = replay(seen)
    timeline = _Timeline.build(seen)
    prev = window.previous()
    titles = {t: task.title for t, task in tasks.items()}

    done_now, done_before = timeline.entries(TaskStatus.DONE.value, window), timeline.entries(TaskStatus.DONE.value, prev)
    started_now = timeline.first_entries(STARTED_STATE, window)
    started_before = timeline.first_entries(STARTED_STATE, prev)
    flight_now = _in_flight(timeline, window.end)
    flight_before = _in_flight(timeline, prev.end)
    scope_now, scope_before = timeline.scope_at(window.end), timeline.scope_at(prev.end)
    added_now = {t: e for t, e in timeline.created_before(window.end).items() if timeline.created[t][0] in window}
    added_before = {t: e for t, e in timeline.created_before(prev.end).items() if timeline.created[t][0] in prev}
    removed = _removals(seen, window, titles)
    removed_before = _removals(seen, prev, titles)
    metrics = (
        _count_metric("done", "Done", done_now, done_before),
        _count_metric("started", "Started", started_now, started_before),
        Metric("carried_over", f"Carried over (in flight at the {window.period}'s end)", len(flight_now),
               len(flight_before), event_sources(s[2] for s in flight_now.values()), tuple(sorted(flight_now))),
        _count_metric("scope_added", "Scope added (tasks created)", added_now, added_before),
        Metric("scope_removed", "Scope removed (deleted, cancelled, back to backlog)", len(removed),
               len(removed_before), event_sources(i.event_id for i in removed),
               tuple(sorted(i.id for i in removed))),
        Metric("scope_total", "Scope (all tasks not deleted or cancelled)", len(scope_now), len(scope_before),
               event_sources(scope_now.values()), ()),
    )

    when_by_event = {e.id: e.ts for e in seen}
    done_items: dict[str, DoneItem] = {}
    for task_id, event_id in sorted(done_now.items(), key=lambda item: (item[1], item[0])):
        task, done_at = tasks.get(task_id), when_by_event.get(event_id)
        if task is None or done_at is None:
            continue
        created_at = timeline.created[task_id][0]
        work = timeline.first_entry_into(task_id, WORK_STATES, before=done_at)
        done_items[task_id] = DoneItem(task_id, task.title, _agent(task), _fmt_ts(done_at), event_sources([event_id]),
                                       task.type, _days(done_at - created_at),
                                       None if work is None else _days(done_at - work))
    lead = flow_stats("lead", {t: i.lead_days for t, i in done_items.items()})
    cycle = flow_stats("cycle", {t: i.cycle_days for t, i in done_items.items()})
    involved = set(done_now) | set(started_now) | set(flight_now)
    agents = {t: _agent(tasks[t]) for t in involved if t in tasks}
    types = {t: tasks[t].type for t in involved if t in tasks}

    # burn-up: one point per day over the history span, and velocity per period
    span_start = window.end - period * history_weeks
    burnup: list[BurnPoint] = []
    day = span_start
    while day <= window.end:
        gone = timeline.gone_before(day)
        scope = len(timeline.scope_at(day))
        done = sum(1 for t in timeline.changes if t not in gone
                   and (state := timeline.status_at(t, day)) is not None and state[0] == TaskStatus.DONE.value)
        burnup.append(BurnPoint(f"{day:%Y-%m-%d}", scope, done))
        day += DAY
    velocity: list[VelocityWeek] = []
    for index in range(history_weeks - 1, -1, -1):
        bucket = Window(window.end - period * (index + 1), window.end - period * index)
        entries = timeline.entries(TaskStatus.DONE.value, bucket)
        velocity.append(VelocityWeek(bucket.label, len(entries), event_sources(entries.values()), bucket.short_label))
    velocity_mean = sum(v.done for v in velocity) / len(velocity)

    # gates: runs that only replayed cached results are not new runs
    all_now = _runs_in(gate_runs, window)
    runs_now = [r for r in all_now if not is_replay_run(r)]
    replay_now = [r for r in all_now if is_replay_run(r)]
    runs_before = [r for r in _runs_in(gate_runs, prev) if not is_replay_run(r)]
    passed_now = sum(1 for r in runs_now if _run_passed(r))
    passed_before = sum(1 for r in runs_before if _run_passed(r))
    run_rate = passed_now / len(runs_now) if runs_now else None
    previous_run_rate = passed_before / len(runs_before) if runs_before else None

    # blocked, escalated and aging, at the window's end
    blocked: list[AgingItem] = []
    escalated: list[AgingItem] = []
    aging: list[AgingItem] = []
    for task_id, (status, since, event_id) in flight_now.items():
        task = tasks.get(task_id)
        if task is None:
            continue
        age = _days(window.end - since)
        item = AgingItem(task_id, task.title, status, _fmt_ts(since), age,
                         (task.blocked_reason or "") if status == TaskStatus.BLOCKED.value else "",
                         _agent(task), event_sources([event_id]), event_id)
        if status == TaskStatus.BLOCKED.value:
            blocked.append(item)
        elif status == TaskStatus.ESCALATED.value:
            escalated.append(item)
        elif age >= aging_days:
            aging.append(item)
    for items in (blocked, escalated, aging):
        items.sort(key=lambda i: (-i.age_days, i.id))

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

    # the next period's plan: work in flight, the best-ranked backlog, and what falls due
    config = scoring or ScoringConfig()
    gone_at_end = timeline.gone_before(window.end)
    live = {t: task for t, task in tasks.items() if t not in gone_at_end}
    scores = score_tasks(live.values(), config, now=window.end)
    ordered = rank(scores)

    def plan_item(task: Task, note: str) -> PlanItem:
        return PlanItem(task.id, task.title, task.status.value, scores[task.id].value, _agent(task),
                        _fmt_ts(task.due), note)

    plan_continue = tuple(
        plan_item(live[t], "blocked" if live[t].status == TaskStatus.BLOCKED else f"in {live[t].status.value}")
        for t in ordered if t in flight_now and t in live
    )
    plan_next = tuple(
        plan_item(live[t], "up next by score")
        for t in ordered if live[t].status == TaskStatus.BACKLOG and not scores[t].blocked
    )[:plan_size]
    next_period = Window(window.end, window.end + period)
    plan_due = tuple(
        plan_item(task, f"due next {window.period}")
        for task in sorted(live.values(), key=lambda t: (t.due or window.end, t.id))
        if task.due is not None and task.status != TaskStatus.DONE and as_utc(task.due) in next_period
    )

    head = _headline(metrics, len(runs_now), passed_now, run_rate, len(replay_now), escalations, escalated, blocked,
                     aging, removed)
    reasons = _reasons(head, window, runs_now[-1] if runs_now else None, aging_days, escalations, escalated,
                       blocked, aging, runs_now)
    status = "red" if any(r.level == "red" for r in reasons) else "amber" if any(
        r.level == "amber" for r in reasons) else "green"

    return WeeklyReport(
        label=window.label, start=f"{window.start:%Y-%m-%d %H:%M}", end=f"{window.end:%Y-%m-%d %H:%M}",
        status=status, reasons=tuple(reasons), last_event_id=max((e.id or 0 for e in seen), default=0),
        metrics=metrics, done=tuple(done_items.values()), burnup=tuple(burnup), velocity=tuple(velocity),
        velocity_mean=velocity_mean, runs=len(runs_now), runs_passed=passed_now, run_rate=run_rate,
        previous_run_rate=previous_run_rate, run_sources=run_sources(r["run_id"] for r in runs_now),
        gates=_gate_rates(runs_now, runs_before, all_now), tests=_test_counts(gate_runs, window),
        perf=_perf_trends(gate_runs, window), blocked=tuple(blocked), aging=tuple(aging), aging_days=aging_days,
        escalations=escalations, plan_continue=plan_continue, plan_next=plan_next, plan_due=plan_due,
        scorer=config.scorer.value, costs=cost_summary(seen, window, titles), period=window.period,
        replay_runs=len(replay_now), replay_sources=run_sources(r["run_id"] for r in replay_now),
        escalated=tuple(escalated), removed=removed, lead=lead, cycle=cycle,
        by_agent=_breakdown(agents, done_now, started_now, flight_now, done_items),
        by_type=_breakdown(types, done_now, started_now, flight_now, done_items), headline=head,
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
