"""Truthful checks of the machine's ML toolchain, shared by ``orchestrator doctor`` and ``bitnet doctor``.

Every check reports what it saw; nothing is assumed. Checks that need torch or triton run them in a
subprocess with a time limit, so that a broken install shows up as a failed row, not a crash, and so
that importing this module stays cheap.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import shutil
import subprocess
import sys
from dataclasses import dataclass

OK = "ok"
WARN = "warn"
MISSING = "missing"


@dataclass(frozen=True)
class Check:
    """One row of a doctor table."""

    name: str
    status: str  # OK, WARN (optional thing absent) or MISSING (required thing absent or broken)
    detail: str
    fix: str = ""
    required: bool = True

    @property
    def failed(self) -> bool:
        return self.required and self.status == MISSING


def package_version(name: str) -> str | None:
    """The installed version of distribution ``name``, or None."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _python_check() -> Check:
    ok = sys.version_info >= (3, 11)
    return Check(
        "python",
        OK if ok else MISSING,
        f"{platform.python_version()} ({sys.executable})",
        "" if ok else "install Python 3.11 or newer",
    )


def _package_check(dist: str, *, required: bool, fix: str) -> Check:
    version = package_version(dist)
    if version is None:
        return Check(dist, MISSING if required else WARN, "not installed", fix, required)
    return Check(dist, OK, version, required=required)


def _run_python(code: str, timeout: float = 120.0, env: dict[str, str] | None = None) -> tuple[int, str]:
    merged = dict(os.environ)
    merged.update(env or {})
    try:
        proc = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=merged,
        )
    except subprocess.TimeoutExpired:
        return 124, f"timed out after {timeout:.0f}s"
    stderr_lines = proc.stderr.strip().splitlines()
    output = proc.stdout.strip() or (stderr_lines[-1] if stderr_lines else "")
    return proc.returncode, output


_CUDA_PROBE = """
import torch
if torch.cuda.is_available():
    print("yes: " + torch.cuda.get_device_name(0))
else:
    print("no")
"""

_TRITON_INTERPRETER_PROBE = """
import torch, triton, triton.language as tl

@triton.jit
def _add(x_ptr, y_ptr, out_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    tl.store(out_ptr + offs, tl.load(x_ptr + offs, mask=mask) + tl.load(y_ptr + offs, mask=mask), mask=mask)

x = torch.arange(37, dtype=torch.float32)
out = torch.empty_like(x)
_add[(3,)](x, x, out, 37, BLOCK=16)
assert torch.equal(out, 2 * x), "interpreter gave a wrong sum"
print("a Triton kernel ran on the CPU and gave the right result")
"""


def cuda_check() -> Check:
    """Whether torch sees a CUDA GPU (optional: the Triton kernels then run natively)."""
    if package_version("torch") is None:
        return Check("cuda gpu", WARN, "torch not installed", required=False)
    rc, out = _run_python(_CUDA_PROBE, timeout=60)
    if rc != 0:
        return Check("cuda gpu", WARN, f"probe failed: {out}", required=False)
    if out.startswith("yes"):
        return Check("cuda gpu", OK, out[5:], required=False)
    return Check("cuda gpu", WARN, "none (Triton kernels run in interpreter mode only)", required=False)


def triton_interpreter_check() -> Check:
    """Run a tiny Triton kernel with ``TRITON_INTERPRET=1`` on the CPU."""
    if package_version("triton") is None:
        return Check("triton interpreter", MISSING, "triton not installed", "pip install triton")
    rc, out = _run_python(_TRITON_INTERPRETER_PROBE, env={"TRITON_INTERPRET": "1"})
    if rc != 0:
        return Check("triton interpreter", MISSING, f"failed: {out}", "reinstall triton (pip install -U triton)")
    return Check("triton interpreter", OK, out)


def compiler_check() -> Check:
    """A C++ compiler for the native CPU kernel (optional: the reference path runs without one)."""
    cxx = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")
    if not cxx:
        return Check(
            "c++ compiler",
            WARN,
            "none found: the CPU kernel falls back to the slow reference path",
            "install g++ (apt-get install g++) or set CXX",
            required=False,
        )
    try:
        proc = subprocess.run([cxx, "--version"], capture_output=True, text=True, timeout=30)
        first = proc.stdout.splitlines()[0] if proc.stdout else cxx
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Check("c++ compiler", WARN, f"{cxx} does not run: {exc}", "reinstall it or set CXX", required=False)
    return Check("c++ compiler", OK, first, required=False)


def cpu_features_check() -> Check:
    """The SIMD extensions the native kernel can use on this CPU."""
    flags: set[str] = set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    break
    except OSError:
        return Check("cpu simd", WARN, f"unknown ({platform.machine()})", required=False)
    wanted = ["avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni"]
    present = [f for f in wanted if f in flags]
    status = OK if "avx2" in flags else WARN
    return Check(
        "cpu simd",
        status,
        ", ".join(present) or "no AVX2",
        "" if status == OK else "the native kernel needs AVX2; the reference path runs instead",
        required=False,
    )


def toolchain_checks(include_slow: bool = True) -> list[Check]:
    """Python, torch, triton, transformers, CUDA, C++ compiler, CPU SIMD and the Triton interpreter."""
    checks = [
        _python_check(),
        _package_check("torch", required=True, fix="bash scripts/setup.sh (installs torch==2.13.0 first)"),
        _package_check("triton", required=True, fix="pip install triton"),
        _package_check(
            "transformers", required=False, fix="pip install -e '.[dev]' (parity oracle and e2e baseline)"
        ),
        compiler_check(),
        cpu_features_check(),
    ]
    if include_slow:
        checks.insert(4, cuda_check())
        checks.append(triton_interpreter_check())
    return checks


def git_check() -> Check:
    """git on PATH (required by the orchestrator: worktrees, hooks, affected files)."""
    git = shutil.which("git")
    if not git:
        return Check("git", MISSING, "not found", "install git")
    proc = subprocess.run([git, "--version"], capture_output=True, text=True, timeout=30)
    return Check("git", OK, proc.stdout.strip())


def render_table(title: str, checks: list[Check]) -> None:
    """Print the checks as a rich table (tool output in the details is shown as text, never as markup)."""
    from rich.table import Table
    from rich.text import Text

    from bno_foundation.terminal import safe_console

    style = {OK: "green", WARN: "yellow", MISSING: "red"}
    table = Table(title=title)
    table.add_column("check")
    table.add_column("status")
    table.add_column("detail")
    table.add_column("fix")
    for c in checks:
        label = c.status.upper() if c.required or c.status != WARN else "absent (optional)"
        table.add_row(c.name, Text(label, style=style[c.status]), c.detail, c.fix)
    safe_console().print(table)


def checks_as_json(checks: list[Check]) -> list[dict[str, object]]:
    return [
        {"name": c.name, "status": c.status, "detail": c.detail, "fix": c.fix, "required": c.required}
        for c in checks
    ]


def report(program: str, checks: list[Check], *, as_json: bool) -> int:
    """Print ``checks`` as ``PROGRAM doctor``'s table (or JSON); exit 1 when a required check failed.

    The one doctor behind both command lines: each passes the checks its view adds to
    :func:`toolchain_checks`.
    """
    from bno_foundation.cli import EXIT_FAILURE, EXIT_OK, print_json

    failed = any(c.failed for c in checks)
    if as_json:
        print_json({"ok": not failed, "checks": checks_as_json(checks)})
    else:
        render_table(f"{program} doctor", checks)
    return EXIT_FAILURE if failed else EXIT_OK
