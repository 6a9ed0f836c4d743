"""The perf gate: candidate vs a baseline of the base ref, measured in the same run, interleaved.

For each benchmark of ``params.benches`` (an argv printing JSON, and the metrics to read from it):
* the baseline is a ``git worktree`` of the base ref (removed afterwards), the candidate the tree under test;
* ``pairs`` pairs of runs alternate baseline and candidate (A B, B A, A B, ...: interleaved, and neither side
  always first), each run a fresh process;
* per pair and metric, the cost ratio candidate/baseline (baseline/candidate for higher-is-better metrics);
  the verdict is on the median of those ratios: a regression is a median above ``1 + threshold``;
* a regression is confirmed by ``confirm_pairs`` more pairs before the gate fails (noise gets a second look);
* the run-to-run variance (coefficient of variation of each side's values) is recorded against ``max_cv``
  (the target is < 5%); ``enforce_variance: true`` makes a noisy measurement fail the gate.
Figures from different machines are never compared: both sides run here, now (and the runner keys the cache
of this gate by a machine fingerprint).

A benchmark the baseline cannot run (it predates it) is reported as having no baseline, not judged; one the
candidate cannot run fails the gate when ``required`` (the default).

Metric paths are dotted keys into the JSON, ``*`` matching every list item or mapping key:
``results.*.ours_s``. ``python -m bno_quality_gates.gates.perf [--base REF] [--pairs N] [--threshold F]``
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bno_foundation.gate_program import (
    GateProgramError,
    clean_env,
    finish,
    main_guard,
    repo,
    say,
    setting,
    workdir,
)


@dataclass
class MetricSpec:
    """A value to read from a benchmark's JSON."""

    name: str
    path: str
    better: str = "lower"  # lower | higher


@dataclass
class BenchSpec:
    """A benchmark command and its metrics."""

    name: str
    argv: list[str]
    metrics: list[MetricSpec]
    required: bool = True


@dataclass
class Samples:
    """Values of one concrete metric on both sides, pair by pair."""

    better: str
    base: list[float] = field(default_factory=list)
    cand: list[float] = field(default_factory=list)

    def ratios(self, start: int = 0) -> list[float]:
        """Cost ratios (> 1 means the candidate is worse) of the pairs from ``start``."""
        out = []
        for b, c in zip(self.base[start:], self.cand[start:], strict=True):
            if b <= 0 or c <= 0:
                continue
            out.append(c / b if self.better == "lower" else b / c)
        return out


def extract(data: Any, path: str) -> dict[str, float]:
    """Every number at ``path`` (dotted, ``*`` wildcards) keyed by its concrete path.

    >>> extract({"r": [{"t": 1.0}, {"t": 2.0}]}, "r.*.t")
    {'r.0.t': 1.0, 'r.1.t': 2.0}
    """
    results: dict[str, float] = {}

    def walk(node: Any, parts: list[str], trail: list[str]) -> None:
        if not parts:
            if isinstance(node, int | float) and not isinstance(node, bool) and math.isfinite(node):
                results[".".join(trail)] = float(node)
            return
        head, rest = parts[0], parts[1:]
        if head == "*":
            items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
            for key, value in items:
                walk(value, rest, [*trail, str(key)])
        elif isinstance(node, dict) and head in node:
            walk(node[head], rest, [*trail, head])
        elif isinstance(node, list) and head.isdigit() and int(head) < len(node):
            walk(node[int(head)], rest, [*trail, head])

    walk(data, path.split("."), [])
    return results


def parse_json_output(text: str) -> Any:
    """The JSON document a benchmark printed: the whole output, else the last line that parses."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    start = text.find("{")
    if start != -1:
        try:
            return json.loads(text[start:])
        except json.JSONDecodeError:
            pass
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith(("{", "[")):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                continue
    raise ValueError("no JSON in the benchmark output")


def load_benches(raw: Any) -> list[BenchSpec]:
    """``params.benches`` -> specs (GateProgramError naming the bad entry)."""
    if not isinstance(raw, list) or not raw:
        raise GateProgramError("params.benches must be a non-empty list of {name, argv, metrics}")
    out = []
    for index, item in enumerate(raw):
        try:
            metrics = [MetricSpec(**m) for m in item["metrics"]]
            for m in metrics:
                if m.better not in ("lower", "higher"):
                    raise ValueError(f"better must be lower or higher, not {m.better!r}")
            out.append(BenchSpec(name=str(item["name"]), argv=[str(a) for a in item["argv"]], metrics=metrics,
                                 required=bool(item.get("required", True))))
        except (KeyError, TypeError, ValueError) as exc:
            raise GateProgramError(f"params.benches[{index}] is invalid: {exc}") from None
    return out


def _git(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=repo(), capture_output=True, text=True, check=False)


def resolve_base(explicit: str | None) -> str:
    """The base ref: explicit, else HEAD with uncommitted work, else the upstream, else HEAD~1, else HEAD."""
    if explicit:
        return explicit
    if _git("status", "--porcelain").stdout.strip():
        return "HEAD"
    head = _git("rev-parse", "HEAD").stdout.strip()
    for candidate in ("@{upstream}", "HEAD~1"):
        proc = _git("rev-parse", "--verify", "--quiet", f"{candidate}^{{commit}}")
        if proc.returncode == 0 and proc.stdout.strip() != head:
            return candidate
    return "HEAD"


class Baseline:
    """A temporary ``git worktree`` of the base ref, removed on exit."""

    def __init__(self, ref: str, parent: Path) -> None:
        proc = _git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
        if proc.returncode != 0:
            raise GateProgramError(f"base ref {ref!r} is not a commit in {repo()}")
        self.sha = proc.stdout.strip()
        self.path = parent / "baseline"

    def __enter__(self) -> Baseline:
        _git("worktree", "prune")
        proc = _git("worktree", "add", "--detach", str(self.path), self.sha)
        if proc.returncode != 0:
            raise GateProgramError(f"git worktree add failed: {proc.stderr.strip()}")
        return self

    def __exit__(self, *exc: object) -> None:
        _git("worktree", "remove", "--force", str(self.path))
        shutil.rmtree(self.path, ignore_errors=True)
        _git("worktree", "prune")


def run_bench(bench: BenchSpec, tree: Path, ext_dir: Path, timeout: float) -> tuple[Any | None, str]:
    """Run one benchmark in ``tree``; (parsed JSON or None, a message when it failed)."""
    argv = [sys.executable if i == 0 and a in ("python", "python3") else a for i, a in enumerate(bench.argv)]
    env = clean_env({"PYTHONPATH": str(tree), "TORCH_EXTENSIONS_DIR": str(ext_dir)})
    try:
        proc = subprocess.run(argv, cwd=tree, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return None, f"timed out after {timeout:g}s"
    except FileNotFoundError as exc:
        return None, f"cannot run {argv[0]!r}: {exc.strerror}"
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        return None, f"exit code {proc.returncode}: " + " | ".join(tail)
    try:
        return parse_json_output(proc.stdout), ""
    except ValueError as exc:
        return None, str(exc)


def _cv(values: list[float]) -> float | None:
    if len(values) < 2:
        return None
    mean = statistics.fmean(values)
    return statistics.stdev(values) / mean if mean else None


def measure_pairs(
    bench: BenchSpec, trees: dict[str, Path], exts: dict[str, Path], pairs: int, timeout: float,
    samples: dict[str, Samples], offset: int,
) -> str | None:
    """Run ``pairs`` interleaved pairs, appending to ``samples``; a message when a side could not run."""
    for i in range(pairs):
        order = ("base", "cand") if (offset + i) % 2 == 0 else ("cand", "base")
        values: dict[str, dict[str, float]] = {}
        for side in order:
            t0 = time.monotonic()
            data, problem = run_bench(bench, trees[side], exts[side], timeout)
            if data is None:
                return f"{side}: {problem}"
            found: dict[str, float] = {}
            for metric in bench.metrics:
                for concrete, value in extract(data, metric.path).items():
                    found[f"{metric.name}[{concrete}]"] = value
                    samples.setdefault(f"{metric.name}[{concrete}]", Samples(metric.better))
            if not found:
                return f"{side}: none of the metric paths matched the benchmark's JSON"
            values[side] = found
            say(f"  pair {offset + i + 1} {side}: {len(found)} values in {time.monotonic() - t0:.1f}s")
        for key, sample in samples.items():
            if key in values["base"] and key in values["cand"]:
                sample.base.append(values["base"][key])
                sample.cand.append(values["cand"][key])
    return None


def main(argv: list[str] | None = None) -> int:
    """Run the perf gate."""
    parser = argparse.ArgumentParser(description="candidate vs baseline benchmarks, interleaved")
    parser.add_argument("--base", default=None)
    parser.add_argument("--pairs", type=int, default=None)
    parser.add_argument("--confirm-pairs", dest="confirm_pairs", type=int, default=None)
    parser.add_argument("--threshold", type=float, default=None)
    parser.add_argument("--max-cv", dest="max_cv", type=float, default=None)
    parser.add_argument("--benches-json", default=None, help="the benches as JSON (else params.benches)")
    args = parser.parse_args(argv)
    benches = load_benches(json.loads(args.benches_json) if args.benches_json else setting(args, "benches", None))
    pairs = int(setting(args, "pairs", 3))
    confirm_pairs = int(setting(args, "confirm_pairs", 3))
    threshold = float(setting(args, "threshold", 0.10))
    max_cv = float(setting(args, "max_cv", 0.05))
    enforce_variance = bool(setting(argparse.Namespace(), "enforce_variance", False))
    run_timeout = float(setting(argparse.Namespace(), "run_timeout", 600))
    if pairs < 1:
        raise GateProgramError("pairs must be at least 1")
    base_ref = resolve_base(args.base or os.environ.get("GATE_BASE") or setting(argparse.Namespace(), "base", None))
    say(f"perf: baseline {base_ref}, {pairs} interleaved pairs, threshold {threshold:.0%}, max cv {max_cv:.0%}")
    report: dict[str, Any] = {"base": base_ref, "pairs": pairs, "threshold": threshold, "max_cv": max_cv, "benches": {}}
    reasons: list[str] = []
    notes: list[str] = []
    tmp = Path(tempfile.mkdtemp(prefix="gate-perf-"))
    try:
        with Baseline(base_ref, tmp) as baseline:
            report["base_sha"] = baseline.sha
            trees = {"base": baseline.path, "cand": workdir()}
            exts = {"base": tmp / "ext-base", "cand": tmp / "ext-cand"}
            for bench in benches:
                say(f"bench {bench.name}: {' '.join(bench.argv)}")
                samples: dict[str, Samples] = {}
                problem = measure_pairs(bench, trees, exts, pairs, run_timeout, samples, 0)
                if problem is not None:
                    if problem.startswith("base:"):
                        notes.append(f"{bench.name}: no baseline ({problem}); not judged")
                        data, cand_problem = run_bench(bench, trees["cand"], exts["cand"], run_timeout)
                        if data is None and bench.required:
                            reasons.append(f"{bench.name}: the candidate cannot run it ({cand_problem})")
                    elif bench.required:
                        reasons.append(f"{bench.name}: {problem}")
                    else:
                        notes.append(f"{bench.name}: {problem} (optional bench)")
                    report["benches"][bench.name] = {"problem": problem}
                    continue
                verdicts = judge(samples, 0, threshold)
                confirmed: dict[str, float] = {}
                if any(r > 1 + threshold for r in verdicts.values()):
                    say(f"  regression suspected ({_worst(verdicts)}); confirming with {confirm_pairs} more pairs")
                    problem = measure_pairs(bench, trees, exts, confirm_pairs, run_timeout, samples, pairs)
                    if problem is not None:
                        reasons.append(f"{bench.name}: confirmation run failed: {problem}")
                    else:
                        confirmed = judge(samples, pairs, threshold)
                        for key, first in verdicts.items():
                            if first > 1 + threshold and confirmed.get(key, 0.0) > 1 + threshold:
                                reasons.append(
                                    f"{bench.name} {key}: {first - 1:+.1%} then {confirmed[key] - 1:+.1%} on "
                                    f"confirmation (threshold {threshold:.0%})"
                                )
                bench_report: dict[str, Any] = {}
                for key, sample in samples.items():
                    cv_base, cv_cand = _cv(sample.base), _cv(sample.cand)
                    noisy = any(cv is not None and cv > max_cv for cv in (cv_base, cv_cand))
                    if noisy:
                        notes.append(f"{bench.name} {key}: run-to-run variation above {max_cv:.0%} "
                                     f"(cv base {cv_base or 0:.1%}, candidate {cv_cand or 0:.1%})")
                        if enforce_variance:
                            reasons.append(f"{bench.name} {key}: too noisy to judge")
                    bench_report[key] = {
                        "better": sample.better,
                        "base_median": statistics.median(sample.base) if sample.base else None,
                        "cand_median": statistics.median(sample.cand) if sample.cand else None,
                        "pair_ratios": [round(r, 4) for r in sample.ratios()],
                        "median_ratio": round(verdicts.get(key, float("nan")), 4),
                        "confirm_ratio": round(confirmed[key], 4) if key in confirmed else None,
                        "cv_base": None if cv_base is None else round(cv_base, 4),
                        "cv_cand": None if cv_cand is None else round(cv_cand, 4),
                    }
                    say(f"  {key}: median cost ratio {verdicts.get(key, float('nan')):.3f} "
                        f"(cv base {cv_base or 0:.1%}, cand {cv_cand or 0:.1%})")
                report["benches"][bench.name] = bench_report
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    all_cv = [v for b in report["benches"].values() for m in b.values() if isinstance(m, dict)
              for v in (m.get("cv_base"), m.get("cv_cand")) if v is not None]
    report["max_observed_cv"] = max(all_cv) if all_cv else None
    report["variance_ok"] = bool(all_cv) and max(all_cv) <= max_cv
    report["notes"] = notes
    for note in notes:
        say(f"note: {note}")
    return finish(report, reasons)


def judge(samples: dict[str, Samples], start: int, threshold: float) -> dict[str, float]:
    """Median cost ratio per metric over the pairs from ``start``."""
    out = {}
    for key, sample in samples.items():
        ratios = sample.ratios(start)
        if ratios:
            out[key] = statistics.median(ratios)
    return out


def _worst(verdicts: dict[str, float]) -> str:
    key = max(verdicts, key=lambda k: verdicts[k])
    return f"{key} {verdicts[key] - 1:+.1%}"


if __name__ == "__main__":
    main_guard(main)
