"""The schema of an agent definition (``agents/NAME.md``: YAML front matter + a Jinja2 prompt body).

The front matter is a superset of the popular agent formats (Claude Code subagents, Roo Code modes, CrewAI
agents, GitHub Copilot agents) plus what routing needs (task types, components, complexity range,
capacity). Our own files are validated strictly: an unknown field is an error naming its file, line and
column. ``extensions`` keeps, per foreign format, the fields that our schema has no place for, so an
import followed by an export to the same format loses nothing.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

NAME_PATTERN = r"^[a-z0-9]+(?:-[a-z0-9]+)*$"
# The executors that run something (or, ``manual``, hand the prompt to a person).
ConcreteExecutorKind = Literal["claude", "codex", "aider", "gemini", "shell", "manual"]
# What an agent file may name: a concrete kind, or ``default``: the repository's ``default_executor``
# (``workflows/dispatch.yaml``), put in its place when the configuration is loaded
# (:func:`bno_orchestrator.config.resolve_executor`).
ExecutorKind = Literal["claude", "codex", "aider", "gemini", "shell", "manual", "default"]
DEFAULT_KIND = "default"

# Front-matter keys in the order they are written back (``extensions`` last).
FIELD_ORDER: tuple[str, ...] = (
    "name",
    "description",
    "role",
    "task_types",
    "components",
    "complexity",
    "capacity",
    "secondary",
    "gates",
    "tools",
    "model",
    "executor",
    "max_turns",
    "budget",
    "origin",
    "extensions",
)


class ToolPolicy(BaseModel):
    """Which tools the agent may use: ``allow`` (empty = the executor's default set) minus ``deny``."""

    model_config = ConfigDict(extra="forbid")

    allow: list[str] = Field(default_factory=list)
    deny: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _disjoint(self) -> ToolPolicy:
        both = sorted(set(self.allow) & set(self.deny))
        if both:
            raise ValueError(f"tools both allowed and denied: {', '.join(both)}")
        return self


class ExecutorSpec(BaseModel):
    """Which executor runs the agent and its options.

    ``manual`` hands the rendered prompt to a person; ``default`` is the repository's default executor
    (``workflows/dispatch.yaml``), with the agent's ``options`` laid over the default's.
    """

    model_config = ConfigDict(extra="forbid")

    kind: ExecutorKind = "manual"
    options: dict[str, Any] = Field(default_factory=dict)


class AgentOrigin(BaseModel):
    """Where an imported agent came from, so that an export back to that format writes what was read.

    Only an export to ``format`` uses it: ``file`` is the source file's name, ``keys`` the source's field
    names in their order, ``raw`` the source values that our fields hold only in a converted form (a YAML
    list of tools, a display name, a list of models), written back while our value still converts from
    them, ``derived`` our values that the source did not set (made from other fields), not written back
    while unchanged, ``ends`` the leading and trailing white space of text fields that our fields hold
    stripped (as letters: ``n`` a line break, ``s`` a space, ``t`` a tab, ``r`` a carriage return), and ``syntax`` the serialization of a file that may be YAML or JSON.
    """

    model_config = ConfigDict(extra="forbid")

    format: str = Field(min_length=1)
    file: str = Field(min_length=1)
    keys: list[str] = Field(default_factory=list)
    raw: dict[str, Any] = Field(default_factory=dict)
    derived: dict[str, Any] = Field(default_factory=dict)
    ends: dict[str, tuple[str, str]] = Field(default_factory=dict)

    @field_validator("ends")
    @classmethod
    def _ends_are_letters(cls, value: dict[str, tuple[str, str]]) -> dict[str, tuple[str, str]]:
        for key, pair in value.items():
            if any(set(part) - set("nsrt") for part in pair):
                raise ValueError(f"ends of {key!r} must be made of the letters n, s, r and t")
        return value
    syntax: Literal["yaml", "json"] | None = None


class AgentFrontMatter(BaseModel):
    """The front matter of an agent file: every field except the prompt body."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN, description="id, kebab-case, equal to the file stem")
    description: str = Field(min_length=1, description="when to use this agent")
    role: str = Field(min_length=1, description="a short title, e.g. 'Performance Engineer'")
    task_types: list[str] = Field(default_factory=list, description="routing.yaml task types it takes")
    components: list[str] = Field(default_factory=list, description="component ids it owns or supports")
    complexity: tuple[int, int] = Field(default=(1, 4), description="min, max complexity (1 simple .. 4 critical)")
    capacity: int = Field(default=2, ge=1, description="max concurrent tasks")
    secondary: list[str] = Field(default_factory=list, description="agents it works with")
    gates: list[str] = Field(default_factory=list, description="quality gates that matter to it")
    tools: ToolPolicy = Field(default_factory=ToolPolicy)
    model: str | None = None
    executor: ExecutorSpec = Field(default_factory=ExecutorSpec)
    max_turns: int | None = Field(default=None, ge=1)
    budget: float | None = Field(default=None, ge=0, description="spending limit per task, in USD")
    origin: AgentOrigin | None = Field(default=None, description="the foreign file an import read, to write it back alike")
    extensions: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="per foreign format, fields our schema cannot hold"
    )

    @field_validator("complexity")
    @classmethod
    def _complexity_range(cls, value: tuple[int, int]) -> tuple[int, int]:
        low, high = value
        if not (1 <= low <= high <= 4):
            raise ValueError("complexity must be [min, max] with 1 <= min <= max <= 4")
        return value

    @field_validator("task_types", "components", "secondary", "gates")
    @classmethod
    def _unique_ids(cls, value: list[str]) -> list[str]:
        seen: set[str] = set()
        for item in value:
            if not re.match(r"^[a-z0-9][a-z0-9_.-]*$", item):
                raise ValueError(f"{item!r} is not an id (lower-case letters, digits, '-', '_', '.')")
            if item in seen:
                raise ValueError(f"{item!r} is listed twice")
            seen.add(item)
        return value


class AgentSpec(AgentFrontMatter):
    """A complete agent definition: the front matter plus ``body``, the prompt (a Jinja2 template)."""

    body: str = ""

    def front_matter(self) -> dict[str, Any]:
        """The front-matter mapping as written to a file: fields in :data:`FIELD_ORDER`, defaults omitted.

        ``name``, ``description`` and ``role`` are always written; ``task_types`` and ``components`` too,
        because routing reads them.
        """
        data = self.model_dump(mode="json", exclude={"body"})
        defaults = AgentFrontMatter(name="x", description="x", role="x").model_dump(mode="json")
        always = {"name", "description", "role", "task_types", "components"}
        out: dict[str, Any] = {}
        for key in FIELD_ORDER:
            value = data[key]
            if key in always or value != defaults.get(key):
                out[key] = value
        if "executor" in out and not out["executor"]["options"]:
            out["executor"] = {"kind": out["executor"]["kind"]}
        if "tools" in out:
            out["tools"] = {k: v for k, v in out["tools"].items() if v}
        if "origin" in out:
            out["origin"] = {k: v for k, v in out["origin"].items() if v not in (None, [], {})}
        return out
