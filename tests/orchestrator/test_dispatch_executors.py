"""Executors: argv lists only (the prompt is one item, never parsed by a shell), stdin closed, timeouts
kill the process group, output captured to the attempt's log, missing CLIs named with their install."""

from __future__ import annotations

import dataclasses
import json
import stat
import sys
from pathlib import Path
from typing import Any

import pytest

from bno_orchestrator.agents import AgentSpec, ExecutorSpec, ToolPolicy
from bno_orchestrator.dispatch import clis
from bno_orchestrator.dispatch.clis import BIN_DIR_ENV
from bno_orchestrator.dispatch.executors import (
    ExecutorRequest,
    build_argv,
    display_argv,
    parse_claim,
    resolve_argv,
    run_executor,
)
from bno_orchestrator.dispatch.progress import Progress, progress_path
from bno_orchestrator.errors import ConfigError, UserError
from tests.orchestrator.dispatch_helpers import fake_cli
from tests.quality_gates.conftest import survivors

HOSTILE = "Fix it; $(touch PWNED) `touch PWNED2` && rm -rf / | cat > x 'quote\" \n new line"


def agent(kind: str, **options: Any) -> AgentSpec:
    return AgentSpec(name="code", description="writes code", role="Code Developer", model="sonnet", max_turns=12,
                     tools=ToolPolicy(allow=["Read", "Edit"], deny=["WebFetch"]),
                     executor=ExecutorSpec(kind=kind, options=options))  # type: ignore[arg-type]


def request(tmp_path: Path, kind: str, prompt: str = HOSTILE, timeout: float | None = None,
            spec: AgentSpec | None = None, **options: Any) -> ExecutorRequest:
    worktree = tmp_path / "wt"
    worktree.mkdir(exist_ok=True)
    prompt_file = tmp_path / "logs" / "T-1" / "1.prompt.md"
    prompt_file.parent.mkdir(parents=True, exist_ok=True)
    prompt_file.write_text(prompt)
    return ExecutorRequest(kind, spec or agent(kind, **options), prompt, prompt_file, worktree,
                           tmp_path / "logs" / "T-1" / "1.log", "T-1", 1, timeout)


def test_cli_kinds_build_the_documented_argv_with_the_prompt_on_stdin(tmp_path: Path) -> None:
    claude = build_argv(request(tmp_path, "claude"))
    assert HOSTILE not in claude and claude[:9] == ["claude", "-p", "--output-format", "stream-json", "--verbose",
                                                   "--permission-mode", "acceptEdits", "--max-turns", "12"]
    assert claude[9] == "--append-system-prompt" and "T-1" in claude[10]
    assert claude[11:] == ["--allowedTools", "Read", "--disallowedTools", "WebFetch", "--model", "sonnet"]  # no bare Edit
    codex = build_argv(request(tmp_path, "codex"))
    assert HOSTILE not in codex and codex[:7] == ["codex", "exec", "--json", "--sandbox", "workspace-write", "-C",
                                                  str(tmp_path / "wt")]
    assert codex[7] == "-c" and codex[8].startswith("developer_instructions=")
    assert "sandbox_workspace_write.exclude_slash_tmp=true" in codex
    assert "sandbox_workspace_write.exclude_tmpdir_env_var=true" in codex and codex[-3:] == ["--model", "sonnet", "-"]
    (tmp_path / "wt" / "bitnet").mkdir(parents=True, exist_ok=True)
    (tmp_path / "wt" / "bitnet" / "quant.py").write_text("")
    aider = build_argv(request(tmp_path, "aider", files=["bitnet/quant.py"]))
    assert HOSTILE not in aider and aider[1] == f"--message-file={tmp_path / 'logs' / 'T-1' / '1.prompt.md'}"
    assert {"--yes-always", "--no-auto-commits", "--no-gitignore", "--model=sonnet", "--file=bitnet/quant.py"} <= set(aider)
    gemini = build_argv(request(tmp_path, "gemini"))
    assert gemini == ["gemini", "--output-format", "stream-json", "--approval-mode", "auto_edit", "-m", "sonnet"]
    # options of the agent's own kind win; an overriding kind ignores the other kind's options
    tuned = build_argv(request(tmp_path, "claude", max_turns=40, allowedTools=["Bash(pytest:*)"]))
    assert tuned[tuned.index("--max-turns") + 1] == "40" and "Bash(pytest:*)" in tuned
    override = ExecutorRequest("codex", agent("claude", max_turns=40), "p", tmp_path / "p", tmp_path, tmp_path / "l",
                               "T-1", 1)
    assert override.options == {}
    shown = display_argv(["tool", HOSTILE], HOSTILE, tmp_path / "p.md")
    assert HOSTILE not in shown and shown[1].startswith("<prompt: ")


def test_shell_placeholders_are_whole_items_and_python_is_this_interpreter(tmp_path: Path) -> None:
    req = request(tmp_path, "shell", argv=["python", "tool.py", "{prompt_file}", "{worktree}", "--id={task_id}",
                                           "{attempt}"])
    argv = build_argv(req)
    assert argv == [sys.executable, "tool.py", str(req.prompt_file), str(req.worktree), "--id=T-1", "1"]
    with pytest.raises(ConfigError, match=r"executor.options.argv"):
        build_argv(request(tmp_path, "shell"))
    with pytest.raises(ConfigError, match="list of strings"):
        build_argv(request(tmp_path, "shell", argv=[{"a": 1}]))


def test_a_missing_cli_is_named_with_how_to_install_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    monkeypatch.delenv(BIN_DIR_ENV, raising=False)
    monkeypatch.setattr(clis, "install_root", lambda: tmp_path / "no-checkout")  # no project-local .agent-clis
    for kind, install in (("claude", "@anthropic-ai/claude-code"), ("codex", "@openai/codex"),
                          ("aider", "aider-install"), ("gemini", "@google/gemini-cli")):
        with pytest.raises(UserError, match=f"needs `{kind}`.*{install}"):
            resolve_argv(request(tmp_path, kind))
    assert resolve_argv(request(tmp_path, "manual")) == []


def test_a_fake_claude_gets_the_hostile_prompt_verbatim_on_stdin(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "claude"
    fake.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        "json.dump({'argv': sys.argv[1:], 'stdin': sys.stdin.read(), 'cwd': os.getcwd(),\n"
        "           'task': os.environ['ORCHESTRATOR_TASK_ID']}, open('seen.json', 'w'))\n"
        "print(json.dumps({'type': 'result', 'result': 'All done, every test passes.'}))\n"
    )
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv(BIN_DIR_ENV, str(bin_dir))  # searched before the project-local .agent-clis and PATH
    req = request(tmp_path, "claude")
    outcome = run_executor(req)
    seen = json.loads((req.worktree / "seen.json").read_text())
    assert HOSTILE not in seen["argv"] and seen["stdin"] == HOSTILE and seen["task"] == "T-1"
    assert Path(seen["cwd"]).resolve() == req.worktree.resolve()
    assert not (req.worktree / "PWNED").exists() and not (req.worktree / "PWNED2").exists()
    assert outcome.exit_code == 0 and outcome.ran_ok and not outcome.timed_out
    assert outcome.claim == "All done, every test passes."
    log = req.log_file.read_text()
    assert "All done" in log and HOSTILE not in log  # the prompt is in its own file, not in the log header
    assert not list(req.log_file.parent.glob(".*.partial"))


def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    script = tmp_path / "wt" / "spawn.py"
    script.parent.mkdir()
    script.write_text(
        "import pathlib, subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "pathlib.Path('child.pid').write_text(str(child.pid))\n"
        "print('started', flush=True)\n"
        "time.sleep(60)\n"
    )
    req = request(tmp_path, "shell", timeout=1.0, argv=["python", "spawn.py"])
    outcome = run_executor(req)
    assert outcome.timed_out and not outcome.ran_ok and outcome.exit_code is None
    pid = int((req.worktree / "child.pid").read_text())
    # the kill is delivered; give the kernel a moment to reap
    assert not survivors([pid]), f"the executor's child {pid} survived the timeout"
    assert "timed out after 1s" in req.log_file.read_text()


def test_shell_executor_logs_exit_codes_and_the_manual_kind_runs_nothing(tmp_path: Path) -> None:
    (tmp_path / "wt").mkdir()
    (tmp_path / "wt" / "fail.py").write_text("import sys\nprint('stdin was', repr(sys.stdin.read()))\nsys.exit(3)\n")
    outcome = run_executor(request(tmp_path, "shell", argv=["python", "fail.py"]))
    assert outcome.exit_code == 3 and not outcome.ran_ok
    assert outcome.log_file is not None
    assert "stdin was ''" in outcome.log_file.read_text()
    manual = run_executor(request(tmp_path, "manual"))
    assert manual.handoff and manual.log_file is None and manual.argv == []
    with pytest.raises(UserError, match="does not exist"):
        run_executor(request(tmp_path, "shell", argv=["./missing/tool.sh"]))


def test_parse_claim() -> None:
    assert parse_claim('noise\n{"type":"result","result":"Fixed the bug."}\n') == "Fixed the bug."
    assert parse_claim('{"response": "Gemini says done"}') == "Gemini says done"
    assert parse_claim("line one\nline two\n") == "line one\nline two"
    assert parse_claim("") is None


# ------------------------------------------------------------------------------------------ streams

CODEX_EDIT = ('{"type":"item.started","item":{"id":"item_%d","type":"file_change",'
              '"changes":[{"path":"mod.txt","kind":"update"}],"status":"in_progress"}}')


def test_codex_over_its_turn_limit_is_stopped_by_the_orchestrator(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # codex has no turn limit of its own: the orchestrator counts its tool calls and stops the process group
    fake_cli(tmp_path, monkeypatch, "codex",
             "pathlib.Path('pid').write_text(str(os.getpid()))\n"
             "print('{\"type\":\"thread.started\",\"thread_id\":\"t-1\"}', flush=True)\n"
             f"for i in range(1000):\n    print({CODEX_EDIT!r} % i, flush=True)\n    time.sleep(0.05)\n")
    req = request(tmp_path, "codex", timeout=30.0)  # max_turns 12 (the agent's)
    seen: list[Progress] = []
    outcome = run_executor(req, on_progress=seen.append)
    assert outcome.error_kind == "turn_limit" and not outcome.timed_out and outcome.duration < 15
    assert outcome.session_id == "t-1" and "12" in (outcome.error or "")
    assert not survivors([int((req.worktree / "pid").read_text())])
    assert [p.text for p in seen if p.kind == "turn"][-1] == "turn 13/12"
    assert seen[-1].kind == "error" and seen[-1].text.startswith("turn_limit: ")
    assert "stopped (turn_limit)" in req.log_file.read_text()


def test_codex_waiting_for_the_network_is_stopped_as_a_network_error(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    fake_cli(tmp_path, monkeypatch, "codex",
             "print('{\"type\":\"error\",\"message\":\"Reconnecting... waiting for network (1/5)\"}', flush=True)\n"
             "time.sleep(60)\n")
    outcome = run_executor(request(tmp_path, "codex", timeout=30.0))
    assert outcome.error_kind == "network" and not outcome.timed_out and outcome.duration < 15


def test_progress_goes_to_the_file_and_the_callback_and_a_failing_callback_stops_the_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_cli(tmp_path, monkeypatch, "claude",
             "pathlib.Path('pid').write_text(str(os.getpid()))\n"
             "print('{\"type\":\"assistant\",\"session_id\":\"s\",\"parent_tool_use_id\":null,\"message\":{\"id\":\"m1\","
             "\"content\":[{\"type\":\"text\",\"text\":\"working\\\\non it\"},{\"type\":\"tool_use\",\"id\":\"u1\","
             "\"name\":\"Bash\",\"input\":{\"command\":\"pytest -q\"}}]}}', flush=True)\n"
             "time.sleep(60)\n")
    req = request(tmp_path, "claude", timeout=30.0)

    def explode(record: Progress) -> None:
        if record.kind == "tool":
            raise RuntimeError("the board went away")

    with pytest.raises(RuntimeError, match="board went away"):
        run_executor(req, on_progress=explode)
    assert not survivors([int((req.worktree / "pid").read_text())])  # the CLI did not outlive the failure
    lines = [json.loads(line) for line in progress_path(req.log_file).read_text().splitlines()]
    assert [(line["kind"], line["text"]) for line in lines] == [
        ("turn", "turn 1/12"), ("message", "assistant: working on it"), ("tool", "Bash: pytest -q"),
        ("error", "stopped by an error in the orchestrator (RuntimeError: the board went away): the agent's "
                  "process group was killed")]
    assert "the board went away" in req.log_file.read_text()  # the log is in place, saying why it ended


def test_resuming_is_refused_for_kinds_without_sessions(tmp_path: Path) -> None:
    for kind, options in (("shell", {"argv": ["python", "-c", "pass"]}), ("manual", {}), ("aider", {})):
        req = dataclasses.replace(request(tmp_path, kind, **options), resume_session="abc-123")
        with pytest.raises(UserError, match=f"the {kind} executor cannot resume"):
            resolve_argv(req)
        with pytest.raises(UserError, match="cannot resume"):
            run_executor(req)


def test_the_cli_kinds_resume_with_their_own_syntax(tmp_path: Path) -> None:
    def argv(kind: str) -> list[str]:
        return build_argv(dataclasses.replace(request(tmp_path, kind), resume_session="0199-abc"))

    claude, codex, gemini = argv("claude"), argv("codex"), argv("gemini")
    assert claude[-2:] == ["--resume", "0199-abc"]
    assert codex[-3:] == ["resume", "0199-abc", "-"] and codex[:2] == ["codex", "exec"]
    assert gemini[-2:] == ["--resume", "0199-abc"]
    with pytest.raises(UserError, match="a session id is"):
        build_argv(dataclasses.replace(request(tmp_path, "claude"), resume_session="../../etc"))


def test_a_linked_worktree_finds_the_main_checkouts_agent_clis(tmp_path: Path) -> None:
    import git

    from bno_orchestrator.dispatch.clis import LOCAL_PREFIX, local_bin_dirs, main_checkout_of

    main = tmp_path / "main"
    handle = git.Repo.init(main, initial_branch="main")
    (main / "f").write_text("x")
    handle.index.add(["f"])
    handle.index.commit("init", author=git.Actor("t", "t@x"), committer=git.Actor("t", "t@x"))
    handle.git.worktree("add", str(tmp_path / "task"), "-b", "task")
    assert main_checkout_of(tmp_path / "task") == main.resolve() and main_checkout_of(main) is None
    dirs = local_bin_dirs(tmp_path / "task")
    assert main.resolve() / LOCAL_PREFIX / "node_modules" / ".bin" in dirs
    assert dirs[0] == tmp_path / "task" / LOCAL_PREFIX / "node_modules" / ".bin"  # its own first
