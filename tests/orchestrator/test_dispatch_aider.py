"""The aider executor (:mod:`bno_orchestrator.dispatch.aider_cli`): its argv, isolated environment and output
parser, on outputs captured from the real aider 0.86.2 (``data/aider``, see its SOURCES.md) and with the real
binary against the scripted model server in a linked git worktree (skipped, with the reason, when aider is
not installed). Each real run takes about 10 s, most of it aider importing litellm.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import git
import pytest

from bno_orchestrator.agents import AgentSpec, ExecutorSpec
from bno_orchestrator.dispatch import aider_cli
from bno_orchestrator.dispatch.executors import ExecutorRequest
from bno_orchestrator.errors import ConfigError
from bno_orchestrator.scripted_model import Scenario, ScriptedModelServer, WriteFile
from tests.orchestrator.dispatch_helpers import installed_cli

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(__file__).parent / "data" / "aider"
KEY = "scripted-key"
MODEL = "openai/gpt-4o"  # litellm's OpenAI provider: OPENAI_API_BASE points it at the scripted server
HOSTILE = "--yes-always; $(touch PWNED) `touch PWNED2` && rm -rf / | cat > x 'quote\" \n new line"


def sample(name: str) -> str:
    path = DATA / name
    return path.read_text(encoding="utf-8") if path.exists() else ""


def make_request(tmp_path: Path, prompt: str = "Fix mod.txt so it says fixed.\n", agent_model: str | None = MODEL,
                 **options: Any) -> ExecutorRequest:
    """A request laid out like the orchestrator's: REPO/.orchestrator/{logs,worktrees,agents}."""
    repo = tmp_path / "repo"
    worktree = repo / ".orchestrator" / "worktrees" / "T-1"
    worktree.mkdir(parents=True, exist_ok=True)
    log = repo / ".orchestrator" / "logs" / "T-1" / "1.log"
    prompt_file = log.with_name("1.prompt.md")
    prompt_file.parent.mkdir(parents=True, exist_ok=True)
    prompt_file.write_text(prompt, encoding="utf-8")
    spec = AgentSpec(name="code", description="writes code", role="Code Developer", model=agent_model,
                     executor=ExecutorSpec(kind="aider", options=options))
    return ExecutorRequest("aider", spec, prompt, prompt_file, worktree, log, "T-1", 1)


# ------------------------------------------------------------------------------ the parser, on real output


def test_parse_a_run_that_edited_a_file() -> None:
    result = aider_cli.parse(0, sample("edit.stdout"), "")
    assert result.error_kind is None and result.error is None
    assert result.turns == 1 and result.input_tokens == 1100 and result.output_tokens == 19  # "1.1k sent"
    assert result.cost_usd == pytest.approx(0.0029)
    assert result.edited_files == ["mod.txt"]
    assert result.message is not None and result.message.startswith("mod.txt\n") and "+fixed" in result.message
    assert result.session_id is None


def test_parse_a_text_answer_drops_the_path_aider_asked_about() -> None:
    result = aider_cli.parse(0, sample("reply.stdout"), "")
    assert result.error_kind is None and result.edited_files == []
    assert result.message == "I looked at it; nothing to change."  # not the "mod.txt" line before it
    assert result.turns == 1 and result.output_tokens == 21


def test_parse_adds_up_every_model_call_and_keeps_the_last_answer() -> None:
    result = aider_cli.parse(0, sample("two_turns.stdout"), "")
    assert result.turns == 2 and result.input_tokens == 2200 and result.output_tokens == 46
    assert result.cost_usd == pytest.approx(0.0061)  # the session total of the last "Cost:" line
    assert result.edited_files == ["app.py"]
    assert result.message is not None and "def f():" in result.message and "def f(:" not in result.message


@pytest.mark.parametrize(("name", "kind", "text"), [
    ("no_key.stdout", "not_logged_in", "OPENAI_API_KEY"),
    ("wrong_key.stdout", "not_logged_in", "Incorrect API key"),
    ("server_down.stdout", "network", "Connection error"),
    ("http_500.stdout", "network", "InternalServerError"),
    ("http_429.stdout", "network", "RateLimitError"),
])
def test_parse_exit_0_after_every_model_call_failed_is_an_error(name: str, kind: str, text: str) -> None:
    result = aider_cli.parse(0, sample(name), "")  # aider exits 0 all the same
    assert result.error_kind == kind and result.error is not None and text in result.error
    assert result.turns == 0 and result.input_tokens is None and result.cost_usd is None
    assert result.edited_files == [] and result.message is None


def test_parse_a_failure_aider_retried_into_a_success_is_no_error() -> None:
    output = sample("retry_then_edit.stdout")
    assert "Retrying in" in output
    result = aider_cli.parse(0, output, "")
    assert result.error_kind is None and result.edited_files == ["mod.txt"] and result.turns == 1


def test_parse_a_model_call_that_fails_after_one_that_worked_is_an_error() -> None:
    # made of real lines: the edit run, then a later call failing like the run against a dead server
    failing = sample("server_down.stdout").split("\n\n\nmod.txt\n", 1)[1]
    result = aider_cli.parse(0, sample("edit.stdout") + "\n" + failing, "")
    assert result.error_kind == "network" and result.turns == 1 and result.edited_files == ["mod.txt"]


def test_parse_a_refused_option_and_a_killed_run() -> None:
    refused = aider_cli.parse(2, "", sample("bad_option.stderr"))
    assert refused.error_kind == "crash" and refused.error is not None
    assert refused.error.startswith("aider: error: argument --edit-format")
    killed = aider_cli.parse(None, sample("edit.stdout").split("Tokens:")[0], "")
    assert killed.error_kind is None and killed.turns == 0  # a timeout is reported as such, not as an error


def test_parse_a_traceback_counts_only_when_no_model_call_answered() -> None:
    # synthetic: aider prints the traceback of an unexpected exception in a model call, then its message
    crash = "Traceback (most recent call last):\n  File \"x.py\", line 1, in send\nValueError: boom\nboom\n"
    banner = sample("edit.stdout").split("\n\n\nmod.txt\n", 1)[0] + "\n\n\nmod.txt\n"
    failed = aider_cli.parse(0, banner + crash, "")
    assert failed.error_kind == "crash" and failed.error == "Exception: ValueError: boom"
    linted = aider_cli.parse(0, sample("edit.stdout") + crash, "")  # e.g. aider's lint output after an edit
    assert linted.error_kind is None


def test_samples_are_present() -> None:
    names = {p.name for p in DATA.iterdir()}
    assert {"edit.stdout", "reply.stdout", "two_turns.stdout", "no_key.stdout", "wrong_key.stdout",
            "server_down.stdout", "http_500.stdout", "http_429.stdout", "retry_then_edit.stdout",
            "bad_option.stderr", "SOURCES.md"} <= names


# ----------------------------------------------------------------------------------- argv and environment


def test_argv_has_no_prompt_and_isolates_aider(tmp_path: Path) -> None:
    request = make_request(tmp_path, HOSTILE, edit_format="whole", files=["src/a.py", "./b.txt"],
                           read=["docs/spec.md"], map_tokens=0)
    argv = aider_cli.build_argv(request, "aider", ["--verbose"])
    assert HOSTILE not in argv and not any("PWNED" in item for item in argv)
    assert argv[0] == "aider" and argv[1] == f"--message-file={request.prompt_file.absolute()}"
    state = aider_cli.state_dir(request).absolute()
    for flag in ("--yes-always", "--no-auto-commits", "--no-dirty-commits", "--no-gitignore", "--no-check-update",
                 "--no-analytics", "--no-pretty", "--no-stream", "--no-show-release-notes", "--no-detect-urls",
                 "--no-suggest-shell-commands", f"--chat-history-file={state / 'chat.history.md'}",
                 f"--input-history-file={state / 'input.history'}", f"--read={state / aider_cli.RULES_FILE}",
                 f"--model={MODEL}", "--edit-format=whole", "--map-tokens=0", "--timeout=300"):
        assert flag in argv, flag
    assert argv[-4:] == ["--read=docs/spec.md", "--file=src/a.py", "--file=b.txt", "--verbose"]
    # every option value is glued to its flag: a value starting with "-" cannot be read as an option
    assert all(not item.startswith("-") or item.startswith("--") for item in argv[1:])


def test_model_comes_from_the_options_then_the_agent(tmp_path: Path) -> None:
    assert "--model=sonnet" in aider_cli.build_argv(make_request(tmp_path, agent_model="sonnet"), "aider", [])
    tuned = aider_cli.build_argv(make_request(tmp_path, agent_model="sonnet", model="gpt-4o"), "aider", [])
    assert "--model=gpt-4o" in tuned and "--model=sonnet" not in tuned
    bare = aider_cli.build_argv(make_request(tmp_path, agent_model=None), "aider", [])
    assert not any(item.startswith("--model") for item in bare)  # aider picks one from the keys it finds


@pytest.mark.parametrize("bad", ["../outside.py", "/etc/passwd", "", "link/x.py", "sub"])
def test_files_must_be_files_inside_the_worktree(tmp_path: Path, bad: str) -> None:
    request = make_request(tmp_path, files=[bad])
    (request.worktree / "sub").mkdir()
    (request.worktree / "link").symlink_to(tmp_path)
    with pytest.raises(ConfigError, match=r"executor.options.files"):
        aider_cli.build_argv(request, "aider", [])


@pytest.mark.parametrize("prompt", ["!touch PWNED\nFix mod.txt.\n", "/run touch PWNED\n"])
def test_a_prompt_aider_would_run_as_a_command_goes_through_a_guarded_copy(tmp_path: Path, prompt: str) -> None:
    request = make_request(tmp_path, prompt)
    argv = aider_cli.build_argv(request, "aider", [])
    copy = aider_cli.state_dir(request).absolute() / "message.md"
    assert argv[1] == f"--message-file={copy}"
    aider_cli.prepare_env(request, {})
    assert copy.read_text(encoding="utf-8") == "\n" + prompt  # aider only treats a first "/" or "!" as a command


def test_environment_is_isolated_and_passes_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.delenv("OPENAI_API_BASE", raising=False)
    monkeypatch.setenv("AIDER_AUTO_COMMITS", "true")
    monkeypatch.setenv("UNRELATED_SECRET", "x")
    request = make_request(tmp_path, max_retries=2)
    env = aider_cli.prepare_env(request, {"ORCHESTRATOR_TASK_ID": "T-1"})
    state = aider_cli.state_dir(request).absolute()
    assert env["HOME"] == str(state / "home") and env["TMPDIR"] == str(state / "tmp")
    assert env["OPENAI_API_KEY"] == "sk-test" and env["OPENAI_API_BASE"] == "http://127.0.0.1:9/v1"
    assert env["ORCHESTRATOR_TASK_ID"] == "T-1" and "UNRELATED_SECRET" not in env
    assert not [k for k in env if k.startswith("AIDER_")]
    assert env["GIT_AUTHOR_NAME"] == env["GIT_COMMITTER_NAME"] and env["GIT_AUTHOR_EMAIL"]
    assert env["GIT_CONFIG_GLOBAL"] == str(state / "home" / ".gitconfig")
    assert "[user]" in (state / "home" / ".gitconfig").read_text(encoding="utf-8")
    assert env["BROWSER"] == "true" and env["LITELLM_LOCAL_MODEL_COST_MAP"] == "True"
    assert "PYTHONPATH" not in env or str(state) not in env["PYTHONPATH"]  # nothing injected into aider
    assert (state / "home" / ".aider" / "caches" / "model_prices_and_context_window.json").read_text()
    assert "T-1" in (state / aider_cli.RULES_FILE).read_text(encoding="utf-8")


# ------------------------------------------------------------------------------- the real aider binary


@pytest.fixture(scope="module")
def aider_binary() -> Path:
    return installed_cli("aider")


def test_every_flag_is_one_aider_knows(aider_binary: Path, tmp_path: Path) -> None:
    help_text = subprocess.run([str(aider_binary), "--help"], capture_output=True, text=True, timeout=120,
                               env={**os.environ, "COLUMNS": "200"}).stdout
    known = set(re.findall(r"--[a-z0-9][a-z0-9-]*", help_text))
    request = make_request(tmp_path, edit_format="whole", weak_model="gpt-4o-mini", map_tokens=0,
                           files=["a.py"], read=["b.md"])
    used = {item.split("=", 1)[0] for item in aider_cli.build_argv(request, "aider", [])[1:]}
    assert used <= known, used - known


@dataclass
class Run:
    """One real aider run in a fresh linked worktree."""

    request: ExecutorRequest
    repo: Path
    exit_code: int
    stdout: str
    stderr: str
    seconds: float
    config_before: bytes
    gitignore_before: bytes
    head_before: str

    @property
    def result(self) -> aider_cli.AiderResult:
        return aider_cli.parse(self.exit_code, self.stdout, self.stderr)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    for name in aider_cli.AIDER_CREDENTIAL_ENV:
        monkeypatch.delenv(name, raising=False)
    yield monkeypatch


def run_aider(binary: Path, tmp_path: Path, url: str, key: str | None, monkeypatch: pytest.MonkeyPatch,
              prompt: str = "Fix mod.txt so it says fixed.\n") -> Run:
    repo = tmp_path / "repo"
    handle = git.Repo.init(repo, initial_branch="main")
    (repo / "mod.txt").write_text("broken\n", encoding="utf-8")
    (repo / ".gitignore").write_text("*.pyc\n", encoding="utf-8")
    handle.index.add(["mod.txt", ".gitignore"])
    actor = git.Actor("test", "test@localhost")
    handle.index.commit("initial", author=actor, committer=actor)
    (repo / ".git" / "info").mkdir(exist_ok=True)
    (repo / ".git" / "info" / "exclude").write_text(".orchestrator/\n", encoding="utf-8")
    request = make_request(tmp_path, prompt, edit_format="whole", max_retries=1)
    request.worktree.rmdir()
    handle.git.worktree("add", "-b", "orchestrator/T-1", str(request.worktree))
    monkeypatch.setenv("OPENAI_API_BASE", url + "/v1")
    if key is not None:
        monkeypatch.setenv("OPENAI_API_KEY", key)
    config_before = (repo / ".git" / "config").read_bytes()
    gitignore_before = (request.worktree / ".gitignore").read_bytes()
    head_before = handle.git.rev_parse("--all")
    argv = aider_cli.build_argv(request, str(binary), [])
    env = aider_cli.prepare_env(request, {"ORCHESTRATOR_TASK_ID": request.task_id})
    started = time.monotonic()
    before = aider_cli.artifacts(request.worktree)
    proc = subprocess.run(argv, cwd=request.worktree, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=180)
    aider_cli.tidy(request.worktree, before)  # as the executor does: aider's repo-map cache is no change
    return Run(request, repo, proc.returncode, proc.stdout, proc.stderr, time.monotonic() - started, config_before,
               gitignore_before, head_before)


def assert_left_nothing(run: Run, expected_status: str) -> None:
    worktree = git.Repo(run.request.worktree)
    assert worktree.git.status("--porcelain", "--ignored") == expected_status
    assert not list(run.request.worktree.rglob(".aider*"))
    assert (run.repo / ".git" / "config").read_bytes() == run.config_before  # no placeholder identity
    assert (run.request.worktree / ".gitignore").read_bytes() == run.gitignore_before
    assert git.Repo(run.repo).git.rev_parse("--all") == run.head_before  # no commit, no new branch
    assert git.Repo(run.repo).git.status("--porcelain", "--ignored") == "!! .orchestrator/"
    state = aider_cli.state_dir(run.request)
    assert (state / "home" / ".aider" / "installs.json").is_file()  # aider's ~/.aider is the state dir's


def test_real_aider_edits_the_file_and_leaves_nothing_else(aider_binary: Path, tmp_path: Path,
                                                          clean_env: pytest.MonkeyPatch) -> None:
    # the prompt starts with "!": aider would run it as a shell command, were it not for the guarded copy
    prompt = "!touch PWNED\nFix mod.txt so it says fixed.\n"
    with ScriptedModelServer(Scenario([WriteFile("mod.txt", "fixed\n")]), api_key=KEY) as server:
        run = run_aider(aider_binary, tmp_path, server.url, KEY, clean_env, prompt)
        main = server.main_requests()
    result = run.result
    assert run.exit_code == 0, run.stdout + run.stderr
    assert result.error_kind is None and result.edited_files == ["mod.txt"], run.stdout
    assert result.turns == 1 and result.input_tokens and result.output_tokens and result.cost_usd is not None
    assert (run.request.worktree / "mod.txt").read_text(encoding="utf-8") == "fixed\n"
    assert not (run.request.worktree / "PWNED").exists()
    assert_left_nothing(run, " M mod.txt")
    state = aider_cli.state_dir(run.request)
    assert (state / "chat.history.md").is_file()
    assert len(main) == 1 and "BitNet Orchestrator" in str(main[0].body)  # the rules, as a read-only file


@pytest.mark.parametrize("key", [None, "wrong-key"], ids=["no-key", "wrong-key"])
def test_real_aider_without_a_valid_key_is_not_logged_in(aider_binary: Path, tmp_path: Path,
                                                         clean_env: pytest.MonkeyPatch, key: str | None) -> None:
    with ScriptedModelServer(Scenario([WriteFile("mod.txt", "fixed\n")]), api_key=KEY) as server:
        run = run_aider(aider_binary, tmp_path, server.url, key, clean_env)
        requests = server.requests
    assert run.exit_code == 0  # aider's own verdict; the parsed outcome overrides it
    assert run.result.error_kind == "not_logged_in", run.stdout
    assert not any(r.main for r in requests)
    assert bool(requests) == (key is not None)  # a wrong key reaches the server (401); no key never leaves aider
    assert (run.request.worktree / "mod.txt").read_text(encoding="utf-8") == "broken\n"
    assert_left_nothing(run, "")


def test_aider_with_the_model_server_down_is_refused_by_preflight(aider_binary: Path, tmp_path: Path,
                                                                  clean_env: pytest.MonkeyPatch) -> None:
    from bno_orchestrator.dispatch.preflight import PreflightError, check_cli

    server = ScriptedModelServer(Scenario([]), api_key=KEY)
    server.start()
    url = server.url
    server.stop()  # the port now refuses connections (aider itself would retry for about a minute)
    clean_env.setenv("OPENAI_API_BASE", url + "/v1")
    clean_env.setenv("OPENAI_API_KEY", KEY)
    request = make_request(tmp_path, binary=str(aider_binary))
    with pytest.raises(PreflightError, match="does not answer") as caught:
        check_cli(request, tmp_path)
    assert caught.value.error_kind == "network"
    clean_env.delenv("OPENAI_API_KEY")
    with pytest.raises(PreflightError, match="no model key") as caught:
        check_cli(request, tmp_path)
    assert caught.value.error_kind == "not_logged_in"
