"""The gate programs on toy inputs (perf, test helpers) and the docs gate for real on this repository."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bno_quality_gates.gates.perf import Samples, extract, parse_json_output
from bno_quality_gates.gates.test import changed_lines, component_of_test, diff_coverage
from bno_quality_gates.junit import parse_junit
from bno_quality_gates.runner import parse_metrics
from tests.quality_gates.conftest import git

ROOT = Path(__file__).resolve().parents[2]

BENCH = """\
import json, pathlib, random
cost = float(pathlib.Path("speed.txt").read_text())
print("warming up")
print(json.dumps({"results": [{"ours_s": cost * random.uniform(0.99, 1.01)}], "rate": 1.0 / cost}))
"""


def _perf(repo: Path, tmp: Path, *extra: str) -> tuple[int, dict[str, object], str]:
    benches = [{"name": "toy", "argv": ["python", "bench.py"],
                "metrics": [{"name": "t", "path": "results.*.ours_s", "better": "lower"},
                            {"name": "rate", "path": "rate", "better": "higher"}]}]
    env = {**os.environ, "GATE_REPO": str(repo), "GATE_WORKDIR": str(repo), "GATE_OUT": str(tmp),
           "GATE_PARAMS": json.dumps({"benches": benches, "min_pairs": 10, "max_pairs": 10, "alpha": 0.05,
                                      "threshold": 0.10}),
           "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "bno_quality_gates.gates.perf", *extra], cwd=repo, env=env,
                          capture_output=True, text=True, timeout=120)
    return proc.returncode, parse_metrics(proc.stdout), proc.stdout + proc.stderr


def test_perf_gate_interleaves_and_judges_the_median_interval(repo: Path, tmp_path: Path) -> None:
    (repo / "bench.py").write_text(BENCH)
    (repo / "speed.txt").write_text("1.0\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "bench")
    code, metrics, log = _perf(repo, tmp_path)
    assert code == 0 and metrics["base"] == "HEAD~1" and "no baseline" in log, "a clean tree compares to HEAD~1"
    code, metrics, log = _perf(repo, tmp_path, "--base", "HEAD")
    assert code == 0, log
    toy = metrics["benches"]["toy"]  # type: ignore[index]
    assert set(toy) == {"t[results.0.ours_s]", "rate[rate]"}, log
    assert len(toy["t[results.0.ours_s]"]["pair_ratios"]) == 10 and toy["rate[rate]"]["decision"] == "pass"
    assert metrics["variance_ok"] is True and metrics["max_observed_cv"] < 0.05  # type: ignore[operator]
    assert "pair 1 base" in log and "pair 2 cand" in log and log.index("pair 2 cand") < log.index("pair 2 base")
    (repo / "speed.txt").write_text("1.5\n")  # the candidate (working tree) is 50% slower than HEAD
    code, metrics, log = _perf(repo, tmp_path)
    assert code == 1, log
    assert "regression" in str(metrics["reason"]) and "interval [+" in str(metrics["reason"])
    toy = metrics["benches"]["toy"]  # type: ignore[index]
    assert toy["t[results.0.ours_s]"]["median_ratio"] > 1.4 and toy["rate[rate]"]["median_ratio"] > 1.4
    assert toy["t[results.0.ours_s]"]["interval"][0] > 1.10, "the whole interval lies above the threshold"
    assert len(toy["t[results.0.ours_s]"]["pair_ratios"]) == 10
    assert not (repo / ".git" / "worktrees").exists() or not list((repo / ".git" / "worktrees").iterdir())
    (repo / "speed.txt").write_text("0.5\n")  # faster is fine
    assert _perf(repo, tmp_path)[0] == 0


def test_perf_gate_without_a_baseline_bench(repo: Path, tmp_path: Path) -> None:
    (repo / "bench.py").write_text(BENCH)  # uncommitted: the baseline (HEAD) has no bench
    (repo / "speed.txt").write_text("1.0\n")
    code, metrics, log = _perf(repo, tmp_path)
    assert code == 0, log
    assert "no baseline" in str(metrics["notes"])


def test_perf_helpers() -> None:
    assert extract({"a": {"x": {"t": 2}, "y": {"t": 3}}}, "a.*.t") == {"a.x.t": 2.0, "a.y.t": 3.0}
    assert extract({"a": [1, True, None]}, "a.*") == {"a.0": 1.0}
    assert parse_json_output('log line\n{"a": 1}\n') == {"a": 1}
    assert Samples("lower", base=[1.0, 1.0, 2.0], cand=[1.0, 2.0, 0.0]).ratios() == [1.0, 2.0], "no ratio for 0"
    assert Samples("higher", base=[2.0], cand=[1.0]).ratios() == [2.0]


def test_diff_coverage_helpers() -> None:
    diff = "+++ b/pkg/a.py\n@@ -1,0 +3,2 @@\n+x\n+y\n+++ b/pkg/b.py\n@@ -5 +5 @@\n-old\n+new\n+++ /dev/null\n"
    changed = changed_lines(diff)
    assert changed == {"pkg/a.py": {3, 4}, "pkg/b.py": {5}}
    result = diff_coverage(changed, {"pkg/a.py": {3: 1, 4: 0}, "pkg/c.py": {1: 0}})
    assert (result["lines"], result["covered"], result["ratio"]) == (2, 1, 0.5)
    assert result["uncovered"] == {"pkg/a.py": [4]}
    components = {"bitnet-quant": ["bitnet/quant.py"], "kernels": ["kernels/**"], "tests": ["tests/**"]}
    assert component_of_test("tests/bitnet/test_quant.py", components, {}) == "bitnet-quant"
    assert component_of_test("tests/bitnet/test_quant_edge.py", components, {}) == "bitnet-quant"
    assert component_of_test("tests/kernels/test_anything.py", components, {}) == "kernels"
    assert component_of_test("tests/test_misc.py", components, {}) == "tests"
    assert component_of_test("tests/x/test_y.py", components, {"tests/x/**": "kernels"}) == "kernels"


def test_junit_counts_per_component(tmp_path: Path) -> None:
    xml = tmp_path / "j.xml"
    xml.write_text(
        '<testsuites><testsuite name="pytest">'
        '<testcase classname="tests.kernels.test_a" name="t1" file="tests/kernels/test_a.py"/>'
        '<testcase classname="tests.kernels.test_a" name="t2" file="tests/kernels/test_a.py"><failure message="x"/></testcase>'
        '<testcase classname="tests.bitnet.test_quant" name="t3"><skipped/></testcase>'
        '<testcase classname="tests.bitnet.test_quant.TestX" name="t4"><error message="e"/></testcase>'
        "</testsuite></testsuites>"
    )
    total, per = parse_junit(xml, lambda f: "kernels" if f.startswith("tests/kernels") else f)
    assert total.as_dict() == {"passed": 1, "failed": 1, "errors": 1, "skipped": 1, "total": 4}
    assert per["kernels"].as_dict()["failed"] == 1
    assert per["tests/bitnet/test_quant.py"].as_dict() == {"passed": 0, "failed": 0, "errors": 1, "skipped": 1, "total": 2}
    assert total.failures == ["tests.kernels.test_a::t2", "tests.bitnet.test_quant.TestX::t4"]


def test_docs_gate_runs_for_real_on_this_repo(tmp_path: Path) -> None:
    """The docs gate against this repository's packages, with the params of its own gates file."""
    from bno_quality_gates.spec import load_gates

    params = load_gates(ROOT / "workflows" / "gates.yaml").gates["docs"].params
    env = {**os.environ, "GATE_WORKDIR": str(ROOT), "GATE_REPO": str(ROOT), "GATE_OUT": str(tmp_path),
           "GATE_PARAMS": json.dumps(params)}
    proc = subprocess.run([sys.executable, "-m", "bno_quality_gates.gates.docs"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    metrics = parse_metrics(proc.stdout)
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    assert set(metrics["docstring_per_package"]) == set(params["packages"])
    assert 0.0 < metrics["docstring_coverage"] <= 1.0
    assert metrics["readme_commands_checked"] >= 2, "the README's make commands are checked"
    assert metrics["doctest_examples"] >= 3, "this package's own doctests ran"
    assert metrics["docstring_per_package"]["quality_gates/bno_quality_gates"] == 1.0
    assert (proc.returncode == 0) == ("reason" not in metrics), proc.stdout


def test_docs_gate_readme_command_checks(tmp_path: Path) -> None:
    from bno_quality_gates.gates.docs import check_cli_command, check_readme, docstring_coverage

    clis = {"orchestrator": "bno_orchestrator.cli"}
    assert check_cli_command("orchestrator", ["gates", "run", "--all", "--base", "main"], clis) is None
    assert "no subcommand 'launch'" in str(check_cli_command("orchestrator", ["gates", "launch"], clis))
    assert "no option --bogus" in str(check_cli_command("orchestrator", ["gates", "run", "--bogus"], clis))
    assert check_cli_command("orchestrator", ["--repo", "x", "hooks", "install"], clis) is None
    (tmp_path / "Makefile").write_text("demo: setup\n\tbash x\nsetup:\n\ttrue\n")
    (tmp_path / "README.md").write_text(
        "# x\n```bash\nmake demo   # run\n$ orchestrator gates graph --dot\nFOO=1 make missing && ls -l\n```\n"
        "```python\nmake not-checked\n```\n"
    )
    checked, problems, unchecked = check_readme(tmp_path, ["README.md"], clis)
    assert len(checked) == 3 and len(unchecked) == 1, (checked, unchecked)
    assert problems == ["README.md:5: make missing: no Makefile target missing"]
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text('"""Doc."""\n')
    (pkg / "mod.py").write_text('"""Doc."""\ndef f():\n    """Doc."""\ndef g():\n    pass\nclass C:\n    def m(self):\n'
                                "        pass\n    def _p(self):\n        pass\n")
    (pkg / "_private.py").write_text("def h():\n    pass\n")
    report = docstring_coverage(tmp_path, ["pkg"])["pkg"]
    assert sorted(report.missing) == ["pkg.mod.C", "pkg.mod.C.m", "pkg.mod.g"] and report.documented == 3


def test_test_gate_counts_coverage_and_staged_diff_coverage(repo: Path) -> None:
    """The test gate through the runner on a toy project: JUnit counts per component, line coverage, and a
    staged change without tests failing diff coverage ("new features must include tests")."""
    from bno_quality_gates.runner import Runner, RunOptions
    from bno_quality_gates.spec import load_gates
    from tests.quality_gates.conftest import write_gates

    (repo / "src" / "core" / "__init__.py").write_text("")
    (repo / "src" / "__init__.py").write_text("")
    (repo / "src" / "core" / "calc.py").write_text("def add(a, b):\n    return a + b\n")
    (repo / "tests").mkdir()
    (repo / "tests" / "test_calc.py").write_text(
        "import pytest\nfrom src.core.calc import add\n\ndef test_add():\n    assert add(1, 2) == 3\n\n"
        "@pytest.mark.skip(reason='toy')\ndef test_skipped():\n    pass\n"
    )
    write_gates(
        repo,
        """
        gates:
          test:
            command: [python, -m, bno_quality_gates.gates.test]
            inputs: ["src/**", "tests/**"]
            errored_exit_codes: [2, 3]
            hooks: [pre-commit]
            params:
              paths: [tests]
              sources: [src]
              diff_coverage_min: 0.8
              test_map: {"tests/**": core}
              pytest_args: ["-o", "addopts="]
        """,
    )
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "toy project")
    config = load_gates(repo / "workflows" / "gates.yaml")

    def run_hook() -> tuple[str, dict[str, object], dict[str, object], str]:
        record = Runner(config, RunOptions(repo=repo, mode="hook", hook="pre-commit", source="index")).run()
        result = record.results[0]
        return result.status, result.counts, result.metrics, result.reason

    (repo / "src" / "core" / "calc.py").write_text(
        "def add(a, b):\n    return a + b\n\n\ndef mul(a, b):\n    product = a * b\n    return product\n"
    )
    git(repo, "add", "src/core/calc.py")
    status, counts, metrics, reason = run_hook()
    assert status == "failed" and "diff coverage" in reason and "need tests" in reason, reason
    assert counts == {"passed": 1, "failed": 0, "errors": 0, "skipped": 1, "total": 2}
    assert metrics["per_component"] == {"core": counts}
    assert metrics["diff_lines"] == 3 and metrics["diff_coverage"] == 0.3333, "the def line runs on import"
    assert metrics["diff_uncovered"] == {"src/core/calc.py": [6, 7]}
    assert 0 < metrics["line_coverage_per_component"]["core"] < 1  # type: ignore[index]
    (repo / "tests" / "test_calc.py").write_text(
        (repo / "tests" / "test_calc.py").read_text()
        + "\nfrom src.core.calc import mul\n\ndef test_mul():\n    assert mul(2, 3) == 6\n"
    )
    git(repo, "add", "tests/test_calc.py")
    status, counts, metrics, reason = run_hook()
    assert status == "passed", reason
    assert metrics["diff_coverage"] == 1.0 and counts["passed"] == 2
