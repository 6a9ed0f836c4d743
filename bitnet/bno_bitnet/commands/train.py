"""``bitnet train``: quantization-aware training on the shipped byte corpus (or your text files).

Examples::

    bitnet train --preset tiny --out runs/tiny            # a few minutes on 2 CPU cores
    bitnet train --out runs/tiny --resume                  # continue from the newest checkpoint
    bitnet train --preset tiny --out runs/ddp --nproc 2    # 2 data-parallel processes (gloo)
    torchrun --nproc-per-node 2 -m bno_bitnet.cli train --preset tiny --out runs/ddp
    bitnet generate runs/tiny/model --prompt "It is a truth"

Only rank 0 writes: ``OUT/checkpoints/step-N/``, ``OUT/train_log.jsonl`` (one JSON object per logged
step), ``OUT/train_summary.json`` and, when the planned steps are done, ``OUT/model/`` (a Hugging Face
directory that ``bitnet generate`` loads).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from bno_bitnet.errors import ConfigError
from bno_foundation.cli import EXIT_OK, print_json
from bno_foundation.terminal import visible

# CLI flag -> TrainConfig field (None on the command line means "not given")
_TRAIN_FLAGS: dict[str, str] = {
    "steps": "steps", "batch_size": "batch_size", "seq_len": "seq_len", "lr": "peak_lr",
    "stage2_lr": "stage2_lr", "final_lr": "final_lr", "warmup": "warmup_steps", "stage_split": "stage_split",
    "schedule": "schedule_shape", "weight_decay": "weight_decay", "grad_clip": "grad_clip", "seed": "seed",
    "stride": "stride", "val_fraction": "val_fraction", "log_every": "log_every", "eval_every": "eval_every",
    "eval_batches": "eval_batches", "checkpoint_every": "checkpoint_every", "keep": "keep_checkpoints",
    "export_form": "export_form",
}
_MODEL_FLAGS: dict[str, str] = {
    "hidden_size": "hidden_size", "intermediate_size": "intermediate_size", "layers": "num_hidden_layers",
    "heads": "num_attention_heads", "kv_heads": "num_key_value_heads",
}


def _overrides(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    train = {field: getattr(args, flag) for flag, field in _TRAIN_FLAGS.items() if getattr(args, flag) is not None}
    model = {field: getattr(args, flag) for flag, field in _MODEL_FLAGS.items() if getattr(args, flag) is not None}
    return train, model


def _corpus_paths(values: list[str] | None) -> list[Path] | None:
    from bno_bitnet.data import corpus_files

    if not values:
        return None
    paths: list[Path] = []
    for value in values:
        p = Path(value)
        if p.is_dir():
            paths.extend(corpus_files(p))
        elif p.is_file():
            paths.append(p)
        else:
            raise ConfigError(f"--corpus {value}: no such file or directory")
    return paths


def build_config(args: argparse.Namespace) -> tuple[Any, Any]:
    """The run's :class:`~bno_bitnet.training.config.TrainConfig` and the checkpoint to resume from (or
    None)."""
    from bno_bitnet.training.checkpoint import load_checkpoint
    from bno_bitnet.training.config import make_config, preset_config, shape_from_model_dir

    train_over, model_over = _overrides(args)
    if args.init is not None:
        if args.resume is not None:
            raise ConfigError("--init and --resume: give one or the other")
        model_over = {**shape_from_model_dir(args.init), **model_over}
    loaded = None
    if args.resume is not None:
        loaded = load_checkpoint(args.out if args.resume == "" else args.resume)
    if args.preset is not None or loaded is None:
        config = preset_config(args.preset or "tiny", model=model_over, **train_over)
    else:
        data = loaded.config.model_dump(mode="json")
        data["model"] = {**data["model"], **model_over}
        data.update(train_over)
        config = make_config(data, source="--resume config with command-line overrides")
    return config, loaded


def run(args: argparse.Namespace) -> int:
    from bno_bitnet.training.config import PRESETS, check_resume_compatible, preset_config
    from bno_bitnet.training.loop import launch, train

    if args.list_presets:
        rows = {name: preset_config(name).model_dump(mode="json") for name in sorted(PRESETS)}
        if args.json:
            print_json(rows)
        else:
            for name, cfg in rows.items():
                m = cfg["model"]
                print(f"{name:6s} hidden {m['hidden_size']}, {m['num_hidden_layers']} layers, "
                      f"{m['num_attention_heads']}/{m['num_key_value_heads']} heads, seq {cfg['seq_len']}, "
                      f"batch {cfg['batch_size']}, {cfg['steps']} steps, peak lr {cfg['peak_lr']}")
        return EXIT_OK
    if args.out is None:
        raise ConfigError("--out: required (the run's output directory)")
    if args.nproc < 1:
        raise ConfigError(f"--nproc: must be >= 1, got {args.nproc}")
    if args.threads is not None and args.threads < 1:
        raise ConfigError(f"--threads: must be >= 1, got {args.threads}")
    config, loaded = build_config(args)
    corpus = _corpus_paths(args.corpus)
    kwargs: dict[str, Any] = {"init_from": args.init, "until_step": args.until_step, "overwrite": args.overwrite,
                              "progress": not args.no_progress and not args.json, "corpus_paths": corpus}
    env_world = int(os.environ.get("WORLD_SIZE", "1"))
    if env_world > 1:  # launched by torchrun: this process is one rank
        if args.nproc > 1:
            raise ConfigError("--nproc: do not combine with torchrun (it already started the processes)")
        import torch
        import torch.distributed as dist

        if loaded is not None:
            check_resume_compatible(loaded.config, config, source=str(loaded.path))
        torch.set_num_threads(args.threads or max(1, (os.cpu_count() or 1) // env_world))
        dist.init_process_group("gloo", init_method="env://")
        try:
            result = train(config, args.out, resume=loaded, **kwargs)
        finally:
            dist.destroy_process_group()
        if int(os.environ.get("RANK", "0")) != 0:
            return EXIT_OK  # rank 0 reports
    else:
        if args.threads is not None and args.nproc == 1:
            import torch

            torch.set_num_threads(args.threads)
        result = launch(config, args.out, nproc=args.nproc, resume=loaded, threads_per_process=args.threads,
                        **kwargs)
    summary = result.to_json()
    summary.pop("losses")
    if args.json:
        print_json(summary)
        return EXIT_OK
    took = result.seconds
    tok_s = result.tokens / took if took > 0 else 0.0
    print(f"trained steps {result.start_step}..{result.end_step} of {result.total_steps} "
          f"({result.world_size} process{'es' if result.world_size > 1 else ''}) in {took:.1f} s, "
          f"{tok_s:,.0f} tokens/s")
    if result.losses:
        print(f"loss: first {result.first_loss:.4f}, last {result.last_loss:.4f}")
    for step, val in sorted(result.val_losses.items()):
        print(f"validation loss at step {step}: {val:.4f}")
    if result.replicas_identical is not None:
        print(f"ranks ended with identical weights: {'yes' if result.replicas_identical else 'NO'}")
    if result.checkpoint:
        print(visible(f"checkpoint: {result.checkpoint}"))
    if result.model_dir:
        print(visible(f"model: {result.model_dir}  (try: bitnet generate {result.model_dir})"))
    else:
        print(f"stopped before the planned {result.total_steps} steps; continue with: "
              f"bitnet train --out {args.out} --resume")
    return EXIT_OK


def register(sub: Any) -> None:
    parser = sub.add_parser("train", help="quantization-aware training (b1.58 schedule, checkpoints, DDP)",
                            description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", "-o", help="output directory (checkpoints, loss log, exported model)")
    parser.add_argument("--preset", help="tiny (default), test or small; with --resume: checked against it")
    parser.add_argument("--list-presets", action="store_true", help="print the presets and exit")
    parser.add_argument("--resume", nargs="?", const="", default=None, metavar="CHECKPOINT",
                        help="continue from a checkpoint directory (default: the newest in --out)")
    parser.add_argument("--init", type=Path, metavar="MODEL_DIR",
                        help="start from the latent weights of a Hugging Face model directory")
    parser.add_argument("--overwrite", action="store_true",
                        help="start a fresh run in an output directory that holds checkpoints (deletes them)")
    parser.add_argument("--until-step", type=int, metavar="N",
                        help="stop with a checkpoint after step N (the schedule still plans --steps)")
    parser.add_argument("--nproc", type=int, default=1, help="data-parallel processes on this machine (gloo)")
    parser.add_argument("--threads", type=int, metavar="N",
                        help="torch CPU threads per process (default: torch's choice; cores / nproc with --nproc)")
    parser.add_argument("--corpus", action="append", metavar="PATH",
                        help="a .txt/.txt.gz file or a directory of them (repeatable; default: shipped corpus)")
    group = parser.add_argument_group("training settings (default: the preset's)")
    group.add_argument("--steps", type=int, help="planned optimizer steps")
    group.add_argument("--batch-size", type=int, help="sequences per process per step")
    group.add_argument("--seq-len", type=int, help="tokens (bytes) per sequence")
    group.add_argument("--lr", type=float, help="stage-1 peak learning rate")
    group.add_argument("--stage2-lr", type=float, help="learning rate right after the mid-run drop")
    group.add_argument("--final-lr", type=float, help="learning rate at the last step")
    group.add_argument("--warmup", type=int, help="linear warmup steps")
    group.add_argument("--stage-split", type=float, help="fraction of the run where stage 2 starts (0.5)")
    group.add_argument("--schedule", choices=("cosine", "linear"), help="decay shape within each stage")
    group.add_argument("--weight-decay", type=float, help="stage-1 weight decay (stage 2 uses 0)")
    group.add_argument("--grad-clip", type=float, help="max global gradient norm (0: off)")
    group.add_argument("--seed", type=int, help="seed of the initialization and the data order")
    group.add_argument("--stride", type=int, help="distance between training windows (default: seq len)")
    group.add_argument("--val-fraction", type=float, help="tail of each document held out for validation")
    group.add_argument("--log-every", type=int, help="steps between loss-log lines")
    group.add_argument("--eval-every", type=int, help="steps between validation losses (0: at the end)")
    group.add_argument("--eval-batches", type=int, help="batches per validation")
    group.add_argument("--checkpoint-every", type=int, help="steps between checkpoints (0: at the end)")
    group.add_argument("--keep", type=int, help="checkpoints kept")
    group.add_argument("--export-form", choices=("latent", "packed"), help="form of the exported model")
    mgroup = parser.add_argument_group("model shape (default: the preset's)")
    mgroup.add_argument("--hidden-size", type=int)
    mgroup.add_argument("--intermediate-size", type=int)
    mgroup.add_argument("--layers", type=int)
    mgroup.add_argument("--heads", type=int)
    mgroup.add_argument("--kv-heads", type=int)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--json", action="store_true", help="print the run summary as JSON")
    parser.set_defaults(handler=run)
