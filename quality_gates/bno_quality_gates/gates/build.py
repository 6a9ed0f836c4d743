"""The build gate: the wheel builds, installs into a temporary venv, imports, passes ``pip check``.

Steps, each in a fresh temporary directory (the tree under test is never written to):
1. copy the files git knows (tracked and untracked-not-ignored) and build a wheel there
   (``pip wheel --no-deps --no-build-isolation``: no network needed);
2. check the wheel holds the packages and the data files named in ``require_files``;
3. create a venv without pip whose dependencies come from this interpreter's site-packages through a
   ``.pth`` file (so torch is not reinstalled), and install the wheel into it with ``pip --python``;
4. import the packages from a directory outside the tree and check they come from the venv;
5. run each console script with ``--help``;
6. ``pip check`` in the venv.

``python -m bno_quality_gates.gates.build [--packages P ...] [--scripts S ...] [--require-files F ...]``
"""

from __future__ import annotations

import argparse
import shutil
import site
import sys
import sysconfig
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

from bno_foundation.gate_program import (
    GateProgramError,
    clean_env,
    finish,
    main_guard,
    run,
    say,
    setting,
    workdir,
)
from bno_quality_gates.cache import list_files


def copy_tree(root: Path, target: Path) -> int:
    """Copy the files git knows from ``root`` to ``target``; returns how many."""
    files = list_files(root)
    for rel in files:
        dest = target / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / rel, dest)
    return len(files)


def venv_site_packages(venv: Path) -> Path:
    """The site-packages directory of a venv made by this interpreter's version."""
    paths = sysconfig.get_paths(vars={"base": str(venv), "platbase": str(venv)})
    return Path(paths["purelib"])


def main(argv: list[str] | None = None) -> int:
    """Run the build gate."""
    parser = argparse.ArgumentParser(description="build, install, import, pip check")
    parser.add_argument("--packages", nargs="+", default=None)
    parser.add_argument("--scripts", nargs="+", default=None)
    parser.add_argument("--require-files", dest="require_files", nargs="+", default=None)
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args(argv)
    packages: list[str] = setting(args, "packages", None)
    if not packages:
        raise GateProgramError("no packages to check: set params.packages (import names) in the gates file")
    scripts: list[str] = setting(args, "scripts", [])
    required_files: list[str] = setting(args, "require_files", [])
    root = workdir()
    tmp = Path(tempfile.mkdtemp(prefix="gate-build-"))
    steps: dict[str, Any] = {}
    reasons: list[str] = []
    try:
        src, dist, venv, elsewhere = tmp / "src", tmp / "dist", tmp / "venv", tmp / "elsewhere"
        elsewhere.mkdir()
        count = copy_tree(root, src)
        say(f"copied {count} files to {src}")

        t0 = time.monotonic()
        proc = run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", dist,
                    src], env=clean_env(drop_pythonpath=True))
        steps["wheel_seconds"] = round(time.monotonic() - t0, 2)
        wheels = sorted(dist.glob("*.whl"))
        if proc.returncode != 0 or not wheels:
            reasons.append(f"the wheel did not build (pip exit code {proc.returncode})")
            return _finish(steps, reasons)
        wheel = wheels[0]
        steps["wheel"] = wheel.name
        steps["wheel_bytes"] = wheel.stat().st_size
        with zipfile.ZipFile(wheel) as archive:
            names = set(archive.namelist())
        missing_packages = [p for p in packages if f"{p}/__init__.py" not in names]
        missing_files = [f for f in required_files if f not in names]
        if missing_packages:
            reasons.append(f"packages missing from the wheel: {', '.join(missing_packages)}")
        if missing_files:
            reasons.append(f"files missing from the wheel: {', '.join(missing_files)}")
        say(f"wheel {wheel.name}: {len(names)} files")

        proc = run([sys.executable, "-m", "venv", "--without-pip", venv])
        if proc.returncode != 0:
            raise GateProgramError("cannot create a venv (python -m venv failed)")
        target_site = venv_site_packages(venv)
        target_site.mkdir(parents=True, exist_ok=True)
        outer = [p for p in site.getsitepackages() if Path(p).is_dir()]
        (target_site / "_gate_outer_site.pth").write_text("".join(f"{p}\n" for p in outer))
        venv_python = venv / "bin" / "python"
        proc = run([sys.executable, "-m", "pip", "--python", venv_python, "install", "--no-deps", "--no-index",
                    "-q", wheel], env=clean_env(drop_pythonpath=True))
        if proc.returncode != 0:
            reasons.append(f"the wheel did not install (pip exit code {proc.returncode})")
            return _finish(steps, reasons)

        code = (
            "import importlib, json, sys; out = {}\n"
            f"for name in {packages!r}:\n"
            "    out[name] = importlib.import_module(name).__file__\n"
            "print(json.dumps(out))"
        )
        proc = run([venv_python, "-c", code], cwd=elsewhere, env=clean_env(drop_pythonpath=True), capture=True)
        if proc.returncode != 0:
            say(proc.stdout)
            reasons.append("the installed packages do not import")
        else:
            say(proc.stdout.strip())
            import json

            located = json.loads(proc.stdout.strip().splitlines()[-1])
            outside = [n for n, f in located.items() if not str(f).startswith(str(venv))]
            if outside:
                reasons.append(f"imported from outside the venv: {', '.join(outside)}")
        steps["imports"] = proc.returncode == 0

        broken_scripts = []
        for script in scripts:
            exe = venv / "bin" / script
            if not exe.exists():
                broken_scripts.append(f"{script} (not installed)")
                continue
            proc = run([exe, "--help"], cwd=elsewhere, env=clean_env(drop_pythonpath=True), capture=True)
            if proc.returncode != 0:
                say(proc.stdout)
                broken_scripts.append(f"{script} (exit code {proc.returncode})")
        if broken_scripts:
            reasons.append(f"console scripts broken: {', '.join(broken_scripts)}")
        steps["scripts_ok"] = not broken_scripts

        proc = run([sys.executable, "-m", "pip", "--python", venv_python, "check"], cwd=elsewhere,
                   env=clean_env(drop_pythonpath=True), capture=True)
        say(proc.stdout.strip())
        steps["pip_check"] = proc.returncode == 0
        if proc.returncode != 0:
            reasons.append("pip check found broken requirements")
        return _finish(steps, reasons)
    finally:
        if args.keep:
            say(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def _finish(steps: dict[str, Any], reasons: list[str]) -> int:
    if reasons:
        say("FAILED: " + "; ".join(reasons))
    return finish(steps, reasons)


if __name__ == "__main__":
    main_guard(main)
