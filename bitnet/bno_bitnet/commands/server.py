"""``bitnet serve MODEL``: an OpenAI-compatible HTTP server (``/v1/models``, ``/v1/chat/completions``,
``/v1/completions``, streaming by server-sent events) with continuous batching (docs/serving.md)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from bno_bitnet.commands.generate import add_model_arguments


def run(args: argparse.Namespace) -> int:
    """Load the model, bind, serve until a signal."""
    from bno_bitnet.errors import ConfigError

    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise ConfigError("bitnet serve needs FastAPI and uvicorn: pip install 'bitnet-orchestrator[serve]'") from exc
    for name, value, low in (("--max-batch", args.max_batch, 1), ("--max-queue", args.max_queue, 1),
                             ("--max-tokens", args.max_tokens, 1)):
        if value < low:
            raise ConfigError(f"{name}: must be >= {low}, got {value}")
    if args.timeout <= 0 or args.grace < 0:
        raise ConfigError("--timeout must be > 0 and --grace >= 0")
    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port: must be in 0..65535, got {args.port}")
    from bno_bitnet.commands.generate import load_model, set_threads
    from bno_bitnet.server.app import Limits
    from bno_bitnet.server.runner import Server, announce

    set_threads(args.threads)
    model, tokenizer = load_model(args)
    name = args.model_name or (Path(args.model).resolve().name if args.model else f"bitnet-{args.shape}")
    try:
        server = Server(model, tokenizer, model_name=name, host=args.host, port=args.port, max_batch=args.max_batch,
                        max_queue=args.max_queue, grace=args.grace,
                        limits=Limits(max_body_bytes=args.max_body_bytes, max_tokens=args.max_tokens,
                                      timeout_s=args.timeout))
    except OSError as exc:
        raise ConfigError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from exc
    return server.run(on_ready=announce)


def register(sub: Any) -> None:
    """Add ``serve``."""
    parser = sub.add_parser(
        "serve", help="an OpenAI-compatible HTTP server for a model (continuous batching)",
        description="Serve MODEL over OpenAI's HTTP API: /v1/models, /v1/chat/completions and /v1/completions, "
                    "streamed by server-sent events. Concurrent requests share decode steps. Binds 127.0.0.1 "
                    "unless --host says otherwise; SIGINT/SIGTERM shut it down gracefully.",
    )
    add_model_arguments(parser)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    parser.add_argument("--model-name", metavar="NAME", help="the id /v1/models reports and requests must name "
                                                            "(default: the model directory's name)")
    parser.add_argument("--max-batch", type=int, default=16, metavar="N", help="rows decoded together (default 16)")
    parser.add_argument("--max-queue", type=int, default=64, metavar="N",
                        help="requests waiting for a row; more are refused with 429 (default 64)")
    parser.add_argument("--max-tokens", type=int, default=1024, metavar="N",
                        help="the most new tokens a request may ask for (default 1024)")
    parser.add_argument("--max-body-bytes", type=int, default=1 << 20, metavar="N",
                        help="the largest request body (default 1 MiB; more is refused with 413)")
    parser.add_argument("--timeout", type=float, default=300.0, metavar="S",
                        help="a request's time limit from arrival (default 300 s)")
    parser.add_argument("--grace", type=float, default=10.0, metavar="S",
                        help="on SIGINT/SIGTERM, how long running requests may go on (default 10 s)")
    parser.set_defaults(handler=run)
