"""gates.yaml validation: every error names the file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from bno_foundation.errors import ConfigError
from bno_quality_gates.dag import build_graph, levels, order, to_dot, with_dependents, with_upstream
from bno_quality_gates.spec import parse_dependency, parse_gates

GOOD = """\
gates:
  build:
    command: [python, -c, pass]
  test:
    command: [python, -c, pass]
    depends: [build.passed]
  docs:
    commands: [[python, -c, pass], [python, -c, pass]]
    depends: [build]
  report:
    command: [python, -c, pass]
    depends: [test.completed, docs.always]
"""


def test_good_file_builds_a_graph() -> None:
    config = parse_gates(GOOD, "g.yaml")
    graph = build_graph(config)
    assert order(graph) == ["build", "docs", "test", "report"]
    assert levels(graph) == [["build"], ["docs", "test"], ["report"]]
    assert with_dependents(graph, ["docs"]) == {"docs", "report"}
    assert with_upstream(graph, ["report"]) == {"build", "docs", "test", "report"}
    assert graph.edges["test", "report"]["condition"] == "completed"
    assert config.gates["docs"].argvs == [["python", "-c", "pass"]] * 2
    assert '"build" -> "test" [label="passed"]' in to_dot(graph)


def test_dependency_syntax() -> None:
    assert parse_dependency("build") == ("build", "passed")
    assert parse_dependency("build.failed") == ("build", "failed")
    assert parse_dependency("build.always") == ("build", "always")


@pytest.mark.parametrize(
    ("text", "line", "field", "message"),
    [
        ("gates:\n  a:\n    command: [x]\n    depends: [b]\n", 4, "gates.a.depends.0", "unknown gate 'b'"),
        (
            "gates:\n  a:\n    command: [x]\n    depends: [b]\n  b:\n    command: [x]\n    depends: [a.passed]\n",
            None,
            None,
            "dependency cycle",
        ),
        ("gates:\n  a:\n    command: [x]\n    timeout: soon\n", 4, "gates.a.timeout", "number"),
        ("gates:\n  a:\n    command: [x]\n    retry: 2\n", 4, "gates.a.retry", "unknown field"),
        ("gates:\n  a:\n    description: no command\n", 2, "gates.a", "exactly one of"),
        ("gates:\n  a:\n    command: [x]\n    hooks: [post-merge]\n", 4, "gates.a.hooks.0", "pre-commit"),
        ("gates:\n  Bad.Name:\n    command: [x]\n", 2, "gates.Bad.Name", "lower case"),
        ("gates:\n  a:\n    command: [x]\n    transient: {patterns: ['(']}\n", 4, "gates.a.transient.patterns", "regular"),
        ("gates:\n  a:\n    command: [x]\n    depends: [a]\n", 4, "gates.a.depends.0", "itself"),
        ("gates:\n  a:\n    command: [x]\n    timeout: .inf\n", 4, "gates.a.timeout", "finite"),
        ("gates:\n  a:\n    command: [x]\n    timeout: -.inf\n", 4, "gates.a.timeout", "finite"),
        ("gates:\n  a:\n    command: [x]\n    timeout: .nan\n", 4, "gates.a.timeout", "finite"),
        ("gates:\n  a:\n    command: [x]\n    timeout: 1.0e+400\n", 4, "gates.a.timeout", "finite"),
        ("gates:\n  a:\n    command: [x]\n    timeout: -5\n", 4, "gates.a.timeout", "greater than 0"),
        ("gates:\n  a:\n    command: [x]\n    timeout: 0\n", 4, "gates.a.timeout", "greater than 0"),
        ("gates:\n  a:\n    command: [x]\n    timeout: 90000\n", 4, "gates.a.timeout", "less than or equal"),
        ("gates:\n  a:\n    command: [x]\n    timeout: true\n", 4, "gates.a.timeout", "valid number"),
        ("defaults:\n  term_grace: .inf\ngates:\n  a:\n    command: [x]\n", 2, "defaults.term_grace", "finite"),
        ("defaults:\n  term_grace: -1\ngates:\n  a:\n    command: [x]\n", 2, "defaults.term_grace", "greater than"),
        (
            "gates:\n  lint:\n    command: [x]\n  test:\n    command: [x]\n  lint:\n    command: [y]\n",
            6, "gates.lint", "duplicate key 'lint': given at line 2 and again at line 6",
        ),
        (
            "gates:\n  a:\n    command: [x]\n    timeout: 5\n    timeout: 9\n",
            5, "gates.a.timeout", "duplicate key 'timeout': given at line 4 and again at line 5",
        ),
    ],
)
def test_bad_files_name_file_line_and_field(text: str, line: int | None, field: str | None, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_gates(text, "workflows/gates.yaml")
    err = info.value
    assert err.path == "workflows/gates.yaml"
    assert message in str(err)
    if line is not None:
        assert err.line == line, str(err)
    if field is not None:
        assert err.field == field, str(err)
    assert err.line is not None, "every error has a line"


def test_cycle_error_points_at_a_depends_entry() -> None:
    text = "gates:\n  a:\n    command: [x]\n    depends: [c]\n  b:\n    command: [x]\n    depends: [a]\n" \
           "  c:\n    command: [x]\n    depends: [b]\n"
    with pytest.raises(ConfigError) as info:
        parse_gates(text, "g.yaml")
    assert "a -> b -> c -> a" in str(info.value) or "dependency cycle" in str(info.value)
    assert info.value.field is not None and info.value.field.endswith("depends.0")


def test_unknown_component_is_reported() -> None:
    config = parse_gates("gates:\n  a:\n    command: [x]\n    components: [core, nope]\n", "g.yaml")
    with pytest.raises(ConfigError) as info:
        config.check_components({"core"})
    assert (info.value.line, info.value.field) == (4, "gates.a.components.1")


def test_shipped_gates_file_is_valid() -> None:
    from pathlib import Path

    from bno_quality_gates.affected import load_components
    from bno_quality_gates.spec import load_gates

    root = Path(__file__).resolve().parents[2] / "workflows"
    config = load_gates(root / "gates.yaml")
    assert config.warnings == [], [str(w) for w in config.warnings]
    components = load_components(root / "components.yaml")
    config.check_components(set(components))
    assert {"build", "test", "perf", "docs", "integration"} <= set(config.gates)
    expected = {"bitnet-core", "bitnet-quant", "bitnet-inference", "bitnet-training", "bitnet-cli",
                "bitnet-benchmarks", "kernels", "orchestrator", "quality-gates", "foundation", "docs", "tests", "architecture",
                "publishing"}
    assert expected == set(components)


def test_timeout_zero_is_meaningful_only_for_the_kill_grace() -> None:
    config = parse_gates("defaults:\n  term_grace: 0\ngates:\n  a:\n    command: [x]\n    timeout: 0.5\n", "g.yaml")
    assert config.defaults.term_grace == 0 and config.gates["a"].timeout == 0.5


def test_duplicate_gate_in_a_file_names_both_lines(tmp_path: Path) -> None:
    from bno_quality_gates.spec import load_gates

    path = tmp_path / "gates.yaml"
    path.write_text("gates:\n  build:\n    command: [x]\n  build:\n    command: [y]\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_gates(path)
    assert (info.value.path, info.value.line, info.value.field) == (str(path), 4, "gates.build")
    assert "line 2" in str(info.value) and "line 4" in str(info.value)


def test_a_required_gate_that_runs_only_on_failure_is_warned_about() -> None:
    config = parse_gates(
        "gates:\n  build:\n    command: [x]\n  lint:\n    command: [x]\n    required: false\n"
        "  diagnose:\n    command: [x]\n    depends: [build.failed]\n"
        "  lint-report:\n    command: [x]\n    depends: [lint.failed]\n    required: false\n"
        "  after:\n    command: [x]\n    depends: [build.passed, lint.completed]\n",
        "workflows/gates.yaml",
    )
    assert len(config.warnings) == 1, [str(w) for w in config.warnings]
    warning = config.warnings[0]
    assert (warning.path, warning.line, warning.field) == ("workflows/gates.yaml", 9, "gates.diagnose.depends.0")
    assert "runs only when a required gate 'build' fails" in str(warning) and "required: false" in str(warning)
    optional_upstream = parse_gates(
        "gates:\n  lint:\n    command: [x]\n    required: false\n  hint:\n    command: [x]\n"
        "    depends: [lint.failed]\n", "g.yaml")
    assert [w.line for w in optional_upstream.warnings] == [7]
    assert "an optional gate 'lint'" in str(optional_upstream.warnings[0])
    assert parse_gates(GOOD, "g.yaml").warnings == []


def test_a_nul_in_a_command_is_refused_with_its_place() -> None:
    with pytest.raises(ConfigError) as info:
        parse_gates('gates:\n  a:\n    command: [python, -c, "print(\\x00)"]\n', "g.yaml")
    assert (info.value.line, info.value.field) == (2, "gates.a") and "NUL character" in str(info.value)
