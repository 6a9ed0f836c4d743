"""The JIT build: cache location, cache key and the no-compiler path."""

from __future__ import annotations

from pathlib import Path

import pytest

from bno_kernels.cpu import build


def test_cache_root_follows_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(build.ENV_CACHE, str(tmp_path / "kc"))
    assert build.cache_root() == tmp_path / "kc"
    monkeypatch.delenv(build.ENV_CACHE)
    assert build.cache_root() == Path.home() / ".cache" / "bitnet-orchestrator" / "kernels"


def test_missing_compiler_is_a_build_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
    monkeypatch.setenv(build.ENV_CACHE, str(tmp_path))
    assert build.find_compiler() is None
    with pytest.raises(build.BuildError, match="no C\\+\\+ compiler"):
        build.load_extension()
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def test_build_key_depends_on_source_and_cpu(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cxx = build.find_compiler()
    assert cxx is not None, "these tests run where a C++ compiler exists"
    key = build.build_key(cxx)
    assert key == build.build_key(cxx)
    monkeypatch.setattr(build, "cpu_flags", lambda: "some other cpu")
    other_cpu = build.build_key(cxx)
    src = tmp_path / "ternary_cpu.cpp"
    src.write_text(build.SOURCE.read_text() + "\n// changed\n")
    monkeypatch.setattr(build, "SOURCE", src)
    assert len({key, other_cpu, build.build_key(cxx)}) == 3
