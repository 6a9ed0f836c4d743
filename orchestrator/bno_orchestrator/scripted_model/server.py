"""The HTTP side of the scripted model: one threaded server on 127.0.0.1, dialects chosen by path."""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from bno_orchestrator.scripted_model.scenario import Scenario

MAX_BODY = 64 * 1024 * 1024


@dataclass
class ModelRequest:
    """One request the server received (kept in :attr:`ScriptedModelServer.requests`)."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any  # parsed JSON, or None
    dialect: str = ""
    main: bool = False  # consumed a scenario step (the dialect sets it)
    expected_key: str | None = None  # the key the server wants (None: any); the dialect checks it

    def key_ok(self, given: str | None) -> bool:
        """Whether ``given`` (from the vendor's header or query) is the expected key."""
        return self.expected_key is None or given == self.expected_key


class Responder:
    """Writes one response: a JSON body, or a stream of server-sent events."""

    def __init__(self, handler: BaseHTTPRequestHandler) -> None:
        self._handler = handler

    def json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        """A complete JSON response."""
        data = json.dumps(body).encode("utf-8")
        self._handler.send_response(status)
        self._handler.send_header("Content-Type", "application/json")
        self._handler.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self._handler.send_header(name, value)
        self._handler.end_headers()
        self._handler.wfile.write(data)

    def sse(self, events: Iterable[tuple[str | None, Any]], *, done_line: bool = False) -> None:
        """A ``text/event-stream`` response: ``(event name or None, JSON data)`` pairs, then close.

        ``done_line``: end with OpenAI Chat Completions' literal ``data: [DONE]``.
        """
        self._handler.send_response(200)
        self._handler.send_header("Content-Type", "text/event-stream")
        self._handler.send_header("Cache-Control", "no-cache")
        self._handler.send_header("Connection", "close")
        self._handler.end_headers()
        for name, data in events:
            chunk = (f"event: {name}\n" if name else "") + f"data: {json.dumps(data)}\n\n"
            self._handler.wfile.write(chunk.encode("utf-8"))
            self._handler.wfile.flush()
        if done_line:
            self._handler.wfile.write(b"data: [DONE]\n\n")
            self._handler.wfile.flush()
        self._handler.close_connection = True


class Dialect(Protocol):
    """One vendor's API: which requests it answers and how."""

    name: str

    def matches(self, method: str, path: str) -> bool:
        """Whether this dialect answers ``method path``."""
        ...

    def handle(self, request: ModelRequest, scenario: Scenario, respond: Responder) -> None:
        """Answer ``request`` (calling ``scenario.next_step()`` for a main model turn)."""
        ...


@dataclass
class _State:
    scenario: Scenario
    dialects: list[Dialect]
    api_key: str | None
    max_requests: int
    requests: list[ModelRequest] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _make_handler(state: _State) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return  # quiet: the request log is kept in memory

        def _serve(self) -> None:
            url = urllib.parse.urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(min(length, MAX_BODY)) if length else b""
            try:
                body = json.loads(raw) if raw else None
            except json.JSONDecodeError:
                body = None
            request = ModelRequest(self.command, url.path, urllib.parse.parse_qs(url.query),
                                   {k.lower(): v for k, v in self.headers.items()}, body,
                                   expected_key=state.api_key)
            respond = Responder(self)
            with state.lock:
                state.requests.append(request)
                too_many = len(state.requests) > state.max_requests
            if too_many:
                respond.json(429, {"error": {"message": "scripted model: request limit reached"}})
                return
            for dialect in state.dialects:
                if dialect.matches(self.command, url.path):
                    request.dialect = dialect.name
                    dialect.handle(request, state.scenario, respond)
                    return
            if self.command == "HEAD":  # a connectivity probe: headers only
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            respond.json(404, {"error": {"message": f"scripted model: no dialect for {self.command} {url.path}"}})

        do_GET = do_POST = do_HEAD = _serve

    return Handler


class _QuietServer(ThreadingHTTPServer):
    """Client resets (a CLI closing its keep-alive sockets) are normal here, not tracebacks on stderr."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class ScriptedModelServer:
    """A model API stand-in on 127.0.0.1 (an ephemeral port unless ``port`` is given).

    ``api_key``: the key clients must send (each dialect checks it in its vendor's header and answers
    its vendor's 401 otherwise); None accepts any.
    """

    def __init__(self, scenario: Scenario, *, dialects: list[Dialect] | None = None, api_key: str | None = "scripted-key",
                 port: int = 0, max_requests: int = 500) -> None:
        if dialects is None:
            from bno_orchestrator.scripted_model.dialects import all_dialects

            dialects = all_dialects()
        self.scenario = scenario
        self._state = _State(scenario, dialects, api_key, max_requests)
        self._httpd = _QuietServer(("127.0.0.1", port), _make_handler(self._state))
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def api_key(self) -> str | None:
        """The key the server expects."""
        return self._state.api_key

    @property
    def port(self) -> int:
        """The port it listens on."""
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def requests(self) -> list[ModelRequest]:
        """Every request received so far (a copy)."""
        with self._state.lock:
            return list(self._state.requests)

    def main_requests(self) -> list[ModelRequest]:
        """The requests that consumed a scenario step."""
        return [r for r in self.requests if r.main]

    def start(self) -> ScriptedModelServer:
        """Serve in a background thread."""
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="scripted-model", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket (a client then gets connection refused)."""
        if self._thread is not None:
            self._httpd.shutdown()  # waits for serve_forever, so only when it runs
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> ScriptedModelServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
