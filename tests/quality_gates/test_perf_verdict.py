"""The perf gate's sequential verdict: the sign-test interval, the planned looks, the decisions, the gate's
output, and its error rates measured by replaying noise recorded on a shared machine (no timing here)."""

from __future__ import annotations

import json
import math
import os
import random
import re
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from bno_quality_gates.gates.perf import import_roots, tree_pythonpath
from bno_quality_gates.perf_stats import (
    Policy,
    PolicyError,
    SequentialVerdict,
    judge_metric,
    log_cost_ratio,
    order_statistic_rank,
    sequential_verdict,
)
from bno_quality_gates.runner import parse_metrics
from tests.quality_gates.conftest import git

ROOT = Path(__file__).resolve().parents[2]
RECORDINGS = Path(__file__).with_name("data") / "perf_noise"

# the recording and the metric the perf gate judges in it (docs/perf-gate.md); families: the gate's benches,
# which share its false-alarm budget
REPLAYED = ("e2e-tiny-cpu.json", "decode_cpu_ms_per_token[measurements.0.decode_cpu_ms_per_token]")
FAMILIES = 2
TRIALS = 2000
SLOWDOWN = 1.10


def _binomial_cdf(n: int, k: int) -> float:
    return sum(math.comb(n, i) for i in range(k + 1)) / 2**n


# the interval ----------------------------------------------------------------------------------------------
def test_order_statistic_rank_is_the_largest_rank_within_the_level() -> None:
    assert order_statistic_rank(10, 0.025) == 2, "the textbook 95% interval for n = 10 is [x(2), x(9)]"
    assert order_statistic_rank(20, 0.025) == 6, "and [x(6), x(15)] for n = 20"
    assert order_statistic_rank(5, 0.01) is None, "5 pairs cannot give a 98% interval"
    for n in range(1, 140, 7):
        for tail in (0.0005, 0.0025, 0.01, 0.05):
            k = order_statistic_rank(n, tail)
            if k is None:
                assert _binomial_cdf(n, 0) > tail
            else:
                assert _binomial_cdf(n, k - 1) <= tail < _binomial_cdf(n, k), (n, tail, k)


def test_interval_covers_the_median_of_a_heavy_tailed_distribution() -> None:
    """Distribution-free: Cauchy noise (no mean, no variance), coverage at least the stated confidence."""
    rng = random.Random(7)
    policy = Policy(threshold=0.05)
    tail = 0.025
    misses = 0
    trials = 1000
    for _ in range(trials):
        values = [0.3 + math.tan(math.pi * (rng.random() - 0.5)) for _ in range(25)]
        verdict = judge_metric("m", values, policy, tail)
        assert verdict.low is not None and verdict.high is not None
        misses += not (math.log(verdict.low) <= 0.3 <= math.log(verdict.high))
    stated = 1 - 2 * _binomial_cdf(25, order_statistic_rank(25, tail) - 1)  # type: ignore[operator]
    assert misses / trials <= (1 - stated) + 0.02, f"missed {misses}/{trials}; stated confidence {stated:.3f}"


def test_decisions_at_one_look() -> None:
    policy = Policy(threshold=0.05)
    slow = judge_metric("t", [math.log(1.30) + 0.01 * ((i % 5) - 2) for i in range(20)], policy, 0.01)
    assert slow.decision == "regression" and slow.low is not None and slow.low > 1.05
    fine = judge_metric("t", [0.01 * ((i % 5) - 2) for i in range(20)], policy, 0.01)
    assert fine.decision == "pass" and fine.high is not None and fine.high < policy.rule_out + 1
    unsure = judge_metric("t", [0.04 + 0.3 * ((i % 5) - 2) for i in range(20)], policy, 0.01)
    assert unsure.decision == "inconclusive" and unsure.pairs_needed is not None and unsure.pairs_needed > 20
    line = slow.describe(policy)
    assert "regression" in line and "interval [+" in line and "20 pairs" in line and "variation" in line
    too_few = judge_metric("t", [0.5, 0.6], policy, 0.01)
    assert too_few.decision == "inconclusive" and too_few.low is None and "no interval yet" in too_few.describe(policy)


def test_log_cost_ratio_is_symmetric_in_direction() -> None:
    assert log_cost_ratio(1.0, 2.0, "lower") == pytest.approx(math.log(2))
    assert log_cost_ratio(2.0, 1.0, "higher") == pytest.approx(math.log(2)), "half the throughput is 2x the cost"
    assert log_cost_ratio(0.0, 1.0, "lower") is None and log_cost_ratio(1.0, float("nan"), "lower") is None


# the plan of looks and the error budget ----------------------------------------------------------------------
def test_policy_plans_looks_and_splits_alpha() -> None:
    policy = Policy()
    assert policy.looks() == (16, 32, 64, 128, 256)
    assert Policy(min_pairs=10, max_pairs=50).looks() == (10, 20, 40, 50)
    assert policy.tail_alpha(metrics=1, families=2) == pytest.approx(0.01 / (5 * 2))
    with pytest.raises(PolicyError, match="threshold"):
        Policy(threshold=-0.1)
    with pytest.raises(PolicyError, match="rule_out"):
        Policy(threshold=0.05, rule_out=0.02)
    with pytest.raises(PolicyError, match="alpha"):
        Policy(alpha=0.7)
    with pytest.raises(PolicyError, match="min_pairs"):
        Policy(min_pairs=20, max_pairs=10)


def test_sequential_stops_at_a_look_once_decided() -> None:
    drawn: list[int] = []

    def clear_slowdown(index: int) -> dict[str, float]:
        drawn.append(index)
        return {"m": math.log(1.5) + 0.001 * (index % 3)}

    result = sequential_verdict(clear_slowdown, Policy())
    assert result.decision == "regression" and result.pairs == 16 and result.looks == 1 and len(drawn) == 16
    assert "decided at 16 pairs" in result.stopped

    rng = random.Random(3)
    undecided = sequential_verdict(lambda i: {"m": math.log(1.06) + rng.gauss(0, 0.5)}, Policy(max_pairs=40))
    assert undecided.decision == "inconclusive" and undecided.pairs == 40 and undecided.looks == 3
    assert "pair cap (40)" in undecided.stopped

    looks = iter([False] * 20 + [True] * 100)
    timed = sequential_verdict(lambda i: {"m": rng.gauss(0, 0.3)}, Policy(), out_of_time=lambda: next(looks))
    assert "time cap" in timed.stopped and timed.pairs < 32, timed.stopped

    short = sequential_verdict(lambda i: None if i >= 5 else {"m": 0.0}, Policy())
    assert short.pairs == 5 and short.looks == 1 and "no more pairs" in short.stopped
    ran_out = sequential_verdict(lambda i: None if i >= 20 else {"m": rng.gauss(0, 0.5)}, Policy())
    assert ran_out.pairs == 20 and ran_out.looks == 2, "judged at 16, then once more on the 20 it got"
    assert ran_out.verdicts["m"].pairs == 20


# the error rates, replayed from recorded noise ----------------------------------------------------------------
def _recorded_pairs(name: str, key: str) -> tuple[list[tuple[float, float]], str, dict[str, Any]]:
    record = json.loads((RECORDINGS / name).read_text(encoding="utf-8"))
    metric = key.split("[", 1)[0]
    better = next(m["better"] for m in record["bench"]["metrics"] if m["name"] == metric)
    pairs = [(p["base"][key], p["cand"][key]) for p in record["pairs"] if key in p["base"] and key in p["cand"]]
    return pairs, better, record


def replay(pairs: list[tuple[float, float]], better: str, policy: Policy, slowdown: float, seed: int,
           families: int) -> SequentialVerdict:
    """One gate run on recorded pairs: each draw is a recorded pair chosen at random, its two sides swapped
    half the time (with identical code which side is called candidate is a label: the design alternates the
    order, so the labels are exchangeable), then the candidate made ``slowdown`` times costlier."""
    rng = random.Random(seed)

    def draw(_index: int) -> dict[str, float]:
        base, cand = pairs[rng.randrange(len(pairs))]
        if rng.random() < 0.5:
            base, cand = cand, base
        cand = cand * slowdown if better == "lower" else cand / slowdown
        ratio = log_cost_ratio(base, cand, better)
        assert ratio is not None
        return {"m": ratio}

    return sequential_verdict(draw, policy, families=families)


def replay_rates(slowdown: float) -> tuple[Counter[str], float, int]:
    """Decisions over ``TRIALS`` replayed gate runs, their mean pair count and the recording's pair count."""
    pairs, better, _ = _recorded_pairs(*REPLAYED)
    policy = Policy()
    outcomes: Counter[str] = Counter()
    used = 0
    for trial in range(TRIALS):
        result = replay(pairs, better, policy, slowdown, seed=trial, families=FAMILIES)
        outcomes[result.decision] += 1
        used += result.pairs
    return outcomes, used / TRIALS, len(pairs)


def test_recording_is_identical_code_measured_on_this_kind_of_machine() -> None:
    pairs, better, record = _recorded_pairs(*REPLAYED)
    assert len(pairs) >= 30 and better == "lower"
    assert record["code"]["sha"] and "identical code" in record["what"]
    assert {p["first"] for p in record["pairs"]} == {"base", "cand"}, "the order alternates"


def test_false_alarm_rate_with_identical_code_is_at_most_one_percent() -> None:
    outcomes, mean_pairs, recorded = replay_rates(1.0)
    rate = outcomes["regression"] / TRIALS
    print(f"\nidentical code: {dict(outcomes)} of {TRIALS} replays from {recorded} recorded pairs; "
          f"false alarms {rate:.2%}; mean pairs {mean_pairs:.0f}")
    assert rate <= 0.01, f"false-alarm rate {rate:.2%} ({outcomes['regression']}/{TRIALS}) above 1%: {dict(outcomes)}"


def test_a_ten_percent_slowdown_is_caught_at_least_95_percent_of_the_time() -> None:
    outcomes, mean_pairs, recorded = replay_rates(SLOWDOWN)
    rate = outcomes["regression"] / TRIALS
    print(f"\n+10% candidate: {dict(outcomes)} of {TRIALS} replays from {recorded} recorded pairs; "
          f"caught {rate:.2%}; mean pairs {mean_pairs:.0f}")
    assert rate >= 0.95, f"detection rate {rate:.2%} ({outcomes['regression']}/{TRIALS}) below 95%: {dict(outcomes)}"


# the gate program ------------------------------------------------------------------------------------------------
# a toy benchmark: the cost comes from the tree's own src/perfmod.py; the noise is a seeded sequence per side
BENCH = """\
import json, pathlib, random
import perfmod
runs = pathlib.Path(".runs")
done = int(runs.read_text()) if runs.exists() else 0
runs.write_text(str(done + 1))
rng = random.Random(done * 2 + ("baseline" in str(pathlib.Path.cwd())))
print(json.dumps({"t": perfmod.cost() * rng.uniform(1 - NOISE, 1 + NOISE)}))
"""


def _gate(repo: Path, tmp: Path, extra_params: dict[str, Any] | None = None) -> tuple[int, dict[str, Any], str]:
    benches = [{"name": "toy", "argv": ["python", "bench.py"], "metrics": [{"name": "t", "path": "t"}]}]
    gate_params = {"benches": benches, "min_pairs": 10, "max_pairs": 20, "alpha": 0.05, "threshold": 0.05,
                   "python_path": ["src"], **(extra_params or {})}
    env = {**os.environ, "GATE_REPO": str(repo), "GATE_WORKDIR": str(repo), "GATE_OUT": str(tmp),
           "GATE_PARAMS": json.dumps(gate_params), "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "bno_quality_gates.gates.perf", "--base", "HEAD"], cwd=repo,
                          env=env, capture_output=True, text=True, timeout=300)
    return proc.returncode, parse_metrics(proc.stdout), proc.stdout + proc.stderr


def test_gate_judges_each_side_on_its_own_code_and_prints_the_interval(repo: Path, tmp_path: Path) -> None:
    (repo / "src" / "perfmod.py").write_text("def cost():\n    return 1.0\n")
    (repo / "bench.py").write_text(BENCH.replace("NOISE", "0.02"))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "bench")
    (repo / "src" / "perfmod.py").write_text("def cost():\n    return 1.5\n")  # uncommitted: the candidate
    code, metrics, log = _gate(repo, tmp_path)
    assert code == 1, log
    toy = metrics["benches"]["toy"]["t[t]"]
    assert toy["decision"] == "regression" and toy["interval"][0] > 1.05, toy
    assert toy["pairs"] == 10 and metrics["sequences"]["toy"]["looks"] == 1, "decided at the first look"
    printed = (r"t\[t\]: regression: median \+\d+\.\d%, [\d.]+% interval \[\+\d+\.\d%, \+\d+\.\d%\] "
               r"\(regression above \+5%, pass below \+10%\), 10 pairs")
    assert re.search(printed, log) and "pair-to-pair variation" in log, log
    assert "regression" in metrics["reason"]
    assert "pair 2 cand" in log and log.index("pair 2 cand") < log.index("pair 2 base"), "the order alternates"

    (repo / "src" / "perfmod.py").write_text("def cost():\n    return 1.0\n")
    code, metrics, log = _gate(repo, tmp_path)
    assert code == 0, log
    toy = metrics["benches"]["toy"]["t[t]"]
    assert toy["decision"] == "pass" and toy["interval"][1] < 1.10, toy


def test_gate_inconclusive_passes_with_advice_or_fails_when_configured(repo: Path, tmp_path: Path) -> None:
    (repo / "src" / "perfmod.py").write_text("def cost():\n    return 1.0\n")
    (repo / "bench.py").write_text(BENCH.replace("NOISE", "0.5"))  # +-50%: 10 pairs cannot decide
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "noisy bench")
    params = {"max_pairs": 10}
    code, metrics, log = _gate(repo, tmp_path, params)
    assert code == 0, log
    assert metrics["benches"]["toy"]["t[t]"]["decision"] == "inconclusive"
    assert any("inconclusive after 10 pairs" in n and "raise max_pairs" in n for n in metrics["notes"]), metrics
    code, metrics, log = _gate(repo, tmp_path, {**params, "inconclusive": "fail"})
    assert code == 1 and "inconclusive" in metrics["reason"], log


def test_import_roots_follow_the_tree_under_test(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATE_WORKDIR", str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path / "pkg_a"), "/elsewhere", str(tmp_path)]))
    assert import_roots() == ["pkg_a"]
    assert import_roots(["x", "y"]) == ["x", "y"]
    assert tree_pythonpath(Path("/t"), ["a"]) == os.pathsep.join(["/t/a", "/t"])


# the recorder --------------------------------------------------------------------------------------------------
def test_recorder_measures_identical_code_interleaved(repo: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from bno_quality_gates.gates import perf_record

    (repo / "src" / "perfmod.py").write_text("def cost():\n    return 2.0\n")
    (repo / "bench.py").write_text(BENCH.replace("NOISE", "0.02"))
    (repo / "workflows" / "gates.yaml").write_text(json.dumps({
        "python_path": ["src"],
        "gates": {"perf": {"params": {"benches": [
            {"name": "toy", "argv": ["python", "bench.py"], "metrics": [{"name": "t", "path": "t"}]}]}}}}))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "bench")
    (repo / "src" / "perfmod.py").write_text("def cost():\n    return 9.0\n")  # uncommitted: not recorded
    monkeypatch.chdir(repo)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    out = tmp_path / "noise.json"
    assert perf_record.main(["--bench", "toy", "--max-pairs", "4", "--out", str(out)]) == 0
    record = json.loads(out.read_text())
    assert record["code"]["sha"] == git(repo, "rev-parse", "HEAD").strip() and record["code"]["python_path"] == ["src"]
    assert [p["first"] for p in record["pairs"]] == ["base", "cand", "base", "cand"]
    values = [p[side]["t[t]"] for p in record["pairs"] for side in ("base", "cand")]
    assert all(1.95 <= v <= 2.05 for v in values), "both sides ran the committed code (cost 2.0), not the edit"
    assert all(p["wall_s"]["base"] > 0 and p["wall_s"]["cand"] > 0 for p in record["pairs"])
    assert not list(scratch.iterdir()), "the two copies are removed"
