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


@pytest.mark.parametrize(("fmt", "expected"), [("claude", "code.md"), ("roo", ".roomodes"), ("crewai", "agents.yaml"), ("copilot", "code.agent.md")])
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
