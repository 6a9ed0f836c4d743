"""Render an agent's prompt body (a Jinja2 template) for one task.

Templates run in a :class:`jinja2.sandbox.SandboxedEnvironment` (no attribute access to Python internals,
no calls of unsafe methods) with :class:`jinja2.StrictUndefined`, so a misspelt variable is an error, not
an empty string. Autoescaping is off (the output is a plain-text prompt, not HTML).

Variables available in a body:

``task``
    The task, a mapping with at least these keys (missing ones get the defaults shown):
    ``id`` (str | None), ``title`` (str, ""), ``description`` (str, ""), ``type`` (the routing task type,
    str | None), ``components`` (list of component ids, []), ``complexity`` (1 simple .. 4 critical,
    or None), ``priority`` (float | None), ``acceptance`` (list of acceptance criteria, []),
    ``depends_on`` (list of task ids, []), ``files`` (list of paths, []), ``labels`` (list, []),
    ``status`` (str | None). Any other key of the task is passed through unchanged.
``agent``
    This agent's front matter as a mapping: ``name``, ``role``, ``description``, ``task_types``,
    ``components``, ``secondary``, ``gates``, ``tools`` (``allow``/``deny``), ``model``, ...
``worktree``
    The directory the agent works in (the task's git worktree), a string; the repo root if none given.
``repo``
    The repository root, a string.
``gates``
    The gate ids the work must pass before hand-back (default: the agent's ``gates``).
``context``
    A mapping of extra material the dispatcher supplies (default empty), e.g. ``context.notes`` (str),
    ``context.gate_failures`` (list of str from the last gate run), ``context.related`` (list of task
    titles). Test for a key with ``{% if context.notes is defined %}``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jinja2
import jinja2.meta
from jinja2.sandbox import SandboxedEnvironment

from bno_foundation.errors import ConfigError
from bno_orchestrator.agents.spec import AgentSpec

TASK_DEFAULTS: dict[str, Any] = {
    "id": None,
    "title": "",
    "description": "",
    "type": None,
    "components": [],
    "complexity": None,
    "priority": None,
    "acceptance": [],
    "depends_on": [],
    "files": [],
    "labels": [],
    "status": None,
}


@functools.lru_cache(maxsize=1)
def environment() -> SandboxedEnvironment:
    """The sandboxed, strict Jinja2 environment every agent body is rendered in (one, shared: it holds no
    per-render state)."""
    return SandboxedEnvironment(
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def normalize_task(task: Mapping[str, Any] | Any) -> dict[str, Any]:
    """The ``task`` variable: the task's fields (a mapping or a pydantic model) over :data:`TASK_DEFAULTS`.

    ``task_type`` is accepted for ``type`` and a single ``component`` for ``components``.
    """
    if hasattr(task, "model_dump"):
        data = dict(task.model_dump(mode="json"))
    elif isinstance(task, Mapping):
        data = dict(task)
    else:
        raise TypeError(f"a task must be a mapping or a pydantic model, not {type(task).__name__}")
    if "type" not in data and "task_type" in data:
        data["type"] = data["task_type"]
    if "components" not in data and data.get("component"):
        data["components"] = [data["component"]]
    return {**TASK_DEFAULTS, **data}


def sample_task(agent: AgentSpec | None = None) -> dict[str, Any]:
    """A fully populated task used to check that a body renders (``orchestrator agents validate``)."""
    task_type = agent.task_types[0] if agent and agent.task_types else "implementation"
    components = list(agent.components[:2]) if agent and agent.components else ["bitnet-core"]
    return normalize_task(
        {
            "id": "T-0001",
            "title": "Sample task used to validate the prompt template",
            "description": "Check that every variable the template uses exists.\nSecond line.",
            "type": task_type,
            "components": components,
            "complexity": 2,
            "priority": 4.0,
            "acceptance": ["the gates named by the agent pass", "the change is described in the hand-back"],
            "depends_on": ["T-0000"],
            "files": ["bitnet/quant.py"],
            "labels": ["sample"],
            "status": "assigned",
        }
    )


def build_variables(
    agent: AgentSpec,
    task: Mapping[str, Any] | Any,
    *,
    worktree: str | Path | None = None,
    repo: str | Path | None = None,
    gates: list[str] | None = None,
    context: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The variables a body is rendered with (documented in this module's docstring)."""
    repo_text = str(repo) if repo is not None else "."
    return {
        "task": normalize_task(task),
        "agent": agent.model_dump(mode="json", exclude={"body"}),
        "worktree": str(worktree) if worktree is not None else repo_text,
        "repo": repo_text,
        "gates": list(gates) if gates is not None else list(agent.gates),
        "context": dict(context or {}),
    }


def render_template(
    source: str, variables: Mapping[str, Any], *, path: str | Path | None = None, line_offset: int = 0
) -> str:
    """Render ``source``; syntax and undefined-variable errors become ConfigErrors naming the file line.

    ``line_offset`` is added to template line numbers (the body starts after the front matter).
    """
    env = environment()
    try:
        template = env.from_string(source)
    except jinja2.TemplateSyntaxError as exc:
        raise ConfigError(
            f"prompt template: {exc.message}", path=path, line=(exc.lineno or 1) + line_offset, field="body"
        ) from None
    try:
        return template.render(**variables)
    except jinja2.UndefinedError as exc:
        raise ConfigError(f"prompt template: {exc.message}", path=path, field="body") from None
    except jinja2.TemplateError as exc:  # includes SecurityError from the sandbox
        raise ConfigError(f"prompt template: {exc}", path=path, field="body") from None


def render_body(
    agent: AgentSpec,
    task: Mapping[str, Any] | Any,
    *,
    worktree: str | Path | None = None,
    repo: str | Path | None = None,
    gates: list[str] | None = None,
    context: Mapping[str, Any] | None = None,
    path: str | Path | None = None,
    line_offset: int = 0,
) -> str:
    """Render ``agent.body`` for ``task``: the prompt handed to the executor."""
    variables = build_variables(agent, task, worktree=worktree, repo=repo, gates=gates, context=context)
    return render_template(agent.body, variables, path=path, line_offset=line_offset)


def template_variables(source: str) -> set[str]:
    """The top-level variable names a template reads (``task``, ``worktree``, ...); empty on a syntax error."""
    env = environment()
    try:
        return set(jinja2.meta.find_undeclared_variables(env.parse(source)))
    except jinja2.TemplateSyntaxError:
        return set()


def uses_template_syntax(text: str) -> bool:
    """Whether ``text`` contains Jinja2 delimiters (``{{``, ``{%`` or ``{#``)."""
    return any(marker in text for marker in ("{{", "{%", "{#"))


# A "{" that would open a Jinja2 delimiter ("{{", "{%", "{#"). Replacing each with an expression that prints
# "{" leaves no delimiter in foreign text at all, so no sequence in it (``{%endraw%}``, ``{%- endraw %}``,
# ...) can end a raw block or start a statement: the text is data, and renders to itself.
_DELIMITER_OPENING = re.compile(r"\{(?=[{%#])")
_LITERAL_BRACE = "{{ '{' }}"


def protect_literal(text: str) -> str:
    """Escape foreign prompt text so that Jinja2 renders it verbatim and runs nothing in it.

    Every ``{`` that opens a delimiter becomes ``{{ '{' }}``; all other text is unchanged, so the body stays
    readable. ``render_template(protect_literal(t), ...) == t`` for every ``t``.
    """
    if not uses_template_syntax(text):
        return text
    return _DELIMITER_OPENING.sub(lambda _: _LITERAL_BRACE, text)


def unprotect_literal(text: str) -> str:
    """Undo :func:`protect_literal` (for export): the verbatim text. Bodies written by earlier versions,
    wrapped whole in ``{% raw %}``, are unwrapped too."""
    if _LITERAL_BRACE in text:
        return text.replace(_LITERAL_BRACE, "{")
    stripped = text.rstrip("\n")
    if stripped.startswith("{% raw %}") and stripped.endswith("{% endraw %}") and stripped.count("{% raw %}") == 1:
        inner = stripped[len("{% raw %}"): -len("{% endraw %}")]
        if "endraw" not in inner:
            return inner + text[len(stripped):]
    return text
