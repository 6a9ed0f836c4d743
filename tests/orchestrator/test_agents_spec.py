"""The 19 shipped agents and the strict loader: schema, names, references, error positions, round trip."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bno_foundation.errors import ConfigError
from bno_orchestrator.agents import AgentSpec, dump_agent, load_agent, load_agents, validate_paths
from bno_orchestrator.agents.render import TASK_DEFAULTS, render_body, sample_task
from bno_orchestrator.agents.spec import AgentOrigin

REPO = Path(__file__).resolve().parents[2]
AGENTS = REPO / "agents"
SHIPPED_AGENTS = {
    "architect", "code", "debug", "best-practices", "inference-engine", "performance", "error-handling",
    "test-utilities", "documentation", "security", "truth-validator", "publishing", "ask", "phase-tracker",
    "commands-config", "research", "rules-config", "variable-matcher", "orchestrator",
}  # fmt: skip

GOOD = """---
name: {name}
description: Use for tests.
role: Tester
task_types: [testing]
secondary: []
---
Body for {{{{ task.title }}}}.
"""


@pytest.fixture(scope="module")
def shipped() -> dict[str, AgentSpec]:
    return load_agents(AGENTS)


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / f"{name}.md"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_shipped_agent_directory_is_complete(shipped: dict[str, AgentSpec]) -> None:
    assert set(shipped) == SHIPPED_AGENTS
    for name in shipped:
        assert (AGENTS / f"{name}.md").is_file()


def test_routing_ids_and_references_are_known(shipped: dict[str, AgentSpec]) -> None:
    routing = yaml.safe_load((REPO / "workflows" / "routing.yaml").read_text(encoding="utf-8"))
    task_types, components = set(routing["task_types"]), set(routing["components"])
    for spec in shipped.values():
        assert set(spec.task_types) <= task_types, spec.name
        assert set(spec.components) <= components, spec.name
        assert set(spec.secondary) <= set(shipped), spec.name
    # every routing-table agent declares the task types it is primary for
    for task_type, rule in routing["task_types"].items():
        assert task_type in shipped[rule["primary"]].task_types, (task_type, rule["primary"])
    report = validate_paths([AGENTS], workflows=REPO / "workflows")
    assert report.ok, [str(p) for p in report.problems]


def test_executors_and_bodies(shipped: dict[str, AgentSpec]) -> None:
    # the files name `default` (the repository's default executor, workflows/dispatch.yaml) or `manual`;
    # test_dispatch_settings.py checks which agent has which
    assert shipped["code"].executor.kind == "default"
    assert shipped["debug"].executor.kind == "default"
    assert "allowedTools" in shipped["code"].executor.options
    assert shipped["code"].max_turns is not None and shipped["code"].budget is not None
    assert not [s.name for s in shipped.values() if s.executor.kind == "shell"]
    for spec in shipped.values():
        lines = spec.body.count("\n")
        assert 40 <= lines <= 100, (spec.name, lines)
        assert spec.gates or spec.name == "phase-tracker", spec.name
        task = sample_task(spec)
        prompt = render_body(spec, task, worktree="/wt/T-1")
        assert task["title"] in prompt and "/wt/T-1" in prompt and spec.role in prompt
        for gate in spec.gates:
            assert gate in prompt
        idle = render_body(spec, dict(TASK_DEFAULTS))  # no task: the task section is left out
        assert "## The task" not in idle and "{{" not in idle


def test_agent_specific_rules_are_in_the_prompts(shipped: dict[str, AgentSpec]) -> None:
    assert "interleaved" in shipped["performance"].body and "same process run" in shipped["performance"].body
    assert "safe_load" in shipped["security"].body and "SandboxedEnvironment" in shipped["security"].body
    assert "recorded" in shipped["truth-validator"].body


def test_dump_and_load_round_trip(tmp_path: Path, shipped: dict[str, AgentSpec]) -> None:
    for spec in shipped.values():
        path = write(tmp_path, spec.name, dump_agent(spec))
        assert load_agent(path) == spec


def test_unknown_field_names_file_line_column_and_field(tmp_path: Path) -> None:
    path = write(tmp_path, "x", GOOD.format(name="x").replace("secondary: []", "secondary: []\ncolour: red"))
    with pytest.raises(ConfigError) as info:
        load_agent(path)
    err = info.value
    assert (err.path, err.line, err.column, err.field) == (str(path), 7, 1, "colour")
    assert str(err).startswith(f"{path}:7:1: field 'colour': unknown field")


def test_yaml_syntax_error_has_the_file_line(tmp_path: Path) -> None:
    path = write(tmp_path, "x", GOOD.format(name="x").replace("role: Tester", "role: [Tester"))
    with pytest.raises(ConfigError) as info:
        load_agent(path)
    assert info.value.path == str(path) and info.value.line is not None and info.value.line >= 4


def test_wrong_type_points_at_the_value(tmp_path: Path) -> None:
    path = write(tmp_path, "x", GOOD.format(name="x").replace("secondary: []", "capacity: many"))
    with pytest.raises(ConfigError) as info:
        load_agent(path)
    assert (info.value.line, info.value.field) == (6, "capacity")


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ("secondary: []", "complexity: [3, 1]", "complexity"),
        ("secondary: []", "executor: {kind: telepathy}", "executor.kind"),
        ("secondary: []", "tools: {allow: [Bash], deny: [Bash]}", "tools"),
        ("secondary: []", "body: hello", "body"),
        ("name: x", "name: Not_Kebab", "name"),
        ("name: x", "name: y", "name"),
    ],
)
def test_semantic_errors_name_the_field(tmp_path: Path, old: str, new: str, field: str) -> None:
    path = write(tmp_path, "x", GOOD.format(name="x").replace(old, new))
    with pytest.raises(ConfigError) as info:
        load_agent(path)
    assert info.value.field == field and info.value.line is not None


@pytest.mark.parametrize(
    ("text", "line"),
    [("no front matter\n", 1), ("---\nname: x\n", 1), ("---\n---\nbody\n", 2), ("---\n- a\n---\nbody\n", 2)],
)
def test_missing_or_broken_front_matter(tmp_path: Path, text: str, line: int) -> None:
    path = write(tmp_path, "x", text)
    with pytest.raises(ConfigError) as info:
        load_agent(path)
    assert info.value.line == line


def test_crlf_and_bom_are_accepted_in_our_files(tmp_path: Path) -> None:
    path = tmp_path / "x.md"
    path.write_bytes(("\ufeff" + GOOD.format(name="x")).replace("\n", "\r\n").encode("utf-8"))
    assert load_agent(path).role == "Tester"


def test_validate_collects_every_problem(tmp_path: Path) -> None:
    agents = tmp_path / "agents"
    workflows = tmp_path / "workflows"
    agents.mkdir()
    workflows.mkdir()
    (workflows / "routing.yaml").write_text("task_types: {testing: {}}\ncomponents: {tests: {}}\n", encoding="utf-8")
    write(agents, "good", GOOD.format(name="good"))
    write(agents, "badref", GOOD.format(name="badref").replace("secondary: []", "secondary: [ghost]"))
    write(agents, "badtype", GOOD.format(name="badtype").replace("[testing]", "[testing, cooking]"))
    write(agents, "badtpl", GOOD.format(name="badtpl") + "{% if %}\n")
    write(agents, "undef", GOOD.format(name="undef") + "{{ task.nope }}\n")
    write(agents, "broken", "---\nname: [\n---\n")
    report = validate_paths([agents])
    found = {(Path(p.path or "").stem, p.field) for p in report.problems}
    assert ("badref", "secondary.0") in found
    assert ("badtype", "task_types.1") in found
    assert ("badtpl", "body") in found and ("undef", "body") in found
    assert any(stem == "broken" for stem, _ in found)
    assert "good" in report.agents and not report.ok
    badtpl = next(p for p in report.problems if Path(p.path or "").stem == "badtpl")
    assert badtpl.line == 9  # the template error is reported at its line in the file
    with pytest.raises(ConfigError):
        load_agents(agents)


def test_validate_one_file_knows_the_others(tmp_path: Path) -> None:
    path = write(tmp_path, "helper", GOOD.format(name="helper").replace("secondary: []", "secondary: [code]"))
    assert not validate_paths([path], workflows=tmp_path).ok
    assert validate_paths([path], workflows=tmp_path, known_agents=["code"]).ok


def test_duplicate_names_across_directories(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    write(tmp_path / "a", "dup", GOOD.format(name="dup"))
    write(tmp_path / "b", "dup", GOOD.format(name="dup"))
    report = validate_paths([tmp_path / "a", tmp_path / "b"], workflows=tmp_path)
    assert [p.field for p in report.problems] == ["name"]


def test_origin_is_written_compactly_and_read_back(tmp_path: Path) -> None:
    spec = AgentSpec(
        name="imported",
        description="From elsewhere",
        role="Importer",
        origin=AgentOrigin(format="roo", file=".roomodes", keys=["slug", "name"], ends={"name": ("", "n")}, syntax="json"),
        body="Hi.\n",
    )
    front = spec.front_matter()
    assert front["origin"] == {"format": "roo", "file": ".roomodes", "keys": ["slug", "name"], "ends": {"name": ["", "n"]}, "syntax": "json"}
    assert list(front)[-1] == "origin", "origin comes after our own fields"
    path = tmp_path / "imported.md"
    path.write_text(dump_agent(spec), encoding="utf-8")
    assert load_agent(path) == spec


def test_origin_ends_must_be_whitespace_letters(tmp_path: Path) -> None:
    path = tmp_path / "bad.md"
    path.write_text(
        "---\nname: bad\ndescription: x\nrole: y\norigin:\n  format: claude\n  file: bad.md\n  ends:\n    description: ['', 'x']\n---\nhi\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as info:
        load_agent(path)
    assert info.value.line is not None and info.value.field is not None and "origin" in info.value.field
