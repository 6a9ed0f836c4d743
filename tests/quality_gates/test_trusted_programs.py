"""Gate programs and the tools they run come from the runner's installation, never from the tree under
test: an agent that plants a ``ruff`` module, or edits its copy of a gate program, decides nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bno_foundation import trusted_launch
from bno_quality_gates.runner import Runner, RunOptions
from bno_quality_gates.spec import load_gates
from tests.quality_gates.conftest import write_gates

PLANTED = "import sys\nprint('planted tool: everything is fine')\nsys.exit(0)\n"


def _run(repo: Path) -> str:
    record = Runner(load_gates(repo / "workflows" / "gates.yaml"), RunOptions(repo=repo, use_cache=False)).run()
    return record.results[0].status


def test_a_tool_planted_in_the_tree_is_not_imported(repo: Path) -> None:
    (repo / "src" / "core" / "bad.py").write_text("import os\nx = 1\n")  # F401: ruff fails on it
    write_gates(repo, """\
        python_path: [., src]
        gates:
          lint:
            command: [python, -m, ruff, check, --no-cache, --select, F401, src]
        """)
    assert _run(repo) == "failed"
    for planted in (repo / "ruff.py", repo / "src" / "ruff.py"):  # the working directory, and PYTHONPATH
        planted.write_text(PLANTED)
        assert _run(repo) == "failed", f"{planted} decided the lint gate"
        planted.unlink()


def test_a_gate_program_edited_in_the_tree_is_not_the_one_run(repo: Path) -> None:
    """The tree holds its own copy of the gate programs (as this repository does): the runner's runs."""
    fake = repo / "fake" / "bno_quality_gates"
    (fake / "gates").mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "gates" / "__init__.py").write_text("")
    (fake / "gates" / "checks.py").write_text(PLANTED)
    write_gates(repo, """\
        python_path: [fake]
        gates:
          checks:
            command: [python, -m, bno_quality_gates.gates.checks]
        """)
    status = _run(repo)
    assert status == "errored" or status == "failed", "the tree's own copy of a gate program ran"


def test_the_launcher_keeps_the_tree_importable_for_the_code_under_test(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "mypkg").mkdir(parents=True)
    (tree / "mypkg" / "__init__.py").write_text("WHERE = 'tree'\n")
    (tree / "json.py").write_text("raise SystemExit('the tree shadowed the standard library')\n")
    code = "import json, mypkg, sys; print(mypkg.WHERE, json.__name__)"
    out = subprocess.run(trusted_launch.command(["-c", code]), env={"PYTHONPATH": str(tree), "PATH": "/usr/bin"},
                         cwd=tree, capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["tree", "json"]
    assert sys.executable == trusted_launch.command([])[0]
