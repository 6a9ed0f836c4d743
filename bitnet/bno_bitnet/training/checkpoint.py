"""Training checkpoints: atomic, hash-checked, resumable exactly, and only the newest few kept.

A checkpoint is a directory ``CHECKPOINTS_SUBDIR/step-NNNNNNNN/`` holding ``state.pt`` (``torch.save`` of
the model, optimizer, sampler and RNG states) and ``meta.json`` (the training config, its hash, the world
size and the state file's sha256). It is built in a temporary sibling and swapped in whole
(:mod:`bno_foundation.atomic`), so a killed run leaves the complete new checkpoint or none.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bno_bitnet.errors import CheckpointError
from bno_bitnet.training.config import TrainConfig, check_resume_compatible, config_hash, make_config
from bno_foundation.atomic import atomic_write, fsync_dir, staged_directory, swap_directory

CHECKPOINT_FORMAT = "bitnet-train-checkpoint"
# 2: the model state holds fused projections (self_attn.qkv_proj, mlp.gate_up_proj); version 1 held
# transformers' separate q/k/v and gate/up weights.
CHECKPOINT_VERSION = 2
CHECKPOINTS_SUBDIR = "checkpoints"
STATE_FILE = "state.pt"
META_FILE = "meta.json"


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_json(path: Path, data: Any) -> None:
    """Indented, key-sorted JSON written atomically (:func:`bno_foundation.atomic.atomic_write`)."""
    atomic_write(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def checkpoint_name(step: int) -> str:
    """Directory name of the checkpoint taken after ``step`` optimizer steps."""
    return f"step-{step:08d}"


def save_checkpoint(checkpoints_dir: Path, step: int, state: dict[str, Any], meta: dict[str, Any],
                    *, keep: int = 2) -> Path:
    """Write ``state`` (torch.save) and ``meta`` (JSON, with the state file's sha256) as one checkpoint.

    The checkpoint is built in a temporary directory beside the others, each file fsynced, and swapped
    into place in one step (re-saving a step replaces the old directory), so a killed run leaves either the
    complete new checkpoint or none (the previous ones stay intact). Afterwards only the newest ``keep``
    checkpoints are kept.
    """
    import torch

    checkpoints_dir.mkdir(parents=True, exist_ok=True)
    final = checkpoints_dir / checkpoint_name(step)
    with staged_directory(final) as tmp:
        state_path = tmp / STATE_FILE
        with state_path.open("wb") as fh:
            torch.save(state, fh)
            fh.flush()
            os.fsync(fh.fileno())
        full_meta = {**meta, "format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "step": step,
                     "state_sha256": _sha256_file(state_path), "state_bytes": state_path.stat().st_size}
        write_json(tmp / META_FILE, full_meta)
        fsync_dir(tmp)
        swap_directory(tmp, final, overwrite=True)
    for stale in list_checkpoints(checkpoints_dir)[:-keep]:
        shutil.rmtree(stale, ignore_errors=True)
    return final


def list_checkpoints(checkpoints_dir: Path) -> list[Path]:
    """Complete checkpoint directories (``step-NNNNNNNN`` with a meta file), oldest first."""
    if not checkpoints_dir.is_dir():
        return []
    found = [p for p in checkpoints_dir.iterdir()
             if p.is_dir() and p.name.startswith("step-") and p.name[5:].isdigit()]
    return sorted(found, key=lambda p: int(p.name[5:]))


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint directory from what a user names: the checkpoint itself, or a run's output directory
    (its newest checkpoint)."""
    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"{p}: no such checkpoint or output directory")
    if (p / META_FILE).is_file() or (p / STATE_FILE).is_file():
        return p
    for base in (p / CHECKPOINTS_SUBDIR, p):
        found = list_checkpoints(base)
        if found:
            return found[-1]
    raise CheckpointError(f"{p}: holds no checkpoint (expected {CHECKPOINTS_SUBDIR}/step-*/{META_FILE})")


@dataclass
class LoadedCheckpoint:
    """A verified checkpoint: its metadata, its state and the training config it was made with."""

    path: Path
    meta: dict[str, Any]
    state: dict[str, Any]
    config: TrainConfig

    @property
    def step(self) -> int:
        """Optimizer steps taken when it was written."""
        return int(self.meta["step"])


def read_checkpoint_meta(path: Path) -> dict[str, Any]:
    """The meta file of a checkpoint directory, checked for format and fields."""
    meta_path = path / META_FILE
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise CheckpointError(f"{meta_path}: missing (an incomplete or foreign checkpoint)") from exc
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{meta_path}: line {exc.lineno}: corrupt JSON ({exc.msg})") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{meta_path}: cannot read ({exc})") from exc
    if not isinstance(meta, dict) or meta.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{meta_path}: format: not a {CHECKPOINT_FORMAT} file")
    if meta.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(f"{meta_path}: version: {meta.get('version')!r}, this build reads "
                              f"{CHECKPOINT_VERSION}")
    for key in ("step", "state_sha256", "config", "config_hash", "world_size"):
        if key not in meta:
            raise CheckpointError(f"{meta_path}: {key}: missing field")
    return meta


def load_checkpoint(path: str | Path) -> LoadedCheckpoint:
    """Read and verify a checkpoint (or a run directory's newest one).

    Raises :class:`CheckpointError` naming the file when it is missing, truncated or altered (its
    sha256 differs from the one recorded when it was written) or not a training checkpoint.
    """
    import torch

    ckpt = resolve_checkpoint(path)
    meta = read_checkpoint_meta(ckpt)
    state_path = ckpt / STATE_FILE
    if not state_path.is_file():
        raise CheckpointError(f"{state_path}: missing")
    digest = _sha256_file(state_path)
    if digest != meta["state_sha256"]:
        older = [p.name for p in list_checkpoints(ckpt.parent) if p != ckpt]
        hint = (f"resume from an older checkpoint instead: --resume {ckpt.parent / older[-1]}" if older
                else "no older checkpoint to fall back on")
        raise CheckpointError(
            f"{state_path}: corrupt (sha256 {digest[:12]}... differs from {meta['state_sha256'][:12]}... "
            f"recorded in {META_FILE}; size {state_path.stat().st_size} bytes, recorded "
            f"{meta.get('state_bytes')}); {hint}"
        )
    try:
        state = torch.load(state_path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for unreadable archives
        raise CheckpointError(f"{state_path}: cannot be read ({type(exc).__name__}: {exc})") from exc
    for key in ("model", "optimizer", "sampler", "rng"):
        if key not in state:
            raise CheckpointError(f"{state_path}: {key}: missing from the checkpoint state")
    config = make_config(meta["config"], source=f"{ckpt / META_FILE}: config")
    if config_hash(config) != meta["config_hash"]:
        raise CheckpointError(f"{ckpt / META_FILE}: config_hash does not match its config (file edited?)")
    return LoadedCheckpoint(path=ckpt, meta=meta, state=state, config=config)


def prepare_resume(resume: str | Path | LoadedCheckpoint, config: TrainConfig) -> LoadedCheckpoint:
    """The checkpoint to resume from (loaded and verified unless given loaded), checked against ``config``
    (raises a clear :class:`CheckpointError` before anything is written)."""
    loaded = resume if isinstance(resume, LoadedCheckpoint) else load_checkpoint(resume)
    check_resume_compatible(loaded.config, config, source=str(loaded.path))
    return loaded


def check_world_size(loaded: LoadedCheckpoint, world: int, asks: str) -> None:
    """Refuse to resume a checkpoint written by another number of processes (``asks``: how this run says it)."""
    if int(loaded.meta["world_size"]) != world:
        raise CheckpointError(f"{loaded.path / META_FILE}: world_size: the checkpoint was written by "
                              f"{loaded.meta['world_size']} process(es), {asks} {world}")


def rng_state() -> dict[str, Any]:
    """The torch and Python RNG states (saved in a checkpoint so that a resume draws the same numbers)."""
    import torch

    return {"torch": torch.get_rng_state(), "python": random.getstate()}


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore :func:`rng_state`'s result (its Python state came back from JSON-ish lists)."""
    import torch

    torch.set_rng_state(state["torch"])
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
