"""Cache keys of gates (docs/architecture.md, "Quality gates") and the machine fingerprint.

key = sha256(gate spec + (path, sha256 of content) of every input file + upstream keys + tool versions
(python, torch, triton, read from package metadata, never imported) + allow-listed environment variables).
A machine-bound gate (perf) also hashes the machine fingerprint, and its cached results are only replayed on
a machine with the same fingerprint.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

from bno_quality_gates.globs import matches

TOOL_PACKAGES: tuple[str, ...] = ("torch", "triton")


def tool_versions() -> dict[str, str]:
    """Python and the versions of the tool packages, from package metadata (no import)."""
    versions = {"python": platform.python_version(), "implementation": sys.implementation.name}
    for name in TOOL_PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0


def gpu_names() -> list[str]:
    """NVIDIA GPUs as the driver lists them in /proc (no CUDA initialisation, no subprocess)."""
    names: list[str] = []
    root = Path("/proc/driver/nvidia/gpus")
    if root.is_dir():
        for info in sorted(root.glob("*/information")):
            try:
                for line in info.read_text(encoding="utf-8", errors="replace").splitlines():
                    if line.startswith("Model:"):
                        names.append(line.split(":", 1)[1].strip())
            except OSError:
                continue
    return names


def gpu_count() -> int:
    """How many GPUs this machine offers gates: ``$QUALITY_GATES_GPUS`` when set, else the NVIDIA devices."""
    env = os.environ.get("QUALITY_GATES_GPUS")
    if env is not None and env.strip().isdigit():
        return int(env)
    names = gpu_names()
    if names:
        return len(names)
    return len([p for p in Path("/dev").glob("nvidia[0-9]*") if p.name[6:].isdigit()])


@functools.lru_cache(maxsize=1)
def machine_fingerprint() -> str:
    """A short hash of what decides timings here: host, CPU model and count, memory, GPUs, OS."""
    facts = {
        "node": platform.node(),
        "machine": platform.machine(),
        "cpu": _cpu_model(),
        "cpus": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory": _memory_bytes() // (1 << 30),
        "gpus": gpu_names(),
        "system": platform.system(),
        "release": platform.release(),
    }
    text = json.dumps(facts, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def list_files(root: Path) -> list[str]:
    """Repository-relative files of ``root``: tracked plus untracked-not-ignored when it is a git checkout
    (so .venv and build outputs stay out), every file below it otherwise."""
    try:
        proc = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=root,
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        if proc.returncode == 0 and (root / ".git").exists():
            return sorted({p for p in proc.stdout.split("\0") if p and (root / p).is_file()})
    except (FileNotFoundError, subprocess.TimeoutExpired):
        pass
    out = []
    for path in root.rglob("*"):
        if path.is_file() and ".git" not in path.relative_to(root).parts:
            out.append(path.relative_to(root).as_posix())
    return sorted(out)


class InputHasher:
    """Hashes the files matching a gate's globs, each file read once per run."""

    def __init__(self, root: Path, files: list[str] | None = None) -> None:
        self.root = root
        self.files = list_files(root) if files is None else files
        self._digests: dict[str, str] = {}

    def matching(self, globs: Iterable[str]) -> list[str]:
        """The files matching any of ``globs``, sorted."""
        globs = list(globs)
        return [f for f in self.files if matches(f, globs)] if globs else []

    def digest(self, rel: str) -> str:
        """The sha256 of one file's bytes (cached for the run)."""
        found = self._digests.get(rel)
        if found is None:
            sha = hashlib.sha256()
            try:
                with open(self.root / rel, "rb") as handle:
                    for block in iter(lambda: handle.read(1 << 20), b""):
                        sha.update(block)
            except OSError as exc:
                sha.update(f"unreadable:{exc.errno}".encode())
            found = sha.hexdigest()
            self._digests[rel] = found
        return found

    def inputs_digest(self, globs: Iterable[str]) -> tuple[str, int]:
        """(sha256 over (path, content digest) of the matching files, how many matched)."""
        sha = hashlib.sha256()
        files = self.matching(globs)
        for rel in files:
            sha.update(rel.encode() + b"\0" + self.digest(rel).encode() + b"\n")
        return sha.hexdigest(), len(files)


def gate_key(
    *,
    spec_text: str,
    inputs_digest: str,
    upstream_keys: Mapping[str, str],
    tools: Mapping[str, str],
    env: Mapping[str, str],
    extra: Mapping[str, str] | None = None,
    fingerprint: str | None = None,
) -> str:
    """The cache key of one gate (sha256 hex)."""
    payload = {
        "spec": spec_text,
        "inputs": inputs_digest,
        "upstream": dict(sorted(upstream_keys.items())),
        "tools": dict(sorted(tools.items())),
        "env": dict(sorted(env.items())),
        "extra": dict(sorted((extra or {}).items())),
        "machine": fingerprint,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def allowed_env(names: Iterable[str], environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The allow-listed environment variables that are set (their values are part of the key)."""
    environ = os.environ if environ is None else environ
    return {name: environ[name] for name in names if name in environ}
