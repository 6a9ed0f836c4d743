"""``orchestrator dispatch`` with the real claude, codex and gemini CLIs against the scripted model server.

Each CLI is found in ``$BNO_AGENT_BIN_DIR`` or the checkout's ``.agent-clis/node_modules/.bin`` (skipped,
with the reason, when absent). Everything listens on 127.0.0.1; every run is bounded by the executor timeout.
The user's home is a fresh directory (no login file of the developer's counts), and after each run nothing
the CLI wrote for itself may show in the worktree (``git status --porcelain --ignored``) or in the main
repository's ``.git/config``.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import time
from datetime import UTC
from pathlib import Path
from typing import Any

import git
import pytest

from bno_orchestrator.agents import AgentSpec, ExecutorSpec, ToolPolicy
from bno_orchestrator.cli import main
from bno_orchestrator.dispatch.executors import ExecutorRequest, run_executor
from bno_orchestrator.dispatch.progress import Progress, progress_path, read_progress
from bno_orchestrator.events import EventKind
from bno_orchestrator.scripted_model import Reply, Scenario, ScriptedModelServer, WriteFile
from bno_orchestrator.store import Store
from tests.orchestrator.dispatch_helpers import (
    add_routed_task,
    installed_cli,
    main_state,
    make_repo,
    set_executor,
)

ROOT = Path(__file__).resolve().parents[2]
KEY = "scripted-key"
MODELS = {"claude": None, "codex": "gpt-5.5", "gemini": "gemini-2.5-flash"}
KEY_ENV = {"claude": "ANTHROPIC_API_KEY", "codex": "OPENAI_API_KEY", "gemini": "GEMINI_API_KEY"}
URL_ENV = {"claude": "ANTHROPIC_BASE_URL", "codex": "OPENAI_BASE_URL", "gemini": "GOOGLE_GEMINI_BASE_URL"}
ALL_ENV = ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN",
           "OPENAI_API_KEY", "OPENAI_BASE_URL", "GEMINI_API_KEY", "GOOGLE_GEMINI_BASE_URL", "GOOGLE_API_KEY",
           "GOOGLE_GENAI_USE_VERTEXAI", "GOOGLE_CLOUD_PROJECT", "GOOGLE_CLOUD_LOCATION", "CLAUDE_CONFIG_DIR",
           "CODEX_HOME", "GEMINI_CLI_HOME")


@pytest.fixture(params=["claude", "codex", "gemini"])
def cli(request: pytest.FixtureRequest) -> tuple[str, Path]:
    kind = str(request.param)
    return kind, installed_cli(kind)


def _environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str, url: str | None,
                 key: str | None) -> Path:
    """Only the scripted server's URL and key (if any) in the environment; a fresh user home."""
    for name in ALL_ENV:
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "user-home"
    home.mkdir(exist_ok=True)
    monkeypatch.setenv("HOME", str(home))
    if url is not None:
        monkeypatch.setenv(URL_ENV[kind], url + ("/v1" if kind == "codex" else ""))
    if key is not None:
        monkeypatch.setenv(KEY_ENV[kind], key)
    return home


def _setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str, binary: Path, url: str | None,
           key: str | None, **extra: Any) -> Path:
    _environment(tmp_path, monkeypatch, kind, url, key)
    repo = make_repo(tmp_path / "repo")
    agent = add_routed_task(repo)
    options: dict[str, Any] = {"binary": str(binary), "timeout": 60, "max_turns": 6, **extra}
    if MODELS[kind]:
        options["model"] = MODELS[kind]
    set_executor(repo, agent, kind, **options)
    git.Repo(repo).git.add(A=True)
    git.Repo(repo).index.commit("executor")
    return repo


def _dispatch(repo: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any], str]:
    capsys.readouterr()
    code = main(["--repo", str(repo), "dispatch", "T-1", "--json", *args])
    captured = capsys.readouterr()
    return code, json.loads(captured.out), captured.err


def _events(repo: Path, kind: EventKind) -> list[Any]:
    with Store.open(repo) as store:
        return store.events(task_id="T-1", kind=kind)


def _git_config(repo: Path) -> bytes:
    return (repo / ".git" / "config").read_bytes()


def _worktree_status(worktree: Path) -> list[str]:
    """``git status --porcelain --ignored`` of the worktree: what the attempt left there."""
    out = subprocess.run(["git", "status", "--porcelain", "--ignored", "--untracked-files=all"], cwd=worktree,
                         capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if line]


def test_a_real_cli_fixes_the_task_and_the_gates_verify_it(cli: tuple[str, Path], tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    kind, binary = cli
    with ScriptedModelServer(Scenario([WriteFile("mod.txt", "fixed\n"), Reply("mod.txt now says fixed")])) as server:
        repo = _setup(tmp_path, monkeypatch, kind, binary, server.url, KEY)
        config = _git_config(repo)
        code, result, err = _dispatch(repo, capsys, "--no-advance")  # keep the worktree to inspect it
    outcome = result["outcome"]
    assert code == 0, (result, err)
    assert outcome["error_kind"] is None and outcome["exit_code"] == 0
    assert outcome["session_id"] and outcome["input_tokens"] and outcome["final_message"] and outcome["turns"]
    assert result["verification"]["passed"] and result["commit"] and result["status"] == "review"
    assert git.Repo(repo).git.show(f"{result['branch']}:mod.txt") == "fixed"
    state = Path(outcome["state_dir"])
    assert state.is_dir() and ".orchestrator" in state.parts
    worktree = Path(result["worktree"])
    assert _worktree_status(worktree) == []  # the change is committed; nothing of the CLI is in the worktree
    assert _git_config(repo) == config
    finished = _events(repo, EventKind.DISPATCH_FINISHED)[-1].payload
    assert finished["error_kind"] is None and finished["session_id"] == outcome["session_id"]
    progress = read_progress(progress_path(Path(outcome["log_file"])))
    assert any(p.kind == "edit" and "mod.txt" in p.text for p in progress), progress
    capsys.readouterr()
    assert main(["--repo", str(repo), "task", "show", "T-1", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["last_dispatch"]["session_id"] == outcome["session_id"]


def test_a_real_cli_with_a_wrong_key_is_not_logged_in_and_runs_no_gate(cli: tuple[str, Path], tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    kind, binary = cli
    with ScriptedModelServer(Scenario([WriteFile("mod.txt", "fixed\n"), Reply("done")])) as server:
        repo = _setup(tmp_path, monkeypatch, kind, binary, server.url, "revoked-key")
        code, result, err = _dispatch(repo, capsys)
        assert not server.main_requests()  # refused before any model turn
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
    # preflight would refuse the endpoint before the run; this test is about the CLI's own network error
    repo = _setup(tmp_path, monkeypatch, kind, binary, url, KEY, preflight_endpoint=False, max_retries=0)
    started = time.monotonic()
    code, result, err = _dispatch(repo, capsys)
    assert code != 0 and "network" in err
    assert result["outcome"]["error_kind"] == "network" and not result["outcome"]["timed_out"]
    assert time.monotonic() - started < 45
    assert result["verification"] is None and result["status"] == "in_development"
    assert not _events(repo, EventKind.GATES_VERIFIED)


# ------------------------------------------------------------------------------------------ negative cases


def test_a_real_cli_cannot_write_outside_its_worktree(cli: tuple[str, Path], tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    kind, binary = cli
    outside = tmp_path / "outside" / "escape.txt"
    outside.parent.mkdir()
    scenario = Scenario([WriteFile(str(outside), "escaped\n"), Reply("mod.txt is fixed")])
    with ScriptedModelServer(scenario) as server:
        repo = _setup(tmp_path, monkeypatch, kind, binary, server.url, KEY)
        before, config = main_state(repo), _git_config(repo)
        code, result, _ = _dispatch(repo, capsys)
        assert scenario.consumed == 2, "the model was not asked for the write and the answer after it"
    outcome = result["outcome"]
    assert not outside.exists() and not list(tmp_path.rglob("escape.txt"))  # not written anywhere
    assert outcome["permission_denials"] >= 1, outcome  # the CLI refused it and said so
    if outcome["error_kind"] is not None:
        assert outcome["error_kind"] == "permission_denied" and result["verification"] is None
    else:
        verification = result["verification"]
        assert not verification["passed"] and "changed no file" in verification["reason"], verification
    assert code != 0 and result["commit"] is None and result["status"] == "in_development"
    assert main_state(repo) == before and _git_config(repo) == config
    assert _worktree_status(Path(result["worktree"])) == []


def test_a_real_cli_that_claims_success_without_a_change_fails_then_resumes(cli: tuple[str, Path], tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch,
                                                                            capsys: pytest.CaptureFixture[str]
                                                                            ) -> None:
    kind, binary = cli
    claim = "Fixed mod.txt; every test passes."
    with ScriptedModelServer(Scenario([Reply(claim), WriteFile("mod.txt", "fixed\n"), Reply("now it is")])) as server:
        repo = _setup(tmp_path, monkeypatch, kind, binary, server.url, KEY)
        config = _git_config(repo)
        code, result, _ = _dispatch(repo, capsys)
        # `dispatch --resume`: the second attempt continues the first one's session, and this time edits
        resumed_code, resumed, resumed_err = _dispatch(repo, capsys, "--resume")
        last = server.main_requests()[-1].body
    assert resumed_code == 0, (resumed, resumed_err)
    assert resumed["outcome"]["resumed_session"] == result["outcome"]["session_id"]
    assert claim in json.dumps(last)  # the resumed conversation still holds the first attempt's answer
    assert resumed["attempt"] == 2 and resumed["status"] == "done"
    outcome, verification = result["outcome"], result["verification"]
    assert outcome["error_kind"] is None and outcome["exit_code"] == 0 and outcome["claim"] == claim
    assert not verification["passed"] and "changed no file" in verification["reason"], verification
    assert code != 0 and result["commit"] is None and result["status"] == "in_development"
    verdicts = _events(repo, EventKind.GATES_VERIFIED)
    assert [(v.payload["stage"], v.payload["passed"]) for v in verdicts] == [
        ("in_development", False), ("in_development", True), ("review", True), ("integration", True), ("qa", True),
        ("testing", True)]
    assert _git_config(repo) == config
    assert (repo / "mod.txt").read_text() == "fixed\n"  # the resumed attempt's work landed in main


def test_a_real_cli_at_its_turn_limit_is_stopped_and_runs_no_gate(cli: tuple[str, Path], tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    kind, binary = cli
    with ScriptedModelServer(Scenario([WriteFile("mod.txt", "fixed\n")], repeat_last=True)) as server:
        repo = _setup(tmp_path, monkeypatch, kind, binary, server.url, KEY, max_turns=2)
        config = _git_config(repo)
        started = time.monotonic()
        code, result, err = _dispatch(repo, capsys)
        elapsed = time.monotonic() - started
        turns = len(server.main_requests())
    outcome = result["outcome"]
    assert outcome["error_kind"] == "turn_limit" and not outcome["timed_out"], outcome
    assert code != 0 and "turn_limit" in err
    assert elapsed < 45 and turns <= 4  # stopped at the limit, not by the timeout or the server's cap
    assert result["verification"] is None and result["commit"] is None and result["status"] == "in_development"
    assert not _events(repo, EventKind.GATES_VERIFIED) and not _events(repo, EventKind.TASK_ESCALATED)
    assert set(_worktree_status(Path(result["worktree"]))) <= {" M mod.txt"}  # only the task's own file
    assert _git_config(repo) == config
    progress = read_progress(progress_path(Path(outcome["log_file"])))
    assert progress[-1].kind == "error" and progress[-1].text.startswith("turn_limit"), progress


# ------------------------------------------------------------------------------------------ progress, resume


def _request(tmp_path: Path, kind: str, binary: Path, attempt: int, *, resume: str | None = None) -> ExecutorRequest:
    worktree = tmp_path / "wt"
    if not worktree.exists():
        worktree.mkdir()
        git.Repo.init(worktree)
    logs = tmp_path / ".orchestrator" / "logs" / "T-1"
    options: dict[str, Any] = {"binary": str(binary), "timeout": 60}
    spec = AgentSpec(name="code", description="writes code", role="Code Developer", model=MODELS[kind], max_turns=4,
                     tools=ToolPolicy(allow=[], deny=[]), executor=ExecutorSpec(kind=kind, options=options))  # type: ignore[arg-type]
    return ExecutorRequest(kind, spec, "Make mod.txt say fixed.", logs / f"{attempt}.prompt.md", worktree,
                           logs / f"{attempt}.log", "T-1", attempt, resume_session=resume)


def _history(body: Any) -> int:
    """How many messages a model request carries (Anthropic ``messages``, Gemini ``contents``, OpenAI ``input``)."""
    for key in ("messages", "contents", "input"):
        if isinstance(body, dict) and isinstance(body.get(key), list):
            return len(body[key])
    return 0


def test_a_real_cli_streams_progress_while_it_runs_and_resumes_its_session(cli: tuple[str, Path], tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    kind, binary = cli
    first = _request(tmp_path, kind, binary, 1)
    partial = first.log_file.with_name(f".{first.log_file.name}.partial")
    seen: list[Progress] = []
    in_file: list[list[tuple[str, str]]] = []
    running: list[bool] = []

    def on_progress(record: Progress) -> None:
        seen.append(record)
        in_file.append([(p.kind, p.text) for p in read_progress(progress_path(first.log_file))])
        running.append(partial.exists())  # the log is renamed into place only when the run is over

    scenario = Scenario([WriteFile("mod.txt", "fixed\n"), Reply("first attempt done"), Reply("second attempt done")])
    with ScriptedModelServer(scenario) as server:
        _environment(tmp_path, monkeypatch, kind, server.url, KEY)
        outcome = run_executor(first, on_progress=on_progress)
        assert outcome.ran_ok and outcome.session_id, outcome
        opened = len(server.main_requests())
        second = run_executor(_request(tmp_path, kind, binary, 2, resume=outcome.session_id))
        requests = server.main_requests()
    # progress: live (during the run), in the file before the callback, one line per record
    assert seen and all(running)
    assert all(lines and lines[-1] == (r.kind, r.text) for r, lines in zip(seen, in_file, strict=True))
    assert any(r.kind == "turn" for r in seen) and any(r.kind == "edit" and "mod.txt" in r.text for r in seen)
    assert ("message", "assistant: first attempt done") in [(r.kind, r.text) for r in seen]
    raw = progress_path(first.log_file).read_text(encoding="utf-8").splitlines()
    assert len(raw) == len(seen)
    for line in raw:
        data = json.loads(line)
        assert set(data) == {"t", "kind", "text"} and "\n" not in data["text"]
        assert Progress.from_json(data).time.utcoffset() == UTC.utcoffset(None)
    # resume: the second attempt continues the first one's conversation
    assert second.ran_ok and second.final_message == "second attempt done", second
    assert second.extra["resumed_session"] == outcome.session_id
    assert _history(requests[opened].body) > _history(requests[0].body)  # it carries attempt 1's turns
    assert not list((tmp_path / ".orchestrator" / "agents").rglob("*.credentials.json"))


# ------------------------------------------------------------------------------------------ login files

LOGIN_FILES = {
    "claude": (".claude/.credentials.json",
               {"claudeAiOauth": {"accessToken": KEY, "refreshToken": "scripted-refresh",
                                  "expiresAt": int(time.time() * 1000) + 7 * 86_400_000,
                                  "scopes": ["user:inference", "user:profile"], "subscriptionType": "max"}}),
    "codex": (".codex/auth.json", {"auth_mode": "apikey", "OPENAI_API_KEY": KEY}),
}


@pytest.mark.parametrize("kind", sorted(LOGIN_FILES))
def test_a_user_logged_in_through_the_cli_works_in_the_isolated_state(kind: str, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    binary = installed_cli(kind)
    relative, content = LOGIN_FILES[kind]
    login = tmp_path / "user-home" / relative
    login.parent.mkdir(parents=True)
    login.write_text(json.dumps(content), encoding="utf-8")
    os.chmod(login, 0o600)
    original = login.read_bytes()
    with ScriptedModelServer(Scenario([WriteFile("mod.txt", "fixed\n"), Reply("fixed")])) as server:
        repo = _setup(tmp_path, monkeypatch, kind, binary, server.url, None)  # no key in the environment
        code, result, err = _dispatch(repo, capsys, "--no-advance")
    assert code == 0 and result["verification"]["passed"], (result, err)
    assert login.read_bytes() == original and stat.S_IMODE(login.stat().st_mode) == 0o600
    state = Path(result["outcome"]["state_dir"])
    assert not list(state.rglob(Path(relative).name))  # the copy is gone after the run
    assert _worktree_status(Path(result["worktree"])) == []



AIDER_MODEL = "openai/gpt-4o"  # litellm's OpenAI provider; OPENAI_API_BASE points it at the scripted server


@pytest.mark.parametrize("kind", ["claude", "codex", "gemini", "aider"])
def test_each_cli_takes_a_task_from_assigned_to_done_with_the_change_merged(
        kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """`orchestrator dispatch --next` as a user runs it: the agent edits, the gates verify, the pipeline's gates
    pass, the branch is merged into main, the worktree and branch are gone."""
    binary = installed_cli(kind)
    with ScriptedModelServer(Scenario([WriteFile("mod.txt", "fixed\n"), Reply("mod.txt now says fixed")])) as server:
        if kind == "aider":
            _environment(tmp_path, monkeypatch, "codex", None, None)
            monkeypatch.setenv("OPENAI_API_BASE", server.url + "/v1")
            monkeypatch.setenv("OPENAI_API_KEY", KEY)
            repo = make_repo(tmp_path / "repo")
            agent = add_routed_task(repo)
            set_executor(repo, agent, "aider", binary=str(binary), timeout=120, model=AIDER_MODEL,
                         edit_format="whole")
            git.Repo(repo).git.add(A=True)
            git.Repo(repo).index.commit("executor")
        else:
            repo = _setup(tmp_path, monkeypatch, kind, binary, server.url, KEY)
        config = _git_config(repo)
        main_before = git.Repo(repo).heads.main.commit.hexsha
        capsys.readouterr()
        code = main(["--repo", str(repo), "dispatch", "--next"])
        out = capsys.readouterr().out
    assert code == 0, out
    assert "| " in out and "edit" in out  # live progress lines on the terminal
    assert "landed: merge into main" in out and "status: done" in out
    handle = git.Repo(repo)
    head = handle.heads.main.commit
    assert len(head.parents) == 2 and head.parents[0].hexsha == main_before  # a merge commit on main
    assert (repo / "mod.txt").read_text() == "fixed\n"
    assert "orchestrator/T-1" not in [h.name for h in handle.heads]
    assert not (repo / ".orchestrator" / "worktrees" / "T-1").exists()
    assert _git_config(repo) == config
    assert not handle.git.status("--porcelain")
    with Store.open(repo) as store:
        task = store.task("T-1")
        landed = store.events(task_id="T-1", kind=EventKind.TASK_LANDED)
        finished = store.events(task_id="T-1", kind=EventKind.DISPATCH_FINISHED)
    assert task.status.value == "done" and landed[0].payload["commit"] == head.hexsha
    assert finished[0].payload["error_kind"] is None and finished[0].payload["input_tokens"]


def test_aider_that_claims_success_without_a_change_fails_verification(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    binary = installed_cli("aider")
    claim = "Fixed mod.txt; every test passes."
    with ScriptedModelServer(Scenario([Reply(claim)])) as server:
        _environment(tmp_path, monkeypatch, "codex", None, None)
        monkeypatch.setenv("OPENAI_API_BASE", server.url + "/v1")
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        repo = make_repo(tmp_path / "repo")
        agent = add_routed_task(repo)
        set_executor(repo, agent, "aider", binary=str(binary), timeout=120, model=AIDER_MODEL, edit_format="whole")
        git.Repo(repo).git.add(A=True)
        git.Repo(repo).index.commit("executor")
        config = _git_config(repo)
        code, result, _ = _dispatch(repo, capsys)
    outcome, verification = result["outcome"], result["verification"]
    assert outcome["error_kind"] is None and claim in (outcome["final_message"] or "")
    assert code != 0 and not verification["passed"] and "changed no file" in verification["reason"]
    assert result["commit"] is None and result["status"] == "in_development"
    assert _worktree_status(Path(result["worktree"])) == [] and _git_config(repo) == config
