"""gates.yaml validation: every error names the file, line and field."""

from __future__ import annotations

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
    components = load_components(root / "components.yaml")
    config.check_components(set(components))
    assert {"build", "test", "perf", "docs", "integration"} <= set(config.gates)
    expected = {"bitnet-core", "bitnet-quant", "bitnet-inference", "bitnet-training", "bitnet-cli",
                "bitnet-benchmarks", "kernels", "orchestrator", "quality-gates", "foundation", "docs", "tests", "architecture",
                "publishing"}
    assert expected == set(components)
