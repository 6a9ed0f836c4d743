"""``bitnet bench serve``: continuous batching measured through the HTTP API with the openai client.

One run: the server starts on 127.0.0.1 (a free port) with the model; one stream runs alone, then N
streams run at once; each stream asks for the same number of tokens, greedy, so every concurrent stream
must equal its prompt's output alone (checked). Printed: tokens per second of one stream, aggregate tokens
per second of the N streams, their ratio, and the most rows one decode step carried.
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bno_bitnet.commands.generate import add_model_arguments
from bno_foundation.cli import print_json


def run(args: argparse.Namespace) -> int:
    """Measure and print."""
    from bno_bitnet.errors import ConfigError

    if args.streams < 1 or args.tokens < 1:
        raise ConfigError("--streams and --tokens must be >= 1")
    try:
        import openai
    except ImportError as exc:
        raise ConfigError("bitnet bench serve drives the server with the openai client: pip install openai") from exc
    from bno_bitnet.commands.generate import load_model, set_threads
    from bno_bitnet.server.app import Limits
    from bno_bitnet.server.runner import Server

    set_threads(args.threads)
    model, tokenizer = load_model(args)
    context = int(model.config.max_position_embeddings)
    if args.tokens + 16 > context:
        raise ConfigError(f"--tokens: {args.tokens} new tokens do not fit the model's context of {context}")
    server = Server(model, tokenizer, model_name="bench", max_batch=max(args.streams, 1),
                    max_queue=args.streams + 1, limits=Limits(max_tokens=args.tokens, timeout_s=3600.0))
    prompts = [f"Request {i}: tell me about ternary weights." for i in range(args.streams)]

    def stream(i: int) -> tuple[str, int, float]:
        client = openai.OpenAI(base_url=server.url, api_key="bench", max_retries=0, timeout=3600)
        t0 = time.perf_counter()
        chunks = client.completions.create(model="bench", prompt=prompts[i], max_tokens=args.tokens, temperature=0,
                                           stream=True, stream_options={"include_usage": True})
        text, tokens = "", 0
        for chunk in chunks:
            if chunk.choices:
                text += chunk.choices[0].text
            if chunk.usage is not None:
                tokens = chunk.usage.completion_tokens
        return text, tokens, time.perf_counter() - t0

    with server.running():
        stream(0)  # warm-up
        alone = [stream(i) for i in range(args.streams)]
        server.scheduler.stats.max_rows_in_step = 0
        t0 = time.perf_counter()
        with ThreadPoolExecutor(max_workers=args.streams) as pool:
            together = list(pool.map(stream, range(args.streams)))
        wall = time.perf_counter() - t0
        rows = server.scheduler.stats.max_rows_in_step
    single = alone[0][1] / alone[0][2]
    aggregate = sum(t[1] for t in together) / wall
    result = {
        "streams": args.streams, "tokens_per_stream": args.tokens, "threads": args.threads,
        "single_stream_tokens_per_s": single, "aggregate_tokens_per_s": aggregate,
        "aggregate_vs_single": aggregate / single if single > 0 else 0.0,
        "max_rows_in_one_step": rows,
        "identical_to_sequential": [t[0] for t in together] == [a[0] for a in alone],
        "all_complete": all(t[1] > 0 for t in together),
    }
    if args.json:
        print_json(result)
    else:
        sys.stdout.write(
            f"bitnet bench serve: {args.streams} concurrent streams of {args.tokens} tokens (greedy) over HTTP\n"
            f"  one stream alone:       {single:8.1f} tokens/s\n"
            f"  {args.streams} streams together:  {aggregate:8.1f} tokens/s aggregate "
            f"({result['aggregate_vs_single']:.2f}x one stream; up to {rows} rows per decode step)\n"
            f"  every stream complete: {result['all_complete']}; identical to its output alone: "
            f"{result['identical_to_sequential']}\n")
    return 0 if result["identical_to_sequential"] and result["all_complete"] else 1


def register_bench(bench_sub: Any) -> None:
    """Add ``bench serve``."""
    parser = bench_sub.add_parser(
        "serve", help="bitnet serve under concurrent streams: aggregate tokens/s against one stream",
        description="Start the OpenAI-compatible server, run one stream alone then N at once through the openai "
                    "client, check each concurrent stream equals its output alone, print the ratio.",
    )
    add_model_arguments(parser)
    parser.add_argument("--streams", type=int, default=16, metavar="N", help="concurrent streams (default 16)")
    parser.add_argument("--tokens", type=int, default=64, metavar="N", help="tokens per stream (default 64)")
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")
    parser.set_defaults(handler=run)
