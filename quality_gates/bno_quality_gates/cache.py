"""Cache keys of gates (docs/architecture.md, "Quality gates") and the machine fingerprint.

key = sha256 of

* the gate spec, and (path, sha256 of content) of every input file of the tree under test;
* the upstream gates' keys;
* the gate's own programs (:class:`ProgramHasher`): for each command, the file its ``argv[0]`` resolves to on
  the gate's ``PATH`` (content hash, so a new ruff binary is a new key), and for a Python command the script
  it runs or the module of ``-m MODULE``, resolved from the runner's own installation (never from the tree
  under test, which is an input already);
* the installed package set (:func:`installed_packages_digest`: every distribution's name and version, from
  the names of the metadata folders on the import path, nothing imported) and the lockfiles of the tree
  under test (:data:`LOCKFILES`);
* the environment the gate sees: every allow-listed variable that is set (:func:`gate_env_names`).

Gates see only allow-listed variables (Turborepo's strict mode): :data:`BASE_ENV` plus the gates file's
``env_allowlist``, plus what the gate sets itself in ``env`` (part of the spec). A variable outside the list is
neither visible to a gate nor part of its key, so a change to it can neither break a gate nor replay a pass.
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
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from bno_quality_gates.globs import matches

TOOL_PACKAGES: tuple[str, ...] = ("torch", "triton")

# What every gate sees of the runner's environment (and what its key holds of it), before the gates file's
# `env_allowlist`: where programs are, who and where the user is, the locale and the temporary folder.
BASE_ENV: tuple[str, ...] = (
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR",
    "SYSTEMROOT", "CI",
)

# Lockfiles at the root of the tree under test that pin what a gate's tools import or run.
LOCKFILES: tuple[str, ...] = (
    "uv.lock", "poetry.lock", "pdm.lock", "Pipfile.lock", "pylock.toml", "requirements.txt", "requirements-dev.txt",
    "constraints.txt", "package-lock.json", "npm-shrinkwrap.json", "pnpm-lock.yaml", "yarn.lock", "Cargo.lock",
    "go.sum",
)
PYTHON_NAMES: tuple[str, ...] = ("python", "python3", "{python}")


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
    programs: Mapping[str, str] | None = None,
) -> str:
    """The cache key of one gate (sha256 hex); ``programs`` from :meth:`ProgramHasher.commands`."""
    payload = {
        "programs": dict(sorted((programs or {}).items())),
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


def gate_env_names(allowlist: Iterable[str]) -> list[str]:
    """The variables a gate may see: :data:`BASE_ENV` plus the gates file's ``env_allowlist`` (sorted, unique)."""
    return sorted({*BASE_ENV, *allowlist})


def installed_packages_digest(search_path: Iterable[str] | None = None) -> str:
    """sha256 over the installed distributions the runner's Python sees: the names of the ``NAME-VERSION``
    metadata folders (``.dist-info``, ``.egg-info``) on ``sys.path`` (or ``search_path``).

    A directory listing per import root, no metadata read and nothing imported (a few milliseconds where
    reading every distribution's metadata takes half a second): an upgraded pytest, ruff or torch, or a
    package added or removed, is a new key.
    """
    found: set[str] = set()
    for entry in sys.path if search_path is None else search_path:
        if not entry:
            continue  # the current folder: the tree under test, not the installation
        try:
            listing = os.scandir(entry)
        except OSError:
            continue
        with listing:
            for item in listing:
                if item.name.endswith((".dist-info", ".egg-info")):
                    found.add(item.name.lower())
    return hashlib.sha256("\n".join(sorted(found)).encode()).hexdigest()


def lockfiles_digest(root: Path) -> str:
    """sha256 over (name, content hash) of the :data:`LOCKFILES` present at the root of ``root``."""
    sha = hashlib.sha256()
    for name in LOCKFILES:
        path = root / name
        if path.is_file():
            sha.update(name.encode() + b"\0" + file_digest(path).encode() + b"\n")
    return sha.hexdigest()


def file_digest(path: Path) -> str:
    """The sha256 of a file's bytes, or a marker naming why it could not be read."""
    sha = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                sha.update(block)
    except OSError as exc:
        return f"unreadable:{exc.errno}"
    return sha.hexdigest()


class ProgramHasher:
    """What a gate's commands run, as content hashes: a new tool binary, script or module is a new key.

    One instance per run: each file is hashed once (by resolved path, size and modification time).
    ``search_path`` is the ``PATH`` the gates see; ``python`` is the interpreter a leading ``python`` means.
    """

    def __init__(self, search_path: str | None, python: str = sys.executable) -> None:
        self.search_path = search_path
        self.python = python
        self._files: dict[tuple[str, int, int], str] = {}
        self._modules: dict[str, str] = {}

    def _hash_file(self, path: Path) -> str:
        try:
            real = path.resolve()
            stat = real.stat()
        except OSError as exc:
            return f"missing:{path}:{exc.errno}"
        ident = (str(real), stat.st_size, stat.st_mtime_ns)
        found = self._files.get(ident)
        if found is None:
            found = file_digest(real)
            self._files[ident] = found
        return found

    def tool(self, name: str, cwd: Path) -> str:
        """The content hash of the program ``name`` (a path, or a name looked up on the gates' ``PATH``)."""
        if name in PYTHON_NAMES:
            return self._hash_file(Path(self.python))
        if "/" in name or os.sep in name:
            path = Path(name)
            return self._hash_file(path if path.is_absolute() else cwd / path)
        found = shutil.which(name, path=self.search_path)
        return self._hash_file(Path(found)) if found else f"not-on-path:{name}"

    def module(self, name: str) -> str:
        """The content hash of the file ``python -m name`` runs, found in the runner's own installation."""
        found = self._modules.get(name)
        if found is None:
            found = self._module_file(name)
            self._modules[name] = found
        return found

    def _module_file(self, name: str) -> str:
        """Find the file of ``name`` without importing anything: only the top-level package is looked up (a
        lookup runs no package code), the rest of the dotted path is followed on disk. Importing a parent
        package would run its code in the runner, and could pull in heavy libraries (torch)."""
        import importlib.util

        top, _, rest = name.partition(".")
        try:
            spec = importlib.util.find_spec(top)
        except (ImportError, ValueError) as exc:
            return f"unresolved:{name}:{type(exc).__name__}"
        if spec is None:
            return f"unresolved:{name}"
        parts = rest.split(".") if rest else []
        candidates: list[Path] = []
        for location in spec.submodule_search_locations or []:
            folder = Path(location).joinpath(*parts)
            candidates.append(folder / "__main__.py")
            if parts:
                candidates.append(folder.parent / f"{parts[-1]}.py")
        if not parts and spec.submodule_search_locations is None and spec.origin:
            candidates.append(Path(spec.origin))
        for candidate in candidates:
            if candidate.is_file():
                return self._hash_file(candidate)
        return f"unresolved:{name}"

    def command(self, argv: Sequence[str], cwd: Path) -> dict[str, str]:
        """``{what: content hash}`` of one command: its program, and for Python the script or module it runs."""
        if not argv:
            return {}
        out = {f"tool:{argv[0]}": self.tool(argv[0], cwd)}
        if argv[0] in PYTHON_NAMES or Path(argv[0]).name.startswith("python"):
            target = _python_target(list(argv[1:]))
            if target is not None:
                kind, value = target
                if kind == "module":
                    out[f"module:{value}"] = self.module(value)
                else:
                    path = Path(value)
                    out[f"script:{value}"] = self._hash_file(path if path.is_absolute() else cwd / path)
        return out

    def commands(self, argvs: Iterable[Sequence[str]], cwd: Path) -> dict[str, str]:
        """:meth:`command` over every command of a gate, numbered in order."""
        out: dict[str, str] = {}
        for index, argv in enumerate(argvs):
            out.update({f"{index}:{k}": v for k, v in self.command(argv, cwd).items()})
        return out


_PYTHON_OPTIONS_WITH_VALUE = frozenset({"-W", "-X", "-Q"})


def _python_target(args: list[str]) -> tuple[str, str] | None:
    """What a Python command line runs: ``("module", name)``, ``("script", path)``, or None (``-c``, REPL)."""
    index = 0
    while index < len(args):
        arg = args[index]
        if arg == "-m":
            return ("module", args[index + 1]) if index + 1 < len(args) else None
        if arg.startswith("-m") and len(arg) > 2:
            return ("module", arg[2:])
        if arg == "-c" or (arg.startswith("-c") and len(arg) > 2) or arg == "-":
            return None
        if arg in _PYTHON_OPTIONS_WITH_VALUE:
            index += 2
            continue
        if arg.startswith("-"):
            index += 1
            continue
        return ("script", arg)
    return None
