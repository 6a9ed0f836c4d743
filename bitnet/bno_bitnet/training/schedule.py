"""The BitNet b1.58 two-stage learning-rate and weight-decay schedule (:class:`TwoStageSchedule`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from bno_bitnet.errors import ConfigError


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
