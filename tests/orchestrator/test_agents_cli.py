"""``orchestrator agents list|show|validate|import|export`` end to end (in process)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bno_foundation.atomic import write_files_atomically
from bno_orchestrator.cli import main

REPO = Path(__file__).resolve().parents[2]
CORPUS = Path(__file__).resolve().parent / "data" / "agent_corpus"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["--repo", str(REPO), *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_list_and_show(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "agents", "list", "--json")
    assert code == 0
    agents = json.loads(out)["agents"]
    assert len(agents) == 19 and {a["name"] for a in agents} >= {"performance", "truth-validator"}
    code, out, _ = run(capsys, "agents", "list")
    assert code == 0 and "inference-engine" in out and "19 agents" in out
    code, out, _ = run(capsys, "agents", "show", "code", "--json")
    data = json.loads(out)
    assert code == 0 and data["executor"]["kind"] == "default" and data["body"].startswith("You are")
    code, out, _ = run(capsys, "agents", "show", "security", "--render")
    assert code == 0 and "Sample task used to validate" in out and "{{" not in out
    code, _, err = run(capsys, "agents", "show", "nobody")
    assert code == 2 and "no agent named 'nobody'" in err


def test_validate_ok_and_with_problems(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = run(capsys, "agents", "validate", "--json")
    report = json.loads(out)
    assert code == 0 and report["ok"] and len(report["agents"]) == 19
    bad = tmp_path / "broken.md"
    bad.write_text("---\nname: broken\ndescription: x\nrole: y\nsecondary: [code, ghost]\nflavour: mild\n---\nhi\n", encoding="utf-8")
    code, out, _ = run(capsys, "agents", "validate", str(bad))
    assert code == 1 and f"{bad}:6:1: field 'flavour': unknown field" in out
    bad.write_text("---\nname: broken\ndescription: x\nrole: y\nsecondary: [code, ghost]\n---\nhi\n", encoding="utf-8")
    code, out, _ = run(capsys, "agents", "validate", str(bad), "--json")
    problems = json.loads(out)["problems"]
    assert code == 1 and [(p["line"], p["field"]) for p in problems] == [(5, "secondary.1")]  # 'code' is known


def test_import_dry_run_then_write_then_refuse_overwrite(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    into = tmp_path / "agents"
    source = CORPUS / "claude-code"
    code, out, _ = run(capsys, "agents", "import", "claude", str(source), "--into", str(into), "--dry-run", "--json")
    data = json.loads(out)
    assert code == 0 and data["dry_run"] and not into.exists()
    assert len(data["would_write"]) == len(list(source.glob("*.md")))
    assert any(n["kind"] == "repaired" for r in data["reports"] for n in r["notes"])
    code, out, _ = run(capsys, "agents", "import", "auto", str(source), "--into", str(into))
    assert code == 0 and "repaired:" in out and "wrote" in out
    code, out, _ = run(capsys, "agents", "validate", str(into))
    assert code == 0, out
    before = {p.name: p.read_bytes() for p in into.iterdir()}
    code, _, err = run(capsys, "agents", "import", "claude", str(source), "--into", str(into))
    assert code == 2 and "--force" in err
    assert {p.name: p.read_bytes() for p in into.iterdir()} == before
    code, _, _ = run(capsys, "agents", "import", "claude", str(source), "--into", str(into), "--force")
    assert code == 0


def test_import_refuses_duplicate_names(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, "agents", "import", "copilot", str(CORPUS / "copilot"), "--into", str(tmp_path))
    assert code == 2 and "'planner'" in err and not list(tmp_path.iterdir())


def test_import_errors_are_user_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    tasks = CORPUS / "crewai" / "crewAIInc__crewAI-examples__write_poem__tasks.yaml"
    code, _, err = run(capsys, "agents", "import", "crewai", str(tasks), "--into", str(tmp_path))
    assert code == 2 and "tasks.yaml" in err
    code, _, err = run(capsys, "agents", "import", "roo", str(tmp_path / "none"), "--into", str(tmp_path))
    assert code == 2 and "no such file" in err


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [("claude", "code.md"), ("roo", ".roomodes"), ("crewai", "agents.yaml"), ("copilot", "code.agent.md"), ("gemini", "code.md")],
)
def test_export(capsys: pytest.CaptureFixture[str], tmp_path: Path, fmt: str, expected: str) -> None:
    code, out, _ = run(capsys, "agents", "export", fmt, "--out", str(tmp_path), "--json")
    data = json.loads(out)
    assert code == 0 and str(tmp_path / expected) in data["written"]
    assert any(n["kind"] == "unrepresentable" for r in data["reports"] for n in r["notes"])
    code, _, err = run(capsys, "agents", "export", fmt, "--out", str(tmp_path))
    assert code == 2 and "--force" in err
    code, out, _ = run(capsys, "agents", "export", fmt, "code", "--out", str(tmp_path / "one"), "--dry-run")
    assert code == 0 and "would write" in out and not (tmp_path / "one").exists()


def test_atomic_writes_leave_nothing_half_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    old = tmp_path / "a.md"
    old.write_text("old\n", encoding="utf-8")
    calls = {"n": 0}
    real_fdopen = os.fdopen

    def failing_fdopen(fd: int, *args: object, **kwargs: object) -> object:
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("disk full")
        return real_fdopen(fd, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(os, "fdopen", failing_fdopen)
    with pytest.raises(OSError, match="disk full"):
        write_files_atomically({old: "new\n", tmp_path / "b.md": "b\n"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.md"]
    assert old.read_text(encoding="utf-8") == "old\n"


def test_import_claude_refuses_a_roomodes_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    roomodes = CORPUS / "roomodes" / "0xsend__sendapp.roomodes"
    code, out, err = run(capsys, "agents", "import", "claude", str(roomodes), "--into", str(tmp_path), "--dry-run")
    assert code == 2 and f"{roomodes}:1: this is a roo file, not a claude one" in err and not out


def test_import_auto_reports_every_skipped_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for name in ("crewAIInc__crewAI-examples__write_poem__agents.yaml", "crewAIInc__crewAI-examples__write_poem__tasks.yaml"):
        (mixed / name).write_bytes((CORPUS / "crewai" / name).read_bytes())
    (mixed / "debugger.md").write_bytes((CORPUS / "claude-code" / "wshobson__agents__debugger.md").read_bytes())
    (mixed / ".roomodes").write_bytes((CORPUS / "roomodes" / "Cidan__BetterBags.roomodes").read_bytes())
    (mixed / "README.md").write_text("# Our agents\n", encoding="utf-8")
    (mixed / "logo.png").write_bytes(b"\x89PNG")
    into = tmp_path / "agents"
    code, out, _ = run(capsys, "agents", "import", "auto", str(mixed), "--into", str(into), "--dry-run", "--json")
    data = json.loads(out)
    assert code == 0 and data["format"] == "claude+crewai+roo"
    assert sorted(Path(s["path"]).name for s in data["skipped"]) == [
        "README.md", "crewAIInc__crewAI-examples__write_poem__tasks.yaml", "logo.png",
    ]  # fmt: skip
    assert {p["action"] for p in data["plan"]} == {"create"} and len(data["plan"]) == len(data["would_write"]) >= 3
    code, out, _ = run(capsys, "agents", "import", "auto", str(mixed), "--into", str(into), "--dry-run")
    assert code == 0 and "skipped 3 file(s):" in out and "README.md is documentation" in out


def test_dry_run_lists_created_changed_and_replaced_shipped_agents(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "agents").mkdir(parents=True)
    source = tmp_path / "src"
    source.mkdir()
    (source / "code.md").write_text("---\nname: code\ndescription: Writes code my way\n---\nYou code.\n", encoding="utf-8")
    (source / "helper.md").write_text("---\nname: helper\ndescription: Helps\nmodel: opus\n---\nYou help.\n", encoding="utf-8")
    (source / "fresh.md").write_text("---\nname: fresh\ndescription: New\n---\nYou are new.\n", encoding="utf-8")
    code, _, _ = main_run(capsys, repo, "agents", "import", "claude", str(source / "helper.md"))
    assert code == 0
    (source / "helper.md").write_text("---\nname: helper\ndescription: Helps more\nmodel: opus\n---\nYou help.\n", encoding="utf-8")
    code, out, _ = main_run(capsys, repo, "agents", "import", "claude", str(source), "--dry-run")
    assert code == 0
    lines = {line.split()[0]: line for line in out.splitlines() if line.startswith(("create", "change", "replace-shipped"))}
    assert "fresh:" in lines["create"]
    assert "helper:" in lines["change"] and "(fields: description)" in lines["change"]
    assert "code:" in lines["replace-shipped"] and "description" in lines["replace-shipped"] and "body" in lines["replace-shipped"]
    code, out, _ = main_run(capsys, repo, "agents", "import", "claude", str(source), "--dry-run", "--json")
    plan = {p["agent"]: p for p in json.loads(out)["plan"]}
    assert [plan[n]["action"] for n in ("code", "fresh", "helper")] == ["replace-shipped", "create", "change"]
    assert plan["helper"]["fields"] == ["description"]


def main_run(capsys: pytest.CaptureFixture[str], repo: Path, *argv: str) -> tuple[int, str, str]:
    code = main(["--repo", str(repo), *argv])
    out, err = capsys.readouterr()
    return code, out, err
