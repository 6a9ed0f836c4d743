"""``bitnet generate`` (one-shot, batched or streamed) and ``bitnet chat`` (an interactive conversation).

The model is a Hugging Face-style directory (``MODEL``, loaded with :func:`bno_bitnet.hf.from_pretrained`) or
a random-weight model of a named shape (``--shape 2b4t``, see :mod:`bno_bitnet.shapes`), whose output is
noise but whose speed is real.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from bno_bitnet.errors import CheckpointError, ConfigError, ContextLengthError
from bno_foundation.cli import print_json
from bno_foundation.terminal import visible

if TYPE_CHECKING:
    from bno_bitnet.engine import Engine
    from bno_bitnet.sampling import GenerationConfig


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """MODEL | --shape NAME [--layers N] [--seed-weights S], --threads, --head / --int8-head."""
    parser.add_argument("model", nargs="?", metavar="MODEL", help="model directory (config.json + weights)")
    parser.add_argument("--shape", metavar="NAME",
                        help="build a random-weight model of a named shape in memory instead (e.g. 2b4t, tiny)")
    parser.add_argument("--layers", type=int, metavar="N", help="with --shape: use N layers instead of the shape's")
    parser.add_argument("--weights-seed", type=int, default=0, metavar="S", help="with --shape: weight seed (default 0)")
    parser.add_argument("--threads", type=int, metavar="N", help="CPU threads for torch and the kernels")
    parser.add_argument("--int8-head", action="store_true",
                        help="quantize the output head (and the tied embedding) to int8 per row (= --head int8)")
    parser.add_argument("--head", choices=("float", "int8", "q4"), default=None,
                        help="precision of the output head: float (as stored), int8 per row (its table also "
                             "serves a tied embedding), q4 (4-bit, groups of 32: fewest bytes per token)")


def add_sampling_arguments(parser: argparse.ArgumentParser, *, default_max_new: int = 64) -> None:
    """The :class:`~bno_bitnet.sampling.GenerationConfig` options."""
    group = parser.add_argument_group("sampling")
    group.add_argument("--max-new-tokens", type=int, default=default_max_new, metavar="N")
    group.add_argument("--temperature", type=float, default=0.0, metavar="T", help="0 = greedy (default)")
    group.add_argument("--top-k", type=int, default=0, metavar="K", help="0 = off")
    group.add_argument("--top-p", type=float, default=1.0, metavar="P", help="1 = off")
    group.add_argument("--repetition-penalty", type=float, default=1.0, metavar="R", help="1 = off")
    group.add_argument("--seed", type=int, metavar="S", help="sampling seed (same seed, same output)")
    group.add_argument("--stop-token-id", type=int, action="append", default=[], metavar="ID",
                       help="stop a row at this token id (repeatable)")
    group.add_argument("--ignore-eos", action="store_true", help="do not stop at the tokenizer's EOS")


def generation_config(args: argparse.Namespace) -> GenerationConfig:
    """The GenerationConfig of parsed arguments (validated: a bad value names its option)."""
    from bno_bitnet.sampling import GenerationConfig

    try:
        return GenerationConfig(
            max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_k=args.top_k,
            top_p=args.top_p, repetition_penalty=args.repetition_penalty, seed=args.seed,
            stop_token_ids=tuple(args.stop_token_id), stop_at_eos=not args.ignore_eos,
        )
    except ConfigError as exc:
        # GenerationConfig.top_k -> --top-k
        message = str(exc).replace("GenerationConfig.top_k/top_p", "--top-k/--top-p")
        for field in ("max_new_tokens", "temperature", "top_k", "top_p", "repetition_penalty", "seed",
                      "stop_token_ids"):
            option = "--stop-token-id" if field == "stop_token_ids" else "--" + field.replace("_", "-")
            message = message.replace(f"GenerationConfig.{field}", option)
        raise ConfigError(message) from exc


def set_threads(threads: int | None) -> None:
    """Use ``threads`` CPU threads (torch intra-op; the native kernel follows torch's setting)."""
    if threads is None:
        return
    if threads < 1:
        raise ConfigError(f"--threads: must be >= 1, got {threads}")
    import torch

    torch.set_num_threads(threads)


def load_model(args: argparse.Namespace) -> tuple[Any, Any]:
    """(model, tokenizer) from MODEL or --shape; clear errors for a missing or corrupt directory."""
    from bno_bitnet.tokenizer import ByteTokenizer, load_tokenizer

    if args.model is not None and args.shape is not None:
        raise ConfigError("give either MODEL or --shape, not both")
    if args.shape is not None:
        from bno_bitnet.shapes import build_random_model

        model = build_random_model(args.shape, layers=args.layers, seed=args.weights_seed)
        tokenizer: Any = ByteTokenizer()
    elif args.model is not None:
        if args.layers is not None:
            raise ConfigError("--layers only applies with --shape")
        path = Path(args.model)
        if not path.exists():
            raise CheckpointError(f"{path}: model directory not found")
        if not path.is_dir():
            raise CheckpointError(f"{path}: not a directory (expected a model directory with config.json)")
        if not (path / "config.json").is_file():
            raise CheckpointError(f"{path / 'config.json'}: missing (not a model directory?)")

        import torch

        from bno_bitnet.hf import from_pretrained

        # fp32 activations, half-size embedding table
        model = from_pretrained(path, mode="inference", embed_dtype=torch.bfloat16)
        tokenizer = load_tokenizer(path)
    else:
        raise ConfigError("give a MODEL directory or --shape NAME")
    head = args.head or ("int8" if args.int8_head else "float")
    if args.int8_head and head != "int8":
        raise ConfigError(f"--int8-head and --head {head} disagree: give one of them")
    if head != "float":
        model.quantize_head(head, int8_embedding=head == "int8" and model.config.tie_word_embeddings)
    return model, tokenizer


def make_engine(args: argparse.Namespace) -> Engine:
    """Threads, model, tokenizer, engine."""
    from bno_bitnet.engine import Engine

    set_threads(args.threads)
    model, tokenizer = load_model(args)
    return Engine(model, tokenizer)


def run_generate(args: argparse.Namespace) -> int:
    """``bitnet generate``."""
    cfg = generation_config(args)
    prompts: list[str] = list(args.prompt)
    if not prompts:
        raise ConfigError("--prompt: give at least one prompt")
    if args.stream and len(prompts) > 1:
        raise ConfigError("--stream: streams one prompt; give a single --prompt")
    if args.stream and args.json:
        raise ConfigError("--stream and --json do not combine (JSON needs the whole result)")
    engine = make_engine(args)
    out: TextIO = sys.stdout
    if args.stream:
        for event in engine.stream(prompts, cfg):
            out.write(visible(event.text))  # model output: its control characters shown, never obeyed
            out.flush()
        out.write("\n")
        out.flush()
        _print_stats(engine, sys.stderr)
        return 0
    results = engine.generate(prompts, cfg)
    stats = engine.last_stats
    if args.json:
        print_json({
            "results": [
                {"prompt": p, "prompt_tokens": len(r.prompt_ids), "token_ids": r.token_ids, "text": r.text,
                 "finish_reason": r.finish_reason}
                for p, r in zip(prompts, results, strict=True)
            ],
            "stats": {
                "prompt_tokens": stats.prompt_tokens, "generated_tokens": stats.generated_tokens,
                "time_to_first_token_s": stats.time_to_first_token_s, "prefill_s": stats.prefill_s,
                "decode_s": stats.decode_s, "prefill_tokens_per_s": stats.prefill_tokens_per_s,
                "decode_tokens_per_s": stats.decode_tokens_per_s,
            },
        })
        return 0
    for i, result in enumerate(results):
        if len(results) > 1:
            out.write(f"--- [{i}] ({result.finish_reason}, {len(result.token_ids)} tokens)\n")
        out.write(visible(result.text) + "\n")
    out.flush()
    _print_stats(engine, sys.stderr)
    return 0


def _print_stats(engine: Engine, err: TextIO) -> None:
    s = engine.last_stats
    err.write(
        f"[{s.generated_tokens} tokens; time to first token {s.time_to_first_token_s * 1000:.0f} ms; "
        f"prefill {s.prefill_tokens_per_s:.1f} tok/s; decode {s.decode_tokens_per_s:.1f} tok/s]\n"
    )


def run_chat(args: argparse.Namespace) -> int:
    """``bitnet chat``: read a line, stream the reply, keep the conversation; /reset, /exit or EOF."""
    cfg = generation_config(args)
    engine = make_engine(args)
    stdin: TextIO = sys.stdin
    out: TextIO = sys.stdout
    interactive = stdin.isatty()
    system = [{"role": "system", "content": args.system}] if args.system else []
    history: list[dict[str, str]] = []
    if interactive:
        out.write("bitnet chat: /reset clears the conversation, /exit (or Ctrl-D) quits\n")
    while True:
        if interactive:
            out.write("you> ")
            out.flush()
        line = stdin.readline()
        if not line:
            break
        message = line.rstrip("\n")
        if not message.strip():
            continue
        if message.strip() in ("/exit", "/quit"):
            break
        if message.strip() == "/reset":
            history.clear()
            out.write("[conversation cleared]\n")
            continue
        history.append({"role": "user", "content": message})
        reply = _chat_turn(engine, cfg, system, history, out)
        if reply is None:
            history.pop()
            continue
        history.append({"role": "assistant", "content": reply})
    return 0


def _chat_turn(engine: Engine, cfg: GenerationConfig, system: list[dict[str, str]],
               history: list[dict[str, str]], out: TextIO) -> str | None:
    """Stream one reply; drop the oldest turns when the conversation outgrows the context."""
    while True:
        prompt = engine.tokenizer.apply_chat_template(system + history)
        try:
            events = engine.stream([prompt], cfg)
        except ContextLengthError:
            if len(history) > 1:
                del history[:2 if len(history) > 2 else 1]  # the oldest user/assistant pair
                continue
            out.write("[error: this message alone is longer than the model's context]\n")
            return None
        break
    out.write("bitnet> ")
    pieces = []
    for event in events:
        out.write(event.text)
        out.flush()
        pieces.append(event.text)
    out.write("\n")
    out.flush()
    return "".join(pieces)


def register(sub: Any) -> None:
    """Add ``generate`` and ``chat``."""
    gen = sub.add_parser("generate", help="generate text from prompts (batched, or streamed)")
    add_model_arguments(gen)
    gen.add_argument("--prompt", action="append", default=[], metavar="TEXT",
                     help="a prompt (repeat for a batch)")
    gen.add_argument("--stream", action="store_true", help="print tokens as they are produced")
    gen.add_argument("--json", action="store_true", help="print machine-readable JSON")
    add_sampling_arguments(gen)
    gen.set_defaults(handler=run_generate)

    chat = sub.add_parser("chat", help="an interactive conversation (reads stdin)")
    add_model_arguments(chat)
    chat.add_argument("--system", metavar="TEXT", help="a system message put before the conversation")
    add_sampling_arguments(chat, default_max_new=256)
    chat.set_defaults(handler=run_chat)
