"""``orchestrator dispatch`` with the real claude, codex and gemini CLIs against the scripted model server.

Each CLI is found in ``$BNO_AGENT_BIN_DIR`` or the checkout's ``.agent-clis/node_modules/.bin`` (skipped,
with the reason, when absent). Everything listens on 127.0.0.1; every run is bounded by the executor timeout.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import git
import pytest

from bno_orchestrator.cli import main
from bno_orchestrator.dispatch.clis import BIN_DIR_ENV, find_binary, local_bin_dirs
from bno_orchestrator.events import EventKind
from bno_orchestrator.scripted_model import Reply, Scenario, ScriptedModelServer, WriteFile
from bno_orchestrator.store import Store
from tests.orchestrator.dispatch_helpers import add_routed_task, make_repo, set_executor

ROOT = Path(__file__).resolve().parents[2]
KEY = "scripted-key"
MODELS = {"claude": None, "codex": "gpt-5.5", "gemini": "gemini-2.5-flash"}
KEY_ENV = {"claude": "ANTHROPIC_API_KEY", "codex": "OPENAI_API_KEY", "gemini": "GEMINI_API_KEY"}
URL_ENV = {"claude": "ANTHROPIC_BASE_URL", "codex": "OPENAI_BASE_URL", "gemini": "GOOGLE_GEMINI_BASE_URL"}
ALL_ENV = ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN",
           "OPENAI_API_KEY", "OPENAI_BASE_URL", "GEMINI_API_KEY", "GOOGLE_GEMINI_BASE_URL")


@pytest.fixture(params=["claude", "codex", "gemini"])
def cli(request: pytest.FixtureRequest) -> tuple[str, Path]:
    kind = str(request.param)
    path = find_binary(kind, ROOT)
    if path is None:
        pytest.skip(f"the {kind} CLI is not installed in ${BIN_DIR_ENV} or {local_bin_dirs(ROOT)[0]} "
                    "(scripts/setup.sh installs it)")
    return kind, path


def _setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str, binary: Path, url: str | None,
           key: str | None) -> Path:
    for name in ALL_ENV:
        monkeypatch.delenv(name, raising=False)
    if url is not None:
        monkeypatch.setenv(URL_ENV[kind], url + ("/v1" if kind == "codex" else ""))
    if key is not None:
        monkeypatch.setenv(KEY_ENV[kind], key)
    repo = make_repo(tmp_path / "repo")
    agent = add_routed_task(repo)
    options: dict[str, Any] = {"binary": str(binary), "timeout": 60, "max_turns": 6}
    if MODELS[kind]:
        options["model"] = MODELS[kind]
    set_executor(repo, agent, kind, **options)
    git.Repo(repo).git.add(A=True)
    git.Repo(repo).index.commit("executor")
    return repo


def _dispatch(repo: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any], str]:
    capsys.readouterr()
    code = main(["--repo", str(repo), "dispatch", "T-1", "--json"])
    captured = capsys.readouterr()
    return code, json.loads(captured.out), captured.err


def _events(repo: Path, kind: EventKind) -> list[Any]:
    with Store.open(repo) as store:
        return store.events(task_id="T-1", kind=kind)


def test_a_real_cli_fixes_the_task_and_the_gates_verify_it(cli: tuple[str, Path], tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    kind, binary = cli
    with ScriptedModelServer(Scenario([WriteFile("mod.txt", "fixed\n"), Reply("mod.txt now says fixed")])) as server:
        repo = _setup(tmp_path, monkeypatch, kind, binary, server.url, KEY)
        code, result, err = _dispatch(repo, capsys)
    outcome = result["outcome"]
    assert code == 0, (result, err)
    assert outcome["error_kind"] is None and outcome["exit_code"] == 0
    assert outcome["session_id"] and outcome["input_tokens"] and outcome["final_message"]
    assert result["verification"]["passed"] and result["status"] == "review"
    branch = result["branch"]
    assert git.Repo(repo).git.show(f"{branch}:mod.txt") == "fixed"
    state = Path(outcome["state_dir"])
    assert state.is_dir() and ".orchestrator" in state.parts
    worktree = Path(result["worktree"])
    assert not git.Repo(worktree).git.status("--porcelain", "--ignored")  # nothing of the CLI in the worktree
    finished = _events(repo, EventKind.DISPATCH_FINISHED)[-1].payload
    assert finished["error_kind"] is None and finished["session_id"] == outcome["session_id"]
    capsys.readouterr()
    assert main(["--repo", str(repo), "task", "show", "T-1", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["last_dispatch"]["session_id"] == outcome["session_id"]


def test_a_real_cli_without_a_key_is_not_logged_in_and_runs_no_gate(cli: tuple[str, Path], tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    kind, binary = cli
    with ScriptedModelServer(Scenario([WriteFile("mod.txt", "fixed\n"), Reply("done")])) as server:
        repo = _setup(tmp_path, monkeypatch, kind, binary, server.url, None)
        code, result, err = _dispatch(repo, capsys)
        assert not server.main_requests()
    assert code != 0 and "not_logged_in" in err
    assert result["outcome"]["error_kind"] == "not_logged_in"
    assert result["verification"] is None and result["status"] == "in_development"
    assert not _events(repo, EventKind.GATES_VERIFIED) and not _events(repo, EventKind.TASK_ESCALATED)


def test_a_real_cli_with_the_model_server_down_is_a_network_error(cli: tuple[str, Path], tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    kind, binary = cli
    server = ScriptedModelServer(Scenario([Reply("never")]))
    server.start()
    url = server.url
    server.stop()  # the port now refuses connections
    repo = _setup(tmp_path, monkeypatch, kind, binary, url, KEY)
    started = time.monotonic()
    code, result, err = _dispatch(repo, capsys)
    assert code != 0 and "network" in err
    assert result["outcome"]["error_kind"] == "network" and not result["outcome"]["timed_out"]
    assert time.monotonic() - started < 45
    assert result["verification"] is None and result["status"] == "in_development"
    assert not _events(repo, EventKind.GATES_VERIFIED)
