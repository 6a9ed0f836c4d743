"""``workflows/dispatch.yaml`` (the default executor and the merge settings) and how agents whose executor is
``default`` get the repository's default when the configuration loads."""

from __future__ import annotations

from pathlib import Path
from typing import get_args

import pytest

from bno_foundation.errors import ConfigError
from bno_orchestrator.agents import AgentSpec, ExecutorSpec, dump_agent, load_agent, load_agents
from bno_orchestrator.agents.spec import ConcreteExecutorKind
from bno_orchestrator.cli import main
from bno_orchestrator.commands.init import init_repo
from bno_orchestrator.config import load_config, load_dispatch, resolve_executor, validate_all
from bno_orchestrator.paths import data_root
from bno_orchestrator.rules import DefaultExecutorSpec, DispatchSettings, MergeSettings

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "workflows" / "dispatch.yaml"
# the roles whose work needs a person's judgement or sign-off; every other shipped agent runs the default
MANUAL_AGENTS = {"architect", "ask", "orchestrator", "publishing", "security", "truth-validator"}


def line_of(text: str, needle: str) -> int:
    """The 1-based number of the first line of ``text`` holding ``needle``."""
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def agent(kind: str = "default", options: dict[str, object] | None = None, **fields: object) -> AgentSpec:
    return AgentSpec(name="x", description="d", role="r", executor=ExecutorSpec(kind=kind, options=options or {}),  # type: ignore[arg-type]
                     **fields)  # type: ignore[arg-type]


def settings(kind: str = "codex", **options: object) -> DispatchSettings:
    return DispatchSettings(default_executor=DefaultExecutorSpec(kind=kind, options=options))  # type: ignore[arg-type]


def own_repo(path: Path) -> Path:
    """A repository with its own agents/ and workflows/ (``orchestrator init --profile shipped``)."""
    (path / ".git").mkdir(parents=True)
    init_repo(path, profile="shipped")
    return path


# ------------------------------------------------------------------------------------------- the file


def test_the_shipped_file_loads_with_the_documented_defaults() -> None:
    loaded = load_dispatch(SHIPPED)
    assert loaded == DispatchSettings()
    assert loaded.default_executor.kind == "claude" and loaded.default_executor.options == {}
    assert loaded.merge == MergeSettings(strategy="merge", target=None, remove_worktree=True, delete_branch=True)
    assert load_config(REPO).dispatch == loaded


@pytest.mark.parametrize(
    ("old", "new", "needle", "field", "message"),
    [
        ("strategy: merge ", "strategy: squash ", "strategy:", "merge.strategy", "'ff', 'merge' or 'pr'"),
        ("  delete_branch: true", "  delete_branch: true\n  squash: true", "squash:", "merge.squash", "unknown field"),
        ("version: 1", "version: 1\nexecutor: claude", "executor:", "executor", "unknown field"),
        ("kind: claude ", "kind: default ", "  kind: ", "default_executor.kind", "'manual'"),
        ("kind: claude ", "kind: telepathy ", "  kind: ", "default_executor.kind", "'claude'"),
        ("options: {}", "options: [model]", "options:", "default_executor.options", "dictionary"),
        ("target: null", "target: ''", "target:", "merge.target", "at least 1 character"),
        ("remove_worktree: true", "remove_worktree: sometimes", "remove_worktree:", "merge.remove_worktree",
         "boolean"),
    ],
)
def test_schema_errors_name_file_line_and_field(tmp_path: Path, old: str, new: str, needle: str, field: str,
                                                message: str) -> None:
    text = SHIPPED.read_text(encoding="utf-8")
    assert old in text
    bad = tmp_path / "dispatch.yaml"
    bad.write_text(text.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_dispatch(bad)
    err = info.value
    assert (err.path, err.field) == (str(bad), field)
    assert err.line == line_of(bad.read_text(encoding="utf-8"), needle), str(err)
    assert message in str(err) and str(err).startswith(f"{bad}:{err.line}:")


def test_a_bad_dispatch_file_is_a_configuration_problem_of_the_repository(tmp_path: Path) -> None:
    repo = own_repo(tmp_path / "repo")
    path = repo / "workflows" / "dispatch.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("strategy: merge ", "strategy: rebase "), encoding="utf-8")
    problems = validate_all(repo)
    assert len(problems) == 1 and problems[0].path == str(path) and problems[0].field == "merge.strategy"


# ------------------------------------------------------------------------------------- resolution


def test_default_resolves_to_the_repository_default_with_the_agents_options_laid_over() -> None:
    spec = agent(options={"timeout": 900, "allowedTools": ["Read"]})
    resolved = resolve_executor(spec, settings("codex", model="gpt-x", timeout=60, extra_args=["--a"]))
    assert resolved.executor == ExecutorSpec(kind="codex", options={"model": "gpt-x", "timeout": 900,
                                                                    "extra_args": ["--a"], "allowedTools": ["Read"]})
    assert type(resolved.executor) is ExecutorSpec  # a plain agent executor, not the settings' model
    assert spec.executor.kind == "default"  # the input is not changed
    assert resolved.model_copy(update={"executor": spec.executor}) == spec  # nothing else changes


def test_the_agents_own_limits_win_over_the_defaults_options() -> None:
    default = settings("claude", max_turns=10, budget=1.0, model="haiku", timeout=60)
    limited = resolve_executor(agent(max_turns=40, budget=5.0, model="opus"), default)
    assert limited.executor.options == {"timeout": 60}
    assert limited.max_turns == 40 and limited.budget == 5.0
    unlimited = resolve_executor(agent(), default)
    assert unlimited.executor.options == {"max_turns": 10, "budget": 1.0, "model": "haiku", "timeout": 60}
    # an option the agent sets itself wins over its own top-level field's effect on the default
    explicit = resolve_executor(agent(options={"max_turns": 12}, max_turns=40), default)
    assert explicit.executor.options == {"max_turns": 12, "budget": 1.0, "model": "haiku", "timeout": 60}


@pytest.mark.parametrize("kind", ["claude", "shell", "manual"])
def test_an_agent_naming_a_kind_keeps_it(kind: str) -> None:
    spec = agent(kind, options={"argv": ["x"]})
    assert resolve_executor(spec, settings("codex", model="m")) is spec


def test_the_repositorys_own_dispatch_file_wins_and_the_agent_file_keeps_default(tmp_path: Path) -> None:
    repo = own_repo(tmp_path / "repo")
    assert (repo / "workflows" / "dispatch.yaml").read_text(encoding="utf-8") == SHIPPED.read_text(encoding="utf-8")
    (repo / "workflows" / "dispatch.yaml").write_text(
        "version: 1\ndefault_executor:\n  kind: codex\n  options: {model: gpt-test, timeout: 600}\n"
        "merge: {strategy: ff, target: trunk, delete_branch: false}\n", encoding="utf-8")
    before = (repo / "agents" / "code.md").read_text(encoding="utf-8")
    config = load_config(repo)
    assert config.files["dispatch.yaml"] == repo / "workflows" / "dispatch.yaml"
    assert config.dispatch.merge == MergeSettings(strategy="ff", target="trunk", remove_worktree=True,
                                                  delete_branch=False)
    code = config.agents["code"]
    assert code.executor.kind == "codex"
    assert code.executor.options["model"] == "gpt-test" and code.executor.options["timeout"] == 600
    assert "allowedTools" in code.executor.options  # the agent's own options stay
    assert config.agents["architect"].executor.kind == "manual"
    assert (repo / "agents" / "code.md").read_text(encoding="utf-8") == before
    assert load_agent(repo / "agents" / "code.md").executor.kind == "default"


def test_a_repository_without_a_dispatch_file_gets_the_shipped_one(tmp_path: Path) -> None:
    repo = own_repo(tmp_path / "repo")
    (repo / "workflows" / "dispatch.yaml").unlink()  # initialised before the file existed
    config = load_config(repo)
    assert config.files["dispatch.yaml"] == data_root() / "workflows" / "dispatch.yaml"
    assert config.agents["code"].executor.kind == "claude"


def test_agents_passed_in_are_resolved_too(tmp_path: Path) -> None:
    specs = load_agents(REPO / "agents")
    config = load_config(REPO, agents=specs)
    assert {spec.executor.kind for spec in config.agents.values()} <= set(get_args(ConcreteExecutorKind))
    assert specs["code"].executor.kind == "default"


# --------------------------------------------------------------------------------- shipped agents


def test_no_shipped_agent_keeps_default_after_load() -> None:
    config = load_config(REPO)
    assert set(config.agents) == set(load_agents(REPO / "agents"))
    concrete = set(get_args(ConcreteExecutorKind))
    assert {name: a.executor.kind for name, a in config.agents.items() if a.executor.kind not in concrete} == {}
    for name, spec in config.agents.items():
        assert spec.executor.kind == ("manual" if name in MANUAL_AGENTS else "claude"), name


def test_the_shipped_agents_name_default_or_manual_by_role() -> None:
    files = load_agents(REPO / "agents")
    kinds = {name: spec.executor.kind for name, spec in files.items()}
    assert {name for name, kind in kinds.items() if kind == "manual"} == MANUAL_AGENTS
    assert {name for name, kind in kinds.items() if kind != "manual"} == set(files) - MANUAL_AGENTS
    assert set(kinds.values()) == {"default", "manual"}
    for name, spec in files.items():
        if spec.executor.kind == "default":  # what runs unattended has limits of its own
            assert spec.max_turns is not None and spec.budget is not None, name
        else:
            assert not spec.executor.options and spec.max_turns is None and spec.budget is None, name


def test_default_round_trips_through_the_agent_file(tmp_path: Path) -> None:
    spec = agent(options={"timeout": 5})
    path = tmp_path / "x.md"
    path.write_text(dump_agent(spec), encoding="utf-8")
    assert "kind: default" in path.read_text(encoding="utf-8")
    assert load_agent(path) == spec


# ------------------------------------------------------------------------------------ init, dispatch


def test_init_writes_the_dispatch_file_and_needs_no_agent_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))  # no claude (nor anything else) to be found
    for profile in ("auto", "shipped"):
        repo = tmp_path / profile
        (repo / ".git").mkdir(parents=True)
        report = init_repo(repo, profile=profile)
        assert "workflows/dispatch.yaml" in report["created"]
        assert (repo / "workflows" / "dispatch.yaml").read_text(encoding="utf-8") == SHIPPED.read_text(encoding="utf-8")
        assert load_config(repo).agents["code"].executor.kind == "claude"
    assert validate_all(tmp_path / "shipped") == []


def test_dispatch_preflight_reports_the_missing_cli_of_the_default(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from tests.orchestrator.dispatch_helpers import add_routed_task, make_repo

    repo = make_repo(tmp_path / "repo")
    path = repo / "workflows" / "dispatch.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("options: {}", "options: {binary: bno-no-such-cli}"),
                    encoding="utf-8")
    assert add_routed_task(repo) == "code"
    code = main(["--repo", str(repo), "dispatch", "T-1", "--json"])
    captured = capsys.readouterr()
    assert code == 2, captured.out + captured.err
    assert "the claude executor needs `bno-no-such-cli`" in captured.err
    assert not (repo / ".orchestrator" / "worktrees" / "T-1").exists()
