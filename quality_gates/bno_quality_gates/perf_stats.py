"""The perf gate's statistics: a sequential, distribution-free verdict on the median cost ratio of paired runs.

No I/O here: the gate (``gates/perf.py``) measures, the replay test feeds recorded samples, both through
:func:`sequential_verdict`.

Each pair gives a cost ratio candidate/baseline (baseline/candidate for higher-is-better metrics); we work
on its logarithm so that slower and faster are symmetric. The interval of the *median* log-ratio is the
sign-test (order-statistic) interval: for sorted values ``x(1) <= ... <= x(n)`` the interval
``[x(k), x(n+1-k)]`` misses the true median on either side with probability at most
``P(Binomial(n, 1/2) <= k-1)``, whatever the distribution (only independence of the pairs is assumed), so
a run where another process stole the CPU for one pair moves the interval by one rank, not by its size.

Looking at the data after every few pairs and stopping when it looks decided inflates the error rates if
each look used the nominal level. The looks are planned (``Policy.looks``: at ``min_pairs`` and each doubling) and the error budget ``alpha``
is split evenly over them, over the metrics and over the benches (Bonferroni: valid whatever the
dependence between looks), so that the chance of *any* false regression over the whole run is at most
``alpha`` when no metric's true median ratio exceeds ``1 + threshold``.

Decision per metric, at the last look taken: ``regression`` when the whole interval lies above
``1 + threshold`` (a slowdown is proven); ``pass`` when it lies wholly below ``1 + rule_out`` (a slowdown
as large as ``rule_out``, the one the gate must catch, is ruled out); otherwise ``inconclusive``. Pairs are added until
every metric is decided, a regression is found, or the pair cap (or the caller's time cap) is reached.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal

Decision = Literal["regression", "pass", "inconclusive"]
MAD_TO_SIGMA = 1.4826  # the MAD of a normal distribution times this is its standard deviation


class PolicyError(ValueError):
    """A perf policy setting is out of range (the message names the setting)."""


@dataclass(frozen=True)
class Policy:
    """How the perf gate decides; the defaults are the settings whose error rates the replay test measures.

    ``threshold``: a regression is a median cost ratio proven above ``1 + threshold`` (the whole interval
    above it). ``rule_out``: a pass is a slowdown of ``rule_out`` or more ruled out (the whole interval below
    ``1 + rule_out``); the slowdown the gate is built to catch. ``alpha``: the error budget of one gate run
    (all looks, metrics and benches) for each of the two errors: a false regression when no metric slowed
    down by more than ``threshold``, a pass when one slowed down by ``rule_out`` or more. Looks at
    ``min_pairs`` pairs, then at each doubling, and at ``max_pairs``: few looks (each costs a share of
    ``alpha``), the early ones cheap.
    """

    threshold: float = 0.02
    rule_out: float = 0.10
    alpha: float = 0.01
    min_pairs: int = 16
    max_pairs: int = 256

    def __post_init__(self) -> None:
        if not 0 < self.threshold < 10:
            raise PolicyError(f"threshold must be a fraction above 0 (0.05 = 5%), not {self.threshold!r}")
        if not self.threshold <= self.rule_out < 10:
            raise PolicyError(f"rule_out must be at least threshold ({self.threshold!r}), not {self.rule_out!r}")
        if not 0 < self.alpha < 0.5:
            raise PolicyError(f"alpha must lie between 0 and 0.5, not {self.alpha!r}")
        if self.min_pairs < 1 or self.max_pairs < self.min_pairs:
            raise PolicyError(f"need 1 <= min_pairs <= max_pairs, not {self.min_pairs!r} and {self.max_pairs!r}")

    def looks(self) -> tuple[int, ...]:
        """The planned pair counts at which the data is examined (the last one is ``max_pairs``)."""
        counts = [self.min_pairs]
        while counts[-1] * 2 < self.max_pairs:
            counts.append(counts[-1] * 2)
        if counts[-1] != self.max_pairs:
            counts.append(self.max_pairs)
        return tuple(counts)

    def tail_alpha(self, metrics: int, families: int = 1) -> float:
        """The one-sided error level of each interval bound: ``alpha`` split over looks, metrics, benches."""
        return self.alpha / (len(self.looks()) * max(metrics, 1) * max(families, 1))

    @property
    def limit(self) -> float:
        """``log(1 + threshold)``: the regression boundary on the log-ratio scale."""
        return math.log1p(self.threshold)

    @property
    def pass_limit(self) -> float:
        """``log(1 + rule_out)``: the pass boundary on the log-ratio scale."""
        return math.log1p(self.rule_out)


@lru_cache(maxsize=4096)
def order_statistic_rank(n: int, tail_alpha: float) -> int | None:
    """The largest ``k`` (1-based) with ``P(Binomial(n, 1/2) <= k-1) <= tail_alpha``: ``[x(k), x(n+1-k)]``
    is then an interval for the median missing on each side with probability at most ``tail_alpha``.
    None when ``n`` pairs are too few for that level (even ``[x(1), x(n)]`` is not sure enough).

    >>> order_statistic_rank(10, 0.025), order_statistic_rank(5, 0.01)
    (2, None)
    """
    if n < 1:
        return None
    total = 2**n
    cumulative = 0
    rank = 0
    for j in range(n):  # cumulative = sum_{i <= j} C(n, i)
        cumulative += math.comb(n, j)
        if cumulative / total > tail_alpha:
            break
        rank = j + 1
    return rank or None  # alpha < 0.5 keeps rank <= (n + 1) / 2: the interval is never empty


@dataclass(frozen=True)
class MetricVerdict:
    """The verdict on one metric: the interval of its median cost ratio and what it means."""

    key: str
    decision: Decision
    pairs: int
    median_ratio: float
    low: float | None  # ratio bounds; None when the pairs were too few for any interval
    high: float | None
    confidence: float  # two-sided coverage of [low, high] at this look
    spread: float  # run-to-run variation of the pair log-ratios (MAD * 1.4826, ~ a relative sd)
    pairs_needed: int | None = None  # for an inconclusive verdict: about how many pairs would decide it

    def describe(self, policy: Policy) -> str:
        """One line: decision, median ratio, interval against the two boundaries, pairs, variation."""
        interval = ("no interval yet" if self.low is None or self.high is None else
                    f"{self.confidence:.2%} interval [{self.low - 1:+.1%}, {self.high - 1:+.1%}]")
        text = (f"{self.key}: {self.decision}: median {self.median_ratio - 1:+.1%}, {interval} (regression above "
                f"{policy.threshold:+.0%}, pass below {policy.rule_out:+.0%}), {self.pairs} pairs, pair-to-pair "
                f"variation {self.spread:.1%}")
        if self.decision == "inconclusive" and self.pairs_needed is not None:
            text += f"; about {self.pairs_needed} pairs would decide it at this variation"
        return text


def spread_of(log_ratios: Sequence[float]) -> float:
    """The robust spread of the log-ratios (MAD scaled to a standard deviation): ~ the relative noise of a
    pair's ratio, unmoved by a few wild runs."""
    if len(log_ratios) < 2:
        return 0.0
    center = statistics.median(log_ratios)
    return MAD_TO_SIGMA * statistics.median(abs(x - center) for x in log_ratios)


def judge_metric(key: str, log_ratios: Sequence[float], policy: Policy, tail_alpha: float) -> MetricVerdict:
    """The verdict on one metric's paired log-ratios at one look (each interval bound wrong with
    probability at most ``tail_alpha``)."""
    if not log_ratios:
        raise ValueError(f"{key}: no pairs to judge")
    values = sorted(log_ratios)
    n = len(values)
    median = statistics.median(values)
    spread = spread_of(values)
    rank = order_statistic_rank(n, tail_alpha)
    if rank is None:
        return MetricVerdict(key, "inconclusive", n, math.exp(median), None, None, 0.0, spread,
                             _pairs_needed(n, median, spread, policy, tail_alpha))
    low, high = values[rank - 1], values[n - rank]
    confidence = 1 - 2 * _binomial_tail(n, rank - 1)
    decision: Decision = ("regression" if low > policy.limit else "pass" if high < policy.pass_limit
                          else "inconclusive")
    needed = _pairs_needed(n, median, spread, policy, tail_alpha) if decision == "inconclusive" else None
    return MetricVerdict(key, decision, n, math.exp(median), math.exp(low), math.exp(high), confidence, spread,
                         needed)


def _binomial_tail(n: int, k: int) -> float:
    """``P(Binomial(n, 1/2) <= k)``."""
    return sum(math.comb(n, i) for i in range(k + 1)) / 2**n


def _pairs_needed(n: int, median: float, spread: float, policy: Policy, tail_alpha: float) -> int | None:
    """About how many pairs the interval needs to clear the nearer-to-deciding boundary, were the median and
    the spread what they are now (the sign-test interval's half-width is ~ z * spread * sqrt(pi/2) / sqrt(n))."""
    distance = max(median - policy.limit, policy.pass_limit - median)
    if distance <= 0:
        return None
    if spread == 0:
        return n + 1
    z = statistics.NormalDist().inv_cdf(1 - tail_alpha)
    return max(n + 1, math.ceil((z * spread * math.sqrt(math.pi / 2) / distance) ** 2))  # undecided: more than n


@dataclass
class SequentialVerdict:
    """The outcome of a sequential measurement: per-metric verdicts at the last look and why it stopped."""

    verdicts: dict[str, MetricVerdict] = field(default_factory=dict)
    pairs: int = 0
    looks: int = 0
    stopped: str = ""
    tail_alpha: float = 0.0

    @property
    def decision(self) -> Decision:
        """``regression`` if any metric regressed, ``pass`` if every metric passed, else ``inconclusive``."""
        found = {v.decision for v in self.verdicts.values()}
        if "regression" in found:
            return "regression"
        return "pass" if found == {"pass"} else "inconclusive"


PairSource = Callable[[int], Mapping[str, float] | None]


def sequential_verdict(
    next_pair: PairSource, policy: Policy, *, families: int = 1, out_of_time: Callable[[], bool] | None = None,
) -> SequentialVerdict:
    """Draw pairs (``next_pair(i)``: each metric's log cost ratio for pair ``i``, or None when no more pairs
    can be measured) and judge at the planned looks until decided, a regression is found or a cap is reached.

    The metric set is the first pair's keys (a later pair missing a key just adds nothing to it). ``families``
    is how many such measurements share the ``alpha`` budget (the gate's benches)."""
    ratios: dict[str, list[float]] = {}
    looks = set(policy.looks())
    result = SequentialVerdict()
    index = judged = 0
    while index < policy.max_pairs:
        pair = next_pair(index)
        if pair is None:
            result.stopped = f"no more pairs after {index}"
            break
        index += 1
        if not ratios:
            ratios = {key: [] for key in pair}
            if not ratios:
                raise ValueError("the first pair has no metrics")
            result.tail_alpha = policy.tail_alpha(len(ratios), families)
        for key, value in pair.items():
            if key in ratios and math.isfinite(value):
                ratios[key].append(value)
        if index not in looks and not (out_of_time and out_of_time()):
            continue
        result.looks += 1
        judged = index
        result.verdicts = {key: judge_metric(key, values, policy, result.tail_alpha)
                           for key, values in ratios.items() if values}
        decision = result.decision
        if decision != "inconclusive":
            result.stopped = f"{decision} decided at {index} pairs"
            break
        if out_of_time and out_of_time():
            result.stopped = f"time cap reached at {index} pairs"
            break
    else:
        result.stopped = f"pair cap ({policy.max_pairs}) reached"
    result.pairs = index
    if judged < index and ratios:  # ran out of pairs between looks: this last look replaces the planned ones left
        result.looks += 1
        result.verdicts = {key: judge_metric(key, values, policy, result.tail_alpha)
                           for key, values in ratios.items() if values}
    return result


def log_cost_ratio(base: float, cand: float, better: str) -> float | None:
    """``log(cand/base)`` for lower-is-better metrics, ``log(base/cand)`` for higher-is-better; None for a
    non-positive value (no ratio)."""
    if base <= 0 or cand <= 0 or not (math.isfinite(base) and math.isfinite(cand)):
        return None
    return math.log(cand / base) if better == "lower" else math.log(base / cand)
