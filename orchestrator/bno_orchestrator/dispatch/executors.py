"""Executors: the programs that do a task's work in its worktree (docs/architecture.md, "Dispatch").

Every executor is an argv list run with ``subprocess.Popen`` (never a shell, never a string built from task
text), with stdin closed, in its own session: a timeout kills the whole process group (SIGTERM, then
SIGKILL). stdout and stderr go to ``.orchestrator/logs/<task-id>/<attempt>.log``.

=========  ===========================================================================================
claude     see :mod:`.cli_agents` (prompt on stdin, isolated config, ``--output-format json``)
codex      see :mod:`.cli_agents` (prompt on stdin, ``codex exec --json ... -``)
aider      ``aider --message PROMPT --yes-always --no-auto-commits [--model M] FILES...``
gemini     see :mod:`.cli_agents` (prompt on stdin, isolated HOME, ``--output-format json``)
shell      ``executor.options.argv`` of the agent; the items ``{prompt_file}``, ``{worktree}``,
           ``{task_id}``, ``{attempt}`` and ``{python}`` are replaced (each stays one argv item); a leading
           ``python``/``python3`` is this interpreter
manual     no process: the prompt file is the hand-off to a person
=========  ===========================================================================================

The claude, codex and gemini kinds get the prompt on stdin, their stderr apart from stdout, and one parsed
outcome (:attr:`ExecutorOutcome.error_kind`, cost, tokens, turns, session id, final message).

Options every kind reads from ``executor.options``: ``binary`` (the program, default the kind's name),
``extra_args`` (appended), ``timeout`` (seconds). What the agent prints is kept as its *claim*: recorded,
never trusted (the gates decide).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bno_orchestrator.dispatch.cli_agents import (
    CLI_KINDS,
    build_cli_argv,
    network_watch,
    parse_outcome,
    prepare_cli,
    state_dir,
)
from bno_orchestrator.errors import ConfigError, UserError

if TYPE_CHECKING:
    from bno_orchestrator.agents import AgentSpec

KINDS: tuple[str, ...] = ("claude", "codex", "aider", "gemini", "shell", "manual")
INSTALL_HINTS: dict[str, str] = {
    "claude": "npm install -g @anthropic-ai/claude-code  (Claude Code; then `claude` once to log in)",
    "codex": "npm install -g @openai/codex  (OpenAI Codex CLI)",
    "aider": "python -m pip install aider-install && aider-install  (aider)",
    "gemini": "npm install -g @google/gemini-cli  (Gemini CLI)",
}
DEFAULT_TIMEOUT = 1800.0
DEFAULT_MAX_TURNS = 30
TERM_GRACE = 5.0
MAX_ARG_BYTES = 120_000  # Linux refuses one argv item over 128 KiB (MAX_ARG_STRLEN)
CLAIM_CHARS = 2000


@dataclass(frozen=True)
class ExecutorRequest:
    """One run of an executor for one task attempt."""

    kind: str
    agent: AgentSpec
    prompt: str
    prompt_file: Path
    worktree: Path
    log_file: Path
    task_id: str
    attempt: int
    timeout: float | None = None  # None: executor.options.timeout, else DEFAULT_TIMEOUT
    agent_path: Path | None = None  # for error messages

    @property
    def options(self) -> dict[str, Any]:
        """The agent's executor options (empty when ``kind`` overrides the agent's own kind)."""
        return dict(self.agent.executor.options) if self.agent.executor.kind == self.kind else {}

    def effective_timeout(self) -> float:
        """The timeout in seconds."""
        if self.timeout is not None:
            return float(self.timeout)
        value = self.options.get("timeout", DEFAULT_TIMEOUT)
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            raise self._config_error(f"executor.options.timeout must be a number of seconds, not {value!r}",
                                     "executor.options.timeout") from None
        if seconds <= 0:
            raise self._config_error("executor.options.timeout must be positive", "executor.options.timeout")
        return seconds

    def _config_error(self, message: str, field_name: str) -> ConfigError:
        return ConfigError(f"agent {self.agent.name}: {message}", path=self.agent_path, field=field_name)


@dataclass
class ExecutorOutcome:
    """What happened when the executor ran."""

    kind: str
    argv: list[str]  # as shown to people: the prompt item replaced by a note
    exit_code: int | None
    timed_out: bool
    duration: float
    log_file: Path | None
    claim: str | None = None  # what the agent said it did (never trusted)
    handoff: bool = False  # manual: a person takes it from here
    extra: dict[str, Any] = field(default_factory=dict)
    # parsed from the CLI's machine output (claude, codex, gemini); None where unknown
    error_kind: str | None = None  # None | not_logged_in | network | turn_limit | budget | permission_denied | crash
    error: str | None = None  # the CLI's error message
    cost_usd: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    turns: int | None = None
    session_id: str | None = None
    final_message: str | None = None
    state_dir: Path | None = None  # the CLI's own config and state for the attempt

    @property
    def ran_ok(self) -> bool:
        """The process exited 0 in time without a CLI error (says nothing about the work: the gates judge that)."""
        return not self.handoff and not self.timed_out and self.exit_code == 0 and self.error_kind is None

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"kind": self.kind, "argv": self.argv, "exit_code": self.exit_code, "timed_out": self.timed_out,
                "duration": round(self.duration, 3), "log_file": str(self.log_file) if self.log_file else None,
                "claim": self.claim, "handoff": self.handoff, "error_kind": self.error_kind, "error": self.error,
                "cost_usd": self.cost_usd, "input_tokens": self.input_tokens, "output_tokens": self.output_tokens,
                "turns": self.turns, "session_id": self.session_id, "final_message": self.final_message,
                "state_dir": str(self.state_dir) if self.state_dir else None, **self.extra}


def _str_list(value: Any, request: ExecutorRequest, field_name: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str | int | float) for v in value):
        return [str(v) for v in value]
    raise request._config_error(f"executor.options.{field_name} must be a list of strings", f"executor.options.{field_name}")


def _check_prompt_size(prompt: str) -> None:
    size = len(prompt.encode("utf-8"))
    if size > MAX_ARG_BYTES:
        raise UserError(f"the rendered prompt is {size} bytes, more than one argv item may hold ({MAX_ARG_BYTES}); "
                        "shorten the agent body or use the shell executor with {prompt_file}")


def build_argv(request: ExecutorRequest) -> list[str]:
    """The argv of ``request`` (the real one: it holds the whole prompt for the CLI kinds)."""
    kind = request.kind
    options = request.options
    agent = request.agent
    binary = str(options.get("binary") or kind)
    model = options.get("model") or agent.model
    extra = _str_list(options.get("extra_args"), request, "extra_args")
    if kind in CLI_KINDS:
        return build_cli_argv(request, binary, extra)  # the prompt goes on stdin
    if kind == "aider":
        _check_prompt_size(request.prompt)
        argv = [binary, "--message", request.prompt, "--yes-always", "--no-auto-commits"]
        if model:
            argv += ["--model", str(model)]
        files = _str_list(options.get("files"), request, "files")
        return argv + extra + files
    if kind == "shell":
        template = options.get("argv")
        if not template:
            raise request._config_error(
                "the shell executor needs executor.options.argv (a list, e.g. [python, tools/agent.py, "
                "'{prompt_file}', '{worktree}'])", "executor.options.argv")
        items = _str_list(template, request, "argv")
        values = {"{prompt_file}": str(request.prompt_file), "{worktree}": str(request.worktree),
                  "{task_id}": request.task_id, "{attempt}": str(request.attempt), "{python}": sys.executable}
        argv = []
        for index, item in enumerate(items):
            if index == 0 and item in ("python", "python3"):
                item = sys.executable
            if item in values:
                item = values[item]  # a whole item: replaced by exactly one item
            else:
                for placeholder, value in values.items():
                    item = item.replace(placeholder, value)  # inside an item (--file={prompt_file}): still one item
            argv.append(item)
        return argv + extra
    raise UserError(f"unknown executor kind {kind!r}; kinds: {', '.join(KINDS)}")


def display_argv(argv: list[str], prompt: str, prompt_file: Path) -> list[str]:
    """``argv`` with the prompt item replaced by a short note (for logs, events and --dry-run)."""
    note = f"<prompt: {len(prompt)} chars, {prompt_file}>"
    return [note if item == prompt and prompt else item for item in argv]


def require_binary(kind: str, binary: str) -> str:
    """The full path of ``binary``; a UserError naming it and how to install it when it is missing."""
    found = shutil.which(binary)
    if found:
        return found
    hint = INSTALL_HINTS.get(kind)
    how = f"; install it with: {hint}" if hint else ""
    raise UserError(f"the {kind} executor needs `{binary}`, which is not on PATH{how} "
                    "(or pick another executor: --executor KIND, or `executor:` in the agent file)")


def parse_claim(output: str) -> str | None:
    """What the agent says it did: the result text of the last JSON object it printed, else its last lines."""
    for line in reversed(output.strip().splitlines()):
        line = line.strip()
        if not (line.startswith("{") and line.endswith("}")):
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(data, dict):
            for key in ("result", "response", "message", "text", "summary"):
                value = data.get(key)
                if isinstance(value, str) and value.strip():
                    return value.strip()[-CLAIM_CHARS:]
                if isinstance(value, dict):
                    inner = value.get("text") or value.get("content")
                    if isinstance(inner, str) and inner.strip():
                        return inner.strip()[-CLAIM_CHARS:]
    lines = [line for line in output.strip().splitlines() if line.strip()]
    return "\n".join(lines[-5:])[-CLAIM_CHARS:] if lines else None


def _kill_group(proc: subprocess.Popen[bytes], grace: float) -> None:
    from bno_quality_gates.runner import kill_group

    kill_group(proc, grace)


def resolve_argv(request: ExecutorRequest) -> list[str]:
    """:func:`build_argv` with the program found (a UserError naming it and its install command if not).

    Called before any state changes, so a missing CLI leaves the task where it was. Empty for ``manual``.
    """
    if request.kind == "manual":
        return []
    argv = build_argv(request)
    program = argv[0]
    if os.sep in program:
        if not (request.worktree / program).exists():  # absolute, or relative to the worktree (its cwd)
            raise UserError(f"the {request.kind} executor of agent {request.agent.name}: {program} does not exist")
    else:
        argv[0] = require_binary(request.kind, program)
    return argv


def run_executor(request: ExecutorRequest, argv: list[str] | None = None) -> ExecutorOutcome:
    """Run the executor of ``request`` (the manual kind only reports the hand-off)."""
    if request.kind == "manual":
        return ExecutorOutcome("manual", [], None, False, 0.0, None, handoff=True,
                               extra={"prompt_file": str(request.prompt_file)})
    argv = list(argv) if argv is not None else resolve_argv(request)
    timeout = request.effective_timeout()
    shown = display_argv(argv, request.prompt, request.prompt_file)
    orchestrator_env = {"ORCHESTRATOR_TASK_ID": request.task_id, "ORCHESTRATOR_ATTEMPT": str(request.attempt),
                        "ORCHESTRATOR_WORKTREE": str(request.worktree),
                        "ORCHESTRATOR_PROMPT_FILE": str(request.prompt_file), "PYTHONUNBUFFERED": "1"}
    cli = request.kind in CLI_KINDS
    if cli:
        env = prepare_cli(request, orchestrator_env)
        watch = network_watch(request.kind, 1)
    else:
        env = dict(os.environ)
        env.update(orchestrator_env)
        watch = None
    request.log_file.parent.mkdir(parents=True, exist_ok=True)
    partial = request.log_file.with_name(f".{request.log_file.name}.partial")
    err_file = request.log_file.with_name(f".{request.log_file.name}.stderr")
    if cli and not request.prompt_file.exists():
        request.prompt_file.parent.mkdir(parents=True, exist_ok=True)
        request.prompt_file.write_text(request.prompt, encoding="utf-8")
    started = time.monotonic()
    timed_out = False
    watched: str | None = None
    exit_code: int | None = None
    with open(partial, "wb") as log, open(err_file, "wb") as err, \
            (open(request.prompt_file, "rb") if cli else open(os.devnull, "rb")) as stdin:
        log.write(f"== {request.task_id} attempt {request.attempt}: {request.kind} executor in {request.worktree}\n"
                  f"== argv: {json.dumps(shown)}\n== timeout: {timeout:g}s\n".encode())
        log.flush()
        body_start = log.tell()
        try:
            proc = subprocess.Popen(argv, cwd=request.worktree, env=env, stdin=stdin, stdout=log,
                                    stderr=err if cli else subprocess.STDOUT, start_new_session=True)
        except OSError as exc:
            partial.unlink(missing_ok=True)
            err_file.unlink(missing_ok=True)
            raise UserError(f"cannot start the {request.kind} executor ({argv[0]}): {exc.strerror or exc}") from None
        try:
            exit_code, timed_out, watched = _wait(proc, timeout, partial, body_start, watch)
            if timed_out:
                _kill_group(proc, TERM_GRACE)
                log.write(f"\n== timed out after {timeout:g}s: process group {proc.pid} killed ==\n".encode())
            elif watched:
                _kill_group(proc, TERM_GRACE)
                exit_code = proc.returncode
                log.write(f"\n== stopped: {watched!r} (a network error): process group {proc.pid} killed ==\n"
                          .encode())
        except BaseException:
            _kill_group(proc, 0.5)  # Ctrl-C or SIGTERM: nothing the executor started survives
            raise
        finally:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        duration = time.monotonic() - started
        log.flush()
        body_end = log.tell()
    with open(partial, "rb") as handle:
        handle.seek(body_start)
        output = handle.read(max(0, body_end - body_start)).decode("utf-8", errors="replace")
    errors = err_file.read_bytes().decode("utf-8", errors="replace")
    err_file.unlink(missing_ok=True)
    with open(partial, "ab") as log:
        if errors:
            log.write(b"\n== stderr ==\n" + errors.encode())
        log.write(f"\n== exit code {exit_code} after {duration:.2f}s ==\n".encode())
    os.replace(partial, request.log_file)
    outcome = ExecutorOutcome(request.kind, shown, exit_code, timed_out, duration, request.log_file,
                              claim=parse_claim(output))
    if cli:
        parsed = parse_outcome(request.kind, exit_code, output, errors)
        if watched and parsed.error_kind is None:
            parsed.error_kind, parsed.error = "network", watched
        if timed_out:
            parsed.error_kind = None  # a timeout is reported as such; the gates judge what was done
        outcome.error_kind, outcome.error, outcome.cost_usd = parsed.error_kind, parsed.error, parsed.cost_usd
        outcome.input_tokens, outcome.output_tokens = parsed.input_tokens, parsed.output_tokens
        outcome.turns, outcome.session_id, outcome.final_message = parsed.turns, parsed.session_id, parsed.message
        outcome.state_dir = state_dir(request)
        if parsed.message:
            outcome.claim = parsed.message.strip()[-CLAIM_CHARS:]
        if parsed.permission_denials:
            outcome.extra["permission_denials"] = parsed.permission_denials
    return outcome


def _wait(proc: subprocess.Popen[bytes], timeout: float, log_path: Path, start: int,
          watch: re.Pattern[str] | None) -> tuple[int | None, bool, str | None]:
    """Wait for ``proc``: (exit code, timed out, the watched line seen). Without a watch: a plain wait."""
    if watch is None:
        try:
            return proc.wait(timeout=timeout), False, None
        except subprocess.TimeoutExpired:
            return None, True, None
    deadline = time.monotonic() + timeout
    offset = start
    pending = ""
    while True:
        try:
            return proc.wait(timeout=min(0.2, max(0.0, deadline - time.monotonic()))), False, None
        except subprocess.TimeoutExpired:
            pass
        with open(log_path, "rb") as handle:
            handle.seek(offset)
            chunk = handle.read()
        offset += len(chunk)
        pending += chunk.decode("utf-8", errors="replace")
        lines = pending.split("\n")
        pending = lines.pop()
        for line in lines:
            match = watch.search(line)
            if match:
                return None, False, match.group(0)
        if time.monotonic() >= deadline:
            return None, True, None
