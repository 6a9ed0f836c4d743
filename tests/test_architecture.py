"""The package arrows and the command lines' start-up weight (docs/architecture.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# what must never load when a command line starts (they are imported by the handlers that need them)
HEAVY = ("torch", "triton", "transformers", "safetensors", "textual", "rich", "networkx", "pydantic", "git",
         "jinja2", "numpy")
MAX_MODULES = 200  # the target for `orchestrator --help` and `bitnet --help`


def test_import_contracts_hold() -> None:
    """orchestrator -> quality_gates -> foundation, bitnet -> kernels -> foundation, nothing else."""
    code = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"
    proc = subprocess.run([sys.executable, "-c", code, "--no-cache"], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "0 broken" in proc.stdout


@pytest.mark.parametrize("module", ["bno_orchestrator.cli", "bno_bitnet.cli", "bno_quality_gates.cli"])
def test_cli_start_is_light(module: str, tmp_path: Path) -> None:
    """Building each CLI's full parser (what --help does) imports no heavy library and few modules."""
    code = (
        "import json, sys\n"
        f"import {module} as cli\n"
        "cli.build_parser()\n"
        f"print(json.dumps({{'count': len(sys.modules), 'heavy': [m for m in {HEAVY!r} if m in sys.modules]}}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          check=True)
    report = json.loads(proc.stdout)
    assert report["heavy"] == [], f"{module} imports {report['heavy']} at start"
    assert report["count"] <= MAX_MODULES, f"{module} imports {report['count']} modules at start"


@pytest.mark.parametrize("program", ["orchestrator", "bitnet", "quality-gates"])
def test_console_scripts_answer_help_from_outside_the_repository(program: str, tmp_path: Path) -> None:
    """The installed entry points work from any directory (not only the repository root)."""
    script = Path(sys.executable).with_name(program)
    assert script.is_file(), f"{program} is not installed beside {sys.executable}"
    proc = subprocess.run([str(script), "--help"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "usage:" in proc.stdout


def test_huggingface_kernels_is_not_shadowed(tmp_path: Path) -> None:
    """Our folders are no importable packages: `import kernels` is Hugging Face's wherever it is run from."""
    code = "import importlib.util, json; s = importlib.util.find_spec('kernels'); print(json.dumps(s and s.origin))"
    for cwd in (ROOT, tmp_path):
        proc = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=60,
                              check=True)
        origin = json.loads(proc.stdout)
        assert origin is None or str(ROOT / "kernels") not in origin, f"from {cwd}: kernels -> {origin}"
