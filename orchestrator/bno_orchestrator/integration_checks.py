"""The orchestrator's end-to-end check, run by the ``integration`` gate.

``orchestrator-flow``: in a fresh git repository, the ``orchestrator`` CLI initialises, adds and routes a
task, runs a gate DAG twice (the second run replays from the cache), records history, installs the hooks
(a commit goes through them), removes them, and exports the GitHub Actions workflow.

``python -m bno_orchestrator.integration_checks orchestrator-flow``
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

from bno_foundation.gate_program import (
    CheckFailed,
    checks_main,
    clean_env,
    main_guard,
    parse_json_output,
    run_module_cli,
)


def _orchestrator(args: list[str], cwd: Path) -> Any:
    return parse_json_output(run_module_cli("bno_orchestrator.cli", args, cwd, shown="orchestrator"))


def _run(args: list[str], cwd: Path) -> None:
    run_module_cli("bno_orchestrator.cli", args, cwd, shown="orchestrator")


TOY_GATES = """\
version: 1
gates:
  unit:
    command: [python, -c, "import pathlib; assert pathlib.Path('src/app.py').read_text()"]
    inputs: ["src/**"]
    hooks: [pre-commit, pre-push]
  package:
    command: [python, -c, "print('packaged')"]
    depends: [unit.passed]
    inputs: ["src/**"]
"""


def orchestrator_flow(tmp: Path, _tol: float) -> dict[str, Any]:
    """The orchestrator CLI end to end in a fresh repository."""
    repo = tmp / "project"
    (repo / "src").mkdir(parents=True)
    (repo / "src" / "app.py").write_text("print('app')\n")
    (repo / ".gitignore").write_text(".orchestrator/\n")
    env = {**os.environ, "GIT_AUTHOR_NAME": "gate", "GIT_AUTHOR_EMAIL": "gate@localhost",
           "GIT_COMMITTER_NAME": "gate", "GIT_COMMITTER_EMAIL": "gate@localhost"}
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "init"]):
        subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True)
    repo_flag = ["--repo", str(repo)]
    _run([*repo_flag, "init", "--json"], repo)
    (repo / "workflows" / "gates.yaml").write_text(TOY_GATES)
    added = _orchestrator([*repo_flag, "task", "add", "Add a fused kernel", "--type", "implementation",
                                        "--component", "source", "--json"], repo)
    routed = _orchestrator([*repo_flag, "route", "--json"], repo)
    first = _orchestrator([*repo_flag, "gates", "run", "--all", "--json"], repo)
    statuses = {r["gate"]: r["status"] for r in first["results"]}
    if statuses != {"unit": "passed", "package": "passed"} or first["exit_code"] != 0:
        raise CheckFailed(f"first gate run: {statuses}")
    second = _orchestrator([*repo_flag, "gates", "run", "--all", "--json"], repo)
    statuses = {r["gate"]: r["status"] for r in second["results"]}
    if statuses != {"unit": "cached", "package": "cached"}:
        raise CheckFailed(f"second gate run should replay from the cache: {statuses}")
    history = _orchestrator([*repo_flag, "gates", "history", "--json"], repo)
    if len(history) < 2:
        raise CheckFailed(f"history should list both runs: {history}")
    _run([*repo_flag, "hooks", "install", "--json"], repo)
    (repo / "src" / "app.py").write_text("print('app v2')\n")
    subprocess.run(["git", "add", "-A"], cwd=repo, env=env, check=True, capture_output=True)
    t0 = time.monotonic()
    commit = subprocess.run(["git", "commit", "-q", "-m", "v2"], cwd=repo, env={**env, **clean_env()},
                            capture_output=True, text=True, check=False)
    hook_seconds = time.monotonic() - t0
    if commit.returncode != 0:
        raise CheckFailed(f"commit through the pre-commit hook failed: {commit.stderr[-1000:]}")
    hooks = _orchestrator([*repo_flag, "hooks", "status", "--json"], repo)
    _run([*repo_flag, "hooks", "uninstall", "--json"], repo)
    out = repo / "ci.yml"
    _run([*repo_flag, "gates", "export", "--github-actions", "--output", str(out)], repo)
    import yaml

    workflow = yaml.safe_load(out.read_text())
    if workflow["jobs"]["gate-package"]["needs"] != ["gate-unit"]:
        raise CheckFailed("the exported workflow does not mirror the DAG")
    # the orchestrator's own store still works beside the gate tables in the same SQLite file
    board = _orchestrator([*repo_flag, "status", "--json"], repo)
    return {
        "board_ok": bool(board),
        "task": added.get("id") if isinstance(added, dict) else None,
        "routed": bool(routed),
        "hooks_installed": [h["state"] for h in hooks["hooks"]],
        "commit_through_hook_s": round(hook_seconds, 3),
    }


CHECKS = {"orchestrator-flow": orchestrator_flow}


def main(argv: list[str] | None = None) -> int:
    """Run the orchestrator's end-to-end check."""
    return checks_main(CHECKS, argv, description="the orchestrator end to end")


if __name__ == "__main__":
    main_guard(main)
