"""The built wheel, installed with its dev extras into a fresh venv beside transformers (and Hugging Face's
``kernels``), works from a directory outside the repository: every public entry point imports, the three
command lines run, and the installed git hook runs the gates.

The fresh venv gets the dependencies already installed for this test run through a ``.pth`` file (no
network); pip still resolves ``bitnet-orchestrator[dev]`` against them and ``pip check`` must pass.
"""

from __future__ import annotations

import json
import os
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ENTRY_POINTS = {
    "bno_kernels": ["ternary_matmul", "available_backends", "PackedTernaryWeight"],
    "bno_bitnet": ["BitNetConfig", "BitNetForCausalLM", "KVCache", "BitLinear", "QuantizeConfig", "quantize_",
                   "from_pretrained", "save_pretrained", "inspect_checkpoint"],
    "bno_orchestrator.store": ["Store"],
    "bno_orchestrator.cli": ["main"],
    "bno_bitnet.cli": ["main"],
    "bno_quality_gates.cli": ["main"],
    "bno_quality_gates.runner": ["Runner", "RunOptions"],
    "bno_foundation.errors": ["ProjectError", "UserError", "ConfigError"],
}
GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@localhost", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@localhost"}


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items()
            if k not in ("PYTHONPATH", "ORCHESTRATOR_REPO", "VIRTUAL_ENV") and not k.startswith("GATE_")}


def _run(argv: list[str | Path], cwd: Path, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in argv], cwd=cwd, env=kw.pop("env", _clean_env()),  # type: ignore[arg-type]
                          capture_output=True, text=True, timeout=600, **kw)  # type: ignore[call-overload]


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    files = _run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], ROOT).stdout.split("\0")
    for name in filter(None, files):
        source = ROOT / name
        if source.is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            (src / name).write_bytes(source.read_bytes())
    proc = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", tmp / "dist",
                 src], tmp)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    wheel = next((tmp / "dist").glob("bitnet_orchestrator-*.whl"))
    venv = tmp / "venv"
    assert _run([sys.executable, "-m", "venv", "--without-pip", venv], tmp).returncode == 0
    purelib = Path(sysconfig.get_path("purelib", vars={"base": str(venv), "platbase": str(venv)}))
    purelib.mkdir(parents=True, exist_ok=True)
    outer = [p for p in site.getsitepackages() if Path(p).is_dir()]
    (purelib / "_outer_site.pth").write_text("".join(f"{p}\n" for p in outer))
    proc = _run([sys.executable, "-m", "pip", "--python", venv / "bin" / "python", "install", "--no-index", "-q",
                 "--force-reinstall", "--no-deps", wheel], tmp)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = _run([sys.executable, "-m", "pip", "--python", venv / "bin" / "python", "install", "--no-index", "-q",
                 f"{wheel}[dev]"], tmp)
    assert proc.returncode == 0, "the dev extras are not satisfied: " + proc.stdout + proc.stderr
    return venv


def test_every_public_entry_point_imports_from_the_wheel(venv: Path, tmp_path: Path) -> None:
    code = (
        "import importlib, json, sys\n"
        f"wanted = {ENTRY_POINTS!r}\n"
        "out = {}\n"
        "for module, names in wanted.items():\n"
        "    m = importlib.import_module(module)\n"
        "    out[module] = [m.__file__, [n for n in names if not hasattr(m, n)]]\n"
        "import kernels\n"
        "out['kernels'] = [kernels.__file__, [] if hasattr(kernels, 'CUDAProperties') else ['CUDAProperties']]\n"
        "import transformers.integrations.hub_kernels\n"
        "print(json.dumps(out))\n"
    )
    proc = _run([venv / "bin" / "python", "-c", code], tmp_path)
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout.splitlines()[-1])
    for module, (path, missing) in found.items():
        assert missing == [], f"{module} lacks {missing}"
        if module != "kernels":
            assert path.startswith(str(venv)), f"{module} came from {path}, not the wheel"
    assert not found["kernels"][0].startswith(str(ROOT / "kernels")), "Hugging Face's kernels is shadowed by ours"


def test_pip_check_passes(venv: Path, tmp_path: Path) -> None:
    proc = _run([sys.executable, "-m", "pip", "--python", venv / "bin" / "python", "check"], tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("program", ["orchestrator", "bitnet", "quality-gates"])
def test_the_command_lines_run_outside_the_repository(venv: Path, tmp_path: Path, program: str) -> None:
    proc = _run([venv / "bin" / program, "--help"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert f"usage: {program}" in proc.stdout


def test_the_installed_hook_runs_the_gates(venv: Path, tmp_path: Path) -> None:
    """orchestrator init + hooks install in a fresh repository; a commit goes through quality-gates."""
    repo = tmp_path / "project"
    (repo / "src").mkdir(parents=True)
    (repo / "src" / "app.py").write_text("print('app')\n")
    env = {**_clean_env(), **GIT_ENV}
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "init"]):
        assert _run(["git", *args], repo, env=env).returncode == 0
    orchestrator = venv / "bin" / "orchestrator"
    assert _run([orchestrator, "init"], repo).returncode == 0
    (repo / "workflows" / "gates.yaml").write_text(
        "version: 1\ngates:\n  compiles:\n    command: [python, -m, py_compile, src/app.py]\n"
        "    inputs: ['src/**']\n    hooks: [pre-commit]\n"
    )
    proc = _run([orchestrator, "hooks", "install"], repo)
    assert proc.returncode == 0, proc.stderr
    hook = (repo / ".git" / "hooks" / "pre-commit").read_text()
    assert str(venv / "bin" / "quality-gates") in hook
    (repo / "src" / "app.py").write_text("print('app v2')\n")
    assert _run(["git", "add", "-A"], repo, env=env).returncode == 0
    commit = _run(["git", "commit", "-m", "v2"], repo, env=env)
    assert commit.returncode == 0, commit.stdout + commit.stderr
    assert "compiles" in commit.stdout + commit.stderr
    (repo / "src" / "app.py").write_text("print('broken'\n")
    assert _run(["git", "add", "-A"], repo, env=env).returncode == 0
    blocked = _run(["git", "commit", "-m", "broken"], repo, env=env)
    assert blocked.returncode != 0, "a failing gate must stop the commit"
