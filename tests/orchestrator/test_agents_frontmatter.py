"""Front matter splitting and the lenient parser's repairs."""

from __future__ import annotations

from bno_orchestrator.agents.frontmatter import (
    parse_front_matter,
    parse_front_matter_lenient,
    split_front_matter,
)


def test_split_keeps_file_lines() -> None:
    split = split_front_matter("---\nname: a\n---\n\n\nBody\n")
    assert split.front == "name: a\n" and split.front_line == 2
    assert split.body == "Body\n" and split.body_line == 6


def test_strict_parse_reports_file_lines() -> None:
    located, body, body_line = parse_front_matter("---\nname: a\nrole: b\n---\nx\n", "a.md")
    assert located.where(("role",)) == (3, 1) and body == "x\n" and body_line == 5


def test_lenient_quotes_plain_values_with_colons() -> None:
    text = "---\nname: a\ndescription: Use this when: (1) it breaks\n  and more: here\ntools: Bash\n---\nbody\n"
    result = parse_front_matter_lenient(text, "a.md")
    assert result.data["description"] == "Use this when: (1) it breaks and more: here"
    assert result.data["tools"] == "Bash"
    fields = {(r.field, r.line) for r in result.repairs}
    assert ("description", 3) in fields
    assert result.located is not None and result.located.where(("tools",)) == (5, 1)


def test_lenient_turns_literal_newlines_into_breaks() -> None:
    result = parse_front_matter_lenient("---\nname: a\ndescription: one\\ntwo\n---\n", "a.md")
    assert result.data["description"] == "one\ntwo"
    assert [r.field for r in result.repairs] == ["description"]


def test_lenient_crlf_bom_and_missing_front_matter() -> None:
    result = parse_front_matter_lenient("\ufeff---\r\nname: a\r\n---\r\nbody\r\n", "a.md")
    assert result.data == {"name": "a"} and result.body == "body\n"
    assert {r.message.split(" ")[0] for r in result.repairs} == {"removed", "converted"}
    bare = parse_front_matter_lenient("# Title\n\ntext\n", "a.md")
    assert bare.data == {} and bare.body.startswith("# Title") and bare.repairs


def test_lenient_last_resort_reads_key_value_lines() -> None:
    result = parse_front_matter_lenient("---\nname: a\ntools: [Read\ndescription: 'x'\n---\n", "a.md")
    assert result.data == {"name": "a", "tools": "[Read", "description": "x"}
    assert any("not YAML" in r.message for r in result.repairs)


def test_lenient_clean_file_has_no_repairs() -> None:
    result = parse_front_matter_lenient("---\nname: a\ndescription: b\n---\nbody\n", "a.md")
    assert result.repairs == []
