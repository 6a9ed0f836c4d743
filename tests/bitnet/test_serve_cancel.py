"""``bitnet serve``: a client that hangs up mid-stream over HTTP cancels its request; the row leaves the batch."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import pytest

from bno_bitnet.server.app import Limits
from bno_bitnet.server.runner import Server
from bno_bitnet.shapes import build_random_model
from bno_bitnet.tokenizer import ByteTokenizer

MODEL = "tiny-bitnet"


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    """A tiny random model served on 127.0.0.1 (a free port)."""
    srv = Server(build_random_model("tiny", seed=3), ByteTokenizer(), model_name=MODEL, max_batch=4, max_queue=4,
                 limits=Limits(max_body_bytes=64 * 1024, max_tokens=100_000, timeout_s=120.0))
    with srv.running(join_timeout=30) as thread:
        yield srv
    assert not thread.is_alive(), "the server thread must end on stop"


def test_client_disconnect_mid_stream_cancels_the_row(server: Server) -> None:
    host, port = server.socket.getsockname()[:2]
    cancelled_before = server.scheduler.stats.cancelled
    max_tokens = server.scheduler.context - 16  # as long as the context allows: still running when we hang up
    body = json.dumps({"model": MODEL, "prompt": "hang up", "max_tokens": max_tokens, "temperature": 0,
                       "stream": True}).encode()
    head = (f"POST /v1/completions HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    with socket.create_connection((host, port), timeout=30) as conn:
        conn.sendall(head + body)
        received = b""
        while received.count(b"data: ") < 2:  # the stream is running: at least one token has come back
            chunk = conn.recv(4096)
            assert chunk, "the server closed the stream before sending tokens"
            received += chunk
        assert b"200 OK" in received.split(b"\r\n", 1)[0]
        assert server.scheduler.busy() >= 1
    # The socket is closed: the server notices the disconnect and cancels the request (bounded wait).
    deadline = time.monotonic() + 30
    while server.scheduler.busy() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.scheduler.busy() == 0, "a disconnected client's row must leave the batch"
    assert server.scheduler.stats.cancelled == cancelled_before + 1, "it left because it was cancelled"
