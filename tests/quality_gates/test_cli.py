"""``orchestrator gates ...`` and ``orchestrator hooks ...``: exit codes, JSON, the GitHub Actions export."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from bno_orchestrator.cli import main
from bno_quality_gates.export_actions import job_id, workflow
from bno_quality_gates.spec import load_gates
from tests.quality_gates.conftest import git, pyc, write_gates

GATES = f"""
gates:
  build:
    command: {pyc("print('built')")}
    inputs: ["src/**"]
  test:
    command: {pyc("pass")}
    depends: [build.passed]
    components: [core]
    hooks: [pre-commit, pre-push]
  gpu-bench:
    command: {pyc("pass")}
    depends: [test]
    resources: {{gpu: 1}}
    required: false
  triage:
    command: {pyc("pass")}
    depends: [test.failed]
    required: false
"""


def cli(repo: Path, *args: str) -> int:
    return main(["--repo", str(repo), *args])


@pytest.fixture(autouse=True)
def _no_gpu_no_skip(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUALITY_GATES_GPUS", "0")
    monkeypatch.delenv("SKIP", raising=False)


def test_run_json_exit_codes_history_and_status(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_gates(repo, GATES)
    assert cli(repo, "gates", "run", "--all", "--json") == 0
    record = json.loads(capsys.readouterr().out)
    assert {r["gate"]: r["status"] for r in record["results"]} == {
        "build": "passed", "test": "passed", "gpu-bench": "skipped", "triage": "skipped",
    }
    assert record["passed"] is True and record["exit_code"] == 0
    assert cli(repo, "gates", "run", "--only", "test", "--json") == 0
    again = json.loads(capsys.readouterr().out)
    assert {r["gate"]: r["status"] for r in again["results"]} == {"build": "cached", "test": "cached"}
    assert cli(repo, "gates", "history", "--json") == 0
    runs = json.loads(capsys.readouterr().out)
    assert [r["run_id"] for r in runs] == [again["run_id"], record["run_id"]]
    assert cli(repo, "gates", "history", "--gate", "build", "--json") == 0
    assert [r["status"] for r in json.loads(capsys.readouterr().out)] == ["cached", "passed"]
    assert cli(repo, "gates", "history", "--run", "latest", "--json") == 0
    assert json.loads(capsys.readouterr().out)["run_id"] == again["run_id"]
    assert cli(repo, "gates", "history", "--run", "latest") == 0
    table = capsys.readouterr().out
    assert not table.lstrip().startswith("{"), "a readable table, not JSON, without --json"
    assert f"gates run {again['run_id']}" in table and "mode: only" in table
    assert "│ build " in table and "cached" in table and "PASSED" in table
    assert cli(repo, "gates", "status", "--json") == 0
    status = {g["gate"]: g for g in json.loads(capsys.readouterr().out)["gates"]}
    assert status["build"]["cache"] == "fresh" and status["triage"]["cache"] == "stale"
    assert cli(repo, "gates", "history", "--run", "nope") == 2


def test_required_failure_exits_1_and_table_output(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_gates(repo, GATES.replace(pyc("print('built')"), pyc("import sys; sys.exit(1)")))
    assert cli(repo, "gates", "run", "--all") == 1
    out = capsys.readouterr()
    assert "FAILED" in out.out and "omitted" in out.out
    assert "failed" in out.err, "live progress lines go to stderr"


def test_bad_config_and_usage_exit_2(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_gates(repo, "gates:\n  a:\n    command: [x]\n    depends: [ghost]\n")
    assert cli(repo, "gates", "run", "--all") == 2
    assert "gates.yaml:4:" in capsys.readouterr().err
    write_gates(repo, GATES)
    assert cli(repo, "gates", "run", "--only", "ghost") == 2
    assert cli(repo, "gates", "run", "--all", "--no-deps") == 2
    with pytest.raises(SystemExit) as info:
        cli(repo, "gates", "run", "--all", "--hook", "pre-commit")
    assert info.value.code == 2


def test_affected_default_and_base(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_gates(repo, GATES)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "gates")
    assert cli(repo, "gates", "run", "--json") == 0
    assert json.loads(capsys.readouterr().out)["results"] == [], "nothing changed, nothing runs"
    (repo / "docs" / "guide.md").write_text("# docs only\n")
    assert cli(repo, "gates", "run", "--json") == 0
    assert json.loads(capsys.readouterr().out)["results"] == []
    (repo / "src" / "core" / "a.py").write_text("A = 9\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "core")
    assert cli(repo, "gates", "run", "--base", "HEAD~1", "--json") == 0
    ran = {r["gate"] for r in json.loads(capsys.readouterr().out)["results"]}
    assert ran == {"build", "test", "gpu-bench", "triage"}
    assert cli(repo, "gates", "run", "--base", "0" * 40, "--json") == 0, "git's no-commit sha means no base"
    assert json.loads(capsys.readouterr().out)["base"] is None


def test_graph_outputs(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_gates(repo, GATES)
    assert cli(repo, "gates", "graph", "--json") == 0
    graph = json.loads(capsys.readouterr().out)
    assert graph["levels"] == [["build"], ["test"], ["gpu-bench", "triage"]]
    assert {"from": "test", "to": "triage", "condition": "failed"} in graph["edges"]
    assert cli(repo, "gates", "graph", "--dot") == 0
    assert '"test" -> "triage" [label="failed"]' in capsys.readouterr().out


def test_github_actions_export_mirrors_the_dag(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_gates(repo, GATES)
    assert cli(repo, "gates", "export", "--github-actions", "--gpu-label", "self-hosted", "--gpu-label", "a100") == 0
    path = repo / ".github" / "workflows" / "gates.yml"
    data = yaml.safe_load(path.read_text())
    jobs = data["jobs"]
    assert set(jobs) == {"gate-build", "gate-test", "gate-gpu-bench", "gate-triage", "gates-verdict"}
    assert "needs" not in jobs["gate-build"] and "if" not in jobs["gate-build"]
    assert jobs["gate-test"]["needs"] == ["gate-build"] and jobs["gate-test"]["if"] == "${{ !cancelled() }}"
    assert jobs["gate-gpu-bench"]["runs-on"] == ["self-hosted", "a100"]
    assert jobs["gate-build"]["runs-on"] == "ubuntu-latest"
    assert not any("continue-on-error" in job for job in jobs.values()), "job outputs carry the status"
    decision = jobs["gate-triage"]["env"]["GATE_DECISION"]
    assert "needs.gate-test.outputs.status == 'failed'" in decision and "'skipped'" in decision
    assert set(jobs["gates-verdict"]["needs"]) == {"gate-build", "gate-test", "gate-gpu-bench", "gate-triage"}
    run_step = next(s for s in jobs["gate-test"]["steps"] if s.get("id") == "gate")["run"]
    assert 'orchestrator gates run --only test --no-deps --base "$GATE_BASE"' in run_step
    assert data["on"]["pull_request"] == {} and "push" in data["on"]
    config = load_gates(repo / "workflows" / "gates.yaml")
    assert workflow(config)["jobs"][job_id("build")]["timeout-minutes"] >= 1


def test_shipped_dag_exports(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    data = workflow(load_gates(root / "workflows" / "gates.yaml"))
    assert data["jobs"]["gate-test"]["needs"] == ["gate-build"]
    assert set(data["jobs"]["gate-integration"]["needs"]) == {"gate-build", "gate-test"}


def test_hooks_cli(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(repo, "hooks", "install", "--json") == 0
    states = {h["name"]: h["state"] for h in json.loads(capsys.readouterr().out)["hooks"]}
    assert states == {"pre-commit": "installed", "pre-push": "installed"}
    assert cli(repo, "hooks", "status") == 0
    assert "core.hooksPath: (not set)" in capsys.readouterr().out
    assert cli(repo, "hooks", "uninstall", "--json") == 0
    states = {h["name"]: h["state"] for h in json.loads(capsys.readouterr().out)["hooks"]}
    assert states == {"pre-commit": "absent", "pre-push": "absent"}
    git(repo, "config", "core.hooksPath", "githooks")
    assert cli(repo, "hooks", "install") == 2
    assert "core.hooksPath" in capsys.readouterr().err


def test_a_failing_gate_shows_the_tail_of_its_output(repo: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """Both command lines print the last 30 lines of a failing gate's output, as text: control characters
    made visible, markup left as it is."""
    from bno_quality_gates.cli import main as quality_gates

    script = tmp_path / "noisy.py"
    script.write_text(
        "import sys\n"
        "for i in range(40): print(f'output line {i}')\n"
        "print('\\x1b[31mred\\x1b[0m [bold red]not markup[/] \\x07bell')\n"
        "sys.exit(1)\n"
    )
    write_gates(repo, f"gates:\n  noisy:\n    command: [python, {script}]\n  quiet-pass:\n    command: {pyc('pass')}\n")
    for run in (lambda: cli(repo, "gates", "run", "--all"),
                lambda: quality_gates(["--repo", str(repo), "run", "--all", "--quiet"])):
        assert run() == 1
        err = capsys.readouterr().err
        assert "noisy failed" in err and "last 30 of" in err
        assert "output line 39" in err and "output line 11" in err and "output line 10\n" not in err
        assert "\\x1b[31mred\\x1b[0m [bold red]not markup[/] \\x07bell" in err
        assert "\x1b[31m" not in err and "\x07" not in err, "no raw control character reaches the terminal"
        assert "quiet-pass" not in err.split("noisy failed", 1)[1], "only failing gates show their output"
