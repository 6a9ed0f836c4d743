"""``bitnet info DIR`` and ``bitnet convert SRC DST --to packed|latent``: inspect and convert checkpoints."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from bno_foundation.cli import EXIT_OK, print_json
from bno_foundation.terminal import visible

_WEIGHT_FILES = ("config.json", "model.safetensors.index.json")
_DTYPES = ("float32", "bfloat16", "float16")


def _dtype(name: str | None, fallback: Any) -> Any:
    import torch

    if name is None:
        return fallback if fallback is not None else torch.float32
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


def checkpoint_report(path: Path, *, lm_head_int8: bool = False, dtype_name: str | None = None) -> dict[str, Any]:
    """Everything ``bitnet info`` shows, as a JSON-ready dict (loads the model in inference mode)."""
    from bno_bitnet.hf import from_pretrained, inspect_checkpoint
    from bno_bitnet.layers import BitLinear

    info = inspect_checkpoint(path)
    dtype = _dtype(dtype_name, info.declared_dtype)
    model = from_pretrained(path, mode="inference", dtype=dtype, lm_head_int8=lm_head_int8)
    counts = model.parameter_counts()
    resident = model.memory_report()
    layouts = sorted({m.packed.layout for m in model.modules() if isinstance(m, BitLinear) and m.packed is not None})
    ternary = counts["ternary"]
    file_bytes = sum(f.stat().st_size for f in info.files)
    return {
        "path": str(info.path),
        "format": info.form,
        "files": [f.name for f in info.files],
        "file_bytes": file_bytes,
        "config": {k: v for k, v in info.config.to_dict().items() if k != "extra"},
        "dtype": str(dtype).removeprefix("torch."),
        "parameters": {**counts, "total": sum(counts.values())},
        "resident_bytes": {**resident, "total": sum(resident.values())},
        "bits_per_ternary_weight": 8.0 * resident["ternary_packed"] / ternary,
        "bits_per_ternary_weight_with_scales": 8.0 * (resident["ternary_packed"] + resident["ternary_scales"])
        / ternary,
        "kernel_layouts": layouts,
        "lm_head_int8": lm_head_int8,
    }


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    return f"{n:.2f} GiB"


def run_info(args: argparse.Namespace) -> int:
    report = checkpoint_report(Path(args.dir), lm_head_int8=args.lm_head_int8, dtype_name=args.dtype)
    if args.json:
        print_json(report)
        return EXIT_OK
    c = report["config"]
    lines = [
        f"{report['path']}",
        f"  format      {report['format']}  ({len(report['files'])} file(s), {_human(report['file_bytes'])})",
        f"  shape       vocab {c['vocab_size']}, hidden {c['hidden_size']}, intermediate {c['intermediate_size']}, "
        f"layers {c['num_hidden_layers']}, heads {c['num_attention_heads']}/{c['num_key_value_heads']} "
        f"(head_dim {c['head_dim']}), rope theta {c['rope_theta']:g}, "
        f"{'tied' if c['tie_word_embeddings'] else 'untied'} embeddings",
        "  parameters",
    ]
    lines += [f"    {k:<12}{v:>16,}" for k, v in report["parameters"].items()]
    lines.append(f"  resident bytes after loading ({report['dtype']}, layouts {', '.join(report['kernel_layouts'])})")
    lines += [f"    {k:<16}{_human(v):>14}" for k, v in report["resident_bytes"].items() if v or k == "total"]
    lines.append(
        f"  ternary weights: {report['bits_per_ternary_weight']:.3f} bits/weight packed, "
        f"{report['bits_per_ternary_weight_with_scales']:.3f} with scales"
    )
    print(visible("\n".join(lines)))  # names and paths from the model's files: controls shown, never obeyed
    return EXIT_OK


def run_convert(args: argparse.Namespace) -> int:
    from bno_bitnet.hf import from_pretrained, inspect_checkpoint, save_pretrained

    src, dst = Path(args.src), Path(args.dst)
    info = inspect_checkpoint(src)
    dtype = _dtype(args.dtype, info.declared_dtype)
    if dst.exists() and not args.force:
        from bno_bitnet.errors import BitNetError

        raise BitNetError(f"{dst}: already exists (pass --force to replace it)")
    model = from_pretrained(src, mode="inference", dtype=dtype)
    weight_files = {f.resolve() for f in info.files}
    extra = [
        f for f in sorted(src.iterdir())
        if f.is_file() and f.name not in _WEIGHT_FILES and f.resolve() not in weight_files
        and not f.name.endswith(".safetensors")
    ]
    out = save_pretrained(
        model, dst, form=args.to, linear_class=args.linear_class, overwrite=args.force,
        max_shard_bytes=args.max_shard_bytes, extra_files=extra,
    )
    written = inspect_checkpoint(out)
    result: dict[str, Any] = {
        "src": str(src), "src_format": info.form, "dst": str(out), "dst_format": written.form,
        "files": [f.name for f in written.files], "copied": [f.name for f in extra],
        "file_bytes": sum(f.stat().st_size for f in written.files),
    }
    if args.json:
        print_json(result)
    else:
        print(visible(f"wrote {out} ({result['dst_format']}, {len(result['files'])} file(s), "
                      f"{_human(result['file_bytes'])}) from {src} ({info.form})"))
    return EXIT_OK


def register(sub: Any) -> None:
    info = sub.add_parser("info", help="show a model directory's format, config, parameter counts and memory")
    info.add_argument("dir", help="a Hugging Face BitNet model directory (config.json + safetensors)")
    info.add_argument("--json", action="store_true", help="print machine-readable JSON")
    info.add_argument("--lm-head-int8", action="store_true", help="account for the per-row int8 head")
    info.add_argument("--dtype", choices=_DTYPES, default=None,
                      help="dtype of embeddings/norms/head (default: the checkpoint's, else float32)")
    info.set_defaults(handler=run_info)

    conv = sub.add_parser("convert", help="convert a model directory between the packed and latent forms")
    conv.add_argument("src", help="source model directory")
    conv.add_argument("dst", help="destination directory (written atomically)")
    conv.add_argument("--to", choices=("packed", "latent"), required=True, help="target form")
    conv.add_argument("--linear-class", choices=("autobitlinear", "bitlinear"), default="autobitlinear",
                      help="packed form: autobitlinear stores beta (multiplies), bitlinear stores 1/beta")
    conv.add_argument("--dtype", choices=_DTYPES, default=None,
                      help="dtype of the float tensors written (default: the source's, else float32)")
    conv.add_argument("--max-shard-bytes", type=int, default=None, help="split into shards of about this size")
    conv.add_argument("--force", action="store_true", help="replace DST if it exists")
    conv.add_argument("--json", action="store_true", help="print machine-readable JSON")
    conv.set_defaults(handler=run_convert)
