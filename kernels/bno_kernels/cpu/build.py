"""JIT build of the native CPU kernel (``ternary_cpu.cpp``) with ``torch.utils.cpp_extension``, cached.

The cache directory is ``$BITNET_KERNEL_CACHE`` or ``~/.cache/bitnet-orchestrator/kernels``. Each build
lives in a directory named by a key over everything that changes the binary: the source, the compile
flags, the compiler's version, torch's and Python's versions and the CPU's feature flags (the code is
compiled with ``-march=native``). A build runs in a fresh temporary directory that is renamed into place
when it succeeds, so a killed build leaves no half-written cache entry (and no stale lock).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType

SOURCE = Path(__file__).with_name("ternary_cpu.cpp")
ENV_CACHE = "BITNET_KERNEL_CACHE"
EXTRA_CFLAGS: tuple[str, ...] = ("-O3", "-march=native", "-fopenmp", "-ffp-contract=off")
EXTRA_LDFLAGS: tuple[str, ...] = ("-fopenmp",)


class BuildError(RuntimeError):
    """The native kernel could not be compiled or loaded (the reason is in the message)."""


def cache_root() -> Path:
    """Where built kernels are cached."""
    env = os.environ.get(ENV_CACHE)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "bitnet-orchestrator" / "kernels"


def find_compiler() -> str | None:
    """The C++ compiler cpp_extension will use (``$CXX`` or ``c++``), or None when there is none."""
    cxx = os.environ.get("CXX") or "c++"
    return shutil.which(cxx)


def cpu_flags() -> str:
    """The CPU's feature flags (``/proc/cpuinfo``), or a platform description where that is unreadable."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith(("flags", "Features")):
                    return " ".join(sorted(line.split(":", 1)[1].split()))
    except OSError:
        pass
    return f"{platform.machine()} {platform.processor()}"


def compiler_version(cxx: str) -> str:
    """First line of ``cxx --version``."""
    try:
        proc = subprocess.run([cxx, "--version"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        raise BuildError(f"the C++ compiler {cxx} does not run: {exc}") from exc
    return (proc.stdout.splitlines() or [cxx])[0]


def build_key(cxx: str) -> str:
    """A hash of everything that changes the compiled extension."""
    import torch

    h = hashlib.sha256()
    for part in (
        SOURCE.read_bytes(),
        " ".join(EXTRA_CFLAGS + EXTRA_LDFLAGS).encode(),
        compiler_version(cxx).encode(),
        torch.__version__.encode(),
        sys.version.encode(),
        cpu_flags().encode(),
    ):
        h.update(hashlib.sha256(part).digest())
    return h.hexdigest()[:20]


def _import_from(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise BuildError(f"cannot load the native kernel from {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_extension(verbose: bool = False) -> ModuleType:
    """Load the cached native kernel, building it first when the cache has no entry for this machine."""
    import torch  # noqa: F401  (the extension links against libtorch: import torch first)

    cxx = find_compiler()
    if cxx is None:
        raise BuildError("no C++ compiler found (install g++ or set CXX)")
    key = build_key(cxx)
    name = f"bitnet_ternary_cpu_{key}"
    root = cache_root()
    final = root / name
    so_path = final / f"{name}.so"
    if so_path.is_file():
        return _import_from(so_path, name)
    from torch.utils import cpp_extension

    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=root))
    try:
        module = cpp_extension.load(
            name=name,
            sources=[str(SOURCE)],
            extra_cflags=list(EXTRA_CFLAGS),
            extra_ldflags=list(EXTRA_LDFLAGS),
            build_directory=str(tmp),
            verbose=verbose,
        )
    except Exception as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise BuildError(f"compiling {SOURCE.name} failed: {exc}") from exc
    try:
        os.replace(tmp, final)  # atomic; fails if another process finished first
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)  # the other build is identical; ours stays loaded from memory
    return module
