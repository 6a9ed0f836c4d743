"""Load and validate our own agent files (``agents/NAME.md``), strictly.

:func:`load_agent` and :func:`load_agents` raise the first problem as a :class:`ConfigError` naming the
file, line, column and field. :func:`validate_paths` collects *every* problem of a set of files
(``orchestrator agents validate``): schema, ``name`` == file stem, duplicate names, secondary agents that
do not exist, task types / components / gates unknown to ``workflows/`` (when those files exist), and
whether the body renders with a sample task.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bno_foundation.errors import ConfigError
from bno_foundation.yamlio import Located, load_yaml, validate
from bno_orchestrator.agents.frontmatter import parse_front_matter, read_text
from bno_orchestrator.agents.render import build_variables, render_template, sample_task
from bno_orchestrator.agents.spec import AgentFrontMatter, AgentSpec

RESERVED_KEYS = ("body",)


@dataclass
class LoadedAgent:
    """An agent read from a file, with where its fields are (for cross-file error messages)."""

    spec: AgentSpec
    path: Path
    located: Located
    body_line: int


def _parse(path: Path) -> LoadedAgent:
    located, body, body_line = parse_front_matter(read_text(path), path)
    for key in RESERVED_KEYS:
        if key in located.data:
            raise located.error("unknown field (the prompt is the Markdown body, not a front-matter field)", (key,))
    front = validate(AgentFrontMatter, located)
    spec = AgentSpec(**dict(front), body=body)
    if spec.name != path.stem:
        raise located.error(f"name {spec.name!r} differs from the file name {path.name!r}", ("name",))
    return LoadedAgent(spec, path, located, body_line)


def load_agent(path: Path) -> AgentSpec:
    """Read one agent file strictly (ConfigError with file:line:col and field on any problem)."""
    return _parse(Path(path)).spec


def agent_files(directory: Path) -> list[Path]:
    """The ``*.md`` files of an agents directory, sorted (a README.md is not an agent)."""
    if not directory.is_dir():
        raise ConfigError("agents directory not found", path=directory)
    return sorted(p for p in directory.glob("*.md") if p.name.lower() != "readme.md")


def load_agents(directory: Path) -> dict[str, AgentSpec]:
    """Read every agent of ``directory`` strictly; secondary agents must exist among them."""
    loaded = [_parse(p) for p in agent_files(Path(directory))]
    problems = _cross_check(loaded, _Vocabulary())
    if problems:
        raise problems[0]
    return {item.spec.name: item.spec for item in loaded}


@dataclass
class _Vocabulary:
    """Ids known to ``workflows/`` (None = that file is absent, nothing to check against)."""

    task_types: set[str] | None = None
    components: set[str] | None = None
    gates: set[str] | None = None
    sources: dict[str, str] = field(default_factory=dict)


def _ids(value: Any) -> set[str] | None:
    """Ids from a mapping's keys or a list of strings / ``{id: ...}`` / ``{name: ...}`` items."""
    if isinstance(value, dict):
        return {str(k) for k in value}
    if isinstance(value, list):
        out: set[str] = set()
        for item in value:
            if isinstance(item, str):
                out.add(item)
            elif isinstance(item, dict) and ("id" in item or "name" in item):
                out.add(str(item.get("id", item.get("name"))))
        return out
    return None


def load_vocabulary(workflows: Path) -> _Vocabulary:
    """Task types and components from ``routing.yaml``, gate ids from ``gates.yaml``, where they exist."""
    vocab = _Vocabulary()
    routing = workflows / "routing.yaml"
    if routing.is_file():
        data = load_yaml(routing).data
        if isinstance(data, dict):
            vocab.task_types = _ids(data.get("task_types"))
            vocab.components = _ids(data.get("components"))
            vocab.sources["task_types"] = vocab.sources["components"] = str(routing)
    gates = workflows / "gates.yaml"
    if gates.is_file():
        data = load_yaml(gates).data
        if isinstance(data, dict):
            vocab.gates = _ids(data.get("gates"))
            vocab.sources["gates"] = str(gates)
    return vocab


def _cross_check(
    loaded: Sequence[LoadedAgent], vocab: _Vocabulary, known_agents: Iterable[str] = ()
) -> list[ConfigError]:
    elsewhere = set(known_agents)
    problems: list[ConfigError] = []
    names: dict[str, Path] = {}
    for item in loaded:
        if item.spec.name in names:
            problems.append(
                item.located.error(f"agent {item.spec.name!r} is also defined in {names[item.spec.name]}", ("name",))
            )
        names.setdefault(item.spec.name, item.path)
    for item in loaded:
        for index, other in enumerate(item.spec.secondary):
            if other not in names and other not in elsewhere:
                problems.append(item.located.error(f"no agent named {other!r}", ("secondary", index)))
            elif other == item.spec.name:
                problems.append(item.located.error("an agent cannot be its own secondary", ("secondary", index)))
        checks: list[tuple[str, list[str], set[str] | None]] = [
            ("task_types", item.spec.task_types, vocab.task_types),
            ("components", item.spec.components, vocab.components),
            ("gates", item.spec.gates, vocab.gates),
        ]
        for key, values, known in checks:
            if known is None:
                continue
            for index, value in enumerate(values):
                if value not in known:
                    problems.append(
                        item.located.error(
                            f"{value!r} is not defined in {vocab.sources[key]} (known: {', '.join(sorted(known))})",
                            (key, index),
                        )
                    )
    return problems


def check_renders(item: LoadedAgent) -> ConfigError | None:
    """Render the body with :func:`sample_task`; the error, or None when it renders."""
    variables = build_variables(
        item.spec,
        sample_task(item.spec),
        worktree="/tmp/worktree",
        repo="/tmp/repo",
        context={"notes": "sample notes", "gate_failures": ["test: 1 failed"], "related": ["T-0000"]},
    )
    try:
        render_template(item.spec.body, variables, path=item.path, line_offset=item.body_line - 1)
    except ConfigError as exc:
        return exc
    return None


@dataclass
class ValidationReport:
    """Every problem found in a set of agent files."""

    agents: dict[str, AgentSpec]
    files: list[Path]
    problems: list[ConfigError]

    @property
    def ok(self) -> bool:
        """True when no problem was found."""
        return not self.problems

    def as_json(self) -> dict[str, Any]:
        """The ``--json`` form."""
        return {
            "ok": self.ok,
            "files": [str(p) for p in self.files],
            "agents": sorted(self.agents),
            "problems": [
                {"path": e.path, "line": e.line, "column": e.column, "field": e.field, "message": e.reason}
                for e in self.problems
            ],
        }


def expand_paths(paths: Iterable[Path]) -> list[Path]:
    """Files as given, directories as their agent files."""
    out: list[Path] = []
    for path in paths:
        out.extend(agent_files(path) if path.is_dir() else [path])
    return out


def validate_paths(
    paths: Sequence[Path], *, workflows: Path | None = None, known_agents: Iterable[str] = ()
) -> ValidationReport:
    """Validate agent files, collecting every problem (nothing is raised for a bad file).

    ``workflows`` is the folder with ``routing.yaml``/``gates.yaml`` to check ids against (default: the
    ``workflows`` folder beside the first file's directory). ``known_agents`` are names that exist
    elsewhere (a secondary may name them when only some files are validated).
    """
    files = expand_paths(paths)
    problems: list[ConfigError] = []
    loaded: list[LoadedAgent] = []
    for path in files:
        try:
            loaded.append(_parse(path))
        except ConfigError as exc:
            problems.append(exc)
    if workflows is None and files:
        workflows = files[0].resolve().parent.parent / "workflows"
    try:
        vocab = load_vocabulary(workflows) if workflows is not None else _Vocabulary()
    except ConfigError as exc:
        problems.append(exc)
        vocab = _Vocabulary()
    problems.extend(_cross_check(loaded, vocab, known_agents))
    for item in loaded:
        error = check_renders(item)
        if error is not None:
            problems.append(error)
    return ValidationReport({item.spec.name: item.spec for item in loaded}, files, problems)


class _BlockDumper(yaml.SafeDumper):
    """SafeDumper writing multi-line strings as literal blocks and lists of scalars in flow style."""


def _str_representer(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    # a literal block cannot hold trailing spaces: such text is written quoted, losslessly
    if "\n" in value and value.strip() and not value.endswith("\n\n") and not re.search(r"[ \t]\n", value):
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


def _list_representer(dumper: yaml.SafeDumper, value: list[Any]) -> yaml.SequenceNode:
    flow = all(isinstance(v, int | float | bool) or (isinstance(v, str) and "\n" not in v) for v in value)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", value, flow_style=flow and len(value) <= 12)


_BlockDumper.add_representer(str, _str_representer)
_BlockDumper.add_representer(list, _list_representer)


def dump_agent(spec: AgentSpec) -> str:
    """The text of ``agents/NAME.md`` for ``spec`` (front matter + body); :func:`load_agent` reads it back."""
    front = yaml.dump(
        spec.front_matter(), Dumper=_BlockDumper, sort_keys=False, allow_unicode=True, width=100
    )
    body = spec.body if spec.body.endswith("\n") or not spec.body else spec.body + "\n"
    return f"---\n{front}---\n\n{body}"
