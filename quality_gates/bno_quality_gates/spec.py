"""The gate DAG specification: ``workflows/gates.yaml`` parsed into validated models.

Every error names the file, line, column and field (through :mod:`bno_foundation.yamlio`): unknown fields,
bad types, a dependency on a gate that does not exist, a bad dependency condition, dependency cycles, a
timeout that is not a finite number of seconds in (0, one day], and a gate name (or any key) given twice
(the message names both lines). Problems that do not stop a run are :attr:`GatesConfig.warnings`: a required
gate that can only run when another gate fails (docs/gates-ci.md, "Conditions").

A gate looks like::

    gates:
      test:
        description: pytest with coverage
        command: [python, -m, bno_quality_gates.gates.test]      # or commands: [[...], [...]] run in order
        depends: [build.passed]                              # gate[.passed|.failed|.completed|.always]
        inputs: ["bitnet/**", "tests/**"]                   # globs: the cache key and affected selection
        timeout: 900                                          # seconds; the whole process group is killed
        retries: 1                                            # only when the failure is transient:
        transient: {exit_codes: [75], patterns: ["Connection reset"]}
        required: true
        resources: {gpu: 1}                                   # skipped with a reason where there is no GPU
        hooks: [pre-commit, pre-push]                         # which git hooks run it
        params: {threshold: 0.8}                              # handed to the program as $GATE_PARAMS (JSON)
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from bno_foundation.errors import ConfigError
from bno_foundation.yamlio import Located, load_yaml, parse_yaml, validate
from bno_quality_gates.status import Condition, GateStatus

STATUSES: tuple[str, ...] = tuple(GateStatus)
CONDITIONS: tuple[str, ...] = tuple(Condition)
HOOK_NAMES: tuple[str, ...] = ("pre-commit", "pre-push")
HookName = Literal["pre-commit", "pre-push"]
_GATE_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")
MAX_TIMEOUT = 86400.0  # seconds: a gate that may run for more than a day is a mistake in the file


class Transient(BaseModel):
    """What makes a failure transient (worth a retry): exit codes, output patterns, a timeout."""

    model_config = ConfigDict(extra="forbid")

    exit_codes: list[int] = Field(default_factory=list)
    patterns: list[str] = Field(default_factory=list)
    timeout: bool = False

    @field_validator("patterns")
    @classmethod
    def _patterns_compile(cls, value: list[str]) -> list[str]:
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"bad regular expression {pattern!r}: {exc}") from None
        return value


class Resources(BaseModel):
    """What a gate needs from the machine."""

    model_config = ConfigDict(extra="forbid")

    gpu: int = Field(default=0, ge=0)


class GateSpec(BaseModel):
    """One gate of the DAG."""

    model_config = ConfigDict(extra="forbid")

    name: str = ""  # filled from the mapping key
    description: str = ""
    command: list[str] | None = None
    commands: list[list[str]] | None = None
    depends: list[str] = Field(default_factory=list)
    inputs: list[str] = Field(default_factory=list)
    components: list[str] = Field(default_factory=list)
    timeout: float = Field(default=600.0, gt=0, le=MAX_TIMEOUT, allow_inf_nan=False, strict=True)
    retries: int = Field(default=0, ge=0, le=10)
    transient: Transient = Field(default_factory=Transient)
    errored_exit_codes: list[int] = Field(default_factory=list)
    required: bool = True
    resources: Resources = Field(default_factory=Resources)
    hooks: list[HookName] = Field(default_factory=lambda: list[HookName](["pre-push"]))
    cache: bool = True
    machine_bound: bool = False  # results depend on the machine (perf): keyed by a machine fingerprint
    uses_base: bool = False  # results depend on the change's base (diff coverage, a perf baseline): keyed by it
    exclusive: bool = False  # runs alone (nothing else in parallel): timings
    env: dict[str, str] = Field(default_factory=dict)
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_command_form(self) -> GateSpec:
        if (self.command is None) == (self.commands is None):
            raise ValueError("give exactly one of 'command' (one argv) or 'commands' (a list of argv)")
        for argv in self.argvs:
            if not argv:
                raise ValueError("a command must not be empty")
            if any("\x00" in token for token in argv):  # no operating system can pass it in an argument
                raise ValueError("a command argument holds a NUL character (\\x00 in a quoted YAML string)")
        return self

    @property
    def argvs(self) -> list[list[str]]:
        """The commands in the order they run."""
        if self.command is not None:
            return [self.command]
        return list(self.commands or [])

    def dependencies(self) -> list[tuple[str, str]]:
        """``(upstream gate, condition)`` for each entry of ``depends``."""
        return [parse_dependency(text) for text in self.depends]

    def fingerprint(self) -> str:
        """A canonical JSON text of the spec, part of the cache key."""
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))


class Defaults(BaseModel):
    """Run-wide settings."""

    model_config = ConfigDict(extra="forbid")

    workers: int = Field(default=2, ge=1, le=64)
    term_grace: float = Field(default=5.0, ge=0, le=MAX_TIMEOUT, allow_inf_nan=False, strict=True)


class GatesFile(BaseModel):
    """The whole ``gates.yaml``."""

    model_config = ConfigDict(extra="forbid")

    version: Literal[1] = 1
    defaults: Defaults = Field(default_factory=Defaults)
    env_allowlist: list[str] = Field(default_factory=list)
    components_file: str = "components.yaml"
    # folders of the tree under test, relative to its root, that gate programs import from ($PYTHONPATH)
    python_path: list[str] = Field(default_factory=lambda: ["."])
    gates: dict[str, GateSpec]


def parse_dependency(text: str) -> tuple[str, str]:
    """``"build.passed"`` -> ``("build", "passed")``; a bare name means ``passed``."""
    gate, dot, condition = text.rpartition(".")
    if not dot or condition not in CONDITIONS:
        return text, "passed"
    return gate, condition


class GatesConfig:
    """A validated gates file: the gates in file order, where it came from, its source positions."""

    def __init__(self, model: GatesFile, located: Located) -> None:
        self.model = model
        self.located = located
        self.path = Path(located.path)
        self.gates: dict[str, GateSpec] = model.gates
        self.warnings: list[ConfigError] = _warnings(model, located)
        """Problems that do not stop a run, each naming file, line and field like an error (never raised)."""

    @property
    def defaults(self) -> Defaults:
        """Run-wide settings."""
        return self.model.defaults

    def gate(self, name: str) -> GateSpec:
        """The gate called ``name``; a ConfigError listing the known gates otherwise."""
        try:
            return self.gates[name]
        except KeyError:
            known = ", ".join(self.gates) or "none"
            raise ConfigError(f"unknown gate {name!r} (known: {known})", path=self.path) from None

    def check_components(self, known: set[str]) -> None:
        """ConfigError at the line of any ``components`` entry that is not in ``known``."""
        for name, gate in self.gates.items():
            for index, component in enumerate(gate.components):
                if component not in known:
                    raise self.located.error(
                        f"unknown component {component!r} (known: {', '.join(sorted(known))})",
                        ("gates", name, "components", index),
                    )

    def components_path(self) -> Path:
        """The components file, relative to the gates file."""
        return self.path.parent / self.model.components_file


def _check_semantics(model: GatesFile, located: Located) -> None:
    for name, gate in model.gates.items():
        if not _GATE_NAME.match(name):
            raise located.error(
                "gate names are lower case letters, digits, '-' and '_', starting with a letter", ("gates", name)
            )
        gate.name = name
        for index, text in enumerate(gate.depends):
            upstream, _ = parse_dependency(text)
            if upstream not in model.gates:
                known = ", ".join(sorted(model.gates))
                raise located.error(
                    f"unknown gate {upstream!r} in depends (known: {known}; conditions: {', '.join(CONDITIONS)})",
                    ("gates", name, "depends", index),
                )
            if upstream == name:
                raise located.error("a gate cannot depend on itself", ("gates", name, "depends", index))
    _check_cycles(model, located)


def _check_cycles(model: GatesFile, located: Located) -> None:
    import networkx as nx

    graph: nx.DiGraph = nx.DiGraph()
    graph.add_nodes_from(model.gates)
    for name, gate in model.gates.items():
        for upstream, _ in gate.dependencies():
            graph.add_edge(upstream, name)
    try:
        cycle = nx.find_cycle(graph)
    except nx.NetworkXNoCycle:
        return
    path = " -> ".join([str(edge[0]) for edge in cycle] + [str(cycle[0][0])])
    first_down = str(cycle[0][1])
    index = next(
        i for i, text in enumerate(model.gates[first_down].depends) if parse_dependency(text)[0] == cycle[0][0]
    )
    raise located.error(f"dependency cycle: {path}", ("gates", first_down, "depends", index))


def _warnings(model: GatesFile, located: Located) -> list[ConfigError]:
    """A required gate with a ``.failed`` dependency runs only when that gate fails: in a green run it is
    skipped (which does not fail the run), so ``required`` matters only in runs that are failing anyway
    when the upstream gate is required itself. Usually ``required: false`` was meant."""
    out = []
    for name, gate in model.gates.items():
        if not gate.required:
            continue
        for index, text in enumerate(gate.depends):
            upstream, condition = parse_dependency(text)
            if condition != Condition.FAILED:
                continue
            if model.gates[upstream].required:
                consequence = ("whenever it runs the run has already failed, so 'required' decides nothing:"
                               " set 'required: false'")
            else:
                consequence = (f"a green run skips it; set 'required: false' unless its failure must fail a run"
                               f" that optional {upstream!r} alone would not fail")
            kind = "a required" if model.gates[upstream].required else "an optional"
            out.append(located.error(
                f"required gate {name!r} runs only when {kind} gate {upstream!r} fails (depends: {text}): "
                + consequence,
                ("gates", name, "depends", index),
            ))
    return out


def config_from_located(located: Located) -> GatesConfig:
    """Validate a parsed gates document."""
    if not isinstance(located.data, dict):
        raise located.error("a gates file is a mapping with a 'gates' key")
    model = validate(GatesFile, located)
    _check_semantics(model, located)
    return GatesConfig(model, located)


def load_gates(path: str | Path) -> GatesConfig:
    """Load and validate ``gates.yaml``; ConfigError with file:line:col:field on any problem (a gate or
    any other key given twice names both lines: :mod:`bno_foundation.yamlio`)."""
    return config_from_located(load_yaml(path))


def parse_gates(text: str, path: str | Path = "gates.yaml") -> GatesConfig:
    """Validate gates YAML given as text (tests, generated configs); the same checks as :func:`load_gates`."""
    return config_from_located(parse_yaml(text, path))
