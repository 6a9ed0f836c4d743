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
from dataclasses import dataclass
from pathlib import Path

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36


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
    if not Path("/proc/self/stat").exists():
        return []
    marker = f"{name}={value}".encode()
    return sorted(pid for pid, info in _process_table().items()
                  if pid != os.getpid() and not info.zombie and _carries_tag(pid, marker))


def is_running(pid: int) -> bool:
    """Whether ``pid`` is a live process (not a zombie; False where there is no ``/proc``)."""
    info = _proc_info(pid)
    return info is not None and not info.zombie


def stop_processes(pids: Iterable[int], *, grace: float = 2.0) -> list[int]:
    """SIGTERM each of ``pids``, wait up to ``grace`` seconds, SIGKILL those left; the pids signalled."""
    signalled = []
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
            signalled.append(pid)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(is_running(pid) for pid in signalled):
        time.sleep(0.05)
    for pid in signalled:
        if is_running(pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
    return signalled


# ------------------------------------------------------------------ the tree a child started (Linux /proc)


def become_subreaper() -> bool:
    """Make this process the reaper of its orphaned descendants (Linux ``PR_SET_CHILD_SUBREAPER``).

    Returns whether it is one; False on other systems (orphans go to init there, and :func:`kill_tree` still
    finds them by their tag).
    """
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


@dataclass(frozen=True)
class _ProcInfo:
    ppid: int
    pgrp: int
    session: int
    zombie: bool


def _proc_info(pid: int) -> _ProcInfo | None:
    """Parent, process group, session and zombie state of ``pid`` from ``/proc/PID/stat``; None if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            fields = handle.read().decode("ascii", errors="replace").rsplit(")", 1)[-1].split()
    except OSError:
        return None
    if len(fields) < 4:
        return None
    return _ProcInfo(int(fields[1]), int(fields[2]), int(fields[3]), fields[0] in ("Z", "X"))


def _process_table() -> dict[int, _ProcInfo]:
    """Every process in ``/proc``: parent, process group, session, whether it is a zombie."""
    table: dict[int, _ProcInfo] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and (info := _proc_info(int(entry.name))) is not None:
            table[int(entry.name)] = info
    return table


def _carries_tag(pid: int, marker: bytes) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as handle:
            return marker in handle.read().split(b"\0")
    except OSError:  # gone meanwhile, or another user's
        return False


def process_tree(root: int, marker: bytes | None) -> tuple[set[int], set[int]]:
    """(live, dead) processes that ``root`` (a child of this process) started: its descendants, its session
    and process group, every process whose environment holds ``marker`` (``b"NAME=VALUE"``), and their
    descendants. Never this process. Dead ones are zombies not yet reaped. Linux only."""
    table = _process_table()
    me = os.getpid()
    seeds = {root} if root in table and table[root].ppid == me else set()  # a reaped root's pid may be reused
    for pid, info in table.items():
        if pid == me:
            continue
        if info.session == root or info.pgrp == root or (marker is not None and _carries_tag(pid, marker)):
            seeds.add(pid)
    children: dict[int, list[int]] = {}
    for pid, info in table.items():
        children.setdefault(info.ppid, []).append(pid)
    members: set[int] = set()
    stack = list(seeds)
    while stack:
        pid = stack.pop()
        if pid in members or pid == me:
            continue
        members.add(pid)
        stack.extend(children.get(pid, []))
    return {p for p in members if not table[p].zombie}, {p for p in members if table[p].zombie}


def _reap(found: set[int], keep: int | None) -> set[int]:
    """Collect the exit status of our dead children among ``found`` (orphans re-parented to this subreaper);
    ``keep`` (the command's own process, which its Popen waits for) is left alone. Returns the dead ones that
    are still to be reaped here: a zombie whose parent is this process or another process of the tree (which
    dies too, and hands it to this subreaper)."""
    me = os.getpid()
    pending: set[int] = set()
    for pid in found - {keep}:
        info = _proc_info(pid)
        if info is None or not info.zombie:
            continue
        if info.ppid == me:
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(pid, os.WNOHANG)
            info = _proc_info(pid)
        if info is not None and info.zombie and (info.ppid == me or info.ppid in found):
            pending.add(pid)
    return pending


def kill_tree(root: int, marker: bytes | None, grace: float, *, keep: int | None = None, rounds: int = 500) -> None:
    """Kill everything ``root`` started (see :func:`process_tree`), repeatedly until nothing is left.

    With ``grace`` > 0 the processes first get SIGTERM and up to ``grace`` seconds to end. Then each round
    stops every process found (SIGSTOP: it can no longer fork), kills it and reaps our dead children. ``keep``
    is a pid this call must not reap (a Popen's own child, which its Popen waits for). Without ``/proc`` it
    signals the process group of ``root`` only.
    """
    if not Path("/proc/self/stat").exists():
        if grace > 0:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(root, signal.SIGTERM)
            time.sleep(grace)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(root, signal.SIGKILL)
        return
    found: set[int] = set()  # a zombie has no environment left to carry the tag: remember whom we saw
    if grace > 0:
        live, dead = process_tree(root, marker)
        found |= live | dead
        if live:
            _signal_all(live, signal.SIGTERM)
            _signal_all(live, signal.SIGCONT)  # a stopped process cannot act on SIGTERM
            deadline = time.monotonic() + grace
            while live and time.monotonic() < deadline:
                time.sleep(0.05)
                live, dead = process_tree(root, marker)
                found |= live | dead
                _reap(found, keep)
    for _ in range(rounds):
        live, dead = process_tree(root, marker)
        found |= live | dead
        pending = _reap(found, keep)
        if not live and not pending:
            return
        _signal_all(live, signal.SIGSTOP)
        _signal_all(live, signal.SIGKILL)
        time.sleep(0.01)


def _signal_all(pids: set[int], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)
