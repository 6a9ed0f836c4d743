"""Ctrl-C, SIGTERM and SIGHUP stop a running dispatch: the agent's whole process group dies, the attempt is
recorded as interrupted (with its cause), the task stays in development and nothing is left half-written."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bno_foundation.processes import is_running, processes_with_env
from bno_orchestrator.store import Store
from tests.orchestrator.dispatch_helpers import (
    add_routed_task,
    commit_all,
    installed_cli,
    make_repo,
    set_executor,
)

ROOT = Path(__file__).resolve().parents[2]
# an agent that starts a grandchild, says where both are, then waits forever
AGENT = """import os, pathlib, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
pathlib.Path(sys.argv[1], "..", "pids").resolve().write_text(f"{os.getpid()} {child.pid}")
time.sleep(600)
"""


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_signal_stops_the_agent_group_and_records_an_interrupted_attempt(tmp_path: Path, signum: int) -> None:
    repo = make_repo(tmp_path / "repo")
    agent = add_routed_task(repo)
    (repo / "tools" / "hang.py").write_text(AGENT)
    set_executor(repo, agent, "shell", argv=["python", "{worktree}/tools/hang.py", "{worktree}"], timeout=300)
    commit_all(repo, "hanging agent")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(ROOT / d) for d in
                                                         ("foundation", "quality_gates", "orchestrator"))}
    proc = subprocess.Popen([sys.executable, "-m", "bno_orchestrator.cli", "--repo", str(repo), "dispatch", "T-1"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    pids_file = repo / ".orchestrator" / "worktrees" / "pids"
    deadline = time.monotonic() + 60
    while not pids_file.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    assert pids_file.exists(), proc.communicate(timeout=30)
    agent_pid, child_pid = (int(p) for p in pids_file.read_text().split())
    assert is_running(agent_pid) and is_running(child_pid)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signum, (out, err)
    name = signal.Signals(signum).name
    assert "interrupted" in err or name in err
    deadline = time.monotonic() + 10
    while (is_running(agent_pid) or is_running(child_pid)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not is_running(agent_pid) and not is_running(child_pid)  # the whole process group is gone
    with Store.open(repo) as store:
        finished = store.events(task_id="T-1", kind="dispatch.finished")
        task = store.task("T-1")
    assert len(finished) == 1 and finished[0].payload["interrupted"] is True
    assert finished[0].payload["cause"] == name
    assert task.status.value == "in_development"
    logs = repo / ".orchestrator" / "logs" / "T-1"
    assert (logs / "1.log").is_file() and not [p.name for p in logs.iterdir() if p.name.startswith(".")]
    assert "interrupted" in (logs / "1.log").read_text()


class StallingServer:
    """Accepts connections on 127.0.0.1 and never answers: a model API that hangs mid-request."""

    def __init__(self) -> None:
        import socket
        import threading

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.accepted: list[object] = []
        self.stopping = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def _serve(self) -> None:
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted.append(conn)  # held open, never answered

    def close(self) -> None:
        self.stopping = True
        self.thread.join(timeout=5)
        for conn in self.accepted:
            conn.close()  # type: ignore[attr-defined]
        self.sock.close()


def _agent_processes(worktree: Path) -> list[int]:
    """Processes started for the attempt in ``worktree`` (their environment names it)."""
    return processes_with_env("ORCHESTRATOR_WORKTREE", str(worktree))


CLI_ENV = {"claude": ("ANTHROPIC_BASE_URL", "ANTHROPIC_API_KEY", "", None),
           "codex": ("OPENAI_BASE_URL", "OPENAI_API_KEY", "/v1", "gpt-5.5"),
           "gemini": ("GOOGLE_GEMINI_BASE_URL", "GEMINI_API_KEY", "", "gemini-2.5-flash"),
           "aider": ("OPENAI_API_BASE", "OPENAI_API_KEY", "/v1", "openai/gpt-4o")}


@pytest.mark.parametrize("kind", ["claude", "codex", "gemini", "aider"])
def test_a_real_cli_killed_mid_run_leaves_no_process_and_an_interrupted_attempt(tmp_path: Path, kind: str) -> None:
    binary = installed_cli(kind)
    repo = make_repo(tmp_path / "repo")
    agent = add_routed_task(repo)
    url_env, key_env, suffix, model = CLI_ENV[kind]
    options: dict[str, object] = {"binary": str(binary), "timeout": 120}
    if model:
        options["model"] = model
    set_executor(repo, agent, kind, **options)
    commit_all(repo, "executor")
    server = StallingServer()
    try:
        env = {k: v for k, v in os.environ.items() if not k.endswith(("_API_KEY", "_BASE_URL", "_API_BASE"))}
        env.update({"PYTHONPATH": os.pathsep.join(str(ROOT / d) for d in ("foundation", "quality_gates", "orchestrator")),
                    url_env: server.url + suffix, key_env: "scripted-key", "HOME": str(tmp_path / "home")})
        proc = subprocess.Popen([sys.executable, "-m", "bno_orchestrator.cli", "--repo", str(repo), "dispatch", "T-1"],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        worktree = repo / ".orchestrator" / "worktrees" / "T-1"
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and proc.poll() is None and not _agent_processes(worktree):
            time.sleep(0.2)
        accepted = len(server.accepted)  # preflight's probe
        while time.monotonic() < deadline and proc.poll() is None and len(server.accepted) <= accepted:
            time.sleep(0.2)  # the CLI is mid-run once its model request hangs on the server
        assert proc.poll() is None and _agent_processes(worktree), proc.communicate(timeout=30)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        server.close()
    assert proc.returncode == 128 + signal.SIGTERM, (out, err)
    deadline = time.monotonic() + 10
    while _agent_processes(worktree) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _agent_processes(worktree) == []  # the CLI and everything it started are gone
    with Store.open(repo) as store:
        finished = store.events(task_id="T-1", kind="dispatch.finished")
        task = store.task("T-1")
        verified = store.events(task_id="T-1", kind="gates.verified")
    assert [(e.payload["interrupted"], e.payload["cause"]) for e in finished] == [(True, "SIGTERM")]
    assert task.status.value == "in_development" and verified == []
    logs = repo / ".orchestrator" / "logs" / "T-1"
    assert "interrupted (SIGTERM)" in (logs / "1.log").read_text()
    assert not [p.name for p in logs.iterdir() if p.name.startswith(".")]  # no half-written log left


def test_kill_9_of_the_orchestrator_leaves_nothing_a_second_dispatch_does_not_reap(tmp_path: Path) -> None:
    """The orchestrator killed outright: the agent gets SIGTERM from the kernel (parent-death signal); its
    grandchild, which moved to its own session, is found by the next dispatch of the task (it carries the
    attempt's worktree in its environment), stopped, and the open attempt is recorded as interrupted."""
    repo = make_repo(tmp_path / "repo")
    agent = add_routed_task(repo)
    escaping = AGENT.replace('[sys.executable, "-c", "import time; time.sleep(600)"]',
                             '[sys.executable, "-c", "import os, time; os.setsid(); time.sleep(600)"]')
    (repo / "tools" / "hang.py").write_text(escaping)
    set_executor(repo, agent, "shell", argv=["python", "{worktree}/tools/hang.py", "{worktree}"], timeout=300)
    commit_all(repo, "hanging agent whose child escapes to its own session")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(ROOT / d) for d in
                                                         ("foundation", "quality_gates", "orchestrator"))}
    command = [sys.executable, "-m", "bno_orchestrator.cli", "--repo", str(repo), "dispatch", "T-1"]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    pids_file = repo / ".orchestrator" / "worktrees" / "pids"
    deadline = time.monotonic() + 60
    while not pids_file.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    assert pids_file.exists(), proc.communicate(timeout=30)
    agent_pid, child_pid = (int(p) for p in pids_file.read_text().split())
    proc.kill()
    proc.communicate(timeout=30)
    deadline = time.monotonic() + 10
    while is_running(agent_pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not is_running(agent_pid)  # the parent-death signal reached the agent
    assert is_running(child_pid)  # ... but not what it started in another session: only the next dispatch can
    with Store.open(repo) as store:
        assert store.events(task_id="T-1", kind="dispatch.finished") == []
    worktree = repo / ".orchestrator" / "worktrees" / "T-1"
    (worktree / "tools" / "hang.py").write_text("print('done quickly')\n")  # the second attempt ends at once
    pids_file.unlink()
    second = subprocess.run([*command, "--no-verify"], env=env, capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, (second.stdout, second.stderr)
    assert "left open by an orchestrator that died" in second.stdout + second.stderr
    deadline = time.monotonic() + 10
    while is_running(child_pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not is_running(child_pid)
    with Store.open(repo) as store:
        finished = store.events(task_id="T-1", kind="dispatch.finished")
    assert [(e.payload["attempt"], e.payload.get("interrupted", False)) for e in finished] == [(1, True), (2, False)]
    assert finished[0].payload["cause"] == "orchestrator died"
