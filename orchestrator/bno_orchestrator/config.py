"""Loading ``workflows/*.yaml`` and ``agents/`` with errors that name file, line, column and field.

Every file is parsed by :mod:`bno_foundation.yamlio` and validated by the schemas of
:mod:`bno_orchestrator.rules`; then the files are checked against each other: every agent routing.yaml or
escalation.yaml names must exist in ``agents/``, every component must exist in ``components.yaml``, every
state escalation.yaml names must exist in ``development.yaml``.

The repository's own ``workflows/`` and ``agents/`` win; a workflow file the repository lacks falls back
to the shipped default (``orchestrator init`` copies them all).

``dispatch.yaml`` names the repository's default executor: an agent whose ``executor.kind`` is ``default``
gets it at load time (:func:`resolve_executor`), so every agent of a loaded :class:`Config` has a concrete
executor kind, while its file keeps ``default``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from bno_foundation.yamlio import Located, load_yaml, validate
from bno_orchestrator.errors import ConfigError
from bno_orchestrator.paths import config_root, data_root
from bno_orchestrator.rules import (
    DispatchSettings,
    EscalationRules,
    RoutingRules,
    ScoringConfig,
    WorkflowSpec,
)
from bno_orchestrator.workflow import Workflow, validate_workflow

if TYPE_CHECKING:
    from bno_orchestrator.agents import AgentSpec

WORKFLOW_FILES = ("development.yaml", "routing.yaml", "escalation.yaml", "scoring.yaml", "dispatch.yaml")
# Top-level agent fields that, when an agent sets them, win over the same-named default executor option.
AGENT_LIMITS = ("max_turns", "budget", "model")


def workflow_file(root: Path, name: str) -> Path:
    """``root/workflows/NAME`` when it exists, else the shipped default."""
    own = root / "workflows" / name
    return own if own.is_file() else data_root() / "workflows" / name


def load_workflow(path: Path) -> Workflow:
    """``development.yaml`` -> the state machine."""
    located = load_yaml(path)
    spec = validate(WorkflowSpec, located)
    problems = validate_workflow(spec)
    if problems:
        key_path, message = problems[0]
        raise located.error(message, key_path)
    return Workflow(spec)


def _check_agent(located: Located, name: str, agents: Iterable[str] | None, key_path: tuple[str | int, ...]) -> None:
    if agents is None:
        return
    known = set(agents)
    if name not in known:
        raise located.error(f"unknown agent {name!r}; agents are: {', '.join(sorted(known))}", key_path)


def load_routing(path: Path, *, agents: Iterable[str] | None = None,
                 components: Iterable[str] | None = None) -> RoutingRules:
    """``routing.yaml``, cross-checked against the agent ids and the component ids when given."""
    located = load_yaml(path)
    rules = validate(RoutingRules, located)
    names = None if agents is None else set(agents)
    for section in ("task_types", "components"):
        matrix = getattr(rules, section)
        for key, entry in matrix.items():
            _check_agent(located, entry.primary, names, (section, key, "primary"))
            for index, agent in enumerate(entry.secondary):
                _check_agent(located, agent, names, (section, key, "secondary", index))
    if components is not None:
        known = set(components)
        for key in rules.components:
            if key not in known:
                raise located.error(
                    f"unknown component {key!r}; components.yaml defines: {', '.join(sorted(known))}",
                    ("components", key),
                )
    for key, rule in rules.complexity.items():
        for index, agent in enumerate(rule.escalation):
            _check_agent(located, agent, names, ("complexity", key, "escalation", index))
    for index, support in enumerate(rules.support_rules):
        _check_agent(located, support.add, names, ("support_rules", index, "add"))
        for j, component in enumerate(support.components):
            if component not in rules.components:
                raise located.error(f"unknown component {component!r}", ("support_rules", index, "components", j))
        for j, task_type in enumerate(support.task_types):
            if task_type not in rules.task_types:
                raise located.error(f"unknown task type {task_type!r}", ("support_rules", index, "task_types", j))
    return rules


def load_escalation(path: Path, *, agents: Iterable[str] | None = None,
                    states: Iterable[str] | None = None) -> EscalationRules:
    """``escalation.yaml``, cross-checked against agent ids and workflow states when given."""
    located = load_yaml(path)
    rules = validate(EscalationRules, located)
    names = None if agents is None else set(agents)
    known_states = None if states is None else set(states)

    def check_state(state: str | None, key_path: tuple[str | int, ...]) -> None:
        if state is not None and known_states is not None and state not in known_states:
            raise located.error(f"unknown state {state!r}; states are: {', '.join(sorted(known_states))}", key_path)

    for index, state in enumerate(rules.level_states):
        check_state(state, ("level_states", index))
    for index, level in enumerate(rules.levels):
        for j, agent in enumerate(level.add):
            if agent != "secondary":
                _check_agent(located, agent, names, ("levels", index, "add", j))
        check_state(level.status, ("levels", index, "status"))
    for index, trigger in enumerate(rules.triggers):
        for j, agent in enumerate(trigger.add):
            if agent != "secondary":
                _check_agent(located, agent, names, ("triggers", index, "add", j))
        for j, state in enumerate(trigger.states):
            check_state(state, ("triggers", index, "states", j))
        check_state(trigger.status, ("triggers", index, "status"))
    return rules


def load_scoring(path: Path) -> ScoringConfig:
    """``scoring.yaml``."""
    return validate(ScoringConfig, load_yaml(path))


def load_dispatch(path: Path) -> DispatchSettings:
    """``dispatch.yaml``: the default executor and the merge settings."""
    return validate(DispatchSettings, load_yaml(path))


def resolve_executor(agent: AgentSpec, settings: DispatchSettings) -> AgentSpec:
    """``agent`` with its executor made concrete: an agent whose ``executor.kind`` is ``default`` gets
    ``settings.default_executor``'s kind and options, the agent's own options laid over them (and its own
    ``max_turns``, ``budget`` and ``model``, when set, win over those options of the default). Any other
    agent is returned as it is."""
    from bno_orchestrator.agents import ExecutorSpec
    from bno_orchestrator.agents.spec import DEFAULT_KIND

    if agent.executor.kind != DEFAULT_KIND:
        return agent
    default = settings.default_executor
    options = {key: value for key, value in default.options.items()
               if not (key in AGENT_LIMITS and getattr(agent, key) is not None)}
    options.update(agent.executor.options)
    return agent.model_copy(update={"executor": ExecutorSpec(kind=default.kind, options=options)})


def load_component_ids(root: Path) -> set[str] | None:
    """Component ids of ``workflows/components.yaml`` (None when there is no such file)."""
    path = workflow_file(root, "components.yaml")
    if not path.is_file():
        return None
    from bno_quality_gates.affected import load_components

    return set(load_components(path))


def load_agent_specs(root: Path) -> dict[str, AgentSpec]:
    """The agents of ``root/agents`` (the shipped ones when ``root`` has none)."""
    from bno_orchestrator.agents import load_agents

    directory = root / "agents"
    if not directory.is_dir() or not any(directory.glob("*.md")):
        directory = data_root() / "agents"
    return load_agents(directory)


@dataclass
class Config:
    """Everything the orchestrator reads from ``workflows/`` and ``agents/``, cross-checked."""

    root: Path
    workflow: Workflow
    routing: RoutingRules
    escalation: EscalationRules
    scoring: ScoringConfig
    agents: Mapping[str, AgentSpec]
    components: set[str] = field(default_factory=set)
    files: dict[str, Path] = field(default_factory=dict)
    dispatch: DispatchSettings = field(default_factory=DispatchSettings)
    """``dispatch.yaml``: the default executor (already put in place of every agent's ``default``) and how a
    task branch whose gates passed is merged."""

    @property
    def task_types(self) -> set[str]:
        """The task types routing.yaml defines."""
        return set(self.routing.task_types)


def load_config(repo: Path, *, agents: Mapping[str, AgentSpec] | None = None) -> Config:
    """Load and cross-check the configuration a repository uses (its own, else the shipped one).

    Every agent's executor is concrete afterwards: ``default`` is replaced by ``dispatch.yaml``'s
    ``default_executor`` (:func:`resolve_executor`), also for ``agents`` passed in."""
    root = config_root(Path(repo))
    files = {name: workflow_file(root, name) for name in WORKFLOW_FILES}
    dispatch = load_dispatch(files["dispatch.yaml"])
    loaded = dict(agents) if agents is not None else load_agent_specs(root)
    specs = {name: resolve_executor(spec, dispatch) for name, spec in loaded.items()}
    component_ids = load_component_ids(root)
    workflow = load_workflow(files["development.yaml"])
    routing = load_routing(files["routing.yaml"], agents=specs, components=component_ids)
    escalation = load_escalation(files["escalation.yaml"], agents=specs, states=workflow.states)
    scoring = load_scoring(files["scoring.yaml"])
    components = set(routing.components) | (component_ids or set())
    return Config(root, workflow, routing, escalation, scoring, specs, components, files, dispatch)


def validate_all(repo: Path) -> list[ConfigError]:
    """Configuration problems: every problem of the agent files (ids checked against routing.yaml and
    gates.yaml), then the first problem of the workflow files. Empty when everything loads."""
    from bno_orchestrator.agents import validate_paths

    root = config_root(Path(repo))
    directory = root / "agents"
    if not directory.is_dir() or not any(directory.glob("*.md")):
        directory = data_root() / "agents"
    problems = list(validate_paths([directory], workflows=root / "workflows").problems)
    if problems:
        return problems
    try:
        load_config(repo)
    except ConfigError as exc:
        problems.append(exc)
    return problems
