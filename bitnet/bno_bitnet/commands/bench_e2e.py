"""``bitnet bench e2e``: end-to-end generation speed and memory, ours vs dense fp32 vs transformers."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from bno_foundation.cli import print_json


def run(args: argparse.Namespace) -> int:
    """Measure and print (a table, or ``--json``)."""
    from bno_bitnet.bench_e2e import format_report, parse_compare, parse_heads, run_e2e
    from bno_bitnet.errors import ConfigError

    if args.model is None and args.shape is None:
        raise ConfigError("give a MODEL directory or --shape NAME")
    compare = parse_compare(args.compare)

    def log(message: str) -> None:
        if not args.json:
            sys.stderr.write(f"[measuring] {message}\n")
            sys.stderr.flush()

    report = run_e2e(
        shape=args.shape, model_dir=args.model, threads=args.threads, prompt_len=args.prompt_len,
        new_tokens=args.new_tokens, layers=args.layers, compare=compare, compare_layers=args.compare_layers,
        int8_head=args.int8_head, int8_embedding=args.int8_embedding, repeats=args.repeats, seed=args.weights_seed, hf_dtype=args.hf_dtype,
        isolate=not args.same_process, log=log, heads=parse_heads(args.head), busy_core=args.busy_core,
        gguf_heads=[h.strip().lower() for h in args.gguf_head.split(",") if h.strip()],
    )
    if args.json:
        print_json(report.to_json())
    else:
        sys.stdout.write(format_report(report) + "\n")
    return 0


def register_bench(bench_sub: Any) -> None:
    """Add ``bench e2e``."""
    parser = bench_sub.add_parser(
        "e2e", help="generation speed and memory: ours vs a dense fp32 twin vs transformers' BitNet",
        description="Prefill tokens/s, decode tokens/s, time to first token and peak memory of our packed "
                    "model and, on the same weights in the same run, of a dense fp32 torch model and "
                    "transformers' BitNetForCausalLM; ratios printed.",
    )
    parser.add_argument("model", nargs="?", metavar="MODEL", help="a model directory")
    parser.add_argument("--shape", metavar="NAME", help="a random-weight model of a named shape (2b4t, tiny)")
    parser.add_argument("--layers", type=int, metavar="N", help="with --shape: build N layers instead")
    parser.add_argument("--weights-seed", type=int, default=0, metavar="S", help="with --shape: weight seed")
    parser.add_argument("--threads", type=int, metavar="N", help="CPU threads (torch and the kernels)")
    parser.add_argument("--prompt-len", type=int, default=128, metavar="N", help="prompt tokens (default 128)")
    parser.add_argument("--new-tokens", type=int, default=32, metavar="N", help="generated tokens (default 32)")
    parser.add_argument("--repeats", type=int, default=1, metavar="N", help="timed runs per model (median)")
    parser.add_argument("--compare", default="dense,transformers", metavar="LIST",
                        help="baselines: dense, transformers, llama.cpp (the same weights as a TQ2_0 GGUF through "
                             "llama-cpp-python: the bench extra), or none (default dense,transformers)")
    parser.add_argument("--gguf-head", default="f16", metavar="LIST",
                        help="with --compare llama.cpp: the GGUF's embedding/head types, f16, q8_0, q6_k "
                             "(comma list, one llama.cpp row each; default f16)")
    parser.add_argument("--compare-layers", type=int, metavar="N",
                        help="depth of the baselines (default: full depth if the dense twin fits in half "
                             "the available memory); ours is measured at that depth too for the ratios")
    parser.add_argument("--int8-head", action="store_true", help="also measure ours with an int8 head")
    parser.add_argument("--busy-core", type=int, metavar="CORE",
                        help="after the quiet runs, time ours again with a busy process pinned to CORE and report "
                             "the ratio (how the thread runtime copes with another program on the machine)")
    parser.add_argument("--head", default="float", metavar="LIST",
                        help="head precisions of ours to measure: float, int8, q4 (comma list; default float); "
                             "a quantized head's logits error against the float head is reported")
    parser.add_argument("--int8-embedding", action="store_true",
                        help="also measure ours with an int8 head whose table serves the tied embedding too "
                             "(one int8 table instead of a bf16 embedding plus an int8 head)")
    parser.add_argument("--hf-dtype", default="bfloat16", choices=("bfloat16", "float32"),
                        help="dtype of transformers' model (default bfloat16, as the released checkpoint)")
    parser.add_argument("--same-process", action="store_true",
                        help="measure every model in this process (faster; RSS figures then overlap)")
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")
    parser.set_defaults(handler=run)
