"""Executors: the programs that do a task's work in its worktree (docs/architecture.md, "Dispatch").

Every executor is an argv list run with ``subprocess.Popen`` (never a shell, never a string built from task
text), with stdin closed, in its own session: a timeout kills the whole process group (SIGTERM, then
SIGKILL). stdout and stderr go to ``.orchestrator/logs/<task-id>/<attempt>.log``.

=========  ===========================================================================================
claude     see :mod:`.cli_agents` (prompt on stdin, isolated config, ``--output-format stream-json``)
codex      see :mod:`.cli_agents` (prompt on stdin, ``codex exec --json ... -``)
aider      see :mod:`.aider_cli` (``--message-file``, isolated HOME and git identity, text output parsed)
gemini     see :mod:`.cli_agents` (prompt on stdin, isolated HOME, ``--output-format stream-json``)
shell      ``executor.options.argv`` of the agent; the items ``{prompt_file}``, ``{worktree}``,
           ``{task_id}``, ``{attempt}`` and ``{python}`` are replaced (each stays one argv item); a leading
           ``python``/``python3`` is this interpreter
manual     no process: the prompt file is the hand-off to a person
=========  ===========================================================================================

The claude, codex and gemini kinds get the prompt on stdin, their stderr apart from stdout, and one parsed
outcome (:attr:`ExecutorOutcome.error_kind`, cost, tokens, turns, session id, final message). Their stdout
is a stream of JSON events, read line by line while they run (:mod:`.cli_stream`): each line goes to the
log at once, and each event becomes a :class:`~.progress.Progress` record, appended to
``.orchestrator/logs/<task-id>/<attempt>.progress.jsonl`` and passed to ``run_executor(...,
on_progress=...)``. The same reader stops a run that cannot end well: codex waiting for the network (it
retries forever: ``error_kind == "network"``) or making more tool calls than the agent's ``max_turns``
(``turn_limit``; claude and gemini enforce that limit themselves). ``ExecutorRequest.resume_session``
continues a session of an earlier attempt (claude, codex and gemini only).

Options every kind reads from ``executor.options``: ``binary`` (the program, default the kind's name),
``extra_args`` (appended), ``timeout`` (seconds). What the agent prints is kept as its *claim*: recorded,
never trusted (the gates decide).
"""

from __future__ import annotations

import codecs
import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from bno_foundation.processes import parent_death_signal
from bno_orchestrator.dispatch.cli_agents import (
    CLI_KINDS,
    CliResult,
    PreparedCli,
    build_cli_argv,
    max_turns,
    parse_outcome,
    prepare_cli,
    state_dir,
    stderr_progress,
)
from bno_orchestrator.dispatch.cli_stream import StreamMonitor
from bno_orchestrator.dispatch.clis import CLIS
from bno_orchestrator.dispatch.progress import ProgressCallback, ProgressSink, progress_path
from bno_orchestrator.errors import ConfigError, UserError

if TYPE_CHECKING:
    from bno_orchestrator.agents import AgentSpec

KINDS: tuple[str, ...] = ("claude", "codex", "aider", "gemini", "shell", "manual")
INSTALL_HINTS: dict[str, str] = {
    "claude": f"{CLIS['claude'].install_hint}  (Claude Code, the tested version; then run `claude` once to log in, "
              "or set ANTHROPIC_API_KEY)",
    "codex": f"{CLIS['codex'].install_hint}  (OpenAI Codex CLI, the tested version; then `codex login`, or set "
             "OPENAI_API_KEY)",
    "aider": "python -m pip install aider-install && aider-install  (aider)",
    "gemini": f"{CLIS['gemini'].install_hint}  (Gemini CLI, the tested version; then run `gemini` once to log in, "
              "or set GEMINI_API_KEY)",
}
DEFAULT_TIMEOUT = 1800.0
DEFAULT_MAX_TURNS = 30
TERM_GRACE = 5.0
CLAIM_CHARS = 2000
DRAIN_GRACE = 2.0  # seconds to keep reading stdout after the CLI exited (a child may still hold it)
POLL = 0.2  # seconds between checks of the process while it runs


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
    resume_session: str | None = None  # continue this CLI session of an earlier attempt (claude, codex, gemini)

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


def check_resumable(request: ExecutorRequest) -> None:
    """A UserError when ``request`` asks to resume a session its executor kind cannot resume."""
    if request.resume_session is not None and request.kind not in CLI_KINDS:
        raise UserError(f"the {request.kind} executor cannot resume a session ({request.resume_session}): only "
                        f"the {', '.join(CLI_KINDS)} executors keep sessions; dispatch without resuming")


def build_argv(request: ExecutorRequest) -> list[str]:
    """The argv of ``request`` (the real one: it holds the whole prompt for the CLI kinds)."""
    check_resumable(request)
    kind = request.kind
    options = request.options
    binary = str(options.get("binary") or kind)
    extra = _str_list(options.get("extra_args"), request, "extra_args")
    if kind in CLI_KINDS:
        return build_cli_argv(request, binary, extra)  # the prompt goes on stdin
    if kind == "aider":
        from bno_orchestrator.dispatch import aider_cli

        return aider_cli.build_argv(request, binary, extra)  # the prompt is read from a file
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
    """The full path of the program ``binary`` (a name, not a path), looked up like the tested CLIs are
    (:func:`bno_orchestrator.dispatch.clis.find_program`: ``$BNO_AGENT_BIN_DIR``, the project-local
    ``.agent-clis/`` of the checkout this package runs from, then PATH); a UserError naming it and how to
    install it when it is nowhere. An explicit ``executor.options.binary`` name is looked up the same way."""
    from bno_orchestrator.dispatch import clis

    found = clis.find_program(binary, clis.install_root())
    if found:
        return str(found)
    hint = INSTALL_HINTS.get(kind)
    how = f"; install it with: {hint}" if hint else ""
    places = f"${clis.BIN_DIR_ENV}, {clis.local_bin_dirs(clis.install_root())[0]} or PATH"
    raise UserError(f"the {kind} executor needs `{binary}`, which is not in {places}{how} "
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
    check_resumable(request)
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


def run_executor(request: ExecutorRequest, argv: list[str] | None = None, *,
                 on_progress: ProgressCallback | None = None) -> ExecutorOutcome:
    """Run the executor of ``request`` (the manual kind only reports the hand-off).

    ``on_progress``: called in this thread with each :class:`~.progress.Progress` record of a claude, codex
    or gemini run, right after it was appended to the attempt's progress file; an exception it raises stops
    the run (the process group is killed) and propagates.
    """
    check_resumable(request)
    if request.kind == "manual":
        return ExecutorOutcome("manual", [], None, False, 0.0, None, handoff=True,
                               extra={"prompt_file": str(request.prompt_file)})
    argv = list(argv) if argv is not None else resolve_argv(request)
    timeout = request.effective_timeout()
    orchestrator_env = {"ORCHESTRATOR_TASK_ID": request.task_id, "ORCHESTRATOR_ATTEMPT": str(request.attempt),
                        "ORCHESTRATOR_WORKTREE": str(request.worktree),
                        "ORCHESTRATOR_PROMPT_FILE": str(request.prompt_file), "PYTHONUNBUFFERED": "1"}
    request.log_file.parent.mkdir(parents=True, exist_ok=True)
    if request.kind == "aider":
        return _run_aider(request, argv, orchestrator_env, timeout, on_progress)
    if request.kind not in CLI_KINDS:
        env = dict(os.environ)
        env.update(orchestrator_env)
        return _run(request, argv, env, timeout, None, None)[0]
    if not request.prompt_file.exists():
        request.prompt_file.parent.mkdir(parents=True, exist_ok=True)
        request.prompt_file.write_text(request.prompt, encoding="utf-8")
    prepared = prepare_cli(request, orchestrator_env)
    try:
        with ProgressSink(progress_path(request.log_file), on_progress) as sink:
            try:
                outcome = _run(request, argv, prepared.env, timeout, prepared, sink)[0]
            except BaseException as exc:
                sink.callback = None  # the caller is going away, or its callback failed: the file only
                sink.emit("error", f"{interruption(exc)}: the agent's process group was killed")
                raise
    finally:
        warnings = prepared.release()
    if warnings:
        outcome.extra["warnings"] = warnings
    return outcome


def _run_aider(request: ExecutorRequest, argv: list[str], orchestrator_env: dict[str, str], timeout: float,
               on_progress: ProgressCallback | None) -> ExecutorOutcome:
    """aider: its isolated environment, the run, its text output parsed (:mod:`.aider_cli`), and the cache it
    left in the worktree removed. Its progress file gets the edits and errors it reported (after the run:
    aider prints no event stream)."""
    from bno_orchestrator.dispatch import aider_cli

    if not request.prompt_file.exists():
        request.prompt_file.parent.mkdir(parents=True, exist_ok=True)
        request.prompt_file.write_text(request.prompt, encoding="utf-8")
    env = aider_cli.prepare_env(request, orchestrator_env)
    before = aider_cli.artifacts(request.worktree)
    try:
        outcome, output, _errors = _run(request, argv, env, timeout, None, None)
    finally:
        removed = aider_cli.tidy(request.worktree, before)
    parsed = aider_cli.parse(outcome.exit_code, output, "")
    if outcome.timed_out:
        parsed.error_kind, parsed.error = None, None  # a timeout is reported as such
    _take_parsed(request, outcome, parsed)
    outcome.claim = parsed.message.strip()[-CLAIM_CHARS:] if parsed.message else outcome.claim
    if removed:
        outcome.extra["removed_from_worktree"] = removed
    with ProgressSink(progress_path(request.log_file), on_progress) as sink:
        for path in parsed.edited_files:
            sink.emit("edit", f"edited {path}")
        if outcome.error_kind is not None:
            sink.emit("error", f"{outcome.error_kind}: {outcome.error or 'no message'}")
    return outcome


def _run(request: ExecutorRequest, argv: list[str], env: dict[str, str], timeout: float,
         prepared: PreparedCli | None, sink: ProgressSink | None) -> tuple[ExecutorOutcome, str, str]:
    """Run ``argv`` with the log, the stdin and (CLI kinds: ``sink`` set) the stream reader; the outcome,
    and the run's output and stderr."""
    shown = display_argv(argv, request.prompt, request.prompt_file)
    partial = request.log_file.with_name(f".{request.log_file.name}.partial")
    err_file = request.log_file.with_name(f".{request.log_file.name}.stderr")
    monitor = (StreamMonitor(request.kind, worktree=request.worktree, max_turns=max_turns(request),
                             emit=sink.emit, enforce_turns=request.kind == "codex") if sink is not None else None)
    try:
        outcome, output, errors, stop = _run_logged(request, argv, env, timeout, prepared, monitor, shown, partial,
                                                    err_file)
    except BaseException:
        if partial.exists():  # the run started and was stopped: its log still goes where the attempt's belongs
            _finish_log(partial, err_file, request.log_file, None)
        raise
    if sink is not None:
        _cli_outcome(request, outcome, output, errors, stop, timeout, sink)
    return outcome, output, errors


def _run_logged(request: ExecutorRequest, argv: list[str], env: dict[str, str], timeout: float,
                prepared: PreparedCli | None, monitor: StreamMonitor | None, shown: list[str], partial: Path,
                err_file: Path) -> tuple[ExecutorOutcome, str, str, tuple[str, str] | None]:
    """:func:`_run` with its log open (``partial``, moved into place at the end): the outcome so far, the
    run's stdout and stderr, and why the orchestrator stopped it (None: it ended by itself or timed out)."""
    cli = monitor is not None
    started = time.monotonic()
    timed_out = False
    stop: tuple[str, str] | None = None
    exit_code: int | None = None
    with open(partial, "wb") as log, open(err_file, "wb") as err, \
            (open(request.prompt_file, "rb") if cli else open(os.devnull, "rb")) as stdin:
        log.write(f"== {request.task_id} attempt {request.attempt}: {request.kind} executor in {request.worktree}\n"
                  f"== argv: {json.dumps(shown)}\n== timeout: {timeout:g}s\n".encode())
        if prepared is not None and prepared.resumed_from is not None:
            log.write(f"== resuming session {request.resume_session} (state of {prepared.resumed_from})\n".encode())
        log.flush()
        body_start = log.tell()
        try:
            # its own session (a signal to ours does not reach it: we stop its group ourselves), and SIGTERM
            # from the kernel if this process dies without that chance (kill -9); the next dispatch of the
            # task stops anything still left (dispatch.leftover)
            proc = subprocess.Popen(argv, cwd=request.worktree, env=env, stdin=stdin,
                                    stdout=subprocess.PIPE if cli else log,
                                    stderr=err if cli else subprocess.STDOUT, start_new_session=True,
                                    preexec_fn=parent_death_signal())
        except OSError as exc:
            partial.unlink(missing_ok=True)
            err_file.unlink(missing_ok=True)
            raise UserError(f"cannot start the {request.kind} executor ({argv[0]}): {exc.strerror or exc}") from None
        deadline = time.monotonic() + timeout
        try:
            if monitor is not None and proc.stdout is not None:
                exit_code, timed_out = _pump(proc, proc.stdout, log, deadline, monitor)
                stop = monitor.stop
            else:
                exit_code, timed_out = _wait(proc, deadline)
            if timed_out:
                _kill_group(proc, TERM_GRACE)
                log.write(f"\n== timed out after {timeout:g}s: process group {proc.pid} killed ==\n".encode())
            elif stop is not None:
                _kill_group(proc, TERM_GRACE)
                exit_code = proc.returncode
                log.write(f"\n== stopped ({stop[0]}): {stop[1]}: process group {proc.pid} killed ==\n".encode())
        except BaseException as exc:
            _kill_group(proc, 0.5)  # Ctrl-C, SIGTERM or a failing progress callback: nothing started survives
            log.write(f"\n== {interruption(exc)}: process group {proc.pid} killed ==\n".encode())
            raise
        finally:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            if proc.stdout is not None:
                proc.stdout.close()
        duration = time.monotonic() - started
        log.flush()
        body_end = log.tell()
    with open(partial, "rb") as handle:
        handle.seek(body_start)
        output = handle.read(max(0, body_end - body_start)).decode("utf-8", errors="replace")
    errors = _finish_log(partial, err_file, request.log_file, f"exit code {exit_code} after {duration:.2f}s")
    outcome = ExecutorOutcome(request.kind, shown, exit_code, timed_out, duration, request.log_file,
                              claim=parse_claim(output))
    return outcome, output, errors, stop


def _finish_log(partial: Path, err_file: Path, log_file: Path, end: str | None) -> str:
    """Append the run's stderr (and ``end``) to the partial log and move it into place; the stderr text."""
    try:
        errors = err_file.read_bytes().decode("utf-8", errors="replace")
    except FileNotFoundError:
        errors = ""
    err_file.unlink(missing_ok=True)
    with open(partial, "ab") as log:
        if errors:
            log.write(b"\n== stderr ==\n" + errors.encode())
        if end:
            log.write(f"\n== {end} ==\n".encode())
    os.replace(partial, log_file)
    return errors


def interruption(exc: BaseException) -> str:
    """How a run was stopped by ``exc``, for the log and the progress file (``interrupted (SIGTERM)``)."""
    if isinstance(exc, KeyboardInterrupt):
        return f"interrupted ({exc.args[0] if exc.args else 'SIGINT'})"
    return f"stopped by an error in the orchestrator ({type(exc).__name__}: {exc})"


def _cli_outcome(request: ExecutorRequest, outcome: ExecutorOutcome, output: str, errors: str,
                 stop: tuple[str, str] | None, timeout: float, sink: ProgressSink) -> None:
    """Fill in what the CLI's stream says (error kind, cost, tokens, turns, session) and record the end."""
    parsed = parse_outcome(request.kind, outcome.exit_code, output, errors)
    if stop is not None:  # the orchestrator ended the run: its reason is the outcome
        parsed.error_kind, parsed.error = stop
    if outcome.timed_out:
        parsed.error_kind = None  # a timeout is reported as such; the gates judge what was done
    _take_parsed(request, outcome, parsed)
    # the claim is the agent's final message: the raw event stream is no claim
    outcome.claim = parsed.message.strip()[-CLAIM_CHARS:] if parsed.message else None
    if parsed.permission_denials:
        outcome.extra["permission_denials"] = parsed.permission_denials
    if request.resume_session is not None:
        outcome.extra["resumed_session"] = request.resume_session
    for kind, text in stderr_progress(request.kind, errors):
        sink.emit(kind, text)
    if outcome.timed_out:
        sink.emit("error", f"timed out after {timeout:g}s: the process group was killed")
    elif outcome.error_kind is not None:
        sink.emit("error", f"{outcome.error_kind}: {outcome.error or 'no message'}")


def _take_parsed(request: ExecutorRequest, outcome: ExecutorOutcome, parsed: CliResult) -> None:
    """What a CLI's output said (error kind, cost, tokens, turns, session, final message) into ``outcome``."""
    outcome.error_kind, outcome.error, outcome.cost_usd = parsed.error_kind, parsed.error, parsed.cost_usd
    outcome.input_tokens, outcome.output_tokens = parsed.input_tokens, parsed.output_tokens
    outcome.turns, outcome.session_id, outcome.final_message = parsed.turns, parsed.session_id, parsed.message
    outcome.state_dir = state_dir(request)


def _wait(proc: subprocess.Popen[bytes], deadline: float) -> tuple[int | None, bool]:
    """Wait for ``proc`` until ``deadline``: (exit code, timed out)."""
    try:
        return proc.wait(timeout=max(0.0, deadline - time.monotonic())), False
    except subprocess.TimeoutExpired:
        return None, True


def _pump(proc: subprocess.Popen[bytes], stdout: IO[bytes], log: IO[bytes], deadline: float,
          monitor: StreamMonitor) -> tuple[int | None, bool]:
    """Read ``proc``'s stdout until it exits, ``deadline`` passes or ``monitor`` says stop: every chunk goes
    to ``log`` at once (flushed), every complete line to ``monitor``. (exit code, timed out); the exit code
    is None when the run did not end by itself."""
    fd = stdout.fileno()
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    pending: list[str] = []  # the start of a line whose end has not come yet (a tool result may be megabytes)
    eof = False
    exited_at: float | None = None
    while True:
        now = time.monotonic()
        if now >= deadline:
            return None, True
        if not eof:
            ready, _, _ = select.select([fd], [], [], min(POLL, deadline - now))
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    eof = True
                else:
                    log.write(chunk)
                    log.flush()
                    first, *lines = decoder.decode(chunk).split("\n")
                    pending.append(first)
                    if lines:  # ``first`` ended a line; the last item starts the next one
                        lines.insert(0, "".join(pending))
                        pending = [lines.pop()]
                    for line in lines:
                        monitor.feed_line(line)
                        if monitor.stop is not None:
                            return None, False
        code = proc.poll()
        if code is None:
            if eof:  # stdout closed, the process still runs: wait for it without spinning
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=min(POLL, max(0.0, deadline - time.monotonic())))
            continue
        exited_at = exited_at if exited_at is not None else now
        if eof or now - exited_at >= DRAIN_GRACE:  # all read, or a child of the CLI holds stdout open
            break
    last = "".join(pending) + decoder.decode(b"", final=True)
    if last:
        monitor.feed_line(last)
    monitor.finish()
    return proc.returncode, False
