"""Cache keys that cannot replay a stale pass: the gate's own script and module, the tools it runs, the
installed package set, the lockfiles and the environment it sees are all in the key; a variable outside the
allow-list is neither in the key nor visible to the gate."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from bno_quality_gates import cache as cache_mod
from bno_quality_gates.runner import Runner, RunOptions
from bno_quality_gates.spec import load_gates
from tests.quality_gates.conftest import pyc, write_gates


def _status(repo: Path) -> str:
    record = Runner(load_gates(repo / "workflows" / "gates.yaml"), RunOptions(repo=repo)).run()
    assert len(record.results) == 1
    result = record.results[0]
    assert result.ok, f"the gate failed: {result.reason}"
    return str(result.status)


def _write_tool(path: Path, version: str) -> None:
    path.write_text(f"#!/bin/sh\necho 'faketool {version}'\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def _write_dist(site: Path, version: str) -> None:
    for old in site.glob("fake_gate_pkg-*.dist-info"):
        for file in old.iterdir():
            file.unlink()
        old.rmdir()
    info = site / f"fake_gate_pkg-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: fake-gate-pkg\nVersion: {version}\n")


@pytest.fixture
def sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """A tool on PATH, a gate script and a gate module outside the repository, and a fake installed
    distribution on the runner's import path."""
    bin_dir, lib, site = tmp_path / "bin", tmp_path / "lib", tmp_path / "site"
    for folder in (bin_dir, lib, site):
        folder.mkdir()
    _write_tool(bin_dir / "faketool", "1.0")
    (lib / "gate_script.py").write_text("print('script v1')\n")
    (lib / "fake_gate_module.py").write_text("print('module v1')\n")
    _write_dist(site, "1.0")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("PYTHONPATH", str(lib))  # the gate's python finds the module (the outer PYTHONPATH)
    monkeypatch.syspath_prepend(str(lib))  # the runner resolves it from its own installation
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("GATE_TEST_ALLOWED", "one")
    monkeypatch.delenv("GATE_TEST_HIDDEN", raising=False)
    return {"tool": bin_dir / "faketool", "script": lib / "gate_script.py", "module": lib / "fake_gate_module.py",
            "site": site}


def test_each_key_source_makes_a_rerun(repo: Path, sources: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    write_gates(repo, f"""
        env_allowlist: [GATE_TEST_ALLOWED]
        gates:
          tools:
            commands:
              - [faketool]
              - [python, {sources['script']}]
              - [python, -m, fake_gate_module]
            inputs: ["src/**"]
        """)
    assert _status(repo) == "passed"
    assert _status(repo) == "cached", "nothing changed: the pass is replayed"
    changes: list[tuple[str, Callable[[], object]]] = [
        ("the gate's script", lambda: sources["script"].write_text("print('script v2')\n")),
        ("the gate's module", lambda: sources["module"].write_text("print('module v2')\n")),
        ("the tool's version", lambda: _write_tool(sources["tool"], "2.0")),
        ("the installed package set", lambda: _write_dist(sources["site"], "2.0")),
        ("a lockfile", lambda: (repo / "uv.lock").write_text("version = 1\n")),
        ("an allowed variable", lambda: monkeypatch.setenv("GATE_TEST_ALLOWED", "two")),
    ]
    for what, change in changes:
        change()
        assert _status(repo) == "passed", f"a change of {what} replayed a stale pass"
        assert _status(repo) == "cached", f"after the change of {what}, an unchanged rerun is replayed"


def test_a_variable_outside_the_allow_list_is_invisible_and_not_in_the_key(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    check = ("import os, sys; hidden = 'GATE_TEST_HIDDEN' in os.environ; print('hidden visible:', hidden); "
             "sys.exit(1 if hidden or os.environ.get('GATE_TEST_ALLOWED') != 'yes' else 0)")
    write_gates(repo, f"""
        env_allowlist: [GATE_TEST_ALLOWED]
        gates:
          env:
            command: {pyc(check)}
        """)
    monkeypatch.setenv("GATE_TEST_ALLOWED", "yes")
    monkeypatch.setenv("GATE_TEST_HIDDEN", "secret")
    assert _status(repo) == "passed", "the gate saw the allowed variable and not the hidden one"
    monkeypatch.setenv("GATE_TEST_HIDDEN", "another secret")
    assert _status(repo) == "cached", "a variable the gate cannot see does not change its key"


def test_program_hasher_resolves_what_a_command_runs(tmp_path: Path) -> None:
    (tmp_path / "tool").write_text("#!/bin/sh\n")
    (tmp_path / "tool").chmod(0o755)
    hasher = cache_mod.ProgramHasher(str(tmp_path))
    found = hasher.command(["tool", "--flag"], tmp_path)
    assert found == {"tool:tool": cache_mod.file_digest(tmp_path / "tool")}
    assert hasher.command(["no-such-tool-xyz"], tmp_path) == {"tool:no-such-tool-xyz": "not-on-path:no-such-tool-xyz"}
    module = hasher.command(["python", "-X", "dev", "-m", "json.tool"], tmp_path)
    assert set(module) == {"tool:python", "module:json.tool"} and len(module["module:json.tool"]) == 64
    assert set(hasher.command(["python", "-c", "pass"], tmp_path)) == {"tool:python"}
    assert hasher.command(["python", "gate.py"], tmp_path)["script:gate.py"].startswith("missing:")


def test_gates_see_the_base_set_and_the_allow_list_only() -> None:
    names = cache_mod.gate_env_names(["EXTRA_ONE"])
    assert {"PATH", "HOME", "LANG", "TMPDIR", "EXTRA_ONE"} <= set(names)
    assert "SKIP" not in names and "GITHUB_TOKEN" not in names


def test_a_gate_module_is_found_without_importing_its_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The runner never runs a gate package's code (a model package would pull in torch) to key it."""
    import sys

    package = tmp_path / "boom_gate_pkg"
    (package / "inner").mkdir(parents=True)
    (package / "__init__.py").write_text("raise RuntimeError('imported')\n")
    (package / "check.py").write_text("print('check')\n")
    (package / "inner" / "__init__.py").write_text("")
    (package / "inner" / "__main__.py").write_text("print('main')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    hasher = cache_mod.ProgramHasher(None)
    assert hasher.module("boom_gate_pkg.check") == cache_mod.file_digest(package / "check.py")
    assert hasher.module("boom_gate_pkg.inner") == cache_mod.file_digest(package / "inner" / "__main__.py")
    assert hasher.module("boom_gate_pkg.absent") == "unresolved:boom_gate_pkg.absent"
    assert "boom_gate_pkg" not in sys.modules
