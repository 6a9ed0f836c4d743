"""Prompt bodies render in a strict sandbox; foreign text is protected from Jinja2."""

from __future__ import annotations

import hypothesis
import hypothesis.strategies as st
import pytest
from pydantic import BaseModel

from bno_foundation.errors import ConfigError
from bno_orchestrator.agents import AgentSpec
from bno_orchestrator.agents.render import (
    build_variables,
    protect_literal,
    render_body,
    render_template,
    template_variables,
    unprotect_literal,
)


def spec(body: str) -> AgentSpec:
    return AgentSpec(name="t", description="d", role="Tester", gates=["test"], body=body)


class TaskModel(BaseModel):
    id: str
    title: str
    task_type: str
    component: str


def test_task_variables_and_defaults() -> None:
    body = "{{ task.title }}|{{ task.type }}|{{ task.components | join(',') }}|{{ task.acceptance | length }}|{{ worktree }}|{{ gates | join(',') }}"
    out = render_body(spec(body), TaskModel(id="T-1", title="Pack", task_type="performance", component="kernels"), worktree="/wt")
    assert out == "Pack|performance|kernels|0|/wt|test"


def test_context_keys_are_optional_but_strict() -> None:
    body = "{% if context.notes is defined %}N={{ context.notes }}{% endif %}."
    assert render_body(spec(body), {"title": "x"}) == "."
    assert render_body(spec(body), {"title": "x"}, context={"notes": "hi"}) == "N=hi."


def test_undefined_variable_is_an_error() -> None:
    with pytest.raises(ConfigError) as info:
        render_body(spec("{{ task.titel }}"), {"title": "x"}, path="agents/t.md")
    assert info.value.field == "body" and "titel" in str(info.value)


def test_syntax_error_has_the_file_line() -> None:
    with pytest.raises(ConfigError) as info:
        render_template("a\nb\n{% for %}\n", {}, path="agents/t.md", line_offset=10)
    assert info.value.line == 13


@pytest.mark.parametrize(
    "attack",
    ["{{ ''.__class__.__mro__[1].__subclasses__() }}", "{{ task.__class__.__init__.__globals__ }}"],
)
def test_sandbox_blocks_python_internals(attack: str) -> None:
    with pytest.raises(ConfigError):
        render_body(spec(attack), {"title": "x"})


def test_variables_are_documented() -> None:
    variables = build_variables(spec(""), {"title": "x"})
    import bno_orchestrator.agents.render as render

    for name in variables:
        assert f"``{name}``" in (render.__doc__ or ""), name
    assert template_variables("{{ task.title }} {{ worktree }}") == {"task", "worktree"}


@pytest.mark.parametrize(
    "text",
    [
        "plain text\n",
        "GitHub: ${{ secrets.TOKEN }} and {% raw %} and {# x #}\n",
        "tricky {% endraw %} inside {{ x }}\n",
        # escapes of the old {% raw %} wrapping: none may run as a template
        "{%endraw%}{{ range(10**9)|list }}\n",
        "{%- endraw -%}{% for x in range(99999999) %}{% endfor %}",
        "{% endraw %}{{ task }}{{ agent.body }}",
        "{{{ {%% {## }}} %}}",
        "{{ '{' }}",
    ],
)
def test_protected_text_renders_verbatim(text: str) -> None:
    protected = protect_literal(text)
    assert render_template(protected, {}) == text
    assert unprotect_literal(protected) == text


@hypothesis.settings(max_examples=300, deadline=None)
@hypothesis.given(st.text(alphabet=st.sampled_from(list("{}%#- raw endraw\n'\"x|")), max_size=60))
def test_any_foreign_text_is_data_and_round_trips(text: str) -> None:
    protected = protect_literal(text)
    assert render_template(protected, {}) == text
    assert unprotect_literal(protected) == text
