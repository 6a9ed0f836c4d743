"""Quantization-aware training of BitNet b1.58 models (latent weights + straight-through fake quant).

Pieces, each usable on its own:

* :class:`TwoStageSchedule`: the b1.58 learning-rate and weight-decay schedule, a pure function of the step.
* :class:`TrainConfig` and :data:`PRESETS`: every hyper-parameter of a run, validated (pydantic).
* :func:`save_checkpoint` / :func:`load_checkpoint`: atomic, hash-checked checkpoints that resume exactly.
* :func:`train`: the loop (AdamW, gradient clipping, rich progress bar, JSON-lines loss log, data-parallel
  through ``torch.distributed`` when a process group is up), then export with
  :func:`bno_bitnet.hf.save_pretrained` so ``bitnet generate OUT/model`` samples from the result.
* :func:`launch`: ``nproc`` data-parallel processes on this machine (gloo backend, CPU), or one.

Only rank 0 writes (checkpoints, the loss log, the exported model).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import math
import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from bno_bitnet.errors import CheckpointError, ConfigError
from bno_foundation.jsonfile import read_json_object

CHECKPOINT_FORMAT = "bitnet-train-checkpoint"
CHECKPOINT_VERSION = 1
CHECKPOINTS_SUBDIR = "checkpoints"
STATE_FILE = "state.pt"
META_FILE = "meta.json"
LOG_FILE = "train_log.jsonl"
SUMMARY_FILE = "train_summary.json"
MODEL_SUBDIR = "model"


# --------------------------------------------------------------------------------------------------
# The schedule
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TwoStageSchedule:
    """The BitNet b1.58 two-stage learning-rate and weight-decay schedule, a pure function of the step.

    Sources: "The Era of 1-bit LLMs: Training Tips, Code and FAQ" (Microsoft Research, 2024) and the
    "BitNet b1.58 2B4T Technical Report" (arXiv:2504.12285, section 3.1). Ternary weights train best with
    a learning rate much higher than a full-precision model of the same size would take; about half way
    through, the learning rate is cut abruptly and the run finishes with a lower peak, which is where most
    of the loss falls ("cooldown"). Weight decay (0.1) is applied in the first stage only: in the second
    stage it is 0, so the latent weights settle instead of being pulled toward zero (where small latent
    weights would keep flipping their ternary value).

    Concretely, for ``step`` in ``0 .. total_steps - 1`` (the step about to be taken):

    * warmup, ``step < warmup_steps``: ``peak_lr * (step + 1) / warmup_steps``;
    * stage 1, ``warmup_steps <= step < stage2_start``: the decay (``cosine`` or ``linear``) from
      ``peak_lr`` to ``final_lr`` laid over the whole post-warmup run, evaluated at ``step`` (so stage 1
      is the first half of an ordinary one-stage schedule);
    * stage 2, ``step >= stage2_start``: the same decay shape restarted from the lower ``stage2_lr`` and
      reaching ``final_lr`` at the last step;
    * weight decay: ``weight_decay`` before ``stage2_start``, ``0.0`` from it on.

    ``stage2_start = round(stage_split * total_steps)``. The cut is a real drop: ``stage2_lr`` must be
    below the stage-1 learning rate just before the split.
    """

    total_steps: int
    peak_lr: float
    stage2_lr: float
    warmup_steps: int = 0
    final_lr: float = 0.0
    stage_split: float = 0.5
    weight_decay: float = 0.1
    shape: Literal["cosine", "linear"] = "cosine"

    def __post_init__(self) -> None:
        if self.total_steps < 1:
            raise ConfigError(f"steps: must be >= 1, got {self.total_steps}")
        if not 0 <= self.warmup_steps < self.total_steps:
            raise ConfigError(f"warmup_steps: must be in 0..{self.total_steps - 1}, got {self.warmup_steps}")
        if not 0.0 < self.stage_split <= 1.0:
            raise ConfigError(f"stage_split: must be in (0, 1], got {self.stage_split}")
        if self.shape not in ("cosine", "linear"):
            raise ConfigError(f"schedule shape: must be 'cosine' or 'linear', got {self.shape!r}")
        if not (self.peak_lr > 0 and self.stage2_lr > 0 and self.final_lr >= 0):
            raise ConfigError("peak_lr and stage2_lr must be > 0 and final_lr >= 0")
        if not self.final_lr <= self.stage2_lr:
            raise ConfigError(f"stage2_lr: must be >= final_lr ({self.final_lr}), got {self.stage2_lr}")
        if self.weight_decay < 0:
            raise ConfigError(f"weight_decay: must be >= 0, got {self.weight_decay}")
        s2 = self.stage2_start
        if self.warmup_steps < s2 < self.total_steps and not self.stage2_lr < self.lr(s2 - 1):
            raise ConfigError(
                f"stage2_lr: {self.stage2_lr} is not below the stage-1 learning rate at the split "
                f"({self.lr(s2 - 1):.3g} at step {s2 - 1}); the second stage must start lower"
            )

    @property
    def stage2_start(self) -> int:
        """The first step of stage 2 (``total_steps`` when there is no stage 2)."""
        return max(self.warmup_steps, min(self.total_steps, round(self.stage_split * self.total_steps)))

    def _decay(self, start_lr: float, progress: float) -> float:
        progress = min(max(progress, 0.0), 1.0)
        factor = 0.5 * (1.0 + math.cos(math.pi * progress)) if self.shape == "cosine" else 1.0 - progress
        return self.final_lr + (start_lr - self.final_lr) * factor

    def lr(self, step: int) -> float:
        """Learning rate of the optimizer step ``step`` (0-based)."""
        if not 0 <= step < self.total_steps:
            raise ValueError(f"step {step} is outside the schedule's 0..{self.total_steps - 1}")
        if step < self.warmup_steps:
            return self.peak_lr * (step + 1) / self.warmup_steps
        last = self.total_steps - 1
        s2 = self.stage2_start
        if step < s2:
            span = max(last - self.warmup_steps, 1)
            return self._decay(self.peak_lr, (step - self.warmup_steps) / span)
        span = max(last - s2, 1)
        return self._decay(self.stage2_lr, (step - s2) / span)

    def weight_decay_at(self, step: int) -> float:
        """Weight decay of the optimizer step ``step``: ``weight_decay`` in stage 1, 0 in stage 2."""
        if not 0 <= step < self.total_steps:
            raise ValueError(f"step {step} is outside the schedule's 0..{self.total_steps - 1}")
        return self.weight_decay if step < self.stage2_start else 0.0


# --------------------------------------------------------------------------------------------------
# Configuration and presets
# --------------------------------------------------------------------------------------------------


class ModelShape(BaseModel):
    """The model's architecture (vocabulary and context come from the byte tokenizer and ``seq_len``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    hidden_size: int = Field(gt=0)
    intermediate_size: int = Field(gt=0)
    num_hidden_layers: int = Field(gt=0)
    num_attention_heads: int = Field(gt=0)
    num_key_value_heads: int = Field(gt=0)
    rope_theta: float = Field(default=10000.0, gt=0)
    rms_norm_eps: float = Field(default=1e-5, gt=0)
    tie_word_embeddings: bool = True

    @model_validator(mode="after")
    def _heads_divide(self) -> ModelShape:
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not a multiple of num_attention_heads "
                             f"{self.num_attention_heads}")
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError(f"num_attention_heads {self.num_attention_heads} is not a multiple of "
                             f"num_key_value_heads {self.num_key_value_heads}")
        return self


class TrainConfig(BaseModel):
    """Every setting of a training run. ``batch_size`` is per process (the global batch is ``batch_size *
    world_size``); ``steps`` is the planned total the schedule is laid over."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    preset: str = "custom"
    model: ModelShape
    seq_len: int = Field(gt=0)
    batch_size: int = Field(gt=0)
    steps: int = Field(gt=0)
    warmup_steps: int = Field(default=0, ge=0)
    peak_lr: float = Field(gt=0)
    stage2_lr: float = Field(gt=0)
    final_lr: float = Field(default=0.0, ge=0)
    stage_split: float = Field(default=0.5, gt=0, le=1)
    schedule_shape: Literal["cosine", "linear"] = "cosine"
    weight_decay: float = Field(default=0.1, ge=0)
    beta1: float = Field(default=0.9, ge=0, lt=1)
    beta2: float = Field(default=0.95, ge=0, lt=1)
    adam_eps: float = Field(default=1e-8, gt=0)
    grad_clip: float = Field(default=1.0, ge=0)
    seed: int = 0
    stride: int | None = Field(default=None, gt=0)
    val_fraction: float = Field(default=0.02, ge=0, lt=0.5)
    log_every: int = Field(default=10, gt=0)
    eval_every: int = Field(default=0, ge=0)
    eval_batches: int = Field(default=8, ge=0)
    checkpoint_every: int = Field(default=0, ge=0)
    keep_checkpoints: int = Field(default=2, gt=0)
    export_form: Literal["packed", "latent"] = "packed"

    @model_validator(mode="after")
    def _schedule_valid(self) -> TrainConfig:
        self.schedule()  # raises ConfigError naming the field
        return self

    def schedule(self) -> TwoStageSchedule:
        """The run's learning-rate and weight-decay schedule."""
        return TwoStageSchedule(total_steps=self.steps, peak_lr=self.peak_lr, stage2_lr=self.stage2_lr,
                                warmup_steps=self.warmup_steps, final_lr=self.final_lr,
                                stage_split=self.stage_split, weight_decay=self.weight_decay,
                                shape=self.schedule_shape)


# Settings that change the trajectory: a resume must keep them (the others, such as how often to log,
# may change between the first run and a resume).
TRAJECTORY_FIELDS: tuple[str, ...] = (
    "seq_len", "batch_size", "steps", "warmup_steps", "peak_lr", "stage2_lr", "final_lr", "stage_split",
    "schedule_shape", "weight_decay", "beta1", "beta2", "adam_eps", "grad_clip", "seed", "stride",
    "val_fraction",
)

_TINY_MODEL = ModelShape(hidden_size=128, intermediate_size=384, num_hidden_layers=4, num_attention_heads=4,
                         num_key_value_heads=2)

PRESETS: dict[str, dict[str, Any]] = {
    # seconds: for tests and smoke runs
    "test": {"model": ModelShape(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                 num_attention_heads=2, num_key_value_heads=1).model_dump(),
             "seq_len": 32, "batch_size": 4, "steps": 20, "warmup_steps": 2, "peak_lr": 3e-3,
             "stage2_lr": 1e-3, "log_every": 5, "eval_every": 0, "eval_batches": 2},
    # a few minutes on 2 CPU cores; the loss falls from ~5.6 (uniform over 258) to ~1.6 nats per byte
    "tiny": {"model": _TINY_MODEL.model_dump(), "seq_len": 256, "batch_size": 8, "steps": 600,
             "warmup_steps": 30, "peak_lr": 4e-3, "stage2_lr": 1.5e-3, "final_lr": 1e-4, "log_every": 10,
             "eval_every": 200, "eval_batches": 8, "checkpoint_every": 200},
    # a longer run for a machine with more cores
    "small": {"model": ModelShape(hidden_size=256, intermediate_size=768, num_hidden_layers=6,
                                  num_attention_heads=8, num_key_value_heads=4).model_dump(),
              "seq_len": 256, "batch_size": 16, "steps": 4000, "warmup_steps": 200, "peak_lr": 3e-3,
              "stage2_lr": 1e-3, "final_lr": 1e-4, "log_every": 20, "eval_every": 500, "eval_batches": 16,
              "checkpoint_every": 500},
}


def _validation_message(exc: ValidationError, source: str) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(x) for x in err["loc"]) or "config"
        parts.append(f"{loc}: {err['msg']}")
    return f"{source}: " + "; ".join(parts)


def make_config(data: Mapping[str, Any], *, source: str = "training config") -> TrainConfig:
    """A validated :class:`TrainConfig` from a mapping; a bad field raises :class:`ConfigError` naming it."""
    try:
        return TrainConfig.model_validate(dict(data))
    except ValidationError as exc:
        raise ConfigError(_validation_message(exc, source)) from exc


def preset_config(name: str, **overrides: Any) -> TrainConfig:
    """The preset ``name`` with ``overrides`` applied (``model`` overrides merge into the model shape)."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; known presets: {', '.join(sorted(PRESETS))}")
    data: dict[str, Any] = {**PRESETS[name], "preset": name}
    model_over = overrides.pop("model", None) or {}
    data["model"] = {**data["model"], **model_over}
    data.update({k: v for k, v in overrides.items() if v is not None})
    return make_config(data, source=f"preset {name!r}")


def config_hash(config: TrainConfig) -> str:
    """sha256 of the model shape (what decides whether a checkpoint's tensors fit this model)."""
    text = json.dumps(config.model.model_dump(), sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def check_resume_compatible(stored: TrainConfig, new: TrainConfig, *, source: str) -> None:
    """Refuse a resume whose model shape or trajectory settings differ from the checkpoint's (names the field)."""
    problems = []
    old_model = stored.model.model_dump()
    for key, value in new.model.model_dump().items():
        if old_model.get(key) != value:
            problems.append(f"model.{key}: the checkpoint has {old_model.get(key)!r}, this run asks for {value!r}")
    for key in TRAJECTORY_FIELDS:
        a, b = getattr(stored, key), getattr(new, key)
        if a != b:
            problems.append(f"{key}: the checkpoint has {a!r}, this run asks for {b!r}")
    if problems:
        raise CheckpointError(f"{source}: cannot resume, incompatible settings: " + "; ".join(problems))


def model_config_for(config: TrainConfig) -> Any:
    """The :class:`bno_bitnet.model.BitNetConfig` of a run (byte vocabulary, context ``seq_len``)."""
    from bno_bitnet.data import BOS_ID, EOS_ID, VOCAB_SIZE
    from bno_bitnet.model import BitNetConfig

    shape = config.model
    return BitNetConfig(vocab_size=VOCAB_SIZE, hidden_size=shape.hidden_size,
                        intermediate_size=shape.intermediate_size, num_hidden_layers=shape.num_hidden_layers,
                        num_attention_heads=shape.num_attention_heads,
                        num_key_value_heads=shape.num_key_value_heads, max_position_embeddings=config.seq_len,
                        rms_norm_eps=shape.rms_norm_eps, rope_theta=shape.rope_theta,
                        tie_word_embeddings=shape.tie_word_embeddings, bos_token_id=BOS_ID,
                        eos_token_id=EOS_ID)


# --------------------------------------------------------------------------------------------------
# Atomic files and checkpoints
# --------------------------------------------------------------------------------------------------


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # some filesystems refuse to open directories
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same directory, fsync, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def atomic_write_json(path: Path, data: Any) -> None:
    """:func:`atomic_write_bytes` of indented, key-sorted JSON."""
    atomic_write_bytes(path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode("utf-8"))


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def checkpoint_name(step: int) -> str:
    """Directory name of the checkpoint taken after ``step`` optimizer steps."""
    return f"step-{step:08d}"


def save_checkpoint(checkpoints_dir: Path, step: int, state: dict[str, Any], meta: dict[str, Any],
                    *, keep: int = 2) -> Path:
    """Write ``state`` (torch.save) and ``meta`` (JSON, with the state file's sha256) as one checkpoint.

    The checkpoint is built in a temporary directory beside the others, each file fsynced, and renamed
    into place in one step, so a killed run leaves either the complete new checkpoint or none (the
    previous ones stay intact). Afterwards only the newest ``keep`` checkpoints are kept.
    """
    import torch

    checkpoints_dir.mkdir(parents=True, exist_ok=True)
    final = checkpoints_dir / checkpoint_name(step)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=checkpoints_dir))
    try:
        state_path = tmp / STATE_FILE
        with state_path.open("wb") as fh:
            torch.save(state, fh)
            fh.flush()
            os.fsync(fh.fileno())
        full_meta = {**meta, "format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "step": step,
                     "state_sha256": _sha256_file(state_path), "state_bytes": state_path.stat().st_size}
        atomic_write_json(tmp / META_FILE, full_meta)
        _fsync_dir(tmp)
        if final.exists():  # re-saving a step (a resume from an older checkpoint): swap, then drop the old
            old = Path(tempfile.mkdtemp(prefix=f".old-{final.name}-", dir=checkpoints_dir))
            os.replace(final, old / final.name)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
        _fsync_dir(checkpoints_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
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


# --------------------------------------------------------------------------------------------------
# The loss log
# --------------------------------------------------------------------------------------------------


def read_log(path: Path) -> list[dict[str, Any]]:
    """The records of a JSON-lines loss log (a torn last line from a killed run is skipped)."""
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict):
            records.append(rec)
    return records


def truncate_log(path: Path, step: int) -> None:
    """Drop records after ``step`` (a resume replays those steps), atomically."""
    if not path.is_file():
        return
    kept = [r for r in read_log(path) if int(r.get("step", 0)) <= step]
    atomic_write_bytes(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in kept).encode("utf-8"))


# --------------------------------------------------------------------------------------------------
# The training loop
# --------------------------------------------------------------------------------------------------


@dataclass
class TrainResult:
    """What a run did (rank 0's view; losses are averaged over ranks)."""

    out_dir: str
    start_step: int
    end_step: int
    total_steps: int
    losses: list[float] = field(default_factory=list)  # one per step taken in this run
    val_losses: dict[int, float] = field(default_factory=dict)
    seconds: float = 0.0
    tokens: int = 0
    world_size: int = 1
    checkpoint: str | None = None
    model_dir: str | None = None
    replicas_identical: bool | None = None  # data-parallel runs: every rank ended with the same weights

    @property
    def first_loss(self) -> float | None:
        """Loss of the first step this run took."""
        return self.losses[0] if self.losses else None

    @property
    def last_loss(self) -> float | None:
        """Loss of the last step this run took."""
        return self.losses[-1] if self.losses else None

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict (``val_losses`` keys become strings)."""
        return {"out_dir": self.out_dir, "start_step": self.start_step, "end_step": self.end_step,
                "total_steps": self.total_steps, "losses": self.losses,
                "val_losses": {str(k): v for k, v in self.val_losses.items()}, "seconds": self.seconds,
                "tokens": self.tokens, "world_size": self.world_size, "checkpoint": self.checkpoint,
                "model_dir": self.model_dir, "first_loss": self.first_loss, "last_loss": self.last_loss,
                "replicas_identical": self.replicas_identical}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TrainResult:
        """Inverse of :meth:`to_json`."""
        return cls(out_dir=str(data["out_dir"]), start_step=int(data["start_step"]),
                   end_step=int(data["end_step"]), total_steps=int(data["total_steps"]),
                   losses=[float(x) for x in data["losses"]],
                   val_losses={int(k): float(v) for k, v in data["val_losses"].items()},
                   seconds=float(data["seconds"]), tokens=int(data["tokens"]),
                   world_size=int(data["world_size"]), checkpoint=data.get("checkpoint"),
                   model_dir=data.get("model_dir"), replicas_identical=data.get("replicas_identical"))


def _dist_info() -> tuple[int, int]:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _param_groups(model: Any) -> list[dict[str, Any]]:
    """Matrices (linear and embedding weights) get weight decay; vectors (norm gains) do not."""
    decay: list[Any] = []
    no_decay: list[Any] = []
    for _name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (decay if param.dim() >= 2 else no_decay).append(param)
    return [{"params": decay, "decay": True}, {"params": no_decay, "decay": False, "weight_decay": 0.0}]


def _rng_state() -> dict[str, Any]:
    import torch

    return {"torch": torch.get_rng_state(), "python": random.getstate()}


def _set_rng_state(state: Mapping[str, Any]) -> None:
    import torch

    torch.set_rng_state(state["torch"])
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))


def weights_digest(model: Any) -> str:
    """sha256 over every parameter and buffer of ``model`` (state-dict order): equal digests, equal weights."""
    import torch

    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode("utf-8"))
        raw = tensor.detach().cpu().reshape(-1).clone().view(torch.uint8)  # (nbytes,), its own storage
        digest.update(bytes(raw.untyped_storage()))
    return digest.hexdigest()


def evaluate(model: Any, dataset: Any, *, batches: int, batch_size: int) -> float:
    """Mean cross-entropy over ``batches`` fixed, evenly spaced batches of ``dataset`` (deterministic)."""
    import torch
    import torch.nn.functional as F

    n = len(dataset)
    count = min(n, batches * batch_size)
    assert count > 0, "evaluate needs at least one window"
    indices = [int(i * n / count) for i in range(count)]
    was_training = model.training
    model.eval()
    total, weight = 0.0, 0
    with torch.no_grad():
        for start in range(0, count, batch_size):
            chunk = indices[start:start + batch_size]
            x, y = dataset.batch(chunk)  # (B, T), (B, T)
            logits = model(x)  # (B, T, V)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
            total += float(loss) * len(chunk)
            weight += len(chunk)
    model.train(was_training)
    return total / weight


class _Reporter:
    """Rank 0's progress display: a rich progress bar on a terminal, a line per log step elsewhere."""

    def __init__(self, enabled: bool, total: int, start: int) -> None:
        self.enabled = enabled
        self._progress: Any = None
        self._task: Any = None
        self._console: Any = None
        if not enabled:
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._console = Console(stderr=True)
        if self._console.is_terminal:
            self._progress = Progress(TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(),
                                      TextColumn("{task.fields[info]}"), TimeElapsedColumn(),
                                      TimeRemainingColumn(), console=self._console, transient=False)
            self._task = self._progress.add_task("train", total=total, completed=start, info="")
            self._progress.start()

    def update(self, step: int, info: str, *, logged: bool) -> None:
        if not self.enabled:
            return
        if self._progress is not None:
            self._progress.update(self._task, completed=step, info=info)
        elif logged:
            self._console.print(f"step {step}: {info}", highlight=False)

    def message(self, text: str) -> None:
        if not self.enabled:
            return
        if self._progress is not None:
            self._progress.console.print(text, highlight=False)
        else:
            self._console.print(text, highlight=False)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()


def _initial_model(config: TrainConfig, init_from: Path | None) -> Any:
    import torch

    from bno_bitnet.model import BitNetForCausalLM

    if init_from is None:
        torch.manual_seed(config.seed)
        return BitNetForCausalLM(model_config_for(config), mode="train")
    from bno_bitnet.hf import from_pretrained

    if not init_from.is_dir():
        raise CheckpointError(f"{init_from}: model directory does not exist")
    model = from_pretrained(init_from, mode="train", dtype=torch.float32)
    want = model_config_for(config).to_hf_dict()
    have = model.config.to_hf_dict()
    for key in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                "num_key_value_heads", "tie_word_embeddings"):
        if want.get(key) != have.get(key):
            raise CheckpointError(f"{init_from / 'config.json'}: {key}: the model has {have.get(key)!r}, "
                                  f"the training config asks for {want.get(key)!r}")
    return model


def shape_from_model_dir(path: str | Path) -> dict[str, Any]:
    """The :class:`ModelShape` fields of a Hugging Face model directory (to continue training it)."""
    cfg_path = Path(path) / "config.json"
    if not Path(path).is_dir():
        raise CheckpointError(f"{path}: model directory does not exist")
    data = read_json_object(cfg_path)
    keys = ModelShape.model_fields.keys()
    shape = {k: data[k] for k in keys if k in data}
    missing = [k for k in ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads")
               if k not in shape]
    if missing:
        raise CheckpointError(f"{cfg_path}: {missing[0]}: missing field")
    shape.setdefault("num_key_value_heads", shape["num_attention_heads"])
    return shape


def prepare_resume(resume: str | Path, config: TrainConfig) -> LoadedCheckpoint:
    """Load and verify the checkpoint to resume from and check it against ``config`` (raises a clear
    :class:`CheckpointError` before anything is written)."""
    loaded = load_checkpoint(resume)
    check_resume_compatible(loaded.config, config, source=str(loaded.path))
    return loaded


def train(config: TrainConfig, out_dir: str | Path, *, resume: str | Path | LoadedCheckpoint | None = None,
          init_from: str | Path | None = None, until_step: int | None = None, progress: bool = False,
          corpus_paths: list[Path] | None = None, overwrite: bool = False,
          on_step: Callable[[int, float], None] | None = None) -> TrainResult:
    """Train (or continue training) a BitNet b1.58 model on the byte corpus.

    ``resume``: a checkpoint directory or a run's output directory, whose config must agree with
    ``config`` (:func:`check_resume_compatible`). ``init_from``: a Hugging Face model directory whose
    (latent) weights start a fresh run. ``until_step``: stop (with a checkpoint) after this many steps of
    the planned ``config.steps`` (the schedule is unchanged, so a later ``resume`` continues exactly).
    A fresh run refuses an output directory that already holds checkpoints unless ``overwrite`` (which
    deletes them first), so a later resume can never pick up another run's checkpoint.

    When a ``torch.distributed`` process group is initialized, the model is wrapped in
    DistributedDataParallel and each rank reads its shard of every batch; only rank 0 writes.
    """
    import torch
    import torch.distributed as dist
    import torch.nn.functional as F

    from bno_bitnet.data import ByteWindowDataset, ShardedBatchSampler, load_corpus

    rank, world = _dist_info()
    out = Path(out_dir)
    if resume is not None and init_from is not None:
        raise ConfigError("resume and init_from: give one or the other")
    loaded = resume if isinstance(resume, LoadedCheckpoint) or resume is None else prepare_resume(resume, config)
    if isinstance(resume, LoadedCheckpoint):
        check_resume_compatible(resume.config, config, source=str(resume.path))
    if loaded is not None and int(loaded.meta["world_size"]) != world:
        raise CheckpointError(f"{loaded.path / META_FILE}: world_size: the checkpoint was written by "
                              f"{loaded.meta['world_size']} process(es), this run has {world}")
    checkpoints = out / CHECKPOINTS_SUBDIR
    if loaded is None and list_checkpoints(checkpoints) and not overwrite:
        raise ConfigError(f"{out}: already holds checkpoints ({list_checkpoints(checkpoints)[-1].name}); "
                          f"resume that run (--resume) or start over (--overwrite deletes them)")
    stop = config.steps if until_step is None else until_step
    if not 0 < stop <= config.steps:
        raise ConfigError(f"until_step: must be in 1..{config.steps}, got {until_step}")

    corpus = load_corpus(corpus_paths, val_fraction=config.val_fraction)
    train_set = ByteWindowDataset(corpus.train, config.seq_len, config.stride)
    val_set = ByteWindowDataset(corpus.val, config.seq_len) if corpus.val.numel() > config.seq_len else None
    sampler = ShardedBatchSampler(train_set, config.batch_size, rank=rank, world_size=world, seed=config.seed)

    model = _initial_model(config, None if init_from is None else Path(init_from))
    model.train()
    groups = _param_groups(model)
    optimizer = torch.optim.AdamW(groups, lr=config.peak_lr, betas=(config.beta1, config.beta2),
                                  eps=config.adam_eps, weight_decay=config.weight_decay)
    schedule = config.schedule()
    step = 0
    if loaded is not None:
        try:
            model.load_state_dict(loaded.state["model"])
            optimizer.load_state_dict(loaded.state["optimizer"])
        except (RuntimeError, ValueError, KeyError) as exc:
            raise CheckpointError(f"{loaded.path / STATE_FILE}: does not fit this model ({exc})") from exc
        sampler.load_state_dict(loaded.state["sampler"])
        _set_rng_state(loaded.state["rng"])
        step = loaded.step
        if step >= stop:
            raise ConfigError(f"until_step: the checkpoint {loaded.path} is already at step {step}, "
                              f"nothing to do before step {stop}")

    net: Any = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model)

    log_path = out / LOG_FILE
    if world > 1:
        dist.barrier()  # every rank has checked the directory before rank 0 changes it
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        if loaded is None and overwrite:
            shutil.rmtree(checkpoints, ignore_errors=True)
        if loaded is not None:
            truncate_log(log_path, step)
        elif log_path.exists():
            atomic_write_bytes(log_path, b"")  # a fresh run in an old directory starts a fresh log
    result = TrainResult(out_dir=str(out), start_step=step, end_step=step, total_steps=config.steps,
                         world_size=world)
    reporter = _Reporter(progress and rank == 0, config.steps, step)
    tokens_per_step = config.batch_size * config.seq_len * world
    params = [p for g in groups for p in g["params"]]
    start_time = time.perf_counter()
    # a resumed run continues the log's token and time counters
    prev = read_log(log_path) if (loaded is not None and rank == 0) else []
    prev_train = [r for r in prev if r.get("kind") == "train"]
    time_offset = float(prev_train[-1]["elapsed_s"]) if prev_train else 0.0
    log_fh = log_path.open("a", encoding="utf-8") if rank == 0 else None

    def write_log(record: dict[str, Any]) -> None:
        if log_fh is not None:
            log_fh.write(json.dumps(record, sort_keys=True) + "\n")
            log_fh.flush()

    def save(at_step: int) -> Path | None:
        if rank != 0:
            return None
        state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                 "sampler": sampler.state_dict(), "rng": _rng_state(), "step": at_step,
                 "schedule": {"lr_next": schedule.lr(at_step) if at_step < config.steps else None}}
        meta = {"config": config.model_dump(mode="json"), "config_hash": config_hash(config),
                "world_size": world, "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
                "torch": torch.__version__}
        return save_checkpoint(checkpoints, at_step, state, meta, keep=config.keep_checkpoints)

    try:
        while step < stop:
            lr = schedule.lr(step)
            wd = schedule.weight_decay_at(step)
            for group in optimizer.param_groups:
                group["lr"] = lr
                group["weight_decay"] = wd if group["decay"] else 0.0
            x, y = train_set.batch(sampler.next_batch())  # (B, T), (B, T)
            logits = net(x)  # (B, T, V)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()  # DDP averages the gradients over ranks here
            if config.grad_clip > 0:
                grad_norm = float(torch.nn.utils.clip_grad_norm_(params, config.grad_clip))
            else:
                grad_norm = float(torch.linalg.vector_norm(
                    torch.stack([torch.linalg.vector_norm(p.grad) for p in params if p.grad is not None])))
            optimizer.step()
            step += 1
            loss_value = loss.detach().clone()
            if world > 1:
                dist.all_reduce(loss_value, op=dist.ReduceOp.SUM)
                loss_value /= world
            value = float(loss_value)
            if not math.isfinite(value):
                raise ConfigError(f"peak_lr: the loss became {value} at step {step}; lower the learning rate")
            result.losses.append(value)
            if on_step is not None:
                on_step(step, value)
            logged = step % config.log_every == 0 or step == stop
            elapsed = time_offset + time.perf_counter() - start_time
            if logged:
                write_log({"kind": "train", "step": step, "loss": value, "lr": lr, "weight_decay": wd,
                           "grad_norm": grad_norm, "tokens": step * tokens_per_step,
                           "elapsed_s": round(elapsed, 3)})
            reporter.update(step, f"loss {value:.4f}  lr {lr:.2e}", logged=logged)
            if rank == 0 and val_set is not None and config.eval_batches > 0 and (
                    (config.eval_every and step % config.eval_every == 0) or step == config.steps):
                val = evaluate(model, val_set, batches=config.eval_batches, batch_size=config.batch_size)
                result.val_losses[step] = val
                write_log({"kind": "val", "step": step, "val_loss": val})
                reporter.message(f"step {step}: validation loss {val:.4f}")
            if config.checkpoint_every and step % config.checkpoint_every == 0 and step != stop:
                saved = save(step)
                if saved is not None:
                    result.checkpoint = str(saved)
        saved = save(step)
        if saved is not None:
            result.checkpoint = str(saved)
    finally:
        reporter.close()
        if log_fh is not None:
            log_fh.close()

    if world > 1:
        digests: list[Any] = [None] * world
        dist.all_gather_object(digests, weights_digest(model))
        result.replicas_identical = len(set(digests)) == 1
        if not result.replicas_identical:
            reporter.message(f"warning: the ranks' weights differ after step {step}: {digests}")
    result.end_step = step
    result.seconds = time.perf_counter() - start_time
    result.tokens = (step - result.start_step) * tokens_per_step
    if rank == 0 and step == config.steps:
        from bno_bitnet.hf import save_pretrained

        model_dir = out / MODEL_SUBDIR
        save_pretrained(model, model_dir, form=config.export_form, overwrite=True)
        result.model_dir = str(model_dir)
        reporter.message(f"model written to {model_dir}")
    if rank == 0:
        atomic_write_json(out / SUMMARY_FILE, result.to_json())
    if world > 1:
        dist.barrier()  # leave together: a rank tearing down gloo while another still works can abort it
    return result


# --------------------------------------------------------------------------------------------------
# Data-parallel processes
# --------------------------------------------------------------------------------------------------


def _worker(rank: int, world: int, init_method: str, config_data: dict[str, Any], out_dir: str,
            kwargs: dict[str, Any], threads: int) -> None:
    import torch
    import torch.distributed as dist

    torch.set_num_threads(threads)
    dist.init_process_group("gloo", init_method=init_method, rank=rank, world_size=world)
    try:
        train(TrainConfig.model_validate(config_data), out_dir, **kwargs)
    finally:
        dist.destroy_process_group()


def launch(config: TrainConfig, out_dir: str | Path, *, nproc: int = 1,
           resume: str | Path | LoadedCheckpoint | None = None, threads_per_process: int | None = None,
           **kwargs: Any) -> TrainResult:
    """Run :func:`train` in ``nproc`` data-parallel processes on this machine (gloo, CPU), or inline for 1.

    The checkpoint to resume from and the config are checked here first, so bad input fails with a clear
    error before any process starts. Returns rank 0's result.
    """
    if nproc < 1:
        raise ConfigError(f"nproc: must be >= 1, got {nproc}")
    if isinstance(resume, LoadedCheckpoint):
        check_resume_compatible(resume.config, config, source=str(resume.path))
        loaded: LoadedCheckpoint | None = resume
    else:
        loaded = prepare_resume(resume, config) if resume is not None else None
    if loaded is not None and int(loaded.meta["world_size"]) != nproc:
        raise CheckpointError(f"{loaded.path / META_FILE}: world_size: the checkpoint was written by "
                              f"{loaded.meta['world_size']} process(es), this run asks for {nproc}")
    if nproc == 1:
        return train(config, out_dir, resume=loaded, **kwargs)
    existing = list_checkpoints(Path(out_dir) / CHECKPOINTS_SUBDIR)
    if loaded is None and existing and not kwargs.get("overwrite", False):
        raise ConfigError(f"{out_dir}: already holds checkpoints ({existing[-1].name}); "
                          f"resume that run (--resume) or start over (--overwrite deletes them)")
    import torch.multiprocessing as mp

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = out / SUMMARY_FILE
    if summary.exists():
        summary.unlink()
    threads = threads_per_process or max(1, (os.cpu_count() or 1) // nproc)
    child_kwargs = {**kwargs, "resume": None if loaded is None else str(loaded.path)}
    with tempfile.TemporaryDirectory(prefix="bitnet-ddp-") as tmp:
        init_method = Path(tmp, "store").as_uri()
        try:
            mp.spawn(_worker, args=(nproc, init_method, config.model_dump(mode="json"), str(out),
                                    child_kwargs, threads), nprocs=nproc, join=True)
        except mp.ProcessRaisedException as exc:
            last = str(exc).strip().splitlines()[-1] if str(exc).strip() else repr(exc)
            raise RuntimeError(f"a training process failed: {last}") from exc
    if not summary.is_file():
        raise RuntimeError(f"{summary}: rank 0 finished without writing its summary")
    return TrainResult.from_json(json.loads(summary.read_text(encoding="utf-8")))


def iter_presets() -> Iterator[tuple[str, TrainConfig]]:
    """Each preset's validated config (for listings and tests)."""
    for name in sorted(PRESETS):
        yield name, preset_config(name)
