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

from bno_orchestrator.store import Store
from tests.orchestrator.dispatch_helpers import add_routed_task, commit_all, make_repo, set_executor

ROOT = Path(__file__).resolve().parents[2]
# an agent that starts a grandchild, says where both are, then waits forever
AGENT = """import os, pathlib, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
pathlib.Path(sys.argv[1], "..", "pids").resolve().write_text(f"{os.getpid()} {child.pid}")
time.sleep(600)
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "State:\tZ" not in state  # a zombie waiting to be reaped by init has stopped running


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
    assert _alive(agent_pid) and _alive(child_pid)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signum, (out, err)
    name = signal.Signals(signum).name
    assert "interrupted" in err or name in err
    deadline = time.monotonic() + 10
    while (_alive(agent_pid) or _alive(child_pid)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(agent_pid) and not _alive(child_pid)  # the whole process group is gone
    with Store.open(repo) as store:
        finished = store.events(task_id="T-1", kind="dispatch.finished")
        task = store.task("T-1")
    assert len(finished) == 1 and finished[0].payload["interrupted"] is True
    assert finished[0].payload["cause"] == name
    assert task.status.value == "in_development"
    logs = repo / ".orchestrator" / "logs" / "T-1"
    assert (logs / "1.log").is_file() and not [p.name for p in logs.iterdir() if p.name.startswith(".")]
    assert "interrupted" in (logs / "1.log").read_text()
