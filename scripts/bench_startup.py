"""Start-up cost of the command lines and of a no-op pre-commit hook, beside pre-commit's own no-op hook.

    .venv/bin/python scripts/bench_startup.py [--runs 15] [--json]

For each command: CPU seconds (user + system of the process and its children, from ``getrusage``) and
wall seconds over ``--runs`` runs (min / median / max), and the number of modules it imports. The hook
rows run the installed ``pre-commit`` hook script of two throw-away repositories, each with one staged
file that no gate (no pre-commit hook) matches: ours (``orchestrator hooks install``) and pre-commit's
(``pre-commit install`` with one local hook). The ratio row divides ours by pre-commit's, measured in
this run. Nothing is asserted: this prints what it measured.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
GIT_ENV = {"GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@localhost", "GIT_COMMITTER_NAME": "bench",
           "GIT_COMMITTER_EMAIL": "bench@localhost"}
COUNT_MODULES = (
    "import sys, importlib\n"
    "module = importlib.import_module(sys.argv[1])\n"
    "try:\n    module.main(['--help'])\nexcept SystemExit:\n    pass\n"
    "sys.stderr.write(f'MODULES {len(sys.modules)}\\n')\n"
)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(argv: list[str], cwd: Path, runs: int, env: dict[str, str]) -> dict[str, float]:
    """CPU and wall seconds of ``argv`` over ``runs`` runs (after one warm-up run)."""
    subprocess.run(argv, cwd=cwd, env=env, capture_output=True, check=True)
    cpu, wall = [], []
    for _ in range(runs):
        c0, w0 = _children_cpu(), time.perf_counter()
        subprocess.run(argv, cwd=cwd, env=env, capture_output=True, check=True)
        wall.append(time.perf_counter() - w0)
        cpu.append(_children_cpu() - c0)
    return {"cpu_min": min(cpu), "cpu_median": statistics.median(cpu), "cpu_max": max(cpu),
            "wall_min": min(wall), "wall_median": statistics.median(wall), "wall_max": max(wall)}


def modules_of(module: str) -> int:
    """Modules in ``sys.modules`` after ``module.main(['--help'])``."""
    proc = subprocess.run([sys.executable, "-c", COUNT_MODULES, module], capture_output=True, text=True, check=True)
    return int(proc.stderr.rsplit("MODULES ", 1)[1])


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, env={**os.environ, **GIT_ENV}, check=True, capture_output=True)


def _repo(root: Path, name: str) -> Path:
    repo = root / name
    (repo / "src").mkdir(parents=True)
    (repo / "src" / "app.py").write_text("print('app')\n")
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "init")
    (repo / "NOTES.txt").write_text("a staged file no hook is about\n")
    _git(repo, "add", "NOTES.txt")
    return repo


def hook_repos(root: Path) -> tuple[Path, Path]:
    """(ours, pre-commit's): each with its pre-commit hook installed and one unrelated file staged."""
    ours = _repo(root, "ours")
    gates = ours / "workflows"
    gates.mkdir()
    (gates / "gates.yaml").write_text(
        "version: 1\ngates:\n  lint:\n    command: [python, -m, ruff, check, src]\n    inputs: ['src/**']\n"
        "    hooks: [pre-commit]\n"
    )
    subprocess.run([str(BIN / "orchestrator"), "--repo", str(ours), "hooks", "install"], check=True,
                   capture_output=True)
    theirs = _repo(root, "theirs")
    (theirs / ".pre-commit-config.yaml").write_text(
        "repos:\n- repo: local\n  hooks:\n  - id: noop\n    name: noop\n    entry: 'true'\n    language: system\n"
        "    files: '^src/'\n"
    )
    _git(theirs, "add", ".pre-commit-config.yaml")
    subprocess.run([str(BIN / "pre-commit"), "install"], cwd=theirs, check=True, capture_output=True)
    return ours, theirs


def main(argv: list[str] | None = None) -> int:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    env = {k: v for k, v in os.environ.items() if k != "ORCHESTRATOR_REPO"}
    rows: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        root = Path(tmp)
        for program, module in (("orchestrator", "bno_orchestrator.cli"), ("bitnet", "bno_bitnet.cli"),
                                ("quality-gates", "bno_quality_gates.cli")):
            row = measure([str(BIN / program), "--help"], root, args.runs, env)
            row["modules"] = modules_of(module)
            rows[f"{program} --help"] = row
        rows["python -c pass"] = measure([sys.executable, "-c", "pass"], root, args.runs, env)
        if shutil.which("pre-commit", path=str(BIN)) is None:
            print("pre-commit is not installed in this environment: hook rows left out", file=sys.stderr)
        else:
            ours, theirs = hook_repos(root)
            hook_env = {**env, **GIT_ENV, "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}"}
            rows["no-op pre-commit hook: ours"] = measure([str(ours / ".git/hooks/pre-commit")], ours, args.runs,
                                                          hook_env)
            rows["no-op pre-commit hook: pre-commit 4"] = measure([str(theirs / ".git/hooks/pre-commit")], theirs,
                                                                  args.runs, hook_env)
            a, b = rows["no-op pre-commit hook: ours"], rows["no-op pre-commit hook: pre-commit 4"]
            rows["ratio ours / pre-commit (median)"] = {"cpu_median": a["cpu_median"] / b["cpu_median"],
                                                        "wall_median": a["wall_median"] / b["wall_median"]}
    if args.json:
        print(json.dumps({"runs": args.runs, "load_avg": os.getloadavg(), "rows": rows}, indent=2))
        return 0
    print(f"{args.runs} runs each; load average {os.getloadavg()[0]:.2f}")
    print(f"{'command':<40} {'CPU s min/median/max':>24} {'wall s min/median/max':>24} {'modules':>8}")
    for name, row in rows.items():
        if "cpu_min" in row:
            cpu = f"{row['cpu_min']:.3f}/{row['cpu_median']:.3f}/{row['cpu_max']:.3f}"
            wall = f"{row['wall_min']:.3f}/{row['wall_median']:.3f}/{row['wall_max']:.3f}"
        else:
            cpu, wall = f"{row['cpu_median']:.2f}x", f"{row['wall_median']:.2f}x"
        modules = str(int(row["modules"])) if "modules" in row else ""
        print(f"{name:<40} {cpu:>24} {wall:>24} {modules:>8}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
