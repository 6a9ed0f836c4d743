"""The one top-level error handler shared by the ``orchestrator`` and ``bitnet`` command lines.

It lives in the foundation (the lowest layer) so that ``bitnet`` need not import ``orchestrator``; it
imports nothing heavy.

A user error prints one clear line and exits 2; an internal error writes its traceback to a log file,
prints where the log is and exits 3; Ctrl-C exits 130, SIGTERM 143 and SIGHUP 129: both signals raise
:class:`Terminated` (a ``KeyboardInterrupt``) in the main thread, so every ``finally`` and every handler that
stops a child process group runs exactly as for Ctrl-C. ``--verbose`` prints tracebacks.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import signal
import stat
import sys
import tempfile
import threading
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bno_foundation.terminal import visible

EXIT_OK = 0
EXIT_FAILURE = 1  # the command ran and its verdict is negative (a gate failed, doctor found a problem)
EXIT_USER_ERROR = 2
EXIT_INTERNAL_ERROR = 3
EXIT_INTERRUPTED = 130

Handler = Callable[[argparse.Namespace], int | None]
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP arrived: unwinds like Ctrl-C; ``signum`` says which."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated(signum)


class CliArgumentParser(argparse.ArgumentParser):
    """argparse that reports bad arguments as a one-line user error (exit 2) naming the command."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(EXIT_USER_ERROR)


def log_dir() -> Path:
    """Where internal-error tracebacks are written (``$XDG_STATE_HOME/bitnet-orchestrator``)."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    path = Path(base) / "bitnet-orchestrator"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        # the shared temporary folder: a per-user name, created 0700 and refused if someone planted it
        path = Path(tempfile.gettempdir()) / f"bitnet-orchestrator-{os.getuid()}"
        try:
            path.mkdir(mode=0o700)
        except FileExistsError:
            info = os.lstat(path)
            if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
                raise OSError(f"{path} is not a private folder of this user: crash log not written") from None
    return path


def write_crash_log(program: str, exc: BaseException) -> Path:
    """Write the traceback of ``exc`` to a fresh log file and return its path."""
    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y%m%dT%H%M%S")
    path = log_dir() / f"{program}-crash-{stamp}-{os.getpid()}.log"
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    # O_EXCL|O_NOFOLLOW: never write through a link someone planted under the expected name
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(f"{program} {' '.join(sys.argv[1:])}\n\n{text}")
    return path


def run_cli(
    program: str,
    parser: argparse.ArgumentParser,
    argv: Sequence[str] | None,
    user_error_types: tuple[type[BaseException], ...],
) -> int:
    """Parse ``argv``, run the handler stored in ``args.handler`` and map exceptions to exit codes."""
    args = parser.parse_args(argv)
    verbose = bool(getattr(args, "verbose", False))
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return EXIT_USER_ERROR
    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous = {signum: signal.signal(signum, _raise_terminated) for signum in STOP_SIGNALS}
    try:
        result = handler(args)
        return EXIT_OK if result is None else int(result)
    except Terminated as exc:
        sys.stderr.write(f"{program}: stopped by {signal.Signals(exc.signum).name}\n")
        return 128 + exc.signum
    except KeyboardInterrupt:
        sys.stderr.write(f"{program}: interrupted\n")
        return EXIT_INTERRUPTED
    except user_error_types as exc:
        if verbose:
            traceback.print_exc()
        sys.stderr.write(f"{program}: error: {visible(str(exc))}\n")  # messages quote user text
        return EXIT_USER_ERROR
    except BrokenPipeError:
        return EXIT_OK
    except Exception as exc:
        if verbose:
            traceback.print_exc()
        path = write_crash_log(program, exc)
        sys.stderr.write(
            f"{program}: internal error: {type(exc).__name__}: {visible(str(exc))}\n"
            f"{program}: the traceback is in {path} (rerun with --verbose to print it)\n"
        )
        return EXIT_INTERNAL_ERROR
    finally:
        for signum, handler_before in previous.items():
            signal.signal(signum, handler_before)


def print_json(data: Any) -> None:
    """Print ``data`` as indented JSON (the ``--json`` output of every command)."""
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
