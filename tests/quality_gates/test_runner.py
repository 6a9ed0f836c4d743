"""The runner: every status, propagation, retries, the timeout kill of a process group, cache, records."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from bno_quality_gates.results import ResultsDB, RunRecord
from bno_quality_gates.runner import Runner, RunOptions
from bno_quality_gates.spec import load_gates
from tests.quality_gates.conftest import pyc, survivors, write_gates


def run(repo: Path, **kw: object) -> RunRecord:
    config = load_gates(repo / "workflows" / "gates.yaml")
    return Runner(config, RunOptions(repo=repo, **kw)).run()  # type: ignore[arg-type]


def by_gate(record: RunRecord) -> dict[str, str]:
    return {r.gate: r.status for r in record.results}


def test_every_status_and_the_verdict(repo: Path) -> None:
    write_gates(
        repo,
        f"""
        gates:
          ok:
            command: {pyc("print('fine')")}
            inputs: ["src/**"]
          bad:
            command: {pyc("import sys; sys.exit(1)")}
            required: false
          after-bad:
            command: {pyc("pass")}
            depends: [bad.passed]
            required: false
          missing:
            command: [definitely-not-a-program-xyz]
            required: false
          errs:
            command: {pyc("import sys; sys.exit(3)")}
            errored_exit_codes: [3]
            required: false
          gpu:
            command: {pyc("pass")}
            resources: {{gpu: 1}}
            required: false
        """,
    )
    os.environ["QUALITY_GATES_GPUS"] = "0"
    try:
        first = run(repo)
    finally:
        del os.environ["QUALITY_GATES_GPUS"]
    statuses = by_gate(first)
    assert statuses == {
        "ok": "passed",
        "bad": "failed",
        "after-bad": "omitted",
        "missing": "errored",
        "errs": "errored",
        "gpu": "skipped",
    }
    assert first.passed and first.exit_code == 0  # only non-required gates went wrong
    reasons = {r.gate: r.reason for r in first.results}
    assert "upstream bad failed" in reasons["after-bad"]
    assert "GPU" in reasons["gpu"]
    assert "cannot start" in reasons["missing"]
    second = run(repo, mode="only", only=["ok"])
    assert by_gate(second) == {"ok": "cached"}
    assert second.results[0].cached_from == first.run_id


def test_required_failure_propagates_and_fails_the_run(repo: Path) -> None:
    write_gates(
        repo,
        f"""
        gates:
          build:
            command: {pyc("import sys; sys.exit(2)")}
          test:
            command: {pyc("pass")}
            depends: [build]
          report:
            command: {pyc("pass")}
            depends: [test.passed]
          on-failure:
            command: {pyc("print('diagnose')")}
            depends: [build.failed]
            required: false
          cleanup:
            command: {pyc("pass")}
            depends: [build.always]
          after-completed:
            command: {pyc("pass")}
            depends: [build.completed]
        """,
    )
    record = run(repo)
    assert by_gate(record) == {
        "build": "failed",
        "test": "omitted",
        "report": "omitted",
        "on-failure": "passed",
        "cleanup": "passed",
        "after-completed": "passed",
    }
    assert not record.passed and record.exit_code == 1
    assert "upstream test omitted" in next(r.reason for r in record.results if r.gate == "report")


def test_failed_condition_is_skipped_when_upstream_passes(repo: Path) -> None:
    write_gates(
        repo,
        f"""
        gates:
          build:
            command: {pyc("pass")}
          on-failure:
            command: {pyc("pass")}
            depends: [build.failed]
        """,
    )
    record = run(repo, use_cache=False)
    assert by_gate(record) == {"build": "passed", "on-failure": "skipped"}
    assert record.results[1].skip_cause == "condition"
    assert record.exit_code == 0 and record.passed, "a gate whose condition is false is not wanted: still green"


def test_skip_env_is_honoured_and_recorded(repo: Path) -> None:
    write_gates(
        repo,
        f"""
        gates:
          slow:
            command: {pyc("import sys; sys.exit(1)")}
          fast:
            command: {pyc("pass")}
        """,
    )
    record = run(repo, skip=["slow"], use_cache=False)
    assert by_gate(record) == {"slow": "skipped", "fast": "passed"}
    assert record.skip_requested == ["slow"] and record.overridden == ["slow"]
    assert record.exit_code == 0 and not record.passed, "SKIP lets the hook through but the run is not green"
    with ResultsDB(repo / ".orchestrator" / "state.db") as db:
        stored = db.run(record.run_id)
    assert stored is not None and stored["overridden"] == ["slow"] and stored["passed"] is False


def _sleeper_with_grandchild(pids: Path) -> str:
    """Python code that starts a sleeping grandchild, writes ``"<own pid> <grandchild pid>"`` to ``pids``
    and sleeps."""
    return (
        "import subprocess, sys, time, os; "
        "g = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
        f"open({str(pids)!r}, 'w').write(str(os.getpid()) + ' ' + str(g.pid)); time.sleep(60)"
    )


def _recorded_pids(pids: Path) -> list[int]:
    """The two pids :func:`_sleeper_with_grandchild` wrote."""
    own, grandchild = (int(p) for p in pids.read_text().split())
    return [own, grandchild]


def test_timeout_kills_the_whole_process_group(repo: Path, tmp_path: Path) -> None:
    pids = tmp_path / "pids.txt"
    child = _sleeper_with_grandchild(pids)
    parent = (
        "import subprocess, sys, time; "
        f"subprocess.Popen([sys.executable, '-c', {child!r}]); time.sleep(60)"
    )
    write_gates(
        repo,
        f"""
        defaults: {{term_grace: 0.5}}
        gates:
          hang:
            command: {pyc(parent)}
            timeout: 1.5
        """,
    )
    t0 = time.monotonic()
    record = run(repo, use_cache=False)
    assert time.monotonic() - t0 < 30, "the runner must not wait for the sleeping processes"
    result = record.results[0]
    assert result.status == "failed" and "timed out" in result.reason
    alive = survivors(_recorded_pids(pids))
    assert not alive, f"processes survived the timeout: {alive}"


def test_retries_only_transient_failures(repo: Path, tmp_path: Path) -> None:
    counter = tmp_path / "count"
    flaky = (
        f"import pathlib, sys; p = pathlib.Path({str(counter)!r}); n = int(p.read_text()) if p.exists() else 0; "
        "p.write_text(str(n + 1)); sys.exit(75 if n == 0 else 0)"
    )
    write_gates(
        repo,
        f"""
        gates:
          flaky:
            command: {pyc(flaky)}
            retries: 2
            transient: {{exit_codes: [75]}}
          broken:
            command: {pyc("import sys; print('real bug'); sys.exit(1)")}
            retries: 2
            transient: {{exit_codes: [75], patterns: ["Connection reset"]}}
          network:
            command: {pyc("import sys; print('Connection reset by peer'); sys.exit(1)")}
            retries: 1
            transient: {{patterns: ["Connection reset"]}}
            required: false
        """,
    )
    record = run(repo, use_cache=False)
    results = {r.gate: r for r in record.results}
    assert (results["flaky"].status, results["flaky"].attempts) == ("passed", 2)
    assert (results["broken"].status, results["broken"].attempts) == ("failed", 1)
    assert (results["network"].status, results["network"].attempts) == ("failed", 2)


def test_cache_hit_miss_and_inputs(repo: Path) -> None:
    metrics = pyc("import json; print('GATE-METRICS ' + json.dumps({'coverage': 0.9, 'counts': {'passed': 3}}))")
    write_gates(
        repo,
        f"""
        gates:
          core:
            command: {metrics}
            inputs: ["src/**"]
        """,
    )
    first = run(repo)
    assert by_gate(first) == {"core": "passed"}
    assert first.results[0].metrics == {"coverage": 0.9} and first.results[0].counts == {"passed": 3}
    second = run(repo)
    assert by_gate(second) == {"core": "cached"}
    assert second.results[0].key == first.results[0].key
    assert second.results[0].counts == {"passed": 3}, "counts and metrics are replayed"
    log = Path(second.run_dir or "") / "logs" / "core.log"
    assert "replay" in log.read_text() and "GATE-METRICS" in log.read_text(), "the log is replayed"
    (repo / "docs" / "guide.md").write_text("# changed, but not an input\n")
    assert by_gate(run(repo)) == {"core": "cached"}
    (repo / "src" / "core" / "a.py").write_text("A = 2\n")
    third = run(repo)
    assert by_gate(third) == {"core": "passed"} and third.results[0].key != first.results[0].key
    assert by_gate(run(repo, use_cache=False)) == {"core": "passed"}


def test_failures_are_not_cached(repo: Path) -> None:
    write_gates(
        repo,
        f"""
        gates:
          bad:
            command: {pyc("import sys; sys.exit(1)")}
        """,
    )
    assert by_gate(run(repo)) == {"bad": "failed"}
    assert by_gate(run(repo)) == {"bad": "failed"}


def test_machine_bound_results_are_not_reused_across_machines(repo: Path) -> None:
    write_gates(
        repo,
        f"""
        gates:
          perf:
            command: {pyc("pass")}
            machine_bound: true
        """,
    )
    config = load_gates(repo / "workflows" / "gates.yaml")
    here = Runner(config, RunOptions(repo=repo))
    assert by_gate(here.run()) == {"perf": "passed"}
    assert by_gate(Runner(config, RunOptions(repo=repo)).run()) == {"perf": "cached"}
    elsewhere = Runner(config, RunOptions(repo=repo))
    elsewhere.machine = "another-machine"
    assert by_gate(elsewhere.run()) == {"perf": "passed"}, "another machine never replays a perf result"


def test_upstream_key_changes_invalidate_downstream(repo: Path) -> None:
    write_gates(
        repo,
        f"""
        gates:
          build:
            command: {pyc("pass")}
            inputs: ["src/**"]
          docs:
            command: {pyc("pass")}
            inputs: ["docs/**"]
            depends: [build]
        """,
    )
    run(repo)
    (repo / "src" / "core" / "a.py").write_text("A = 3\n")
    assert by_gate(run(repo)) == {"build": "passed", "docs": "passed"}
    assert by_gate(run(repo)) == {"build": "cached", "docs": "cached"}


def test_records_junit_and_summary(repo: Path) -> None:
    write_gates(
        repo,
        f"""
        gates:
          good:
            command: {pyc("pass")}
          bad:
            command: {pyc("import sys; print('boom'); sys.exit(1)")}
            required: false
        """,
    )
    record = run(repo)
    run_dir = Path(record.run_dir or "")
    assert json.loads((run_dir / "run.json").read_text())["run_id"] == record.run_id
    junit = (run_dir / "junit.xml").read_text()
    assert 'name="bad"' in junit and '<skipped message="optional gate failed' in junit and "boom" in junit
    summary = (run_dir / "summary.md").read_text()
    assert "| good | passed |" in summary and "| bad | failed |" in summary
    assert not list(run_dir.parent.glob(".*.partial")), "no partial run directory is left"
    with ResultsDB(repo / ".orchestrator" / "state.db") as db:
        assert db.schema_version == 1
        runs = db.runs(5)
        assert runs[0]["run_id"] == record.run_id and runs[0]["statuses"] == {"passed": 1, "failed": 1}
        history = db.history("bad")
        assert history[0]["status"] == "failed" and history[0]["attempts"] == 1
        assert db.pass_rates()["good"] == {"passed": 1}


def test_parallel_gates_overlap(repo: Path, tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    code = (
        f"import os, pathlib, time, sys; d = pathlib.Path({str(marks)!r}); (d / sys.argv[1]).touch(); "
        "t = time.monotonic()\n"
        "while time.monotonic() - t < 10 and len(list(d.iterdir())) < 2: time.sleep(0.02)\n"
        "sys.exit(0 if len(list(d.iterdir())) >= 2 else 1)"
    )
    write_gates(
        repo,
        f"""
        defaults: {{workers: 2}}
        gates:
          one:
            command: [python, -c, {json.dumps(code)}, one]
          two:
            command: [python, -c, {json.dumps(code)}, two]
        """,
    )
    record = run(repo, use_cache=False)
    assert by_gate(record) == {"one": "passed", "two": "passed"}, "both gates ran at the same time"


def test_exclusive_gate_runs_alone(repo: Path, tmp_path: Path) -> None:
    log = tmp_path / "log"
    code = (
        f"import sys, time, pathlib; p = pathlib.Path({str(log)!r}); "
        "p.open('a').write(sys.argv[1] + ' start\\n'); time.sleep(0.3); p.open('a').write(sys.argv[1] + ' end\\n')"
    )
    write_gates(
        repo,
        f"""
        defaults: {{workers: 3}}
        gates:
          a:
            command: [python, -c, {json.dumps(code)}, a]
          perf:
            command: [python, -c, {json.dumps(code)}, perf]
            exclusive: true
          b:
            command: [python, -c, {json.dumps(code)}, b]
        """,
    )
    run(repo, use_cache=False)
    lines = log.read_text().split("\n")
    start = lines.index("perf start")
    assert lines[start + 1] == "perf end", f"something ran beside the exclusive gate: {lines}"


def test_unknown_only_gate_is_a_user_error(repo: Path) -> None:
    from bno_quality_gates.errors import GateError

    write_gates(repo, f"gates:\n  a:\n    command: {pyc('pass')}\n")
    with pytest.raises(GateError, match="unknown gate 'nope'"):
        run(repo, mode="only", only=["nope"])


def test_sigterm_to_the_runner_kills_running_gates(repo: Path, tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys

    pids = tmp_path / "pids.txt"
    child = _sleeper_with_grandchild(pids)
    write_gates(repo, f"gates:\n  hang:\n    command: {pyc(child)}\n    timeout: 120\n")
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen(
        [sys.executable, "-m", "bno_orchestrator.cli", "--repo", str(repo), "gates", "run", "--all", "--quiet"],
        env={**os.environ, "PYTHONPATH": str(root)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 30
    while not pids.exists() or len(pids.read_text().split()) < 2:
        assert time.monotonic() < deadline, "the gate never started"
        time.sleep(0.05)
    gate_pids = _recorded_pids(pids)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) != 0
    alive = survivors(gate_pids)
    assert not alive, f"gate processes survived the runner: {alive}"
    runs = repo / ".orchestrator" / "gates" / "runs"
    assert not list(runs.glob(".*.partial")), "no half-written run directory"


def test_gate_tables_share_the_orchestrator_store(repo: Path) -> None:
    """Both components keep their own schema_version row in the one SQLite file, in either opening order."""
    import sqlite3

    from bno_orchestrator.paths import store_path
    from bno_orchestrator.store import Store

    write_gates(repo, f"gates:\n  a:\n    command: {pyc('pass')}\n")
    record = run(repo)
    store = Store.open(repo)
    try:
        assert store.tasks() == []
    finally:
        store.close()
    with ResultsDB(store_path(repo)) as db:
        assert db.run(record.run_id) is not None and db.schema_version == 1
    with sqlite3.connect(store_path(repo)) as conn:
        rows = dict(conn.execute("SELECT component, version FROM schema_version").fetchall())
    assert set(rows) == {"orchestrator", "quality-gates"}


def test_base_dependent_gates_are_keyed_by_the_base(repo: Path) -> None:
    from tests.quality_gates.conftest import git

    write_gates(
        repo,
        f"""
        gates:
          plain:
            command: {pyc("pass")}
            inputs: ["src/**"]
          diffcov:
            command: {pyc("pass")}
            inputs: ["src/**"]
            uses_base: true
        """,
    )
    assert by_gate(run(repo, mode="all", base="HEAD")) == {"plain": "passed", "diffcov": "passed"}
    assert by_gate(run(repo, mode="all", base="HEAD")) == {"plain": "cached", "diffcov": "cached"}
    (repo / "docs" / "guide.md").write_text("# not an input\n")
    git(repo, "commit", "-q", "-am", "docs")  # HEAD moves: the same inputs, another change under test
    assert by_gate(run(repo, mode="all", base="HEAD")) == {"plain": "cached", "diffcov": "passed"}


def test_main_checkout_of_a_linked_worktree_is_the_main_tree(tmp_path: Path) -> None:
    """`{main}` in a gate command names the main checkout, also when the gates test a task's worktree."""
    import subprocess

    from bno_quality_gates.runner import main_checkout

    main = tmp_path / "main"
    main.mkdir()
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@e"}
    for args in (["init", "-q", "-b", "main"], ["commit", "-q", "--allow-empty", "-m", "x"],
                 ["worktree", "add", "-q", str(tmp_path / "wt"), "-b", "task"]):
        subprocess.run(["git", *args], cwd=main, check=True, env={**os.environ, **env})
    assert main_checkout(tmp_path / "wt").resolve() == main.resolve()
    assert main_checkout(main).resolve() == main.resolve()
    assert main_checkout(tmp_path) == tmp_path  # not a repository: itself
