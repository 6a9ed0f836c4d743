"""The real agent CLIs (claude, codex, gemini): argv, isolated state, environment and outcome parsing.

The prompt always goes on stdin (never an argv item). Each CLI's own configuration and state live in a
per-attempt state directory (``.orchestrator/agents/<task>/<attempt>/``): never in the worktree, never in
the user's home (but for a refreshed login, see below) or git configuration. The user's credentials
environment (API keys, base URLs) is passed through. Retries are bounded so that a model server that is down ends the attempt quickly with
``error_kind == "network"``. Every CLI streams JSON Lines on stdout (:mod:`.cli_stream` reads them while it
runs: live progress, codex's turn limit and network watch; :func:`parse_outcome` reads the outcome after).

==========  ==================================================================================================
claude      ``claude -p --output-format stream-json --verbose --permission-mode acceptEdits --max-turns N
            --append-system-prompt RULES [--max-budget-usd B] [--allowedTools ..] [--disallowedTools ..]
            [--model M] [--resume SESSION]``; ``CLAUDE_CONFIG_DIR`` in the state dir
codex       ``codex exec --json --sandbox workspace-write -C WORKTREE -c developer_instructions=RULES
            -c sandbox_workspace_write.exclude_slash_tmp=true ... [--model M] [resume SESSION] -``;
            ``CODEX_HOME`` in the state dir (its config.toml names the provider when ``OPENAI_BASE_URL``
            or ``OPENAI_API_KEY`` is set); no turn limit of its own: the orchestrator counts its tool calls
gemini      ``gemini --output-format stream-json --approval-mode auto_edit [-m M] [--resume SESSION]``;
            ``HOME`` in the state dir with ``.gemini/settings.json`` (``model.maxSessionTurns``: the turn
            limit), ``trustedFolders.json`` (the worktree only) and ``GEMINI.md``
==========  ==================================================================================================

**Logging in.** A CLI gets the user's key from the environment (:data:`LOGINS`: ``ANTHROPIC_API_KEY``,
``ANTHROPIC_AUTH_TOKEN`` or ``CLAUDE_CODE_OAUTH_TOKEN``; ``OPENAI_API_KEY``; ``GEMINI_API_KEY``, or
``GOOGLE_API_KEY`` / ``GOOGLE_CLOUD_PROJECT`` + ``GOOGLE_CLOUD_LOCATION`` for Vertex AI). A user who logged
in through the CLI itself instead (``claude`` then ``/login``, ``codex login``, ``gemini`` with Google) has a
login file: ``~/.claude/.credentials.json`` (``$CLAUDE_CONFIG_DIR`` when set), ``~/.codex/auth.json``
(``$CODEX_HOME``), ``~/.gemini/oauth_creds.json`` (``$GEMINI_CLI_HOME/.gemini``). When no key is in the
environment, that file is copied (mode 0600) into the attempt's isolated config dir
(``CLAUDE_CONFIG_DIR/.credentials.json``, ``CODEX_HOME/auth.json``, ``HOME/.gemini/oauth_creds.json``) for
the run, and removed from it afterwards; a token the CLI refreshed during the run is written back to the
user's file (atomically, mode 0600), unless that file changed meanwhile (then the user's copy wins). Claude
logins kept in the macOS keychain have no file: use ``claude setup-token`` and ``CLAUDE_CODE_OAUTH_TOKEN``.

**Resuming.** ``ExecutorRequest.resume_session`` continues a CLI session of an earlier attempt of the same
task: the state dir of the attempt that holds it (``.orchestrator/agents/<task>/<n>/``) is copied into the
new attempt's before the CLI starts (:func:`session_state_dir`), then the CLI is told to resume it
(``claude --resume ID``, ``codex exec ... resume ID -``, ``gemini --resume ID``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bno_foundation.atomic import atomic_write_bytes
from bno_orchestrator.dispatch.cli_stream import CODEX_RECONNECT, StreamMonitor
from bno_orchestrator.errors import UserError

if TYPE_CHECKING:
    from bno_orchestrator.dispatch.executors import ExecutorRequest

CLI_KINDS = ("claude", "codex", "gemini")
ERROR_KINDS = ("not_logged_in", "network", "turn_limit", "budget", "permission_denied", "crash")
CREDENTIAL_ENV = ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN",
                  "OPENAI_API_KEY", "OPENAI_BASE_URL", "GEMINI_API_KEY", "GOOGLE_GEMINI_BASE_URL",
                  "GOOGLE_API_KEY", "GOOGLE_GENAI_USE_VERTEXAI", "GOOGLE_CLOUD_PROJECT", "GOOGLE_CLOUD_LOCATION")
PASS_ENV = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "SSL_CERT_FILE", "SSL_CERT_DIR", "NODE_EXTRA_CA_CERTS",
            "HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY", "https_proxy", "http_proxy", "no_proxy")
EDIT_TOOLS = ("Write", "Edit", "MultiEdit", "NotebookEdit")
DEFAULT_MAX_RETRIES = 1
DEFAULT_API_TIMEOUT_MS = 300_000
SESSION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
LOGIN_FILE_MODE = 0o600


@dataclass(frozen=True)
class Login:
    """How one CLI finds the user's credentials: key environment variables, else its login file."""

    kind: str
    key_env: tuple[str, ...]  # any one of them set (non-empty) is a key
    dir_env: str | None  # the variable that moves the CLI's config dir (its value is that dir)
    home_env: str | None  # the variable that moves the CLI's home (the dir is ``$VAR/<default_dir>``)
    default_dir: str  # under the user's home
    file: str  # the login file in that dir

    def source(self, environ: Mapping[str, str] | None = None) -> Path:
        """The user's login file (it may not exist)."""
        env = os.environ if environ is None else environ
        if self.dir_env and env.get(self.dir_env):
            return Path(env[self.dir_env]).expanduser() / self.file
        home = Path(env[self.home_env]).expanduser() if self.home_env and env.get(self.home_env) else None
        base = home or (Path(env["HOME"]) if env.get("HOME") else Path.home())
        return base / self.default_dir / self.file

    def keys_set(self, environ: Mapping[str, str] | None = None) -> list[str]:
        """The key variables set in the environment."""
        env = os.environ if environ is None else environ
        return [name for name in self.key_env if env.get(name)]


LOGINS: dict[str, Login] = {
    "claude": Login("claude", ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN"),
                    "CLAUDE_CONFIG_DIR", None, ".claude", ".credentials.json"),
    "codex": Login("codex", ("OPENAI_API_KEY",), "CODEX_HOME", None, ".codex", "auth.json"),
    "gemini": Login("gemini", ("GEMINI_API_KEY", "GOOGLE_API_KEY"), None, "GEMINI_CLI_HOME", ".gemini",
                    "oauth_creds.json"),
}


@dataclass
class CliResult:
    """What one CLI run reported in its machine output."""

    error_kind: str | None = None
    error: str | None = None
    cost_usd: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    turns: int | None = None
    session_id: str | None = None
    message: str | None = None
    permission_denials: int = 0


def system_rules(request: ExecutorRequest) -> str:
    """The system prompt: who the agent is and the orchestrator's rules for the attempt."""
    agent = request.agent
    return (f"You are the {agent.role} agent `{agent.name}` ({agent.description.strip()}) working on task "
            f"{request.task_id}, attempt {request.attempt}, dispatched by the BitNet Orchestrator. Work only inside "
            f"the worktree {request.worktree}; do not commit and do not touch files outside it. The quality gates "
            "verify your change: what you claim is not trusted.")


def model_of(request: ExecutorRequest) -> str | None:
    """The model to ask the CLI for: ``executor.options.model``, else the agent's own (when the agent's
    executor is this kind)."""
    value = request.options.get("model") or (request.agent.model if request.agent.executor.kind == request.kind
                                             else None)
    return str(value) if value else None


def max_turns(request: ExecutorRequest) -> int:
    """The agent's turn limit: ``executor.options.max_turns``, the agent's ``max_turns``, else the default."""
    from bno_orchestrator.dispatch.executors import DEFAULT_MAX_TURNS

    value = request.options.get("max_turns") or request.agent.max_turns or DEFAULT_MAX_TURNS
    try:
        turns = int(value)
    except (TypeError, ValueError):
        raise request._config_error(f"executor.options.max_turns must be an integer, not {value!r}",
                                    "executor.options.max_turns") from None
    if turns < 1:
        raise request._config_error("executor.options.max_turns must be at least 1", "executor.options.max_turns")
    return turns


def _int_option(request: ExecutorRequest, name: str, default: int) -> int:
    value = request.options.get(name, default)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise request._config_error(f"executor.options.{name} must be an integer, not {value!r}",
                                    f"executor.options.{name}") from None


def check_session_id(request: ExecutorRequest) -> str | None:
    """``request.resume_session`` when it looks like a session id (a UserError otherwise); None when unset."""
    session = request.resume_session
    if session is None:
        return None
    if not SESSION_ID.match(session):
        raise UserError(f"cannot resume session {session!r} of {request.task_id}: a session id is letters, digits, "
                        "'.', '_' and '-' (the session_id a dispatch recorded)")
    return session


def build_cli_argv(request: ExecutorRequest, binary: str, extra: list[str]) -> list[str]:
    """The argv of a claude/codex/gemini run (no prompt in it: the prompt goes on stdin)."""
    from bno_orchestrator.dispatch.executors import _str_list

    kind, model, agent = request.kind, model_of(request), request.agent
    session = check_session_id(request)
    if kind == "claude":
        argv = [binary, "-p", "--output-format", "stream-json", "--verbose", "--permission-mode", "acceptEdits",
                "--max-turns", str(max_turns(request)), "--append-system-prompt", system_rules(request)]
        budget = request.options.get("budget", agent.budget)
        if budget:
            argv += ["--max-budget-usd", f"{float(budget):g}"]
        allowed = _str_list(request.options.get("allowedTools"), request, "allowedTools") or list(agent.tools.allow)
        allowed = [t for t in allowed if t not in EDIT_TOOLS and not t.startswith(("Write(", "Edit("))]
        if allowed:
            argv += ["--allowedTools", ",".join(allowed)]
        if agent.tools.deny:
            argv += ["--disallowedTools", ",".join(agent.tools.deny)]
        if model:
            argv += ["--model", model]
        if session:
            argv += ["--resume", session]
        return argv + extra
    if kind == "codex":
        max_turns(request)  # validated here: the orchestrator enforces it on codex's stream
        argv = [binary, "exec", "--json", "--sandbox", "workspace-write", "-C", str(request.worktree),
                "-c", f"developer_instructions={json.dumps(system_rules(request))}",
                "-c", "sandbox_workspace_write.exclude_slash_tmp=true",
                "-c", "sandbox_workspace_write.exclude_tmpdir_env_var=true"]
        if model:
            argv += ["--model", model]
        resume = ["resume", session] if session else []  # `codex exec [OPTIONS] resume ID -` (0.171.0)
        return [*argv, *extra, *resume, "-"]
    if kind == "gemini":
        max_turns(request)  # goes to settings.json (model.maxSessionTurns)
        argv = [binary, "--output-format", "stream-json", "--approval-mode", "auto_edit"]
        if model:
            argv += ["-m", model]
        if session:
            argv += ["--resume", session]
        return argv + extra
    raise ValueError(kind)


def state_dir(request: ExecutorRequest) -> Path:
    """``.orchestrator/agents/<task>/<attempt>/``: the CLI's own config and state for this attempt."""
    return request.log_file.parent.parent.parent / "agents" / request.task_id / str(request.attempt)


# ------------------------------------------------------------------------------------------ sessions


def _holds_session(kind: str, directory: Path, session: str) -> bool:
    """Whether the state dir of an attempt holds the ``kind`` CLI's session ``session``."""
    if kind == "claude":
        return any(directory.glob(f"home/.claude/projects/*/{session}.jsonl"))
    if kind == "codex":
        return any(directory.glob(f"codex/sessions/**/rollout-*{session}.jsonl"))
    for path in directory.glob("home/.gemini/tmp/*/chats/session-*.json*"):  # session-<time>-<id[:8]>.jsonl
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                if session in handle.readline():
                    return True
        except OSError:
            continue
    return False


def session_state_dir(request: ExecutorRequest) -> Path:
    """The state dir of the latest earlier attempt holding ``request.resume_session``; a UserError saying
    what to do when the kind cannot resume or no attempt holds it."""
    session = check_session_id(request)
    if session is None:
        raise ValueError("session_state_dir needs a request with resume_session")
    if request.kind not in CLI_KINDS:
        raise UserError(f"the {request.kind} executor cannot resume a session (only claude, codex and gemini "
                        "can): dispatch without resuming")
    own = state_dir(request)
    attempts = own.parent
    candidates = sorted((p for p in attempts.glob("*") if p.is_dir() and p.name.isdigit() and p != own),
                        key=lambda p: int(p.name), reverse=True)
    for directory in candidates:
        if _holds_session(request.kind, directory, session):
            return directory
    raise UserError(f"cannot resume {request.kind} session {session} of {request.task_id}: no earlier attempt's "
                    f"state in {attempts} holds it (a CLI keeps its sessions in the per-attempt state dirs; one that "
                    "was removed cannot be resumed): dispatch without resuming")


def _copy_session_state(source: Path, target: Path) -> None:
    """Copy an earlier attempt's CLI state into this attempt's (not its TMPDIR, not a login file)."""
    logins = {login.file for login in LOGINS.values()}

    def ignore(directory: str, names: list[str]) -> set[str]:
        skipped = {n for n in names if n in logins}
        if Path(directory) == source:
            skipped |= {n for n in names if n == "tmp"}
        return skipped

    shutil.copytree(source, target, dirs_exist_ok=True, ignore=ignore, symlinks=True)


# ------------------------------------------------------------------------------------------ environment


@dataclass
class LoginCopy:
    """The user's login file copied into an attempt's isolated config dir for one run."""

    source: Path
    copy: Path
    digest: str  # sha256 of what was copied

    @classmethod
    def make(cls, source: Path, copy: Path) -> LoginCopy:
        """Copy ``source`` to ``copy`` (mode 0600, atomically)."""
        data = source.read_bytes()
        atomic_write_bytes(copy, data, mode=LOGIN_FILE_MODE)
        return cls(source, copy, hashlib.sha256(data).hexdigest())

    def release(self) -> str | None:
        """After the run: write a token the CLI refreshed back to the user's file when that file is unchanged
        since the copy, then delete the copy. A warning to show when the write-back failed, else None."""
        warning = None
        try:
            data = self.copy.read_bytes()
        except FileNotFoundError:
            return None
        try:
            if hashlib.sha256(data).hexdigest() != self.digest and data.strip():
                current = self.source.read_bytes() if self.source.exists() else b""
                if hashlib.sha256(current).hexdigest() == self.digest:
                    atomic_write_bytes(self.source, data, mode=LOGIN_FILE_MODE)
        except OSError as exc:
            warning = (f"the CLI refreshed its login during the run, but writing it back to {self.source} failed "
                       f"({exc.strerror or exc}): log in again if the CLI says so")
        finally:
            self.copy.unlink(missing_ok=True)
        return warning


@dataclass
class PreparedCli:
    """The environment of one CLI run, and what to undo after it (:meth:`release`)."""

    env: dict[str, str]
    state: Path
    login: LoginCopy | None = None
    resumed_from: Path | None = None
    warnings: list[str] = field(default_factory=list)

    def release(self) -> list[str]:
        """Remove the login copy (writing a refreshed token back); the warnings of the run's setup."""
        if self.login is not None:
            warning = self.login.release()
            if warning:
                self.warnings.append(warning)
            self.login = None
        return self.warnings


def isolated_login_path(kind: str, env: dict[str, str]) -> Path:
    """Where the ``kind`` CLI reads its login file in the isolated environment ``env``."""
    if kind == "claude":
        return Path(env["CLAUDE_CONFIG_DIR"]) / LOGINS[kind].file
    if kind == "codex":
        return Path(env["CODEX_HOME"]) / LOGINS[kind].file
    return Path(env["HOME"]) / ".gemini" / LOGINS[kind].file


def prepare_cli(request: ExecutorRequest, base_env: dict[str, str]) -> PreparedCli:
    """Write the CLI's config into its state dir (after copying an earlier attempt's state when resuming,
    and the user's login file when no key is in the environment); the environment to run it with."""
    state = state_dir(request)
    resumed_from = session_state_dir(request) if request.resume_session else None
    if resumed_from is not None:
        _copy_session_state(resumed_from, state)
    home, tmp = state / "home", state / "tmp"
    home.mkdir(parents=True, exist_ok=True)
    tmp.mkdir(parents=True, exist_ok=True)
    env = {k: os.environ[k] for k in PASS_ENV if k in os.environ}
    env.update({k: os.environ[k] for k in CREDENTIAL_ENV if os.environ.get(k)})
    env.update(base_env)
    env.update({"HOME": str(home), "TMPDIR": str(tmp), "NO_COLOR": "1", "TERM": "dumb",
                "GIT_CONFIG_NOSYSTEM": "1", "XDG_CONFIG_HOME": str(home / ".config")})
    retries = _int_option(request, "max_retries", DEFAULT_MAX_RETRIES)
    login = LOGINS[request.kind]
    source = login.source()
    use_file = not login.keys_set() and source.is_file()
    if request.kind == "claude":
        env.update({"CLAUDE_CONFIG_DIR": str(home / ".claude"), "DISABLE_AUTOUPDATER": "1", "DISABLE_TELEMETRY": "1",
                    "DISABLE_ERROR_REPORTING": "1", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
                    "CLAUDE_CODE_MAX_RETRIES": str(retries),
                    "API_TIMEOUT_MS": str(_int_option(request, "api_timeout_ms", DEFAULT_API_TIMEOUT_MS))})
        (home / ".claude").mkdir(parents=True, exist_ok=True)
    elif request.kind == "codex":
        codex_home = state / "codex"
        codex_home.mkdir(parents=True, exist_ok=True)
        env["CODEX_HOME"] = str(codex_home)
        (codex_home / "config.toml").write_text(_codex_config(env, retries, login_file=use_file), encoding="utf-8")
    elif request.kind == "gemini":
        gemini = home / ".gemini"
        gemini.mkdir(parents=True, exist_ok=True)
        settings = {
            "security": {"auth": {"selectedType": _gemini_auth(env, login_file=use_file)}},
            "general": {"enableAutoUpdate": False, "enableAutoUpdateNotification": False,
                        "maxAttempts": max(1, retries + 1)},
            "telemetry": {"enabled": False}, "privacy": {"usageStatisticsEnabled": False},
            "model": {"maxSessionTurns": max_turns(request)},
        }
        (gemini / "settings.json").write_text(json.dumps(settings, indent=2), encoding="utf-8")
        trusted = {os.path.realpath(request.worktree): "TRUST_FOLDER"}
        (gemini / "trustedFolders.json").write_text(json.dumps(trusted, indent=2), encoding="utf-8")
        (gemini / "GEMINI.md").write_text(system_rules(request) + "\n", encoding="utf-8")
    copied = LoginCopy.make(source, isolated_login_path(request.kind, env)) if use_file else None
    return PreparedCli(env, state, copied, resumed_from)


def _gemini_auth(env: dict[str, str], *, login_file: bool) -> str:
    """Gemini CLI's ``security.auth.selectedType`` for the credentials at hand."""
    if env.get("GEMINI_API_KEY"):
        return "gemini-api-key"
    if env.get("GOOGLE_API_KEY") or (env.get("GOOGLE_CLOUD_PROJECT") and env.get("GOOGLE_CLOUD_LOCATION")):
        return "vertex-ai"
    if login_file:
        return "oauth-personal"
    return "gemini-api-key"  # none: the CLI says GEMINI_API_KEY is missing (not_logged_in)


def _codex_config(env: dict[str, str], retries: int, *, login_file: bool = False) -> str:
    lines = ["[features]", "plugins = false", "apps = false", "remote_plugin = false", "",
             "[analytics]", "enabled = false", ""]
    base = env.get("OPENAI_BASE_URL")
    key = env.get("OPENAI_API_KEY")
    if base or key:
        url = (base or "https://api.openai.com/v1").rstrip("/")
        auth = 'env_key = "OPENAI_API_KEY"' if key or not login_file else "requires_openai_auth = true"
        lines = ['model_provider = "orchestrator"', "", *lines, "[model_providers.orchestrator]",
                 'name = "orchestrator"', f"base_url = {json.dumps(url)}", auth,
                 'wire_api = "responses"', f"request_max_retries = {retries}", f"stream_max_retries = {retries}",
                 "stream_idle_timeout_ms = 300000", ""]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------ parsing


def json_objects(text: str) -> list[dict[str, Any]]:
    """The JSON objects starting lines of ``text`` (optionally after ``[ERROR] ``), in order."""
    decoder = json.JSONDecoder()
    found: list[dict[str, Any]] = []
    offset = 0
    for line in text.splitlines(keepends=True):
        stripped = line.removeprefix("[ERROR] ").lstrip() if line.startswith("[ERROR] ") else line
        if stripped.startswith("{"):
            start = offset + len(line) - len(stripped)
            try:
                value, _ = decoder.raw_decode(text, start)
            except json.JSONDecodeError:
                value = None
            if isinstance(value, dict):
                found.append(value)
        offset += len(line)
    return found


NOT_LOGGED_IN = re.compile(r"not logged in|/login|invalid api key|api key not valid|missing environment variable|"
                           r"\b401\b|unauthori[sz]ed|authentication|must specify the \w*API_KEY|incorrect api key",
                           re.IGNORECASE)
NETWORK = re.compile(r"unable to connect|connection ?refused|timed out|fetch failed|waiting for network|"
                     r"error sending request|\b(429|5\d\d)\b|econnre|enotfound|high demand|overloaded|network",
                     re.IGNORECASE)
CLAUDE_API_ERRORS = {"authentication_failed": "not_logged_in", "rate_limit": "network", "server_error": "network"}
CODEX_DENIED = re.compile(r"patch rejected|rejected by user approval", re.IGNORECASE)
CODEX_TOOL_ERROR = re.compile(r"^\S*\s*ERROR codex_core::\S+: error=")  # any tool error codex logs


def classify_message(message: str) -> str:
    """not_logged_in, network or crash, from an error message."""
    if NOT_LOGGED_IN.search(message):
        return "not_logged_in"
    if NETWORK.search(message):
        return "network"
    return "crash"


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def parse_claude(exit_code: int | None, stdout: str, stderr: str) -> CliResult:
    """Claude Code's ``--output-format stream-json`` events (the last ``result`` event holds the outcome)."""
    stream = StreamMonitor("claude").feed_text(stdout)
    objects = [o for o in json_objects(stdout) if o.get("type") == "result"]
    if not objects:
        if exit_code == 0:
            return CliResult(session_id=stream.session_id, message=stream.final_message)
        text = (stderr.strip() or stream.final_message or stdout.strip())[-500:]
        kind = "permission_denied" if "dangerously-skip-permissions" in text else classify_message(text)
        if stream.api_error in CLAUDE_API_ERRORS:
            kind = CLAUDE_API_ERRORS[stream.api_error]
        return CliResult(error_kind=kind, error=text or f"exit code {exit_code}", session_id=stream.session_id)
    data = objects[-1]
    usage: dict[str, Any] = data["usage"] if isinstance(data.get("usage"), dict) else {}
    result = CliResult(cost_usd=data.get("total_cost_usd") if isinstance(data.get("total_cost_usd"), int | float)
                       else None,
                       input_tokens=_int(usage.get("input_tokens")), output_tokens=_int(usage.get("output_tokens")),
                       turns=_int(data.get("num_turns")), session_id=data.get("session_id") or stream.session_id,
                       message=data["result"] if isinstance(data.get("result"), str) else stream.final_message,
                       permission_denials=len(data.get("permission_denials") or []))
    subtype = str(data.get("subtype", ""))
    if not data.get("is_error") and exit_code == 0:
        return result
    errors: list[Any] = data["errors"] if isinstance(data.get("errors"), list) else []
    result.error = "; ".join(str(e) for e in errors) or result.message or f"exit code {exit_code}"
    if subtype == "error_max_turns":
        result.error_kind = "turn_limit"
    elif subtype == "error_max_budget_usd":
        result.error_kind = "budget"
    elif data.get("api_error_status") in (401, 403):
        result.error_kind = "not_logged_in"
    elif stream.api_error in CLAUDE_API_ERRORS:
        result.error_kind = CLAUDE_API_ERRORS[stream.api_error]
    else:
        result.error_kind = classify_message(result.error)
    return result


def parse_codex(exit_code: int | None, stdout: str, stderr: str) -> CliResult:
    """``codex exec --json`` JSONL events (a patch refused as outside the worktree is logged on stderr).

    ``turns``: codex does not delimit its model turns; counted as its tool calls plus the final message."""
    stream = StreamMonitor("codex").feed_text(stdout)
    result = CliResult(input_tokens=0, output_tokens=0, turns=stream.tool_calls,
                       permission_denials=sum(1 for line in stderr.splitlines() if CODEX_DENIED.search(line)))
    errors: list[str] = []
    failed: str | None = None
    for event in json_objects(stdout):
        kind = event.get("type")
        if kind == "thread.started":
            result.session_id = event.get("thread_id")
        elif kind == "turn.completed":
            usage = event.get("usage") or {}
            result.input_tokens = (result.input_tokens or 0) + (_int(usage.get("input_tokens")) or 0)
            result.output_tokens = (result.output_tokens or 0) + (_int(usage.get("output_tokens")) or 0)
        elif kind == "item.completed" and isinstance(event.get("item"), dict):
            item = event["item"]
            if item.get("type") == "agent_message" and isinstance(item.get("text"), str):
                result.message = item["text"]
        elif kind == "error":
            errors.append(str(event.get("message", "")))
        elif kind == "turn.failed":
            error = event.get("error") or {}
            failed = str(error.get("message", "")) if isinstance(error, dict) else str(error)
    if result.message:
        result.turns = (result.turns or 0) + 1
    if any(CODEX_RECONNECT in e for e in errors) and failed is None and exit_code != 0:
        result.error_kind, result.error = "network", next(e for e in errors if CODEX_RECONNECT in e)
    elif failed is not None:
        result.error_kind, result.error = classify_message(failed), failed
    elif exit_code not in (0, None):
        text = (errors[-1] if errors else stderr.strip()[-500:]) or f"exit code {exit_code}"
        result.error_kind, result.error = classify_message(text), text
    return result


# Gemini CLI's FatalError exit codes (and the error ``type`` names in its result event)
GEMINI_CODES = {41: "not_logged_in", 53: "turn_limit", 55: "permission_denied"}
GEMINI_TYPES = {"FatalAuthenticationError": "not_logged_in", "FatalTurnLimitedError": "turn_limit",
                "FatalUntrustedWorkspaceError": "permission_denied"}


def parse_gemini(exit_code: int | None, stdout: str, stderr: str) -> CliResult:
    """Gemini CLI ``--output-format stream-json``: the outcome in the last ``result`` event (a fatal error
    before the stream starts is text, or a JSON error document, on stderr)."""
    stream = StreamMonitor("gemini").feed_text(stdout)
    final: dict[str, Any] = next((e for e in reversed(json_objects(stdout)) if e.get("type") == "result"), {})
    result = CliResult(session_id=stream.session_id, message=stream.final_message,
                       permission_denials=stream.denials)
    stats: dict[str, Any] = final["stats"] if isinstance(final.get("stats"), dict) else {}
    if stats:
        result.input_tokens = _int(stats.get("input_tokens", stats.get("input")))
        result.output_tokens = _int(stats.get("output_tokens"))
        result.turns = stream.turns
    detail: dict[str, Any] = final["error"] if isinstance(final.get("error"), dict) else {}
    if exit_code == 0 and final.get("status") != "error":
        return result
    if not detail:
        documents = json_objects(stderr)
        document = documents[-1] if documents else {}
        result.session_id = result.session_id or document.get("session_id")
        detail = document["error"] if isinstance(document.get("error"), dict) else {}
    message = str(detail.get("message") or "") or stderr.strip()[-500:] or f"exit code {exit_code}"
    code = _int(detail.get("code"))
    result.error = message
    kind = (GEMINI_CODES.get(exit_code or 0) or GEMINI_TYPES.get(str(detail.get("type")))
            or (GEMINI_CODES.get(code) if code is not None else None))
    if kind is None and "not running in a trusted directory" in message:
        kind = "permission_denied"
    result.error_kind = kind or classify_message(message)
    return result


PARSERS = {"claude": parse_claude, "codex": parse_codex, "gemini": parse_gemini}


def stderr_progress(kind: str, stderr: str) -> list[tuple[str, str]]:
    """Progress records found in a finished run's stderr: codex logs its tool errors there only, as
    ``ERROR codex_core::...: error=...`` (a patch refused outside the worktree, a tool call it does not
    support)."""
    if kind != "codex":
        return []
    return [("error", line.split("error=", 1)[-1].strip()) for line in stderr.splitlines()
            if CODEX_DENIED.search(line) or CODEX_TOOL_ERROR.search(line)]


def parse_outcome(kind: str, exit_code: int | None, stdout: str, stderr: str) -> CliResult:
    """The outcome of one run of the CLI ``kind``."""
    return PARSERS[kind](exit_code, stdout, stderr)

