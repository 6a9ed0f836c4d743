"""Run the server: bind the socket, start the scheduler, serve with uvicorn, shut down gracefully.

SIGINT or SIGTERM: uvicorn stops accepting connections and waits up to ``grace`` seconds for the open
ones (running streams go on to their end meanwhile); then the scheduler ends whatever is left (those
streams get an error event and ``[DONE]``) and its thread is joined. The function returns 0.
"""

from __future__ import annotations

import contextlib
import math
import signal
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

from bno_bitnet.server.app import Limits, create_app
from bno_bitnet.server.scheduler import BatchScheduler
from bno_bitnet.tokenizer import Tokenizer


class Server:
    """A bound, not yet running, server: ``url`` is known before :meth:`run` (port 0 picks a free port)."""

    def __init__(self, model: Any, tokenizer: Tokenizer, *, model_name: str, host: str = "127.0.0.1", port: int = 0,
                 max_batch: int = 16, max_queue: int = 64, limits: Limits | None = None, grace: float = 10.0) -> None:
        import uvicorn

        self.scheduler = BatchScheduler(model, tokenizer, max_batch=max_batch, max_queue=max_queue)
        self.app = create_app(self.scheduler, model_name, limits)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.socket = socket.create_server((host, port), family=family, backlog=128)
        bound_host, bound_port = self.socket.getsockname()[:2]
        shown = f"[{bound_host}]" if family == socket.AF_INET6 else bound_host
        self.url = f"http://{shown}:{bound_port}/v1"
        config = uvicorn.Config(self.app, log_level="warning", lifespan="off", access_log=False,
                                timeout_graceful_shutdown=max(math.ceil(grace), 1))
        self.uvicorn = uvicorn.Server(config)

    def run(self, on_ready: Callable[[str], None] | None = None) -> int:
        """Serve until a signal (main thread) or :meth:`stop`; returns 0."""
        self.scheduler.start()
        if on_ready is not None:
            on_ready(self.url)
        # uvicorn turns SIGINT/SIGTERM into a graceful shutdown, then raises the signal again under the
        # handlers it found: with these, that second delivery is noted and the process exits 0.
        previous = _note_signals() if threading.current_thread() is threading.main_thread() else {}
        try:
            self.uvicorn.run(sockets=[self.socket])
        finally:
            self.scheduler.stop()
            self.socket.close()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return 0

    def run_in_thread(self) -> threading.Thread:
        """Serve on a background thread (tests, benchmarks); returns once the server accepts connections."""
        thread = threading.Thread(target=self.run, name="bitnet-serve", daemon=True)
        thread.start()
        for _ in range(600):  # bounded: 60 s
            if self.uvicorn.started:
                return thread
            if not thread.is_alive():
                break
            threading.Event().wait(0.1)
        raise RuntimeError("the server did not start")

    def stop(self) -> None:
        """Ask uvicorn to shut down (as a signal would)."""
        self.uvicorn.should_exit = True

    @contextlib.contextmanager
    def running(self, *, join_timeout: float = 60.0) -> Iterator[threading.Thread]:
        """Serve on a background thread for the block (tests, benchmarks); on exit, shut down and join it.
        Yields the thread (alive after the block only if shutting down took longer than ``join_timeout``)."""
        thread = self.run_in_thread()
        try:
            yield thread
        finally:
            self.stop()
            thread.join(timeout=join_timeout)


def _note_signals() -> dict[signal.Signals, Any]:
    """Handlers for SIGINT and SIGTERM that do nothing (uvicorn's own come first); returns the old ones."""
    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.getsignal(sig)
        signal.signal(sig, lambda _signum, _frame: None)
    return previous


def announce(url: str) -> None:
    """The line a user (or a test) reads to know where the server is."""
    sys.stderr.write(f"serving at {url} (Ctrl-C to stop)\n")
    sys.stderr.flush()
