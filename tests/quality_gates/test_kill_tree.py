"""The timeout kill, and the end of a gate, reach everything the gate started: a process that called setsid
(a new session, a new process group) and a double-forked grandchild included."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bno_foundation.processes import become_subreaper
from bno_quality_gates.results import RunRecord
from bno_quality_gates.runner import Runner, RunOptions, process_tree
from bno_quality_gates.spec import load_gates
from tests.quality_gates.conftest import pid_alive, survivors, write_gates

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists() or shutil.which("setsid") is None,
                                reason="needs /proc and setsid(1) (Linux): the fallback elsewhere is the process group")


def _escaper(tmp_path: Path, pids: Path, then: str) -> Path:
    """A gate script: ``setsid sleep 300`` (its own session), a double-forked grandchild in a new session, each
    escaper's pid appended to ``pids``, then ``then`` (a long sleep, or the end of the gate)."""
    script = tmp_path / "escaper.py"
    script.write_text(
        "import os, subprocess, sys, time\n"
        f"pids = {str(pids)!r}\n"
        "subprocess.Popen(['setsid', 'sh', '-c', 'echo $$ >> ' + pids + '; exec sleep 300'])\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        "        with open(pids, 'a') as f: f.write(str(os.getpid()) + '\\n')\n"
        "        time.sleep(300)\n"
        "    os._exit(0)\n"
        "deadline = time.monotonic() + 30\n"
        "while time.monotonic() < deadline:\n"
        "    try:\n"
        "        if len(open(pids).read().split()) >= 2: break\n"
        "    except OSError: pass\n"
        "    time.sleep(0.02)\n"
        "print('escapers started', flush=True)\n"
        f"{then}\n"
    )
    return script


def _run(repo: Path, *, subreaper: bool = False) -> RunRecord:
    options = RunOptions(repo=repo, use_cache=False, subreaper=subreaper)
    return Runner(load_gates(repo / "workflows" / "gates.yaml"), options).run()


def _escaper_pids(pids: Path) -> list[int]:
    found = [int(p) for p in pids.read_text().split()]
    assert len(found) == 2, f"the gate did not start both escapers: {found}"
    return found


def test_timeout_kills_setsid_and_double_forked_processes(repo: Path, tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    script = _escaper(tmp_path, pids, "time.sleep(300)")
    write_gates(repo, f"defaults: {{term_grace: 0.5}}\ngates:\n  hang:\n    command: [python, {script}]\n"
                      "    timeout: 4\n")
    record = _run(repo, subreaper=True)  # the orphans come back to this process, which reaps them
    result = record.results[0]
    assert result.status == "failed" and "timed out" in result.reason
    escapers = _escaper_pids(pids)
    assert not survivors(escapers, within=1.0), f"processes survived the timeout kill: {escapers}"
    assert become_subreaper(), "Linux offers PR_SET_CHILD_SUBREAPER"
    assert not [p for p in escapers if Path(f"/proc/{p}").exists()], "the re-parented orphans were reaped"


def test_a_passing_gate_leaves_nothing_running(repo: Path, tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    script = _escaper(tmp_path, pids, "sys.exit(0)")
    write_gates(repo, f"gates:\n  daemonises:\n    command: [python, {script}]\n    timeout: 60\n")
    record = _run(repo)  # no subreaper: the orphans go to init, their tag still finds them
    assert record.results[0].status == "passed", record.results[0].reason
    escapers = _escaper_pids(pids)
    assert not survivors(escapers, within=1.0), f"a passing gate left processes behind: {escapers}"


def test_process_tree_finds_a_tagged_process_in_another_session(tmp_path: Path) -> None:
    """The tag in the environment finds what left the session; the runner itself is never in the tree."""
    tag = "test-tag-" + str(os.getpid())
    proc = subprocess.Popen(["setsid", sys.executable, "-c", "import time; time.sleep(60)"],
                            env={**os.environ, "GATE_PROCESS_TAG": tag}, start_new_session=False)
    try:
        deadline = time.monotonic() + 10
        live: set[int] = set()
        while time.monotonic() < deadline and proc.pid not in live:
            live, _ = process_tree(-1, tag)
            time.sleep(0.02)
        assert proc.pid in live
        assert os.getpid() not in live
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert not pid_alive(proc.pid)


def test_sigterm_to_the_run_kills_what_the_gate_moved_out_of_its_session(repo: Path, tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    script = _escaper(tmp_path, pids, "time.sleep(300)")
    write_gates(repo, f"gates:\n  hang:\n    command: [python, {script}]\n    timeout: 120\n")
    root = Path(__file__).resolve().parents[2]
    path = os.pathsep.join(str(root / p) for p in ("foundation", "quality_gates"))
    proc = subprocess.Popen([sys.executable, "-m", "bno_quality_gates.cli", "--repo", str(repo), "run", "--all",
                             "--quiet"], env={**os.environ, "PYTHONPATH": path},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not pids.exists() or len(pids.read_text().split()) < 2:
            assert proc.poll() is None, "the run ended before its gate started"
            assert time.monotonic() < deadline, "the gate never started its escapers"
            time.sleep(0.05)
        escapers = _escaper_pids(pids)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) != 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not survivors(escapers, within=2.0), f"processes survived the stopped run: {escapers}"


def test_kill_9_of_the_run_leaves_nothing_the_next_run_does_not_stop(repo: Path, tmp_path: Path) -> None:
    """The runner killed outright: its gate gets SIGTERM from the kernel (parent-death signal); what the gate
    moved to other sessions is stopped by the next run, which finds the dead run's tags in its ledger."""
    pids = tmp_path / "pids"
    script = _escaper(tmp_path, pids, "time.sleep(300)")
    write_gates(repo, f"gates:\n  hang:\n    command: [python, {script}]\n    timeout: 120\n")
    root = Path(__file__).resolve().parents[2]
    path = os.pathsep.join(str(root / p) for p in ("foundation", "quality_gates"))
    command = [sys.executable, "-m", "bno_quality_gates.cli", "--repo", str(repo), "run", "--all", "--quiet"]
    proc = subprocess.Popen(command, env={**os.environ, "PYTHONPATH": path},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not pids.exists() or len(pids.read_text().split()) < 2:
            assert proc.poll() is None, "the run ended before its gate started"
            assert time.monotonic() < deadline, "the gate never started its escapers"
            time.sleep(0.05)
        escapers = _escaper_pids(pids)
        (tag,) = [entry.name for entry in (repo / ".orchestrator" / "gates" / "running").iterdir()]
        gate = [pid for pid in process_tree(-1, tag)[0] if pid not in escapers]
    finally:
        proc.kill()
        proc.wait()
    assert gate and not survivors(gate, within=5.0), "the parent-death signal reached the gate"
    assert survivors(escapers, within=0.5) == escapers  # in other sessions, not the runner's children: still there
    write_gates(repo, "gates:\n  quick:\n    command: [python, -c, 'pass']\n")
    assert _run(repo).exit_code == 0
    assert not survivors(escapers, within=5.0), f"the next run did not stop what the killed one left: {escapers}"
    assert not list((repo / ".orchestrator" / "gates" / "running").iterdir())
