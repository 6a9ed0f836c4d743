"""Import and export against every file of the real-world corpus.

The corpus is test data in ``tests/orchestrator/data/agent_corpus`` (its README and SOURCES.md give each
file's repository, path and commit); it is never part of the built wheel.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from bno_foundation.errors import ConfigError
from bno_orchestrator.agents import AgentSpec, dump_agent, load_agent, load_agents
from bno_orchestrator.agents.frontmatter import parse_front_matter_lenient, read_text
from bno_orchestrator.agents.interop import detect_format, format_module
from bno_orchestrator.agents.interop.base import Report
from bno_orchestrator.agents.render import render_template, sample_task

REPO = Path(__file__).resolve().parents[2]
CORPUS = Path(__file__).resolve().parent / "data" / "agent_corpus"
FOLDER_FORMAT = {"claude-code": "claude", "copilot": "copilot", "roomodes": "roo", "crewai": "crewai"}


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
    assert len(files) == len(table) >= 29


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
    if fmt in ("claude", "copilot"):
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


@pytest.mark.parametrize("fmt", ["claude", "roo", "crewai", "copilot"])
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
