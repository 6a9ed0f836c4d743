"""The real agent CLIs (claude, codex, gemini): argv, isolated state, environment and outcome parsing.

The prompt always goes on stdin (never an argv item). Each CLI's own configuration and state live in a
per-attempt state directory (``.orchestrator/agents/<task>/<attempt>/``): never in the worktree, never in
the user's home or git configuration. The user's credentials environment (API keys, base URLs) is passed
through. Retries are bounded so that a model server that is down ends the attempt quickly with
``error_kind == "network"``.

==========  ==================================================================================================
claude      ``claude -p --output-format json --permission-mode acceptEdits --max-turns N
            --append-system-prompt RULES [--max-budget-usd B] [--model M] [--allowedTools ..]
            [--disallowedTools ..]``; ``CLAUDE_CONFIG_DIR`` in the state dir
codex       ``codex exec --json --sandbox workspace-write -C WORKTREE -c developer_instructions=RULES
            -c sandbox_workspace_write.exclude_slash_tmp=true ... [--model M] -``; ``CODEX_HOME`` in the
            state dir (its config.toml names the provider when ``OPENAI_BASE_URL`` is set)
gemini      ``gemini --output-format json --approval-mode auto_edit [-m M]``; ``HOME`` in the state dir
            with ``.gemini/settings.json``, ``trustedFolders.json`` (the worktree only) and ``GEMINI.md``
==========  ==================================================================================================
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bno_orchestrator.dispatch.executors import ExecutorRequest

CLI_KINDS = ("claude", "codex", "gemini")
ERROR_KINDS = ("not_logged_in", "network", "turn_limit", "budget", "permission_denied", "crash")
CREDENTIAL_ENV = ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN",
                  "OPENAI_API_KEY", "OPENAI_BASE_URL", "GEMINI_API_KEY", "GOOGLE_GEMINI_BASE_URL")
PASS_ENV = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "SSL_CERT_FILE", "SSL_CERT_DIR", "NODE_EXTRA_CA_CERTS",
            "HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY", "https_proxy", "http_proxy", "no_proxy")
EDIT_TOOLS = ("Write", "Edit", "MultiEdit", "NotebookEdit")
CODEX_RECONNECT = "Reconnecting... waiting for network"
DEFAULT_MAX_RETRIES = 1
DEFAULT_API_TIMEOUT_MS = 300_000


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


def _model(request: ExecutorRequest) -> str | None:
    value = request.options.get("model") or (request.agent.model if request.agent.executor.kind == request.kind
                                             else None)
    return str(value) if value else None


def _max_turns(request: ExecutorRequest) -> int:
    from bno_orchestrator.dispatch.executors import DEFAULT_MAX_TURNS

    return int(request.options.get("max_turns") or request.agent.max_turns or DEFAULT_MAX_TURNS)


def _int_option(request: ExecutorRequest, name: str, default: int) -> int:
    value = request.options.get(name, default)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise request._config_error(f"executor.options.{name} must be an integer, not {value!r}",
                                    f"executor.options.{name}") from None


def build_cli_argv(request: ExecutorRequest, binary: str, extra: list[str]) -> list[str]:
    """The argv of a claude/codex/gemini run (no prompt in it: the prompt goes on stdin)."""
    from bno_orchestrator.dispatch.executors import _str_list

    kind, model, agent = request.kind, _model(request), request.agent
    if kind == "claude":
        argv = [binary, "-p", "--output-format", "json", "--permission-mode", "acceptEdits",
                "--max-turns", str(_max_turns(request)), "--append-system-prompt", system_rules(request)]
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
        return argv + extra
    if kind == "codex":
        argv = [binary, "exec", "--json", "--sandbox", "workspace-write", "-C", str(request.worktree),
                "-c", f"developer_instructions={json.dumps(system_rules(request))}",
                "-c", "sandbox_workspace_write.exclude_slash_tmp=true",
                "-c", "sandbox_workspace_write.exclude_tmpdir_env_var=true"]
        if model:
            argv += ["--model", model]
        return [*argv, *extra, "-"]
    if kind == "gemini":
        argv = [binary, "--output-format", "json", "--approval-mode", "auto_edit"]
        if model:
            argv += ["-m", model]
        return argv + extra
    raise ValueError(kind)


def state_dir(request: ExecutorRequest) -> Path:
    """``.orchestrator/agents/<task>/<attempt>/``: the CLI's own config and state for this attempt."""
    return request.log_file.parent.parent.parent / "agents" / request.task_id / str(request.attempt)


def prepare_cli(request: ExecutorRequest, base_env: dict[str, str]) -> dict[str, str]:
    """Write the CLI's config into its state dir; the environment to run it with."""
    state = state_dir(request)
    home, tmp = state / "home", state / "tmp"
    home.mkdir(parents=True, exist_ok=True)
    tmp.mkdir(parents=True, exist_ok=True)
    env = {k: os.environ[k] for k in PASS_ENV if k in os.environ}
    env.update({k: os.environ[k] for k in CREDENTIAL_ENV if os.environ.get(k)})
    env.update(base_env)
    env.update({"HOME": str(home), "TMPDIR": str(tmp), "NO_COLOR": "1", "TERM": "dumb",
                "GIT_CONFIG_NOSYSTEM": "1", "XDG_CONFIG_HOME": str(home / ".config")})
    retries = _int_option(request, "max_retries", DEFAULT_MAX_RETRIES)
    if request.kind == "claude":
        env.update({"CLAUDE_CONFIG_DIR": str(home / ".claude"), "DISABLE_AUTOUPDATER": "1", "DISABLE_TELEMETRY": "1",
                    "DISABLE_ERROR_REPORTING": "1", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
                    "CLAUDE_CODE_MAX_RETRIES": str(retries),
                    "API_TIMEOUT_MS": str(_int_option(request, "api_timeout_ms", DEFAULT_API_TIMEOUT_MS))})
    elif request.kind == "codex":
        codex_home = state / "codex"
        codex_home.mkdir(parents=True, exist_ok=True)
        env["CODEX_HOME"] = str(codex_home)
        (codex_home / "config.toml").write_text(_codex_config(env, retries), encoding="utf-8")
    elif request.kind == "gemini":
        gemini = home / ".gemini"
        gemini.mkdir(parents=True, exist_ok=True)
        settings = {
            "security": {"auth": {"selectedType": "gemini-api-key"}},
            "general": {"enableAutoUpdate": False, "enableAutoUpdateNotification": False,
                        "maxAttempts": max(1, retries + 1)},
            "telemetry": {"enabled": False}, "privacy": {"usageStatisticsEnabled": False},
            "model": {"maxSessionTurns": _max_turns(request)},
        }
        (gemini / "settings.json").write_text(json.dumps(settings, indent=2), encoding="utf-8")
        trusted = {os.path.realpath(request.worktree): "TRUST_FOLDER"}
        (gemini / "trustedFolders.json").write_text(json.dumps(trusted, indent=2), encoding="utf-8")
        (gemini / "GEMINI.md").write_text(system_rules(request) + "\n", encoding="utf-8")
    return env


def _codex_config(env: dict[str, str], retries: int) -> str:
    lines = ["[features]", "plugins = false", "apps = false", "remote_plugin = false", "",
             "[analytics]", "enabled = false", ""]
    base = env.get("OPENAI_BASE_URL")
    if base or env.get("OPENAI_API_KEY"):
        url = (base or "https://api.openai.com/v1").rstrip("/")
        lines = ['model_provider = "orchestrator"', "", *lines, "[model_providers.orchestrator]",
                 'name = "orchestrator"', f"base_url = {json.dumps(url)}", 'env_key = "OPENAI_API_KEY"',
                 'wire_api = "responses"', f"request_max_retries = {retries}", f"stream_max_retries = {retries}",
                 "stream_idle_timeout_ms = 300000", ""]
    return "\n".join(lines)


def network_watch(kind: str, retries: int) -> re.Pattern[str] | None:
    """A pattern in stdout that means the run should stop as a network error (codex retries forever)."""
    return re.compile(re.escape(CODEX_RECONNECT)) if kind == "codex" else None


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
    """Claude Code's ``--output-format json`` result object."""
    objects = [o for o in json_objects(stdout) if o.get("type") == "result"]
    if not objects:
        if exit_code == 0:
            return CliResult()
        text = (stderr.strip() or stdout.strip())[-500:]
        kind = "permission_denied" if "dangerously-skip-permissions" in text else classify_message(text)
        return CliResult(error_kind=kind, error=text or f"exit code {exit_code}")
    data = objects[-1]
    usage: dict[str, Any] = data["usage"] if isinstance(data.get("usage"), dict) else {}
    result = CliResult(cost_usd=data.get("total_cost_usd") if isinstance(data.get("total_cost_usd"), int | float)
                       else None,
                       input_tokens=_int(usage.get("input_tokens")), output_tokens=_int(usage.get("output_tokens")),
                       turns=_int(data.get("num_turns")), session_id=data.get("session_id"),
                       message=data.get("result") if isinstance(data.get("result"), str) else None,
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
    else:
        result.error_kind = classify_message(result.error)
    return result


def parse_codex(exit_code: int | None, stdout: str, stderr: str) -> CliResult:
    """``codex exec --json`` JSONL events."""
    result = CliResult(input_tokens=0, output_tokens=0, turns=0)
    errors: list[str] = []
    failed: str | None = None
    for event in json_objects(stdout):
        kind = event.get("type")
        if kind == "thread.started":
            result.session_id = event.get("thread_id")
        elif kind == "turn.completed":
            usage = event.get("usage") or {}
            result.turns = (result.turns or 0) + 1
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
    if any(CODEX_RECONNECT in e for e in errors) and failed is None and exit_code != 0:
        result.error_kind, result.error = "network", next(e for e in errors if CODEX_RECONNECT in e)
    elif failed is not None:
        result.error_kind, result.error = classify_message(failed), failed
    elif exit_code not in (0, None):
        text = (errors[-1] if errors else stderr.strip()[-500:]) or f"exit code {exit_code}"
        result.error_kind, result.error = classify_message(text), text
    return result


GEMINI_CODES = {41: "not_logged_in", 53: "turn_limit", 55: "permission_denied"}


def parse_gemini(exit_code: int | None, stdout: str, stderr: str) -> CliResult:
    """Gemini CLI ``--output-format json``: the result on stdout, an error JSON on stderr."""
    documents = json_objects(stdout)
    data = documents[-1] if documents else {}
    result = CliResult(session_id=data.get("session_id") or None,
                       message=data.get("response") if isinstance(data.get("response"), str) else None)
    models = ((data.get("stats") or {}).get("models") or {}) if isinstance(data.get("stats"), dict) else {}
    if models:
        result.input_tokens = result.output_tokens = result.turns = 0
        for stats in models.values():
            tokens, api = stats.get("tokens") or {}, stats.get("api") or {}
            result.input_tokens += _int(tokens.get("input", tokens.get("prompt"))) or 0
            result.output_tokens += _int(tokens.get("candidates")) or 0
            result.turns += _int(api.get("totalRequests")) or 0
    if exit_code == 0:
        return result
    errors = json_objects(stderr)
    error = errors[-1] if errors else {}
    result.session_id = result.session_id or error.get("session_id")
    detail: dict[str, Any] = error["error"] if isinstance(error.get("error"), dict) else {}
    message = str(detail.get("message") or "") or stderr.strip()[-500:] or f"exit code {exit_code}"
    code = _int(detail.get("code"))
    result.error = message
    kind = GEMINI_CODES.get(exit_code or 0) or (GEMINI_CODES.get(code) if code is not None else None)
    if kind is None and "not running in a trusted directory" in message:
        kind = "permission_denied"
    result.error_kind = kind or classify_message(message)
    return result


PARSERS = {"claude": parse_claude, "codex": parse_codex, "gemini": parse_gemini}


def parse_outcome(kind: str, exit_code: int | None, stdout: str, stderr: str) -> CliResult:
    """The outcome of one run of the CLI ``kind``."""
    return PARSERS[kind](exit_code, stdout, stderr)
