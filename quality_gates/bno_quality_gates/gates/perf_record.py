"""Record the perf gate's run-to-run noise: one of its benchmarks, IDENTICAL code on both sides, many pairs.

Two exported copies (``git archive``) of the same commit play baseline and candidate; pairs of fresh-process runs alternate
which side goes first, exactly as the gate measures. Every pair's values are written (atomically, after each
pair, so an interrupted recording keeps what it measured) to a JSON file that the replay test
(``tests/quality_gates/test_perf_verdict.py``) feeds through the gate's decision procedure::

    python -m bno_quality_gates.gates.perf_record --bench kernels --minutes 14 \\
        --out tests/quality_gates/data/perf_noise/kernels-cpu.json

The benchmark is read from the gates file (``--gates``, gate ``--gate``, bench ``--bench``); ``--extra``
appends arguments to its argv. Recording stops after ``--max-pairs`` pairs or ``--minutes`` of wall time.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

FORMAT = 1


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _load1() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def _git(repo: Path, *args: str) -> str:
    proc = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"git {' '.join(args)} failed in {repo}: {proc.stderr.strip()}")
    return proc.stdout.strip()


def _stop(signum: int, _frame: object) -> None:
    """SIGTERM ends the recording like Ctrl-C: the pairs so far are kept and the copies removed."""
    raise KeyboardInterrupt(f"signal {signum}")


def _export(repo: Path, sha: str, tree: Path) -> None:
    """The files of commit ``sha`` in ``tree`` (``git archive``: the repository is only read)."""
    tree.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", "--format=tar", sha], cwd=repo, capture_output=True, check=False)
    if archive.returncode != 0:
        raise SystemExit(f"git archive {sha} failed: {archive.stderr.decode(errors='replace').strip()}")
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(tree, filter="data")


def _bench_from_gates(gates_file: Path, gate: str, name: str) -> tuple[dict[str, Any], list[str]]:
    """The raw bench entry and the gates file's ``python_path``."""
    import yaml

    data = yaml.safe_load(gates_file.read_text(encoding="utf-8"))
    try:
        benches = data["gates"][gate]["params"]["benches"]
    except (KeyError, TypeError):
        raise SystemExit(f"{gates_file}: gates.{gate}.params.benches not found") from None
    for entry in benches:
        if isinstance(entry, dict) and entry.get("name") == name:
            return entry, [str(p) for p in data.get("python_path") or []]
    raise SystemExit(f"{gates_file}: gate {gate} has no bench named {name!r}")


def main(argv: list[str] | None = None) -> int:
    """Record pairs until the cap; print where the file went."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gates", type=Path, default=Path("workflows/gates.yaml"))
    parser.add_argument("--gate", default="perf")
    parser.add_argument("--bench", default="kernels")
    parser.add_argument("--extra", action="append", default=[], help="an argument appended to the bench argv")
    parser.add_argument("--metrics-json", help="the metrics to read, as JSON (else the bench's own)")
    parser.add_argument("--ref", default="HEAD", help="the commit both sides run")
    parser.add_argument("--max-pairs", type=int, default=1000)
    parser.add_argument("--minutes", type=float, default=14.0)
    parser.add_argument("--run-timeout", type=float, default=300.0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)

    from bno_foundation.atomic import atomic_write
    from bno_quality_gates.gates.perf import extract, load_benches, run_bench

    repo = Path(_git(Path.cwd(), "rev-parse", "--show-toplevel"))
    raw, roots = _bench_from_gates(args.gates, args.gate, args.bench)
    raw = {**raw, "argv": [*raw["argv"], *args.extra]}
    if args.metrics_json:
        raw["metrics"] = json.loads(args.metrics_json)
    (bench,) = load_benches([raw])
    sha = _git(repo, "rev-parse", "--verify", f"{args.ref}^{{commit}}")
    tmp = Path(tempfile.mkdtemp(prefix="perf-record-"))
    trees = {side: tmp / side for side in ("base", "cand")}
    record: dict[str, Any] = {
        "format": FORMAT,
        "what": "perf gate benchmark, identical code on both sides (two copies of one commit), interleaved pairs",
        "command": " ".join(["python -m bno_quality_gates.gates.perf_record", *(argv or sys.argv[1:])]),
        "bench": {"name": bench.name, "argv": bench.argv,
                  "metrics": [{"name": m.name, "path": m.path, "better": m.better} for m in bench.metrics]},
        "code": {"ref": args.ref, "sha": sha, "python_path": roots},
        "machine": {"cpu": _cpu_model(), "cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version()},
        "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "pairs": [],
    }
    start = time.monotonic()
    signal.signal(signal.SIGTERM, _stop)
    try:
        for side, tree in trees.items():
            _export(repo, sha, tree)
            (tmp / f"ext-{side}").mkdir()
        while len(record["pairs"]) < args.max_pairs and time.monotonic() - start < args.minutes * 60:
            index = len(record["pairs"])
            order = ("base", "cand") if index % 2 == 0 else ("cand", "base")
            pair: dict[str, Any] = {"first": order[0], "load1_before": _load1(), "wall_s": {}}
            for side in order:
                t0 = time.monotonic()
                data, problem = run_bench(bench, trees[side], tmp / f"ext-{side}", args.run_timeout, roots)
                pair["wall_s"][side] = round(time.monotonic() - t0, 3)
                if data is None:
                    raise SystemExit(f"pair {index + 1} {side}: {problem}")
                pair[side] = {f"{m.name}[{key}]": value for m in bench.metrics
                              for key, value in extract(data, m.path).items()}
            pair["load1_after"] = _load1()
            record["pairs"].append(pair)
            record["finished"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
            record["wall_s"] = round(time.monotonic() - start, 1)
            atomic_write(args.out, json.dumps(record, indent=1, sort_keys=True) + "\n")
            print(f"pair {index + 1}: {pair['wall_s']} load {pair['load1_before']}", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{len(record['pairs'])} pairs in {time.monotonic() - start:.0f}s -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
