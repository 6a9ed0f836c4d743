"""Preflight of the agent CLIs (binary, version, login, endpoint, session to resume) and the login files
copied into the isolated per-attempt state. The real CLIs answer ``--version``; everything else uses fake
binaries, a fresh user home and ports on 127.0.0.1."""

from __future__ import annotations

import json
import os
import socket
import stat
from pathlib import Path
from typing import Any

import pytest

from bno_orchestrator.agents import AgentSpec, ExecutorSpec
from bno_orchestrator.dispatch import clis
from bno_orchestrator.dispatch.cli_agents import LOGINS, isolated_login_path, prepare_cli, state_dir
from bno_orchestrator.dispatch.clis import BIN_DIR_ENV, CLIS
from bno_orchestrator.dispatch.executors import ExecutorRequest
from bno_orchestrator.dispatch.preflight import PreflightError, check_cli
from bno_orchestrator.errors import ConfigError, UserError
from tests.orchestrator.dispatch_helpers import fake_cli, installed_cli
from tests.orchestrator.test_dispatch_real_clis import ALL_ENV

ROOT = Path(__file__).resolve().parents[2]
KEY_ENV = {"claude": "ANTHROPIC_API_KEY", "codex": "OPENAI_API_KEY", "gemini": "GEMINI_API_KEY"}
URL_ENV = {"claude": "ANTHROPIC_BASE_URL", "codex": "OPENAI_BASE_URL", "gemini": "GOOGLE_GEMINI_BASE_URL"}


@pytest.fixture
def listener() -> Any:
    """A TCP port on 127.0.0.1 that accepts connections (the model endpoint the probe reaches)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    sock.close()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh user home and none of the CLIs' credential variables."""
    for name in ALL_ENV:
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "home"
    path.mkdir()
    monkeypatch.setenv("HOME", str(path))
    return path


def request(tmp_path: Path, kind: str, *, resume: str | None = None, **options: Any) -> ExecutorRequest:
    spec = AgentSpec(name="code", description="writes code", role="Code Developer",
                     executor=ExecutorSpec(kind=kind, options=options))  # type: ignore[arg-type]
    logs = tmp_path / "repo" / ".orchestrator" / "logs" / "T-1"
    return ExecutorRequest(kind, spec, "prompt", logs / "2.prompt.md", tmp_path / "wt", logs / "2.log", "T-1", 2,
                           resume_session=resume)


def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, version_output: str, code: int = 0) -> Path:
    """A fake CLI ``name`` whose ``--version`` prints ``version_output`` and exits ``code``."""
    return fake_cli(tmp_path, monkeypatch, name, f"print({version_output!r})\nsys.exit({code})\n")


@pytest.mark.parametrize("kind", ["claude", "codex", "gemini"])
def test_the_installed_clis_pass_preflight_at_their_tested_version(kind: str, tmp_path: Path, home: Path,
                                                                   listener: str,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    installed_cli(kind)
    monkeypatch.setenv(KEY_ENV[kind], "key")
    monkeypatch.setenv(URL_ENV[kind], listener)
    assert check_cli(request(tmp_path, kind), tmp_path) == []  # found, logged in, reachable, the tested version
    assert not any(home.iterdir())  # --version wrote nothing into the user's home


def test_a_missing_binary_is_not_installed_with_how_to_install_it(tmp_path: Path, home: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.delenv(BIN_DIR_ENV, raising=False)
    monkeypatch.setattr(clis, "install_root", lambda: tmp_path / "no-checkout")
    with pytest.raises(PreflightError, match=r"needs `codex`.*@openai/codex@0\.171\.0") as caught:
        check_cli(request(tmp_path, "codex"), tmp_path)
    assert caught.value.error_kind == "not_installed" and isinstance(caught.value, UserError)
    with pytest.raises(PreflightError, match="tools/claude is not an executable file") as caught:
        check_cli(request(tmp_path, "claude", binary="tools/claude"), tmp_path)  # relative: to the repository
    assert caught.value.error_kind == "not_installed"


def test_another_version_is_a_note_and_a_failing_version_command_an_error(tmp_path: Path, home: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "key")
    fake(tmp_path, monkeypatch, "claude", "9.9.9 (Claude Code)")
    notes = check_cli(request(tmp_path, "claude", preflight_endpoint=False), tmp_path)
    assert any("claude 9.9.9, not the tested 2.1.197" in n for n in notes), notes
    assert any("not checked" in n for n in notes)
    broken = fake(tmp_path, monkeypatch, "claude-broken", "segfault", code=139)
    with pytest.raises(PreflightError, match=r"--version` exited 139: segfault") as caught:
        check_cli(request(tmp_path, "claude", binary=str(broken), preflight_endpoint=False), tmp_path)
    assert caught.value.error_kind == "crash"


@pytest.mark.parametrize("kind", ["claude", "codex", "gemini"])
def test_no_key_and_no_login_file_is_not_logged_in_and_a_login_file_is_used(kind: str, tmp_path: Path, home: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    fake(tmp_path, monkeypatch, kind, CLIS[kind].tested_version)
    req = request(tmp_path, kind, preflight_endpoint=False)
    with pytest.raises(PreflightError, match=f"not logged in: set {KEY_ENV[kind]}") as caught:
        check_cli(req, tmp_path)
    assert caught.value.error_kind == "not_logged_in"
    login = LOGINS[kind].source()
    assert home in login.parents
    login.parent.mkdir(parents=True)
    login.write_text("{}", encoding="utf-8")
    notes = check_cli(req, tmp_path)
    assert any(str(login) in n for n in notes), notes


def test_an_endpoint_that_does_not_answer_is_a_network_error_unless_the_probe_is_off(
        tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there now
    fake(tmp_path, monkeypatch, "gemini", CLIS["gemini"].tested_version)
    monkeypatch.setenv("GEMINI_API_KEY", "key")
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", f"http://127.0.0.1:{port}")
    with pytest.raises(PreflightError, match=r"does not answer.*preflight_endpoint: false") as caught:
        check_cli(request(tmp_path, "gemini"), tmp_path)
    assert caught.value.error_kind == "network"
    assert check_cli(request(tmp_path, "gemini", preflight_endpoint=False), tmp_path)  # a note, no error
    with pytest.raises(ConfigError, match="preflight_endpoint must be true or false"):
        check_cli(request(tmp_path, "gemini", preflight_endpoint="no"), tmp_path)


def test_resuming_needs_a_cli_kind_and_an_earlier_attempt_holding_the_session(tmp_path: Path, home: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(UserError, match="the shell executor cannot resume"):
        check_cli(request(tmp_path, "shell", resume="s-1", argv=["python", "-c", "pass"]), tmp_path)
    fake(tmp_path, monkeypatch, "claude", CLIS["claude"].tested_version)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "key")
    req = request(tmp_path, "claude", resume="0199aa-session", preflight_endpoint=False)
    with pytest.raises(PreflightError, match="no earlier attempt's state") as caught:
        check_cli(req, tmp_path)
    assert caught.value.error_kind == "resume"
    earlier = state_dir(req).parent / "1"
    session = earlier / "home" / ".claude" / "projects" / "-wt" / "0199aa-session.jsonl"
    session.parent.mkdir(parents=True)
    session.write_text("{}\n", encoding="utf-8")
    assert any(f"from {earlier}" in n for n in check_cli(req, tmp_path))


# ------------------------------------------------------------------------------------------ login files


def test_a_login_file_is_copied_private_and_a_refreshed_token_is_written_back(tmp_path: Path, home: Path) -> None:
    source = home / ".gemini" / "oauth_creds.json"
    source.parent.mkdir()
    source.write_text(json.dumps({"access_token": "old", "refresh_token": "r1"}), encoding="utf-8")
    os.chmod(source, 0o600)
    req = request(tmp_path, "gemini")
    prepared = prepare_cli(req, {})
    copy = isolated_login_path("gemini", prepared.env)
    assert copy == state_dir(req) / "home" / ".gemini" / "oauth_creds.json"
    assert copy.read_bytes() == source.read_bytes() and stat.S_IMODE(copy.stat().st_mode) == 0o600
    settings = json.loads((copy.parent / "settings.json").read_text())
    assert settings["security"]["auth"]["selectedType"] == "oauth-personal"
    copy.write_text(json.dumps({"access_token": "new", "refresh_token": "r2"}), encoding="utf-8")  # the CLI refreshed
    assert prepared.release() == []
    assert json.loads(source.read_text())["refresh_token"] == "r2" and stat.S_IMODE(source.stat().st_mode) == 0o600
    assert not copy.exists()
    # the user's file changed meanwhile (another session refreshed it): theirs wins, the copy is dropped
    prepared = prepare_cli(req, {})
    copy.write_text("from the run", encoding="utf-8")
    source.write_text("from the user", encoding="utf-8")
    prepared.release()
    assert source.read_text() == "from the user" and not copy.exists()


def test_a_key_in_the_environment_wins_over_a_login_file(tmp_path: Path, home: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    source = home / ".codex" / "auth.json"
    source.parent.mkdir()
    source.write_text("{}", encoding="utf-8")
    monkeypatch.setenv("OPENAI_API_KEY", "key")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    prepared = prepare_cli(request(tmp_path, "codex"), {})
    assert prepared.login is None and not isolated_login_path("codex", prepared.env).exists()
    assert 'env_key = "OPENAI_API_KEY"' in (Path(prepared.env["CODEX_HOME"]) / "config.toml").read_text()
    monkeypatch.delenv("OPENAI_API_KEY")
    prepared = prepare_cli(request(tmp_path, "codex"), {})  # the login file, with a base URL: codex's own auth
    assert prepared.login is not None
    assert "requires_openai_auth = true" in (Path(prepared.env["CODEX_HOME"]) / "config.toml").read_text()
    prepared.release()
