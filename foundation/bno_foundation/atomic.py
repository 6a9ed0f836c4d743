"""Atomic files and directory swaps: a reader sees the old version or the new one, never half of either.

The one implementation every package shares. Files go to a temporary file beside the target (same
folder, so ``os.replace`` is a rename on one filesystem), are flushed and fsynced, then moved into place;
a folder is built in a temporary sibling and swapped in. Any failure removes the temporary and leaves the
target as it was.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path


def fsync_dir(path: Path) -> None:
    """fsync a directory so that a rename inside it survives a power cut (a no-op where unsupported)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def current_umask() -> int:
    """The process's umask, read without changing it where the system allows (Linux ``/proc``)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)  # elsewhere: the classic read-by-setting, restored at once
    os.umask(mask)
    return mask


def file_mode_for(path: Path, mode: int | None = None) -> int:
    """The mode a rewritten ``path`` gets: ``mode`` when given (then masked by the umask like any new
    file), else the existing file's mode, else what ``open()`` would give a new file (0666 minus umask)."""
    if mode is not None:
        return mode & ~current_umask()
    with contextlib.suppress(FileNotFoundError):
        info = os.stat(path)
        if stat.S_ISREG(info.st_mode):
            return stat.S_IMODE(info.st_mode)
    return 0o666 & ~current_umask()


def atomic_write_bytes(path: Path, data: bytes, *, mode: int | None = None) -> Path:
    """Write ``data`` to ``path`` through a temporary file and ``os.replace``; returns ``path``.

    The parent folder is created if missing. The file keeps the mode of the file it replaces, or gets the
    mode a plain ``open()`` would give under the user's umask; ``mode`` (e.g. ``0o755`` for a hook
    script) asks for another, still masked by the umask. Secrets pass ``mode=0o600``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    final_mode = file_mode_for(path, mode)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, final_mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return path


def atomic_write(path: Path, text: str, *, mode: int | None = None) -> Path:
    """Write ``text`` (UTF-8, ``\\n`` line ends) to ``path`` atomically; returns ``path``."""
    return atomic_write_bytes(path, text.encode("utf-8"), mode=mode)


def write_files_atomically(files: Mapping[Path, str]) -> None:
    """Write several text files so that a crash leaves each one either old or new, never half-written.

    Every file is first written to a temporary file beside it; only when all are written are they moved
    into place with ``os.replace``.
    """
    staged: list[tuple[str, Path]] = []
    try:
        for target, text in files.items():
            target.parent.mkdir(parents=True, exist_ok=True)
            final_mode = file_mode_for(target)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
            staged.append((tmp, target))
            with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, final_mode)
        for tmp, target in staged:
            os.replace(tmp, target)
        staged = []
    finally:
        for tmp, _ in staged:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)


@contextlib.contextmanager
def staged_directory(target: Path) -> Iterator[Path]:
    """A temporary sibling of ``target`` to fill; removed if the block raises, else left for a swap."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def swap_directory(new: Path, target: Path, *, overwrite: bool) -> None:
    """Move the filled folder ``new`` to ``target``; an existing ``target`` is replaced only if ``overwrite``.

    The old folder is moved aside first and restored if the final rename fails, so ``target`` is always
    either the old or the new folder. Raises ``FileExistsError`` when ``target`` exists and not ``overwrite``.
    """
    if not target.exists():
        os.replace(new, target)
        fsync_dir(target.parent)
        return
    if not overwrite:
        raise FileExistsError(str(target))
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
    os.replace(target, old / "d")
    try:
        os.replace(new, target)
    except BaseException:
        os.replace(old / "d", target)
        raise
    fsync_dir(target.parent)
    shutil.rmtree(old, ignore_errors=True)
