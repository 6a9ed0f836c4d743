"""The perf gate: candidate vs a baseline of the base ref, measured in the same run, interleaved, judged
sequentially with a known false-alarm rate (docs/perf-gate.md).

For each benchmark of ``params.benches`` (an argv printing JSON, and the metrics to read from it):
* the baseline is a ``git worktree`` of the base ref (removed afterwards), the candidate the tree under test;
  each imports its own code (the tree's import roots lead ``PYTHONPATH``, ahead of any installed copy);
* pairs of runs alternate baseline and candidate (A B, B A, ...: neither side always first, drift cancels),
  each run a fresh process; per pair and metric the cost ratio candidate/baseline (baseline/candidate for
  higher-is-better metrics);
* at the planned looks (``min_pairs``, then each doubling, and ``max_pairs``) the sign-test
  interval of the median ratio is computed (``bno_quality_gates.perf_stats``), its error level split over
  looks, metrics and benches so that the whole gate raises a false alarm with probability at most ``alpha``;
  measuring stops as soon as every metric is decided or a regression is found, at ``max_pairs``, or at the
  bench's share of ``max_minutes``;
* ``regression`` (the gate fails) when the whole interval lies above ``1 + threshold``; ``pass`` when it lies
  below ``1 + rule_out`` (the slowdown the gate must catch is ruled out); otherwise ``inconclusive``: a pass
  with a note saying what to do, or a failure with ``inconclusive: fail``;
* the run-to-run variation (coefficient of variation of each side's values, and the spread of the pair
  ratios) is printed and recorded against ``max_cv``; ``enforce_variance: true`` makes a noisy measurement
  fail the gate.
Figures from different machines are never compared: both sides run here, now (and the runner keys the cache
of this gate by a machine fingerprint).

A benchmark the baseline cannot run (it predates it) is reported as having no baseline, not judged; one the
candidate cannot run fails the gate when ``required`` (the default).

Metric paths are dotted keys into the JSON, ``*`` matching every list item or mapping key:
``results.*.ours_s``. ``python -m bno_quality_gates.gates.perf [--base REF] [--threshold F] [--max-pairs N]``
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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bno_foundation.gate_program import (
    GateProgramError,
    clean_env,
    finish,
    main_guard,
    params,
    repo,
    say,
    setting,
    workdir,
)
from bno_quality_gates.perf_stats import (
    Policy,
    PolicyError,
    SequentialVerdict,
    log_cost_ratio,
    sequential_verdict,
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


def import_roots(explicit: Any = None) -> list[str]:
    """The tree's import roots, relative to the tree: ``explicit`` (``params.python_path``) when given, else
    the entries of this gate's ``PYTHONPATH`` that lie inside the tree under test (the runner puts the
    gates file's ``python_path`` there), else none (the tree itself is always added)."""
    if explicit is not None:
        if not isinstance(explicit, list) or not all(isinstance(p, str) for p in explicit):
            raise GateProgramError("params.python_path must be a list of folders relative to the tree")
        return list(explicit)
    top = workdir()
    roots: list[str] = []
    for entry in filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep)):
        path = Path(entry).resolve()
        if path != top and path.is_relative_to(top):
            roots.append(path.relative_to(top).as_posix())
    return roots


def tree_pythonpath(tree: Path, roots: list[str]) -> str:
    """``PYTHONPATH`` for a benchmark run in ``tree``: its import roots first, then the tree itself, so that
    the tree's own code is imported rather than an installed (editable) copy of the working tree."""
    return os.pathsep.join([*(str(tree / root) for root in roots), str(tree)])


def run_bench(
    bench: BenchSpec, tree: Path, ext_dir: Path, timeout: float, roots: list[str] | None = None,
) -> tuple[Any | None, str]:
    """Run one benchmark in ``tree`` (importing from its ``roots``); (parsed JSON or None, a message when
    it failed)."""
    argv = [sys.executable if i == 0 and a in ("python", "python3") else a for i, a in enumerate(bench.argv)]
    env = clean_env({"PYTHONPATH": tree_pythonpath(tree, roots or []), "TORCH_EXTENSIONS_DIR": str(ext_dir)})
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


class PairMeter:
    """Measures one benchmark pair by pair (baseline and candidate each a fresh process, the order
    alternating), keeping every value; ``__call__`` is the pair source of ``sequential_verdict``."""

    def __init__(self, bench: BenchSpec, trees: dict[str, Path], exts: dict[str, Path], timeout: float,
                 roots: list[str]) -> None:
        self.bench, self.trees, self.exts, self.timeout, self.roots = bench, trees, exts, timeout, roots
        self.samples: dict[str, Samples] = {}
        self.problem: str | None = None  # "base: ..." or "cand: ..." when a side could not run

    def __call__(self, index: int) -> dict[str, float] | None:
        """Measure pair ``index``; each metric's log cost ratio, or None (``problem`` says why)."""
        order = ("base", "cand") if index % 2 == 0 else ("cand", "base")
        values: dict[str, dict[str, float]] = {}
        for side in order:
            t0 = time.monotonic()
            data, problem = run_bench(self.bench, self.trees[side], self.exts[side], self.timeout, self.roots)
            if data is None:
                self.problem = f"{side}: {problem}"
                return None
            found: dict[str, float] = {}
            for metric in self.bench.metrics:
                for concrete, value in extract(data, metric.path).items():
                    found[f"{metric.name}[{concrete}]"] = value
                    self.samples.setdefault(f"{metric.name}[{concrete}]", Samples(metric.better))
            if not found:
                self.problem = f"{side}: none of the metric paths matched the benchmark's JSON"
                return None
            values[side] = found
            say(f"  pair {index + 1} {side}: {len(found)} values in {time.monotonic() - t0:.1f}s")
        ratios: dict[str, float] = {}
        for key, sample in self.samples.items():
            if key in values["base"] and key in values["cand"]:
                sample.base.append(values["base"][key])
                sample.cand.append(values["cand"][key])
                ratio = log_cost_ratio(values["base"][key], values["cand"][key], sample.better)
                if ratio is not None:
                    ratios[key] = ratio
        if not ratios:
            self.problem = "cand: no metric had a positive value on both sides (no ratio to judge)"
            return None
        return ratios


def policy_from(args: argparse.Namespace) -> Policy:
    """The decision policy from the command line and ``params`` (``pairs`` is the old name of
    ``min_pairs``); a bad value is a GateProgramError naming the setting."""
    defaults = Policy()
    try:
        return Policy(
            threshold=float(setting(args, "threshold", defaults.threshold)),
            rule_out=float(setting(args, "rule_out", defaults.rule_out)),
            alpha=float(setting(args, "alpha", defaults.alpha)),
            min_pairs=int(setting(args, "min_pairs", params().get("pairs", defaults.min_pairs))),
            max_pairs=int(setting(args, "max_pairs", defaults.max_pairs)),
        )
    except (PolicyError, TypeError, ValueError) as exc:
        raise GateProgramError(f"perf params: {exc}") from None


def main(argv: list[str] | None = None) -> int:
    """Run the perf gate."""
    parser = argparse.ArgumentParser(description="candidate vs baseline benchmarks, sequential interleaved pairs")
    parser.add_argument("--base", default=None)
    parser.add_argument("--min-pairs", dest="min_pairs", type=int, default=None)
    parser.add_argument("--max-pairs", dest="max_pairs", type=int, default=None)
    parser.add_argument("--threshold", type=float, default=None)
    parser.add_argument("--rule-out", dest="rule_out", type=float, default=None)
    parser.add_argument("--alpha", type=float, default=None)
    parser.add_argument("--max-minutes", dest="max_minutes", type=float, default=None)
    parser.add_argument("--inconclusive", choices=("pass", "fail"), default=None)
    parser.add_argument("--max-cv", dest="max_cv", type=float, default=None)
    parser.add_argument("--benches-json", default=None, help="the benches as JSON (else params.benches)")
    args = parser.parse_args(argv)
    benches = load_benches(json.loads(args.benches_json) if args.benches_json else setting(args, "benches", None))
    policy = policy_from(args)
    max_minutes = float(setting(args, "max_minutes", 20.0))
    on_inconclusive = str(setting(args, "inconclusive", "pass"))
    if on_inconclusive not in ("pass", "fail"):
        raise GateProgramError(f"params.inconclusive must be pass or fail, not {on_inconclusive!r}")
    max_cv = float(setting(args, "max_cv", 0.05))
    enforce_variance = bool(setting(argparse.Namespace(), "enforce_variance", False))
    run_timeout = float(setting(argparse.Namespace(), "run_timeout", 600))
    roots = import_roots(setting(argparse.Namespace(), "python_path", None))
    base_ref = resolve_base(args.base or os.environ.get("GATE_BASE") or setting(argparse.Namespace(), "base", None))
    say(f"perf: baseline {base_ref}; regression: median cost ratio proven above {1 + policy.threshold:.2f}; "
        f"pass: {1 + policy.rule_out:.2f} ruled out; error budget {policy.alpha:.1%} each; looks at "
        f"{', '.join(map(str, policy.looks()))} pairs (at most {max_minutes:g} min); inconclusive -> {on_inconclusive}")
    report: dict[str, Any] = {
        "base": base_ref, "threshold": policy.threshold, "rule_out": policy.rule_out, "alpha": policy.alpha,
        "looks": list(policy.looks()),
        "max_pairs": policy.max_pairs, "max_minutes": max_minutes, "inconclusive_is": on_inconclusive,
        "max_cv": max_cv, "benches": {}, "sequences": {},
    }
    reasons: list[str] = []
    notes: list[str] = []
    verdicts: list[str] = []
    if "confirm_pairs" in params():
        notes.append("confirm_pairs is no longer used: the sequential looks replace the confirmation")
    tmp = Path(tempfile.mkdtemp(prefix="gate-perf-"))
    try:
        with Baseline(base_ref, tmp) as baseline:
            report["base_sha"] = baseline.sha
            trees = {"base": baseline.path, "cand": workdir()}
            exts = {"base": tmp / "ext-base", "cand": tmp / "ext-cand"}
            for bench in benches:
                say(f"bench {bench.name}: {' '.join(bench.argv)}")
                meter = PairMeter(bench, trees, exts, run_timeout, roots)
                result = sequential_verdict(meter, policy, families=len(benches),
                                            out_of_time=_clock(max_minutes * 60 / len(benches)))
                if meter.problem is not None and not result.verdicts:
                    _no_result(bench, meter.problem, trees["cand"], exts["cand"], run_timeout, roots, reasons, notes)
                    report["benches"][bench.name] = {"problem": meter.problem}
                    continue
                if meter.problem is not None:
                    message = f"{bench.name}: pair {result.pairs + 1} could not run ({meter.problem})"
                    (reasons if bench.required else notes).append(message)
                say(f"  {result.stopped}; {result.looks} looks, each bound at error level {result.tail_alpha:.2g}")
                report["benches"][bench.name] = _bench_report(meter, result, max_cv, notes, reasons, enforce_variance,
                                                              bench.name)
                report["sequences"][bench.name] = {
                    "pairs": result.pairs, "looks": result.looks, "stopped": result.stopped,
                    "tail_alpha": result.tail_alpha, "decision": result.decision}
                for verdict in result.verdicts.values():
                    line = f"{bench.name} {verdict.describe(policy)}"
                    say(f"  {line}")
                    verdicts.append(line)
                    if verdict.decision == "regression":
                        reasons.append(line)
                    elif verdict.decision == "inconclusive":
                        needed = f" (about {verdict.pairs_needed} would do)" if verdict.pairs_needed else ""
                        advice = (f"{bench.name} {verdict.key}: inconclusive after {verdict.pairs} pairs{needed}: "
                                  f"raise max_pairs or max_minutes, run on a quieter machine, or widen "
                                  f"threshold/rule_out")
                        (reasons if on_inconclusive == "fail" else notes).append(advice)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    all_cv = [v for b in report["benches"].values() for m in b.values() if isinstance(m, dict)
              for v in (m.get("cv_base"), m.get("cv_cand")) if v is not None]
    report["max_observed_cv"] = max(all_cv) if all_cv else None
    report["variance_ok"] = bool(all_cv) and max(all_cv) <= max_cv
    report["verdicts"] = verdicts
    report["notes"] = notes
    for note in notes:
        say(f"note: {note}")
    return finish(report, reasons)


def _clock(seconds: float) -> Callable[[], bool]:
    """A test that says whether ``seconds`` have passed since this call."""
    deadline = time.monotonic() + seconds
    return lambda: time.monotonic() > deadline


def _no_result(bench: BenchSpec, problem: str, cand_tree: Path, cand_ext: Path, timeout: float, roots: list[str],
               reasons: list[str], notes: list[str]) -> None:
    """A bench that gave no pair: not judged without a baseline; a failure when the candidate cannot run it."""
    if problem.startswith("base:"):
        notes.append(f"{bench.name}: no baseline ({problem}); not judged")
        data, cand_problem = run_bench(bench, cand_tree, cand_ext, timeout, roots)
        if data is None and bench.required:
            reasons.append(f"{bench.name}: the candidate cannot run it ({cand_problem})")
    elif bench.required:
        reasons.append(f"{bench.name}: {problem}")
    else:
        notes.append(f"{bench.name}: {problem} (optional bench)")


def _bench_report(meter: PairMeter, result: SequentialVerdict, max_cv: float, notes: list[str], reasons: list[str],
                  enforce_variance: bool, name: str) -> dict[str, Any]:
    """Per metric: medians, ratios, the interval and decision, each side's run-to-run variation."""
    out: dict[str, Any] = {}
    for key, sample in meter.samples.items():
        cv_base, cv_cand = _cv(sample.base), _cv(sample.cand)
        if any(cv is not None and cv > max_cv for cv in (cv_base, cv_cand)):
            notes.append(f"{name} {key}: run-to-run variation above {max_cv:.0%} "
                         f"(cv base {cv_base or 0:.1%}, candidate {cv_cand or 0:.1%})")
            if enforce_variance:
                reasons.append(f"{name} {key}: too noisy to judge")
        verdict = result.verdicts.get(key)
        ratios = sample.ratios()
        out[key] = {
            "better": sample.better,
            "base_median": statistics.median(sample.base) if sample.base else None,
            "cand_median": statistics.median(sample.cand) if sample.cand else None,
            "pair_ratios": [round(r, 4) for r in ratios],
            "median_ratio": round(statistics.median(ratios), 4) if ratios else None,
            "decision": verdict.decision if verdict else None,
            "interval": (None if verdict is None or verdict.low is None or verdict.high is None
                         else [round(verdict.low, 4), round(verdict.high, 4)]),
            "confidence": round(verdict.confidence, 5) if verdict else None,
            "pairs": len(ratios),
            "pair_spread": round(verdict.spread, 4) if verdict else None,
            "pairs_needed": verdict.pairs_needed if verdict else None,
            "cv_base": None if cv_base is None else round(cv_base, 4),
            "cv_cand": None if cv_cand is None else round(cv_cand, 4),
        }
    return out


if __name__ == "__main__":
    main_guard(main)
