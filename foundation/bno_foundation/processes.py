"""Processes the tool starts must not outlive it: a parent-death signal for its children, and a way to find
and stop what a run left behind when its parent was killed with no chance to clean up (``kill -9``, OOM).

Agents and gates run in their own session, so a signal to the orchestrator's process group does not reach
them; the orchestrator kills their group itself when it can. When it cannot (it was killed outright), each
child gets ``SIGTERM`` from the kernel (``PR_SET_PDEATHSIG``, Linux), and the next run finds whatever is
still there by a marker in its environment (``NAME=VALUE``, inherited by every descendant that does not
scrub its environment, whatever session or process group it moved to) and stops it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

_PR_SET_PDEATHSIG = 1


def parent_death_signal(signum: int = signal.SIGTERM) -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the kernel send ``signum`` to the child when its parent dies.

    None where the system has no such thing (then leftovers are found by :func:`processes_with_env`).
    The parent's pid is checked after the call: if the parent died before it, the child stops at once.
    """
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    parent = os.getpid()

    def arm() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0)
        if os.getppid() != parent:  # the parent is already gone: the signal would never come
            os.kill(os.getpid(), signum)

    return arm


def processes_with_env(name: str, value: str) -> list[int]:
    """Live processes (not zombies) of this user whose environment holds ``NAME=VALUE`` (Linux ``/proc``)."""
    marker = f"{name}={value}".encode()
    found: list[int] = []
    proc = Path("/proc")
    if not proc.is_dir():
        return found
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if marker in (entry / "environ").read_bytes().split(b"\0") and _running(int(entry.name)):
                found.append(int(entry.name))
        except OSError:  # gone meanwhile, or another user's
            continue
    return found


def _running(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "State:\tZ" not in status


def stop_processes(pids: Iterable[int], *, grace: float = 2.0) -> list[int]:
    """SIGTERM each of ``pids``, wait up to ``grace`` seconds, SIGKILL those left; the pids signalled."""
    signalled = []
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
            signalled.append(pid)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(_running(pid) for pid in signalled):
        time.sleep(0.05)
    for pid in signalled:
        if _running(pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
    return signalled
