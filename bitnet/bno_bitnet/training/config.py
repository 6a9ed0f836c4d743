"""Training configuration: the model shape, every hyper-parameter of a run, presets and their validation.

:class:`TrainConfig` is validated by pydantic (a bad field raises :class:`ConfigError` naming it, through
:func:`make_config`); :data:`PRESETS` are named starting points; :func:`check_resume_compatible` decides
whether a checkpoint may continue under a given config. Nothing here imports torch.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from bno_bitnet.errors import CheckpointError, ConfigError
from bno_bitnet.training.schedule import TwoStageSchedule
from bno_foundation.jsonfile import read_json_object

if TYPE_CHECKING:
    from bno_bitnet.model import BitNetConfig


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


def model_config_for(config: TrainConfig) -> BitNetConfig:
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


def shape_from_model_dir(path: str | Path) -> dict[str, Any]:
    """The :class:`ModelShape` fields of a Hugging Face model directory (to continue training it)."""
    cfg_path = Path(path) / "config.json"
    if not Path(path).is_dir():
        raise CheckpointError(f"{path}: model directory does not exist")
    data = read_json_object(cfg_path, error=CheckpointError)
    keys = ModelShape.model_fields.keys()
    shape = {k: data[k] for k in keys if k in data}
    missing = [k for k in ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads")
               if k not in shape]
    if missing:
        raise CheckpointError(f"{cfg_path}: {missing[0]}: missing field")
    shape.setdefault("num_key_value_heads", shape["num_attention_heads"])
    return shape
