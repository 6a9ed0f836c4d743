"""Import and export against every file of the real-world corpus.

The corpus is test data in ``tests/orchestrator/data/agent_corpus`` (its README and SOURCES.md give each
file's repository, path and commit); it is never part of the built wheel.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from bno_foundation.errors import ConfigError
from bno_foundation.yamlio import load_yaml
from bno_orchestrator.agents import AgentSpec, ToolPolicy, dump_agent, load_agent, load_agents
from bno_orchestrator.agents.frontmatter import parse_front_matter_lenient, read_text
from bno_orchestrator.agents.interop import collect_sources, detect_format, format_module
from bno_orchestrator.agents.interop.base import CLAUDE_TOOLS, Report
from bno_orchestrator.agents.render import render_template, sample_task

REPO = Path(__file__).resolve().parents[2]
CORPUS = Path(__file__).resolve().parent / "data" / "agent_corpus"
FOLDER_FORMAT = {"claude-code": "claude", "copilot": "copilot", "roomodes": "roo", "crewai": "crewai", "gemini": "gemini"}


def corpus_files() -> list[Path]:
    if not CORPUS.is_dir():  # a hard failure, not a skip
        return [CORPUS / "MISSING"]
    return sorted(p for folder in FOLDER_FORMAT for p in (CORPUS / folder).iterdir() if p.is_file())


def sources_table() -> dict[str, dict[str, str]]:
    """SOURCES.md rows by file name: the note and what a strict parse says."""
    rows: dict[str, dict[str, str]] = {}
    for line in (CORPUS / "SOURCES.md").read_text(encoding="utf-8").splitlines():
        cells = [c.strip().replace("\0", "|") for c in line.replace("\\|", "\0").strip().strip("|").split("|")]
        if len(cells) == 7 and cells[1].startswith("`"):
            rows[cells[1].strip("`")] = {"folder": cells[0], "note": cells[5], "strict": cells[6]}
    return rows


def verbatim(spec: AgentSpec) -> str:
    """An imported body rendered: it must be the source text, whatever Jinja2 syntax it contained."""
    return render_template(spec.body, {"task": sample_task(spec)})


def known_keys(fmt: str) -> tuple[str, ...]:
    return tuple(format_module(fmt).KNOWN_KEYS)


def test_corpus_is_present_and_fully_listed() -> None:
    assert CORPUS.is_dir(), f"the agent corpus is expected at {CORPUS}"
    table = sources_table()
    files = corpus_files()
    assert {p.name for p in files} == set(table), "every corpus file is imported by a test below"
    assert len(files) == len(table) >= 40
    assert {row["folder"] for row in table.values()} == set(FOLDER_FORMAT)
    verdicts = load_yaml(CORPUS / "VERDICTS.yaml").data
    assert set(verdicts) == {f"{p.parent.name}/{p.name}" for p in files}, "every corpus file has its expected verdict"


@pytest.mark.parametrize("path", corpus_files(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_import_every_corpus_file(path: Path, tmp_path: Path) -> None:
    assert path.is_file(), f"corpus file missing: {path}"
    fmt = FOLDER_FORMAT[path.parent.name]
    assert detect_format(path) == fmt
    row = sources_table()[path.name]
    if path.name.endswith("tasks.yaml"):
        with pytest.raises(ConfigError) as info:
            format_module(fmt).import_path(path)
        assert "tasks.yaml" in str(info.value) and info.value.path == str(path)
        return
    imported = format_module(fmt).import_path(path)
    assert imported
    for spec, report in imported:
        assert isinstance(report, Report) and report.agent == spec.name
        # what we write reads back strictly and identically
        written = tmp_path / f"{spec.name}.md"
        written.write_text(dump_agent(spec), encoding="utf-8")
        assert load_agent(written) == spec
        # the imported prompt renders to the source text, verbatim
        assert verbatim(spec).strip()
        # nothing is dropped without a note
        assert "dropped" not in report.kinds()
    repairs = [n for _, r in imported for n in r.notes if n.kind == "repaired"]
    if row["strict"].startswith("YAML error"):
        assert any("quoted" in n.message and n.field == "description" and n.line == 3 for n in repairs)
    if row["strict"] == "no front matter":
        assert any("no YAML front matter" in n.message for n in repairs)
    if "no customModes key" in row["strict"]:
        assert any("bare list" in n.message for n in repairs)
    if "CRLF" in row["note"]:
        assert any("CRLF" in n.message for n in repairs)
    if "literal backslash-n" in row["note"]:
        assert any("literal" in n.message for n in repairs)
    if row["strict"] in ("YAML ok", "JSON ok"):
        assert not repairs, [n.as_text() for n in repairs]
    _check_nothing_lost(path, fmt, imported)


def _check_nothing_lost(path: Path, fmt: str, imported: list[tuple[AgentSpec, Report]]) -> None:
    """Every field of the source is mapped to ours or kept under extensions.<fmt>, and the text survives."""
    if fmt in ("claude", "copilot", "gemini"):
        result = parse_front_matter_lenient(read_text(path), path)
        spec = imported[0][0]
        for key in result.data:
            assert key in known_keys(fmt) or key in spec.extensions.get(fmt, {}), key
        assert verbatim(spec) == result.body
        if "tools" in result.data:
            assert spec.tools.allow
        return
    if fmt == "roo":
        data: Any = yaml.safe_load(read_text(path))
        modes = data["customModes"] if isinstance(data, dict) else data
        for (spec, _), mode in zip(imported, modes, strict=True):
            assert spec.name == mode["slug"]
            kept = spec.extensions.get(fmt, {})
            for key in mode:
                assert key in known_keys(fmt) or key in kept, key
            text = verbatim(spec)
            assert mode["roleDefinition"].strip() in text
            if mode.get("customInstructions"):
                assert mode["customInstructions"].strip() in text
            if any(isinstance(g, list) for g in mode["groups"]):
                assert kept["groups"] == mode["groups"]
        return
    data = yaml.safe_load(read_text(path))
    for (spec, _), (key, entry) in zip(imported, data.items(), strict=True):
        assert spec.name == key.replace("_", "-") and spec.role == entry["role"].strip()
        assert verbatim(spec).strip() == entry["backstory"].strip()
        for extra in entry:
            assert extra in known_keys(fmt) or extra in spec.extensions.get(fmt, {}), extra


def _comparable(spec: AgentSpec) -> dict[str, Any]:
    data = spec.model_dump(mode="json", exclude={"body"})
    data["text"] = verbatim(spec).strip()
    return data


@pytest.mark.parametrize(
    "path",
    [p for p in corpus_files() if not p.name.endswith("tasks.yaml")],
    ids=lambda p: f"{p.parent.name}/{p.name}",
)
def test_round_trip_through_the_same_format(path: Path, tmp_path: Path) -> None:
    fmt = FOLDER_FORMAT[path.parent.name]
    module = format_module(fmt)
    first = [spec for spec, _ in module.import_path(path)]
    exported = module.export_agents(first)
    for rel, text in exported.files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text, encoding="utf-8")
    second = [spec for rel in exported.files for spec, _ in module.import_path(tmp_path / rel)]
    assert [_comparable(s) for s in second] == [_comparable(s) for s in first]


@pytest.fixture(scope="module")
def shipped() -> dict[str, AgentSpec]:
    return load_agents(REPO / "agents")


@pytest.mark.parametrize("fmt", ["claude", "roo", "crewai", "copilot", "gemini"])
def test_export_shipped_agents_reports_what_the_format_cannot_hold(
    fmt: str, shipped: dict[str, AgentSpec], tmp_path: Path
) -> None:
    module = format_module(fmt)
    exported = module.export_agents(list(shipped.values()))
    assert len(exported.reports) == len(shipped)
    for report in exported.reports:
        fields = {n.field for n in report.notes if n.kind == "unrepresentable"}
        assert "task_types" in fields and ("components" in fields or not shipped[report.agent or ""].components)
    for rel, text in exported.files.items():
        assert "{{" not in text and "{%" not in text, "templates are rendered for foreign formats"
        (tmp_path / rel).write_text(text, encoding="utf-8")
    back = {spec.name: spec for rel in exported.files for spec, _ in module.import_path(tmp_path / rel)}
    assert set(back) == set(shipped)
    for name, spec in shipped.items():
        assert back[name].description == spec.description
        assert spec.role.split()[0] in verbatim(back[name])
    code = back["code"]
    if fmt == "claude":
        assert code.tools.allow == shipped["code"].tools.allow and code.tools.deny == shipped["code"].tools.deny
        assert code.max_turns == shipped["code"].max_turns
    if fmt == "roo":
        assert back["security"].role == shipped["security"].role
        assert set(code.tools.allow) >= {"Read", "Edit", "Bash"}
    if fmt == "crewai":
        assert code.max_turns == shipped["code"].max_turns


def test_body_with_template_syntax_is_protected_on_import(tmp_path: Path) -> None:
    path = tmp_path / "ci.md"
    path.write_text("---\nname: ci\ndescription: CI helper\n---\nUse ${{ secrets.TOKEN }} and {% raw %}.\n", encoding="utf-8")
    [(spec, report)] = format_module("claude").import_path(path)
    assert verbatim(spec) == "Use ${{ secrets.TOKEN }} and {% raw %}.\n"
    assert any(n.field == "body" and n.kind == "converted" for n in report.notes)
    exported = format_module("claude").export_agents([spec])
    assert "Use ${{ secrets.TOKEN }} and {% raw %}." in exported.files[Path("ci.md")]


def test_bad_foreign_input_names_file_and_line(tmp_path: Path) -> None:
    roo = tmp_path / ".roomodes"
    roo.write_text('{"customModes": [\n  {"slug": "a" "name": "b"}\n]}\n', encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        format_module("roo").import_path(roo)
    assert info.value.path == str(roo) and info.value.line == 2
    crew = tmp_path / "agents.yaml"
    crew.write_text("writer:\n  role: Poet\n  goal: poems\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        format_module("crewai").import_path(crew)
    assert info.value.field == "writer.backstory" and info.value.line == 1
    assert re.search(r"agents\.yaml:1:\d+: field 'writer\.backstory'", str(info.value))


# --- the cases of issue 17: nothing changes or vanishes without a word -------------------------------


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def export_text(fmt: str, specs: list[AgentSpec]) -> tuple[str, str, list[Report]]:
    """The one file an export writes (name, text) and its reports."""
    exported = format_module(fmt).export_agents(specs)
    [(rel, text)] = exported.files.items()
    return rel.name, text, exported.reports


def test_every_mapping_table_is_in_the_docs_verbatim() -> None:
    doc = (REPO / "docs" / "agent-formats.md").read_text(encoding="utf-8")
    for fmt in FOLDER_FORMAT.values():
        table = format_module(fmt).TABLE
        assert table.markdown() in doc, f"docs/agent-formats.md does not show the {fmt} table as the code has it"
        assert set(table.known_keys()) == set(known_keys(fmt))
        handled = {rule.handling for rule in table.rules}
        assert {"carried", "converted", "extension", "unrepresentable"} >= handled and "extension" in handled


def test_roo_mode_without_groups_gets_no_tool_anywhere(tmp_path: Path) -> None:
    source = write(tmp_path / ".roomodes", "customModes:\n  - slug: reader\n    name: Reader\n    roleDefinition: You read.\n    whenToUse: Reading\n    groups: []\n")
    [(spec, report)] = format_module("roo").import_path(source)
    assert spec.tools.allow == [] and set(spec.tools.deny) >= set(CLAUDE_TOOLS)
    assert any(n.kind == "converted" and n.field == "groups" and n.line == 6 for n in report.notes)
    _, text, reports = export_text("claude", [spec])
    front = parse_front_matter_lenient(text, "x.md").data
    assert "tools" not in front and set(front["disallowedTools"].split(", ")) >= set(CLAUDE_TOOLS)
    assert any(n.field == "tools" and "no tool" in n.message for n in reports[0].notes)
    _, text, _ = export_text("copilot", [spec])
    assert parse_front_matter_lenient(text, "x.agent.md").data["tools"] == []
    _, text, _ = export_text("crewai", [spec])
    assert "tools" not in yaml.safe_load(text)["reader"]
    name, text, _ = export_text("roo", [spec])
    assert name == ".roomodes" and yaml.safe_load(text)["customModes"][0]["groups"] == []


def test_roo_group_restricted_by_file_gives_none_of_its_tools(tmp_path: Path) -> None:
    source = write(
        tmp_path / ".roomodes",
        'customModes:\n  - slug: docs\n    name: Docs\n    roleDefinition: You write docs.\n    whenToUse: Docs\n'
        '    groups: [read, [edit, {fileRegex: "\\\\.md$", description: Markdown}]]\n',
    )
    [(spec, report)] = format_module("roo").import_path(source)
    assert spec.tools.allow == ["Read", "Glob", "Grep"] and not {"Edit", "Write"} & set(spec.tools.allow)
    assert any(n.field == "groups" and "fileRegex" in n.message for n in report.notes)
    _, text, _ = export_text("roo", [spec])
    assert yaml.safe_load(text)["customModes"][0]["groups"] == ["read", ["edit", {"fileRegex": "\\.md$", "description": "Markdown"}]]


def test_roo_export_never_grants_a_group_wider_than_the_policy() -> None:
    spec = AgentSpec(name="a", description="d", role="r", tools=ToolPolicy(allow=["Read", "Bash", "Edit"]))
    _, text, reports = export_text("roo", [spec])
    assert yaml.safe_load(text)["customModes"][0]["groups"] == ["command"]  # read and edit would add Glob, Grep, Write
    assert sum(n.kind == "converted" and n.field == "tools.allow" for n in reports[0].notes) == 2
    denied = AgentSpec(name="b", description="d", role="r", tools=ToolPolicy(deny=["Bash"]))
    _, text, _ = export_text("roo", [denied])
    assert yaml.safe_load(text)["customModes"][0]["groups"] == ["read", "edit", "browser", "mcp"]


@pytest.mark.parametrize(
    ("front", "field", "line"),
    [
        ("description: [claude-model, e.g., sonnet]\n", "description", 3),
        ("description: ok\nmodel: [claude-model, e.g., sonnet]\n", "model", 4),
        ("description: ok\nmaxTurns: many\n", "maxTurns", 4),
        ("description: ok\ntools: {Read: true}\n", "tools", 4),
    ],
)
def test_wrong_type_is_an_error_with_file_line_and_field(tmp_path: Path, front: str, field: str, line: int) -> None:
    path = write(tmp_path / "templ.md", f"---\nname: templ\n{front}---\nbody\n")
    with pytest.raises(ConfigError) as info:
        format_module("claude").import_path(path)
    assert (info.value.path, info.value.line, info.value.field) == (str(path), line, field)
    assert "['" not in str(info.value), "never a Python repr"


def test_claude_tools_list_and_file_name_come_back_as_they_were(tmp_path: Path) -> None:
    source = write(tmp_path / "reviewer" / "AGENT.md", "---\ndescription: Reviews\ntools:\n  - read\n  - Grep\nname: reviewer\n---\nReview.\n")
    [(spec, report)] = format_module("claude").import_path(source)
    assert spec.tools.allow == ["Read", "Grep"] and any(n.field == "tools" and "read -> Read" in n.message for n in report.notes)
    name, text, _ = export_text("claude", [spec])
    assert name == "AGENT.md"
    assert text.startswith("---\ndescription: Reviews\ntools:\n- read\n- Grep\nname: reviewer\n---\n")
    # two agents from AGENT.md files cannot share one export file name: the second one falls back, noted
    other = spec.model_copy(update={"name": "checker"})
    exported = format_module("claude").export_agents([spec, other])
    assert sorted(p.name for p in exported.files) == ["AGENT.md", "checker.md"]
    assert any(n.field == "origin.file" for n in exported.reports[1].notes)


def test_copilot_display_names_are_restored_so_handoffs_stay_valid(tmp_path: Path) -> None:
    write(tmp_path / "orchestrator.agent.md", "---\nname: 🧭 Orchestrator\ndescription: Leads\nhandoffs:\n  - label: Review\n    agent: Code Reviewer\nagents: [Code Reviewer]\n---\nLead.\n")
    write(tmp_path / "reviewer.agent.md", "---\nname: Code Reviewer\ndescription: Reviews\ntools: [search]\n---\nReview.\n")
    imported = format_module("copilot").import_path(tmp_path)
    assert [spec.name for spec, _ in imported] == ["orchestrator", "code-reviewer"]
    exported = format_module("copilot").export_agents([spec for spec, _ in imported])
    fronts = {rel.name: parse_front_matter_lenient(text, rel).data for rel, text in exported.files.items()}
    assert fronts["orchestrator.agent.md"]["name"] == "🧭 Orchestrator"
    names = {front["name"] for front in fronts.values()}
    assert fronts["orchestrator.agent.md"]["handoffs"][0]["agent"] in names
    assert set(fronts["orchestrator.agent.md"]["agents"]) <= names


def test_json_roomodes_stays_json_with_its_own_keys(tmp_path: Path) -> None:
    modes = {"customModes": [{"slug": "a", "name": "A", "description": "Short", "roleDefinition": "Role", "groups": ["read"]}]}
    source = write(tmp_path / ".roomodes", json.dumps(modes, indent=2))
    [(spec, report)] = format_module("roo").import_path(source)
    assert spec.description == "Short" and any(n.field == "description" and n.kind == "converted" for n in report.notes)
    name, text, _ = export_text("roo", [spec])
    assert name == ".roomodes" and json.loads(text) == modes  # no whenToUse added, description kept
    # cross-format: a Claude agent exported to Roo is YAML (nothing says JSON) with whenToUse
    claude = write(tmp_path / "c.md", "---\nname: c\ndescription: Cee\n---\nBody.\n")
    [(cspec, _)] = format_module("claude").import_path(claude)
    _, text, _ = export_text("roo", [cspec])
    assert yaml.safe_load(text)["customModes"][0]["whenToUse"] == "Cee" and not text.lstrip().startswith("{")


def test_crewai_agent_without_tools_has_none(tmp_path: Path) -> None:
    source = write(tmp_path / "agents.yaml", "poet:\n  role: Poet\n  goal: Poems\n  backstory: Writes.\n")
    [(spec, report)] = format_module("crewai").import_path(source)
    assert spec.tools.allow == [] and set(spec.tools.deny) >= set(CLAUDE_TOOLS)
    assert any(n.field == "tools" and n.kind == "converted" for n in report.notes)
    name, text, _ = export_text("crewai", [spec])
    assert name == "agents.yaml" and yaml.safe_load(text) == {"poet": {"role": "Poet", "goal": "Poems", "backstory": "Writes."}}


def test_import_claude_refuses_a_roomodes_file_and_collect_reports_skips(tmp_path: Path) -> None:
    roomodes = write(tmp_path / "mixed" / ".roomodes", '{"customModes": [{"slug": "a", "name": "A", "roleDefinition": "R", "groups": []}]}')
    with pytest.raises(ConfigError) as info:
        collect_sources(roomodes, "claude")
    assert info.value.path == str(roomodes) and info.value.line == 1 and "roo" in info.value.reason
    write(tmp_path / "mixed" / "README.md", "# agents\n")
    write(tmp_path / "mixed" / "a.md", "---\nname: a\ndescription: A\n---\nx\n")
    write(tmp_path / "mixed" / "notes.txt", "x\n")
    write(tmp_path / "mixed" / "tasks.yaml", "t:\n  description: d\n  expected_output: o\n  agent: a\n")
    write(tmp_path / "mixed" / ".git" / "objects" / "x.md", "---\nname: x\ndescription: X\n---\nx\n")
    write(tmp_path / "mixed" / ".claude" / "agents" / "b.md", "---\nname: b\ndescription: B\n---\nb\n")
    chosen, skipped = collect_sources(tmp_path / "mixed", "auto")
    assert [(fmt, p.name) for fmt, p in chosen] == [("claude", "b.md"), ("roo", ".roomodes"), ("claude", "a.md")]
    assert sorted(Path(s.path).name for s in skipped) == [".git", "README.md", "notes.txt", "tasks.yaml"] and all(s.reason for s in skipped)
    chosen, skipped = collect_sources(tmp_path / "mixed", "claude")
    assert [p.name for _, p in chosen] == ["b.md", "a.md"] and any(Path(s.path).name == ".roomodes" and "roo" in s.reason for s in skipped)


def source_data(fmt: str, path: Path) -> Any:
    """What the format's tool reads from ``path``: its data (and, for Markdown, the body)."""
    text = read_text(path).removeprefix("\ufeff")
    if fmt in ("claude", "copilot", "gemini"):
        result = parse_front_matter_lenient(text, path)
        return {"front": result.data, "body": result.body.strip()}
    return json.loads(text) if text.lstrip().startswith("{") else yaml.safe_load(text)


@pytest.mark.parametrize("path", corpus_files(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_corpus_verdict_and_reported_notes(path: Path, tmp_path: Path) -> None:
    """Each real file: refused with its error, or imported with exactly the notes VERDICTS.yaml lists; and
    an export back to its format gives the same data and file name unless the source was malformed."""
    expected = load_yaml(CORPUS / "VERDICTS.yaml").data[f"{path.parent.name}/{path.name}"]
    fmt = FOLDER_FORMAT[path.parent.name]
    module = format_module(fmt)
    if expected["verdict"] == "refused":
        with pytest.raises(ConfigError) as info:
            module.import_path(path)
        assert info.value.reason == expected["error"] and info.value.path == str(path)
        return
    imported = module.import_path(path)
    notes = sorted({f"{n.kind} {n.field or '-'}" for _, r in imported for n in r.notes if n.kind != "info"})
    assert (len(imported), notes) == (expected["agents"], expected["notes"])
    [(rel, text)] = module.export_agents([spec for spec, _ in imported]).files.items()
    write(tmp_path / rel, text)
    exact = rel.name == path.name and source_data(fmt, tmp_path / rel) == source_data(fmt, path)
    repaired = any(note.startswith(("repaired", "dropped")) for note in notes)
    assert expected["verdict"] == ("exact" if exact and not repaired else "converted")
    assert exact or repaired, "a well-formed file comes back exactly"


def test_gemini_tools_cross_to_claude_names_and_back(tmp_path: Path) -> None:
    source = write(
        tmp_path / ".gemini" / "agents" / "auditor.md",
        "---\nname: auditor\ndescription: Audits\nkind: local\ntools: [read_file, grep_search, mcp_github_*]\ntemperature: 0.2\n---\nAudit.\n",
    )
    assert detect_format(source) == "gemini"
    [(spec, report)] = format_module("gemini").import_path(source)
    assert spec.tools.allow == ["Read", "Grep", "mcp_github_*"] and spec.extensions["gemini"] == {"temperature": 0.2, "kind": "local"}
    assert {(n.kind, n.field) for n in report.notes} >= {("converted", "tools"), ("kept", "kind"), ("kept", "temperature")}
    claude = AgentSpec(name="w", description="d", role="r", tools=ToolPolicy(allow=["Read", "Task", "Bash"]))
    _, text, reports = export_text("gemini", [claude])
    assert parse_front_matter_lenient(text, "w.md").data["tools"] == ["read_file", "run_shell_command"]
    assert any(n.kind == "unrepresentable" and "Task" in n.message for n in reports[0].notes)
    everything = write(tmp_path / "all.md", "---\nname: all\ndescription: All\ntools: ['*']\n---\nx\n")
    [(spec, _)] = format_module("gemini").import_path(everything)
    assert spec.tools.allow == [] and spec.tools.deny == []
    remote = write(tmp_path / "remote.md", "---\nname: far\ndescription: Far\nkind: remote\nagent_card_url: https://x\n---\n")
    with pytest.raises(ConfigError) as info:
        format_module("gemini").import_path(remote)
    assert (info.value.line, info.value.field) == (4, "kind")
