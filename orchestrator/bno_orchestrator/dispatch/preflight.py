"""Preflight of the agent CLIs (claude, codex, gemini, aider): what must hold before a dispatch changes
anything (for aider: the binary, a provider key, the endpoint of ``OPENAI_API_BASE``/``OPENAI_BASE_URL`` or of
its model's provider, and the version).

:func:`check_cli` runs before a worktree is made or an attempt is recorded. It reads the environment and
runs ``BINARY --version`` in a throw-away home; it writes nothing else. In order:

1. **the binary is found**: a path in ``executor.options.binary`` (relative: to the repository) must be an
   executable file; a name (default the CLI's own) is looked up in ``$BNO_AGENT_BIN_DIR``, the project-local
   ``.agent-clis/`` of the checkout the orchestrator runs from, then PATH, like the executor does
   (:func:`bno_orchestrator.dispatch.executors.require_binary`). Error kind ``not_installed``.
2. **a key or a login exists**: one of the CLI's key variables (:data:`.cli_agents.LOGINS`) or its login
   file (``~/.claude/.credentials.json``, ``~/.codex/auth.json``, ``~/.gemini/oauth_creds.json``; the
   executor copies that file into the attempt's isolated config dir). Error kind ``not_logged_in``.
3. **the model endpoint answers**: a TCP connection (``executor.options.preflight_timeout`` seconds,
   default 3) to the base URL in the environment (``ANTHROPIC_BASE_URL``, ``OPENAI_BASE_URL``,
   ``GOOGLE_GEMINI_BASE_URL``) or the vendor's default host, through the ``HTTPS_PROXY`` the CLI would use.
   Error kind ``network``. ``executor.options.preflight_endpoint: false`` skips it (e.g. an offline machine
   whose requests go through a proxy the probe cannot see).
4. **the version runs**: ``BINARY --version`` must exit 0 and print a version (error kind ``crash``); a
   version other than the tested one (:data:`.clis.CLIS`) is a note naming both, not an error.
5. **a session to resume exists** (``ExecutorRequest.resume_session``): in an earlier attempt's state dir
   (error kind ``resume``); the shell, manual and aider executors cannot resume at all.

The notes returned are for the user (a version other than the tested one, a login file in use, a skipped
probe); the errors are :class:`PreflightError`, a :class:`~bno_orchestrator.errors.UserError` whose message
says what to do and whose :attr:`PreflightError.error_kind` says which check failed.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import tempfile
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from bno_orchestrator.dispatch.cli_agents import CLI_KINDS, LOGINS, session_state_dir
from bno_orchestrator.dispatch.clis import CLIS, parse_version
from bno_orchestrator.dispatch.executors import ExecutorRequest, build_argv, check_resumable, require_binary
from bno_orchestrator.errors import UserError

PREFLIGHT_ERROR_KINDS = ("not_installed", "not_logged_in", "network", "crash", "resume")
PREFLIGHT_KINDS = (*CLI_KINDS, "aider")  # the executor kinds :func:`check_cli` checks in full
DEFAULT_PROBE_TIMEOUT = 3.0
VERSION_TIMEOUT = 30.0
LOGIN_HELP = {
    "claude": "run `claude` once and /login (or `claude setup-token` and set CLAUDE_CODE_OAUTH_TOKEN)",
    "codex": "run `codex login`",
    "gemini": "run `gemini` once and log in with Google",
}
BASE_URL_ENV = {"claude": "ANTHROPIC_BASE_URL", "codex": "OPENAI_BASE_URL", "gemini": "GOOGLE_GEMINI_BASE_URL"}
DEFAULT_ENDPOINTS = {"claude": "https://api.anthropic.com", "codex": "https://api.openai.com/v1",
                     "gemini": "https://generativelanguage.googleapis.com"}
CHATGPT_ENDPOINT = "https://chatgpt.com/backend-api/codex"  # codex logged in with a ChatGPT account
GEMINI_OAUTH_ENDPOINT = "https://cloudcode-pa.googleapis.com"  # gemini logged in with Google (Code Assist)


class PreflightError(UserError):
    """A check of :func:`check_cli` failed; :attr:`error_kind` is one of :data:`PREFLIGHT_ERROR_KINDS`."""

    def __init__(self, message: str, *, error_kind: str) -> None:
        if error_kind not in PREFLIGHT_ERROR_KINDS:
            raise ValueError(f"unknown preflight error kind {error_kind!r}")
        self.error_kind = error_kind
        super().__init__(message)


@dataclass(frozen=True)
class VersionCheck:
    """What ``--version`` said."""

    version: str
    tested: str

    @property
    def matches(self) -> bool:
        """The tested version."""
        return self.version == self.tested


_VERSIONS: dict[tuple[str, int, int], str] = {}  # (path, mtime_ns, size) -> version: one run per binary


def check_cli(request: ExecutorRequest, repo_root: Path) -> list[str]:
    """Check that ``request``'s CLI can run (see the module docstring); the notes for the user.

    ``repo_root``: the repository dispatched from (a relative ``executor.options.binary`` is resolved
    against it, as the worktree made from it will hold the same file). Raises :class:`PreflightError`
    (a UserError) when a check fails, or a ConfigError for a bad executor option. Nothing is written.
    Executor kinds other than claude, codex and gemini are only checked for resuming (no notes).
    """
    check_resumable(request)
    if request.kind not in PREFLIGHT_KINDS:
        return []
    notes: list[str] = []
    binary = _binary(request, repo_root)
    notes += _check_login(request) if request.kind != "aider" else _check_aider_key(request)
    if _option_flag(request, "preflight_endpoint", True):
        _check_endpoint(request)
    else:
        notes.append(f"the {request.kind} model endpoint was not checked (executor.options.preflight_endpoint "
                     "is false)")
    check = check_version(request.kind, binary)
    if not check.matches:
        notes.append(f"{binary} is {request.kind} {check.version}, not the tested {check.tested}: it may "
                     f"stream events the orchestrator does not read; the tested one: {CLIS[request.kind].install_hint}")
    if request.resume_session is not None:
        try:
            source = session_state_dir(request)
        except UserError as exc:
            raise PreflightError(str(exc), error_kind="resume") from None
        notes.append(f"resuming {request.kind} session {request.resume_session} from {source}")
    return notes


def _option_flag(request: ExecutorRequest, name: str, default: bool) -> bool:
    value = request.options.get(name, default)
    if not isinstance(value, bool):
        raise request._config_error(f"executor.options.{name} must be true or false, not {value!r}",
                                    f"executor.options.{name}")
    return value


def _binary(request: ExecutorRequest, repo_root: Path) -> Path:
    """The executable the run will start (check 1)."""
    program = build_argv(request)[0]  # also validates the executor options
    if os.sep in program:
        path = Path(program) if os.path.isabs(program) else Path(repo_root) / program
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise PreflightError(f"the {request.kind} executor of agent {request.agent.name}: {path} is not an "
                                 "executable file (executor.options.binary)", error_kind="not_installed")
        return path
    try:
        return Path(require_binary(request.kind, program))
    except UserError as exc:
        raise PreflightError(str(exc), error_kind="not_installed") from None


def _check_login(request: ExecutorRequest) -> list[str]:
    """A key in the environment, or the CLI's login file (check 2); a note when the file is used."""
    kind, login = request.kind, LOGINS[request.kind]
    if login.keys_set():
        return []
    if kind == "gemini" and os.environ.get("GOOGLE_CLOUD_PROJECT") and os.environ.get("GOOGLE_CLOUD_LOCATION"):
        return []  # Vertex AI with application-default credentials
    source = login.source()
    if source.is_file():
        return [f"{kind} logs in with {source} (copied into the attempt's isolated config dir for the run)"]
    raise PreflightError(f"the {kind} CLI is not logged in: set {' or '.join(login.key_env)}, or {LOGIN_HELP[kind]} "
                         f"(that writes {source}, which the orchestrator then uses)", error_kind="not_logged_in")


AIDER_BASE_URL_ENV = ("OPENAI_API_BASE", "OPENAI_BASE_URL", "ANTHROPIC_API_BASE", "OLLAMA_API_BASE")
AIDER_MODEL_ENDPOINTS = (("claude", "https://api.anthropic.com"), ("anthropic/", "https://api.anthropic.com"),
                         ("gemini", "https://generativelanguage.googleapis.com"),
                         ("openrouter/", "https://openrouter.ai"), ("deepseek", "https://api.deepseek.com"))


def _check_aider_key(request: ExecutorRequest) -> list[str]:
    """aider (litellm) reads a provider key from the environment: one must be set (check 2)."""
    from bno_orchestrator.dispatch.aider_cli import AIDER_CREDENTIAL_ENV

    keys = [k for k in AIDER_CREDENTIAL_ENV if k.endswith("_KEY") or k.endswith("_TOKEN")]
    if any(os.environ.get(k) for k in keys) or os.environ.get("OLLAMA_API_BASE"):
        return []
    raise PreflightError(f"aider has no model key: set the key of your model's provider ({', '.join(keys[:6])} "
                         "...; aider reads no login file)", error_kind="not_logged_in")


def _aider_endpoint(request: ExecutorRequest) -> tuple[str, str]:
    """The base URL aider's model calls go to: a base-URL variable, else the provider of its model."""
    for variable in AIDER_BASE_URL_ENV:
        if os.environ.get(variable):
            return os.environ[variable], variable
    model = str(request.options.get("model") or request.agent.model or "")
    for prefix, url in AIDER_MODEL_ENDPOINTS:
        if model.startswith(prefix):
            return url, f"the provider of the model {model!r}"
    return DEFAULT_ENDPOINTS["codex"], "the OpenAI default, as no base URL variable is set"


def endpoint(kind: str) -> tuple[str, str]:
    """The model endpoint the ``kind`` CLI will call, and where that comes from (a variable, or why the
    default)."""
    variable = BASE_URL_ENV[kind]
    if os.environ.get(variable):
        return os.environ[variable], variable
    login = LOGINS[kind]
    if kind == "codex" and not login.keys_set() and _codex_chatgpt_login(login.source()):
        return CHATGPT_ENDPOINT, "the ChatGPT login in " + str(login.source())
    if kind == "gemini" and not login.keys_set():
        location = os.environ.get("GOOGLE_CLOUD_LOCATION")
        if os.environ.get("GOOGLE_CLOUD_PROJECT") and location:
            return f"https://{location}-aiplatform.googleapis.com", "GOOGLE_CLOUD_LOCATION (Vertex AI)"
        if login.source().is_file():
            return GEMINI_OAUTH_ENDPOINT, "the Google login in " + str(login.source())
    if kind == "gemini" and os.environ.get("GOOGLE_API_KEY") and not os.environ.get("GEMINI_API_KEY"):
        return "https://aiplatform.googleapis.com", "GOOGLE_API_KEY (Vertex AI express)"
    return DEFAULT_ENDPOINTS[kind], f"the vendor default, as {variable} is not set"


def _codex_chatgpt_login(path: Path) -> bool:
    """Whether codex's auth.json holds a ChatGPT login (tokens) rather than an API key."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and bool(data.get("tokens")) and not data.get("OPENAI_API_KEY")


def _check_endpoint(request: ExecutorRequest) -> None:
    """A TCP connection to the model endpoint, or to the proxy the CLI would use for it (check 3)."""
    kind = request.kind
    url, origin = _aider_endpoint(request) if kind == "aider" else endpoint(kind)
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PreflightError(f"the {kind} model endpoint {url!r} ({origin}) is no http(s) URL: fix it",
                             error_kind="network")
    host, port = parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
    target, via = (host, port), ""
    proxy = urllib.request.getproxies_environment().get(parts.scheme)
    if proxy and not urllib.request.proxy_bypass(host):
        proxied = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        if proxied.hostname:
            target = (proxied.hostname, proxied.port or (443 if proxied.scheme == "https" else 80))
            via = f" through the proxy {proxied.hostname}:{target[1]}"
    timeout = _probe_timeout(request)
    try:
        with socket.create_connection(target, timeout=timeout):
            pass
    except OSError as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        raise PreflightError(
            f"the {kind} model endpoint {url} ({origin}) does not answer{via}: {reason} (probe timeout "
            f"{timeout:g}s). Check the network (or {origin}); to dispatch anyway, e.g. on a machine "
            "that reaches it another way, set executor.options.preflight_endpoint: false", error_kind="network",
        ) from None


def _probe_timeout(request: ExecutorRequest) -> float:
    value = request.options.get("preflight_timeout", DEFAULT_PROBE_TIMEOUT)
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = -1.0
    if isinstance(value, bool) or seconds <= 0:
        raise request._config_error(f"executor.options.preflight_timeout must be a positive number of seconds, "
                                    f"not {value!r}", "executor.options.preflight_timeout")
    return seconds


def check_version(kind: str, binary: Path) -> VersionCheck:
    """``BINARY --version`` (check 4), run once per binary file (cached on its path, size and mtime), in a
    throw-away HOME so that the CLI writes nothing of the user's; a PreflightError when it fails."""
    tested = CLIS[kind].tested_version
    try:
        stat = binary.stat()
    except OSError as exc:
        raise PreflightError(f"cannot read {binary}: {exc.strerror or exc}", error_kind="not_installed") from None
    key = (str(binary), stat.st_mtime_ns, stat.st_size)
    if key not in _VERSIONS:
        _VERSIONS[key] = _run_version(kind, binary)
    return VersionCheck(_VERSIONS[key], tested)


def _run_version(kind: str, binary: Path) -> str:
    with tempfile.TemporaryDirectory(prefix="bno-preflight-") as home:
        env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "SSL_CERT_FILE")}
        env.update({"HOME": home, "TMPDIR": home, "XDG_CONFIG_HOME": home, "CLAUDE_CONFIG_DIR": home,
                    "CODEX_HOME": home, "NO_COLOR": "1", "TERM": "dumb", "DISABLE_AUTOUPDATER": "1",
                    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1"})
        try:
            done = subprocess.run([str(binary), "--version"], env=env, cwd=home, stdin=subprocess.DEVNULL,
                                  capture_output=True, timeout=VERSION_TIMEOUT, check=False)
        except subprocess.TimeoutExpired:
            raise PreflightError(f"`{binary} --version` did not answer in {VERSION_TIMEOUT:g}s: is it the {kind} "
                                 f"CLI? Reinstall it ({CLIS[kind].install_hint})", error_kind="crash") from None
        except OSError as exc:
            raise PreflightError(f"cannot run `{binary} --version`: {exc.strerror or exc}; reinstall it "
                                 f"({CLIS[kind].install_hint})", error_kind="crash") from None
    out = (done.stdout + done.stderr).decode("utf-8", errors="replace").strip()
    version = parse_version(done.stdout.decode("utf-8", errors="replace")) or parse_version(out)
    if done.returncode != 0 or version is None:
        what = f"exited {done.returncode}" if done.returncode != 0 else "printed no version"
        raise PreflightError(f"`{binary} --version` {what}: {out[-300:] or 'no output'}; is it the {kind} CLI? "
                             f"Reinstall it ({CLIS[kind].install_hint})", error_kind="crash")
    return version
