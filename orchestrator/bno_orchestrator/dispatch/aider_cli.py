"""aider (0.86.2): argv, isolated state, environment and outcome parsing.

Aider reads the prompt from a file (``--message-file``, never an argv item; a prompt starting with ``/`` or
``!``, which aider would run as a command, goes through a copy with a leading newline), gets the
orchestrator's rules as a read-only file in the chat (``--read``) and runs that one message without a
terminal (``--yes-always``, ``--no-pretty``, ``--no-fancy-input``, ``--no-stream``). Nothing of aider's
lands in the worktree or in the repository's git configuration: no commits (``--no-auto-commits``,
``--no-dirty-commits``), no ``.gitignore`` edit (``--no-gitignore``), its chat and input histories in the
per-attempt state directory (``--chat-history-file``, ``--input-history-file``); ``HOME`` is in the state dir
(aider's ``~/.aider``: analytics id, install marker, and a model-price cache pre-seeded so it never fetches
the price list from GitHub), and a ``.gitconfig`` there plus ``GIT_AUTHOR_*``/``GIT_COMMITTER_*`` give the
git identity aider insists on (without one it writes a placeholder identity into the shared
``.git/config``). The repo-map tag cache aider keeps in the worktree (``.aider.tags.cache.v*/``, no option
moves it) is removed after the run when the run made it (:func:`tidy`). A model server that is down is caught
by preflight (aider itself would retry for about a minute). No update check, analytics, release notes, URL
detection, web scraping or shell-command suggestions; ``BROWSER`` is a no-op, so ``--yes-always`` never
opens a browser; the user's ``AIDER_*`` settings are dropped, their API credentials (OpenAI, Anthropic,
Gemini, OpenRouter... keys and base URLs) passed through. Aider prints text and exits 0 even when every
model call failed: :func:`parse` reads its error, ``Tokens:``/``Cost:`` and ``Applied edit to`` lines. It
cannot resume a session (:data:`RESUMABLE`), has no turn or budget limit (one message is one model call
plus at most 3 hard-coded reflections) and no tools to restrict (it edits through its edit format only).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from bno_orchestrator.dispatch.cli_agents import (
    CREDENTIAL_ENV,
    DEFAULT_API_TIMEOUT_MS,
    PASS_ENV,
    CliResult,
    classify_message,
    model_of,
    state_dir,
    system_rules,
)

if TYPE_CHECKING:
    from bno_orchestrator.dispatch.executors import ExecutorRequest

RESUMABLE = False  # aider has no session id to resume; a retry starts a new chat
AIDER_CREDENTIAL_ENV = tuple(dict.fromkeys((
    *CREDENTIAL_ENV, "OPENAI_API_BASE", "OPENAI_ORGANIZATION", "OPENAI_API_VERSION", "OPENAI_API_TYPE",
    "ANTHROPIC_API_BASE", "GOOGLE_API_KEY", "OPENROUTER_API_KEY", "DEEPSEEK_API_KEY", "GROQ_API_KEY",
    "MISTRAL_API_KEY", "XAI_API_KEY", "COHERE_API_KEY", "AZURE_API_KEY", "AZURE_API_BASE", "AZURE_API_VERSION",
    "OLLAMA_API_BASE")))
GIT_IDENTITY = ("bitnet-orchestrator (aider)", "orchestrator@localhost")
RULES_FILE = "orchestrator-rules.md"  # in the state dir: the orchestrator's rules, a read-only file in the chat
ARTIFACTS = (".aider.tags.cache.v*",)  # what aider writes into the worktree for itself, with no option to move it
WIDTH = "1000"  # COLUMNS: aider's console would wrap its lines at 80 columns


def _state(request: ExecutorRequest) -> Path:
    return state_dir(request).absolute()


def _int_option(request: ExecutorRequest, name: str, default: int, minimum: int = 0) -> int:
    value = request.options.get(name, default)
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = minimum - 1
    if isinstance(value, bool) or number < minimum:
        raise request._config_error(f"executor.options.{name} must be an integer >= {minimum}, not {value!r}",
                                    f"executor.options.{name}")
    return number


def _str_option(request: ExecutorRequest, name: str) -> str | None:
    value = request.options.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise request._config_error(f"executor.options.{name} must be a non-empty string, not {value!r}",
                                    f"executor.options.{name}")
    return value.strip()


def worktree_files(request: ExecutorRequest, name: str) -> list[str]:
    """``executor.options.<name>`` (a path or list of paths relative to the worktree), normalised; a
    ConfigError for a path that leaves the worktree or names a directory."""
    from bno_orchestrator.dispatch.executors import _str_list

    root = Path(os.path.realpath(request.worktree))
    out: list[str] = []
    for item in _str_list(request.options.get(name), request, name):
        target = Path(os.path.realpath(root / item))
        if not item.strip() or Path(item).is_absolute() or not target.is_relative_to(root) or target == root:
            raise request._config_error(f"executor.options.{name}: {item!r} is not a file inside the worktree",
                                        f"executor.options.{name}")
        if target.is_dir():
            raise request._config_error(f"executor.options.{name}: {item!r} is a directory, not a file",
                                        f"executor.options.{name}")
        out.append(target.relative_to(root).as_posix())
    return out


def message_file(request: ExecutorRequest) -> Path:
    """The file aider reads the prompt from: the prompt file, or (when the prompt starts with ``/`` or ``!``,
    which aider would run as an in-chat command or a shell command) a copy with a leading newline that
    :func:`prepare_env` writes into the state dir."""
    if request.prompt[:1] in ("/", "!"):
        return _state(request) / "message.md"
    return request.prompt_file.absolute()


def build_argv(request: ExecutorRequest, binary: str, extra: list[str]) -> list[str]:
    """The argv of an aider run (the prompt is not in it: aider reads :func:`message_file`)."""
    state = _state(request)
    timeout = _int_option(request, "api_timeout_ms", DEFAULT_API_TIMEOUT_MS, 1) / 1000
    argv = [binary, f"--message-file={message_file(request)}", "--yes-always",
            "--no-auto-commits", "--no-dirty-commits", "--no-gitignore",
            "--no-check-update", "--no-show-release-notes", "--no-analytics",
            "--no-pretty", "--no-fancy-input", "--no-stream", "--no-notifications",
            "--no-detect-urls", "--disable-playwright", "--no-suggest-shell-commands",
            "--no-restore-chat-history", f"--chat-history-file={state / 'chat.history.md'}",
            f"--input-history-file={state / 'input.history'}", "--encoding=utf-8", f"--timeout={timeout:g}",
            f"--read={state / RULES_FILE}"]
    model = model_of(request)
    if model:
        argv.append(f"--model={model}")
    for option, flag in (("edit_format", "--edit-format"), ("weak_model", "--weak-model")):
        value = _str_option(request, option)
        if value:
            argv.append(f"{flag}={value}")
    if "map_tokens" in request.options:
        argv.append(f"--map-tokens={_int_option(request, 'map_tokens', 0)}")
    argv += [f"--read={path}" for path in worktree_files(request, "read")]
    argv += [f"--file={path}" for path in worktree_files(request, "files")]
    return argv + extra


# aider's ~/.aider/caches/model_prices_and_context_window.json: any non-empty JSON object stops it fetching
# the price list from GitHub; it then falls back to litellm's bundled list (LITELLM_LOCAL_MODEL_COST_MAP)
MODEL_PRICES_STUB = '{"_": "written by the BitNet Orchestrator: use litellm\'s bundled model list"}\n'


def prepare_env(request: ExecutorRequest, env: dict[str, str]) -> dict[str, str]:
    """Write aider's state into the attempt's state dir; the environment to run it with (``env``: the
    orchestrator's variables, laid over the passed-through ``PATH``, locale, proxies and credentials)."""
    state = _state(request)
    home, tmp = state / "home", state / "tmp"
    for directory in (home / ".aider" / "caches", tmp):
        directory.mkdir(parents=True, exist_ok=True)
    prices = home / ".aider" / "caches" / "model_prices_and_context_window.json"
    if not prices.exists():
        prices.write_text(MODEL_PRICES_STUB, encoding="utf-8")
    name, email = GIT_IDENTITY
    gitconfig = home / ".gitconfig"
    gitconfig.write_text(f"[user]\n\tname = {name}\n\temail = {email}\n", encoding="utf-8")
    (state / RULES_FILE).write_text(system_rules(request) + "\n", encoding="utf-8")
    if message_file(request) != request.prompt_file.absolute():
        message_file(request).write_text("\n" + request.prompt, encoding="utf-8")
    out = {k: os.environ[k] for k in PASS_ENV if k in os.environ}
    out.update({k: os.environ[k] for k in AIDER_CREDENTIAL_ENV if os.environ.get(k)})
    out.update(env)
    if out.get("OPENAI_BASE_URL") and not out.get("OPENAI_API_BASE"):
        out["OPENAI_API_BASE"] = out["OPENAI_BASE_URL"]
    out.update({"HOME": str(home), "TMPDIR": str(tmp), "XDG_CONFIG_HOME": str(home / ".config"),
                "XDG_CACHE_HOME": str(home / ".cache"), "NO_COLOR": "1", "TERM": "dumb", "COLUMNS": WIDTH,
                "PYTHONIOENCODING": "utf-8",
                "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": str(gitconfig), "GIT_TERMINAL_PROMPT": "0",
                "GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": email, "GIT_COMMITTER_NAME": name,
                "GIT_COMMITTER_EMAIL": email, "BROWSER": "true", "LITELLM_LOCAL_MODEL_COST_MAP": "True"})
    for key in [k for k in out if k.startswith("AIDER_")]:
        del out[key]  # the user's aider settings are not the orchestrator's
    return out


def artifacts(worktree: Path) -> set[Path]:
    """aider's own files in ``worktree`` (:data:`ARTIFACTS`), to compare before and after a run."""
    return {path for pattern in ARTIFACTS for path in Path(worktree).glob(pattern)}


def tidy(worktree: Path, before: set[Path]) -> list[str]:
    """Remove what aider wrote into ``worktree`` for itself during the run (not what was there ``before``);
    the names removed. Its cache is no part of the task's change."""
    import shutil

    removed = []
    for path in sorted(artifacts(worktree) - before):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path.name)
    return removed


# ------------------------------------------------------------------------------------------ parsing


@dataclass
class AiderResult(CliResult):
    """:class:`CliResult` plus the files aider said it edited."""

    edited_files: list[str] = field(default_factory=list)


TOKENS = re.compile(r"^Tokens: (?P<sent>[\d.]+k?) sent(?:, (?P<write>[\d.]+k?) cache write)?"
                    r"(?:, (?P<hit>[\d.]+k?) cache hit)?, (?P<received>[\d.]+k?) received\.", re.MULTILINE)
COST = re.compile(r"Cost: \$(?P<message>[\d.]+) message, \$(?P<session>[\d.]+) session\.")
LITELLM_ERROR = re.compile(r"^litellm\.(?P<name>\w+): (?P<text>.*)$")
RETRYING = re.compile(r"^Retrying in [\d.]+ seconds\.\.\.$")
APPLIED = re.compile(r"^Applied edit to (?P<path>.+)$")
MISSING_KEY = re.compile(r"^- (?P<var>[A-Z][A-Z0-9_]*): Not set$")
# aider's banner and bookkeeping lines: never part of the model's answer
NOISE = re.compile(r"^(Aider v\d|Main model: |Weak model: |Editor model: |Git repo: |Repo-map: |Added .* to the chat"
                   r"|Warning: |Detected dumb terminal|Update git |Cur working dir: |Git working dir: |Note: "
                   r"|https?://\S+$|You can skip this check|Retrying in |Creating empty file )")
NOT_LOGGED_IN_ERRORS = ("AuthenticationError", "PermissionDeniedError")
NETWORK_ERRORS = ("APIConnectionError", "InternalServerError", "ServiceUnavailableError", "BadGatewayError",
                  "Timeout", "RateLimitError", "RouterRateLimitError")


def _tokens(value: str | None) -> int:
    if not value:
        return 0
    return round(float(value[:-1]) * 1000) if value.endswith("k") else int(float(value))


def _error_kind(name: str, text: str) -> str:
    if name in NOT_LOGGED_IN_ERRORS:
        return "not_logged_in"
    if name in NETWORK_ERRORS:
        return "network"
    if name == "BudgetExceededError":
        return "budget"
    return classify_message(text)


SUBJECT = re.compile(r"^[\w./-]*[./][\w./-]*[\w/]$")  # a path aider asks about (add to chat, allow edits...)
FENCE = re.compile(r"^(`{3,}|~{3,})")


def _message(lines: list[str], end: int, start: int) -> str | None:
    """The model's answer printed just before the "Tokens:" line ``end`` (after ``start``), best effort: aider's
    text output does not mark where its own lines stop and the answer starts."""
    block: list[str] = []
    for line in reversed(lines[start:end]):
        if NOISE.match(line) or TOKENS.match(line) or LITELLM_ERROR.match(line) or APPLIED.match(line):
            break
        block.append(line.rstrip())
    block.reverse()
    while block and not block[0].strip():
        block.pop(0)
    # "--yes-always" answers print their subject (a path) on its own line, right before the answer
    while len(block) > 1 and SUBJECT.match(block[0]) and block[1].strip() and not FENCE.match(block[1]):
        block.pop(0)
    text = "\n".join(block).strip()
    return text or None


def parse(exit_code: int | None, stdout: str, stderr: str) -> AiderResult:
    """aider's text output: model-call failures (aider exits 0 even when all failed), tokens, cost, edits."""
    lines = stdout.splitlines()
    result = AiderResult(turns=0, input_tokens=0, output_tokens=0)
    final_error: tuple[str, str] | None = None  # the failure the last model call ended with
    last_ok = -1
    missing: list[str] = []
    crashed: str | None = None
    for index, line in enumerate(lines):
        line = line.rstrip()
        cost = COST.search(line)
        if cost:
            result.cost_usd = float(cost["session"])
        tokens = TOKENS.match(line)
        if tokens:
            result.turns = (result.turns or 0) + 1
            result.input_tokens = (result.input_tokens or 0) + _tokens(tokens["sent"]) + _tokens(tokens["write"])
            result.output_tokens = (result.output_tokens or 0) + _tokens(tokens["received"])
            result.message = _message(lines, index, last_ok + 1) or result.message
            final_error, last_ok = None, index
            continue
        error = LITELLM_ERROR.match(line)
        if error:
            retried = any(RETRYING.match(later) for later in lines[index + 1:index + 4])
            final_error = None if retried else (error["name"], error["text"])
            continue
        applied = APPLIED.match(line)
        if applied and applied["path"] not in result.edited_files:
            result.edited_files.append(applied["path"])
        missing_key = MISSING_KEY.match(line)
        if missing_key and missing_key["var"] not in missing:
            missing.append(missing_key["var"])
        if line.startswith("Traceback (most recent call last):") and crashed is None:
            crashed = _traceback_message(lines, index)
    if not result.turns:
        result.input_tokens = result.output_tokens = None
        # an exception in the model call: only without any answer (lint output after an edit may hold one)
        if final_error is None and crashed is not None:
            final_error = ("Exception", crashed)
    if final_error is not None:
        name, text = final_error
        result.error_kind, result.error = _error_kind(name, text), f"{name}: {text}"
        if missing and result.error_kind != "network":
            result.error_kind = "not_logged_in"
            result.error += f" (not set: {', '.join(missing)})"
    elif exit_code not in (0, None):
        text = _exit_message(stdout, stderr) or f"exit code {exit_code}"
        result.error_kind, result.error = classify_message(text), text
    return result


def _exit_message(stdout: str, stderr: str) -> str:
    """What aider said before a non-zero exit: its last ``error:`` line (argparse), else its last lines."""
    lines = [line.strip() for line in (stderr + "\n" + stdout).splitlines() if line.strip()]
    errors = [line for line in lines if re.search(r"\berror\b", line, re.IGNORECASE)]
    return (errors[-1] if errors else "\n".join(lines[-5:]))[-500:]


def _traceback_message(lines: list[str], start: int) -> str:
    for line in lines[start + 1:]:
        if line and not line.startswith((" ", "\t")):
            return line.strip()
    return "an exception (traceback in the log)"


__all__ = ["RESUMABLE", "AiderResult", "build_argv", "parse", "prepare_env"]
