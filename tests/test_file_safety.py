"""Files the tool writes follow the user's umask and keep their mode; links out of the repository and
planted crash-log folders are refused (issue: hostile input and broken stores)."""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from bno_foundation import cli as foundation_cli
from bno_foundation.atomic import atomic_write, current_umask, write_files_atomically
from bno_foundation.errors import UserError
from bno_foundation.repo import contained_path


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_current_umask_reads_without_changing(umask_022: None) -> None:
    assert current_umask() == 0o022
    assert current_umask() == 0o022


def test_new_files_follow_the_umask(tmp_path: Path, umask_022: None) -> None:
    assert _mode(atomic_write(tmp_path / "report.md", "# r\n")) == 0o644
    os.umask(0o027)
    assert _mode(atomic_write(tmp_path / "export.yaml", "a: 1\n")) == 0o640


def test_rewritten_files_keep_their_mode(tmp_path: Path, umask_022: None) -> None:
    gitignore = tmp_path / ".gitignore"
    gitignore.write_text("x\n")
    gitignore.chmod(0o664)
    atomic_write(gitignore, "x\ny\n")
    write_files_atomically({gitignore: "x\ny\nz\n"})
    assert _mode(gitignore) == 0o664 and gitignore.read_text() == "x\ny\nz\n"


def test_an_asked_mode_is_still_masked(tmp_path: Path, umask_022: None) -> None:
    assert _mode(atomic_write(tmp_path / "hook", "#!/bin/sh\n", mode=0o777)) == 0o755
    assert _mode(atomic_write(tmp_path / "secret.json", "{}", mode=0o600)) == 0o600


def test_state_dir_linked_out_of_the_repository_is_refused(tmp_path: Path) -> None:
    repo, outside = tmp_path / "repo", tmp_path / "elsewhere"
    repo.mkdir()
    outside.mkdir()
    (repo / ".orchestrator").symlink_to(outside)
    with pytest.raises(UserError, match="outside the repository"):
        contained_path(repo, ".orchestrator")
    (repo / "inner").mkdir()
    (repo / ".orchestrator").unlink()
    (repo / ".orchestrator").symlink_to(repo / "inner")  # a link that stays inside is fine
    assert contained_path(repo, ".orchestrator") == repo / ".orchestrator"


def test_crash_log_fallback_refuses_a_planted_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    blocked = tmp_path / "state-is-a-file"
    blocked.write_text("")
    monkeypatch.setenv("XDG_STATE_HOME", str(blocked))  # mkdir under a file fails: the fallback is used
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    planted = tmp_path / f"bitnet-orchestrator-{os.getuid()}"
    target = tmp_path / "victim"
    target.mkdir()
    planted.symlink_to(target)
    with pytest.raises(OSError, match="not a private folder"):
        foundation_cli.log_dir()
    planted.unlink()
    log = foundation_cli.write_crash_log("orchestrator", RuntimeError("boom"))
    assert log.parent == planted and _mode(planted) == 0o700 and _mode(log) == 0o600
    assert "RuntimeError: boom" in log.read_text()
