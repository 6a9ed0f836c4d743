"""Property tests: agent files of every format survive an import and an export to the same format exactly,
and no conversion to another format widens what an agent may do."""

from __future__ import annotations

import json
import string
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bno_orchestrator.agents import AgentSpec
from bno_orchestrator.agents.frontmatter import parse_front_matter_lenient, read_text
from bno_orchestrator.agents.interop import FORMATS, format_module
from bno_orchestrator.agents.interop.base import CLAUDE_TOOLS

SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])

WORD = st.text(alphabet=string.ascii_letters + string.digits, min_size=1, max_size=8)
# prose as people write it: words, punctuation, accents and emoji, no backslashes (a lenient reader
# turns a literal \n in front matter into a line break, as Claude Code does)
PROSE_CHARS = string.ascii_letters + string.digits + " .,;:!?()'\"-_/#*é漢🧭"
PROSE = st.text(alphabet=PROSE_CHARS, min_size=1, max_size=40).filter(lambda t: t.strip(" ") and any(c.isalnum() for c in t))
ID = st.lists(st.text(alphabet=string.ascii_lowercase + string.digits, min_size=1, max_size=6), min_size=1, max_size=3).map("-".join)
DISPLAY_NAME = st.one_of(ID, st.lists(WORD, min_size=1, max_size=3).map(" ".join), WORD.map(lambda w: f"🧭 {w}"))
TEXT = st.one_of(PROSE, st.tuples(PROSE, PROSE).map(lambda p: f"{p[0]}\n{p[1]}\n"), PROSE.map(lambda p: p + "\n"))
BODY = st.lists(st.one_of(PROSE, st.just("## Steps"), st.just("Use {{ secrets.TOKEN }} here.")), min_size=1, max_size=4).map(
    lambda lines: "\n\n".join(line.strip() or "x" for line in lines)
)
TOOL = st.sampled_from(["Read", "Glob", "Grep", "Edit", "Write", "Bash", "WebFetch", "read", "grep", "search", "githubRepo"])
TOOLS = st.lists(TOOL, max_size=4, unique_by=str.lower)


@st.composite
def ordered(draw: st.DrawFn, fields: dict[str, Any]) -> dict[str, Any]:
    """``fields`` in a drawn order (the source's key order must survive)."""
    keys = draw(st.permutations(list(fields)))
    return {key: fields[key] for key in keys}


@st.composite
def claude_file(draw: st.DrawFn) -> tuple[str, str]:
    fields: dict[str, Any] = {"name": draw(ID), "description": draw(TEXT)}
    tools = draw(st.one_of(st.none(), TOOLS, TOOLS.map(", ".join)))
    if tools is not None:
        fields["tools"] = tools
    if draw(st.booleans()):
        fields["disallowedTools"] = draw(st.sampled_from(["WebSearch", ["WebSearch", "Task"], "Task, KillShell"]))
    if draw(st.booleans()):
        fields["model"] = draw(st.sampled_from(["sonnet", "opus", "inherit", "claude-sonnet-4-5"]))
    if draw(st.booleans()):
        fields["maxTurns"] = draw(st.integers(1, 80))
    if draw(st.booleans()):
        fields["color"] = draw(st.sampled_from(["red", "blue"]))
        fields["permissionMode"] = "plan"
    front = yaml.safe_dump(draw(ordered(fields)), sort_keys=False, allow_unicode=True)
    file = draw(st.sampled_from([f"{fields['name']}.md", "AGENT.md"]))
    return file, f"---\n{front}---\n\n{draw(BODY)}\n"


@st.composite
def copilot_file(draw: st.DrawFn) -> tuple[str, str]:
    name = draw(DISPLAY_NAME)
    fields: dict[str, Any] = {"name": name, "description": draw(TEXT)}
    tools = draw(st.one_of(st.none(), TOOLS))
    if tools is not None:
        fields["tools"] = tools
    model = draw(st.one_of(st.none(), st.just("GPT-5 (copilot)"), st.just(["Claude Sonnet 4.5 (copilot)", "GPT-5 (copilot)"])))
    if model is not None:
        fields["model"] = model
    if draw(st.booleans()):
        fields["handoffs"] = [{"label": "Review", "agent": name, "prompt": draw(PROSE), "send": False}]
        fields["agents"] = [name]
    if draw(st.booleans()):
        fields["argument-hint"] = draw(PROSE)
    front = yaml.safe_dump(draw(ordered(fields)), sort_keys=False, allow_unicode=True)
    return f"{draw(ID)}.agent.md", f"---\n{front}---\n\n{draw(BODY)}\n"


GROUP: st.SearchStrategy[Any] = st.one_of(
    st.sampled_from(["read", "edit", "command", "browser", "mcp"]),
    st.just(["edit", {"fileRegex": "\\.md$", "description": "Markdown only"}]),
)


def group_name(group: Any) -> str:
    """``read`` for ``read`` and for ``[read, {options}]``."""
    return str(group if isinstance(group, str) else group[0])


@st.composite
def roo_mode(draw: st.DrawFn, slug: str) -> dict[str, Any]:
    fields: dict[str, Any] = {"slug": slug, "name": draw(PROSE), "roleDefinition": draw(TEXT)}
    which = draw(st.sampled_from(["when", "description", "both"]))
    if which in ("when", "both"):
        fields["whenToUse"] = draw(TEXT)
    if which in ("description", "both"):
        fields["description"] = draw(PROSE)
    fields["groups"] = draw(st.lists(GROUP, max_size=3, unique_by=group_name))
    if draw(st.booleans()):
        fields["customInstructions"] = draw(TEXT)
    if draw(st.booleans()):
        fields["source"] = "project"
    return draw(ordered(fields))


@st.composite
def roo_file(draw: st.DrawFn) -> tuple[str, str]:
    slugs = draw(st.lists(ID, min_size=1, max_size=3, unique=True))
    modes = [draw(roo_mode(slug)) for slug in slugs]
    if draw(st.booleans()):
        return ".roomodes", json.dumps({"customModes": modes}, indent=2, ensure_ascii=False)
    return draw(st.sampled_from([".roomodes", "team.roomodes"])), yaml.safe_dump({"customModes": modes}, sort_keys=False, allow_unicode=True)


@st.composite
def crewai_file(draw: st.DrawFn) -> tuple[str, str]:
    keys = draw(st.lists(ID.map(lambda i: i.replace("-", "_")), min_size=1, max_size=3, unique=True))
    data: dict[str, Any] = {}
    for key in keys:
        fields: dict[str, Any] = {"role": draw(PROSE), "goal": draw(TEXT), "backstory": draw(TEXT)}
        if draw(st.booleans()):
            fields["llm"] = draw(st.sampled_from(["gpt-4o", "ollama/llama3"]))
        tools = draw(st.one_of(st.none(), st.lists(st.sampled_from(["SerperDevTool", "FileReadTool"]), min_size=1, max_size=2, unique=True)))
        if tools is not None:
            fields["tools"] = tools
        if draw(st.booleans()):
            fields["max_iter"] = draw(st.integers(1, 30))
        if draw(st.booleans()):
            fields["verbose"] = draw(st.booleans())
        data[key] = draw(ordered(fields))
    return draw(st.sampled_from(["agents.yaml", "research_agents.yaml"])), yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


GEMINI_TOOL = st.sampled_from(["read_file", "grep_search", "glob", "write_file", "replace", "run_shell_command", "web_fetch", "mcp_github_*"])


@st.composite
def gemini_file(draw: st.DrawFn) -> tuple[str, str]:
    fields: dict[str, Any] = {"name": draw(st.one_of(ID, ID.map(lambda i: i.replace("-", "_")))), "description": draw(TEXT)}
    if draw(st.booleans()):
        fields["kind"] = "local"
    tools = draw(st.one_of(st.none(), st.lists(GEMINI_TOOL, max_size=4, unique=True), st.lists(GEMINI_TOOL, min_size=1, max_size=3, unique=True).map(", ".join), st.just(["*"])))
    if tools is not None:
        fields["tools"] = tools
    if draw(st.booleans()):
        fields["model"] = draw(st.sampled_from(["gemini-3-flash-preview", "inherit"]))
    if draw(st.booleans()):
        fields["temperature"] = draw(st.sampled_from([0.2, 1]))
        fields["max_turns"] = draw(st.integers(1, 50))
    if draw(st.booleans()):
        fields["timeout_mins"] = draw(st.integers(1, 30))
    front = yaml.safe_dump(draw(ordered(fields)), sort_keys=False, allow_unicode=True)
    return f"{fields['name']}.md", f"---\n{front}---\n\n{draw(BODY)}\n"


def parsed(fmt: str, path: Path) -> Any:
    """What the format's own tool reads from a file: the data (and, for Markdown, the body)."""
    text = read_text(path)
    if fmt in ("claude", "copilot", "gemini"):
        result = parse_front_matter_lenient(text, path)
        assert not result.repairs, [r.as_text() for r in result.repairs]
        return {"front": result.data, "body": result.body.strip()}
    return json.loads(text) if text.lstrip().startswith("{") else yaml.safe_load(text)


def import_export(fmt: str, file: str, text: str) -> tuple[Path, Path, list[AgentSpec]]:
    """Write ``text`` as ``file``, import it and export the agents to the same format; the source path,
    the exported file's path and the imported agents."""
    with TemporaryDirectory() as tmp:
        root = Path(tmp)
        source = root / "in" / file
        source.parent.mkdir()
        source.write_text(text, encoding="utf-8")
        module = format_module(fmt)
        specs = [spec for spec, _ in module.import_path(source)]
        exported = module.export_agents(specs)
        assert len(exported.files) == 1
        [(rel, out_text)] = exported.files.items()
        target = root / "out" / rel
        target.parent.mkdir()
        target.write_text(out_text, encoding="utf-8")
        assert target.name == source.name, "the file name is kept"
        assert parsed(fmt, target) == parsed(fmt, source)
        if fmt == "roo":
            assert out_text.lstrip().startswith("{") == text.lstrip().startswith("{"), "JSON stays JSON, YAML stays YAML"
        return source, target, specs


@SETTINGS
@given(claude_file())
def test_claude_files_round_trip_exactly(source: tuple[str, str]) -> None:
    import_export("claude", *source)


@SETTINGS
@given(copilot_file())
def test_copilot_files_round_trip_exactly(source: tuple[str, str]) -> None:
    import_export("copilot", *source)


@SETTINGS
@given(roo_file())
def test_roo_files_round_trip_exactly(source: tuple[str, str]) -> None:
    import_export("roo", *source)


@SETTINGS
@given(crewai_file())
def test_crewai_files_round_trip_exactly(source: tuple[str, str]) -> None:
    import_export("crewai", *source)


@SETTINGS
@given(gemini_file())
def test_gemini_files_round_trip_exactly(source: tuple[str, str]) -> None:
    import_export("gemini", *source)


def effective_tools(spec: AgentSpec, universe: set[str]) -> set[str]:
    """What the agent may use, out of ``universe``: the allow-list (else everything) minus the deny-list,
    in lower case (Copilot's ``read`` is Claude Code's ``Read``)."""
    allowed = {t.lower() for t in spec.tools.allow} if spec.tools.allow else {t.lower() for t in universe}
    return allowed - {t.lower() for t in spec.tools.deny}


def cross(spec: AgentSpec, target: str) -> tuple[AgentSpec, list[str]]:
    """``spec`` exported to ``target`` and imported back; and the fields its export reports as changed."""
    module = format_module(target)
    exported = module.export_agents([spec])
    with TemporaryDirectory() as tmp:
        for rel, text in exported.files.items():
            (Path(tmp) / rel).write_text(text, encoding="utf-8")
        [(back, _)] = [item for rel in exported.files for item in module.import_path(Path(tmp) / rel) if item[0].name == spec.name]
    fields = [n.field or "" for r in exported.reports for n in r.notes if n.kind in ("converted", "unrepresentable")]
    return back, fields


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(FORMATS)), st.data())
def test_cross_format_trips_never_widen_tools_and_report_changes(source_format: str, data: st.DataObject) -> None:
    strategies = {"claude": claude_file(), "copilot": copilot_file(), "roo": roo_file(), "crewai": crewai_file(), "gemini": gemini_file()}
    strategy = strategies[source_format]
    file, text = data.draw(strategy)
    with TemporaryDirectory() as tmp:
        source = Path(tmp) / file
        source.write_text(text, encoding="utf-8")
        spec = format_module(source_format).import_path(source)[0][0]
    for target in sorted(FORMATS):
        if target == source_format:
            continue
        back, reported = cross(spec, target)
        universe = {*CLAUDE_TOOLS, *spec.tools.allow, *back.tools.allow}
        assert effective_tools(back, universe) <= effective_tools(spec, universe), (target, spec.tools, back.tools)
        if spec.model and target == "roo":
            assert "model" in reported
        if spec.max_turns is not None and target in ("roo", "copilot"):
            assert "max_turns" in reported
        if spec.extensions.get(source_format):
            assert f"extensions.{source_format}" in reported
        if back.description != spec.description:
            assert target == "roo" or "description" in reported
