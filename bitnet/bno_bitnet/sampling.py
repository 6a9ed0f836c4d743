"""Token sampling for the generation engine: greedy, temperature, top-k, top-p, repetition penalty, seed.

:class:`GenerationConfig` holds the options and validates them (a bad value raises
:class:`~bno_bitnet.errors.ConfigError` naming the field). :class:`Sampler` turns a step's logits ``(B, V)``
into the next tokens ``(B,)``. Each batch row draws from its own ``torch.Generator`` seeded with the same
seed, so a row's tokens do not depend on which other prompts share its batch: a seeded batch gives the
same tokens as its prompts run one by one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, fields

import torch

from bno_bitnet.errors import ConfigError


@dataclass(frozen=True)
class GenerationConfig:
    """Options of one generation call.

    ``temperature == 0`` means greedy decoding (argmax); any positive temperature samples, after
    ``top_k`` (0 = off) and ``top_p`` (1.0 = off) filtering. ``repetition_penalty`` (1.0 = off) follows
    the CTRL / Hugging Face rule: a token already in the row (prompt or generated) has a positive logit
    divided by the penalty and a negative one multiplied by it. Generation of a row stops at any of
    ``stop_token_ids`` (the stop token is kept in the output), at the tokenizer's EOS ids when
    ``stop_at_eos``, or after ``max_new_tokens``.
    """

    max_new_tokens: int = 64
    temperature: float = 0.0
    top_k: int = 0
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    seed: int | None = None
    stop_token_ids: tuple[int, ...] = field(default_factory=tuple)
    stop_at_eos: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.max_new_tokens, bool) or not isinstance(self.max_new_tokens, int):
            raise ConfigError(f"GenerationConfig.max_new_tokens: expected an int, got {self.max_new_tokens!r}")
        if self.max_new_tokens < 1:
            raise ConfigError(f"GenerationConfig.max_new_tokens: must be >= 1, got {self.max_new_tokens}")
        for name in ("temperature", "top_p", "repetition_penalty"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise ConfigError(f"GenerationConfig.{name}: expected a finite number, got {value!r}")
        if self.temperature < 0:
            raise ConfigError(f"GenerationConfig.temperature: must be >= 0 (0 = greedy), got {self.temperature}")
        if isinstance(self.top_k, bool) or not isinstance(self.top_k, int) or self.top_k < 0:
            raise ConfigError(f"GenerationConfig.top_k: must be an int >= 0 (0 = off), got {self.top_k!r}")
        if not 0.0 < self.top_p <= 1.0:
            raise ConfigError(f"GenerationConfig.top_p: must be in (0, 1] (1 = off), got {self.top_p}")
        if self.repetition_penalty <= 0:
            raise ConfigError(
                f"GenerationConfig.repetition_penalty: must be > 0 (1 = off), got {self.repetition_penalty}"
            )
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int)):
            raise ConfigError(f"GenerationConfig.seed: expected an int or None, got {self.seed!r}")
        if self.seed is not None and not 0 <= self.seed < 2**63:
            raise ConfigError(f"GenerationConfig.seed: must be in [0, 2**63), got {self.seed}")
        stops = tuple(self.stop_token_ids)
        for tok in stops:
            if isinstance(tok, bool) or not isinstance(tok, int) or tok < 0:
                raise ConfigError(f"GenerationConfig.stop_token_ids: expected ints >= 0, got {tok!r}")
        object.__setattr__(self, "stop_token_ids", stops)
        if not isinstance(self.stop_at_eos, bool):
            raise ConfigError(f"GenerationConfig.stop_at_eos: expected a bool, got {self.stop_at_eos!r}")
        if self.temperature == 0 and (self.top_k != 0 or self.top_p != 1.0):
            raise ConfigError(
                "GenerationConfig.top_k/top_p: only apply when sampling; set a temperature > 0 "
                "(temperature 0 is greedy decoding)"
            )

    @property
    def greedy(self) -> bool:
        """Whether this config decodes greedily (temperature 0)."""
        return self.temperature == 0

    def replace(self, **changes: object) -> GenerationConfig:
        """A copy with some fields changed (validated again)."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ConfigError(f"GenerationConfig: unknown field(s) {', '.join(unknown)}")
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(changes)
        return GenerationConfig(**values)


def apply_repetition_penalty(logits: torch.Tensor, seen: torch.Tensor, penalty: float) -> torch.Tensor:
    """Penalise tokens already seen, in place. logits (B, V) float, seen (B, V) bool."""
    assert logits.shape == seen.shape, f"logits {tuple(logits.shape)} vs seen {tuple(seen.shape)}"
    if penalty == 1.0:
        return logits
    penalised = torch.where(logits > 0, logits / penalty, logits * penalty)  # (B, V)
    return torch.where(seen, penalised, logits, out=logits)


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Set every logit below the k-th largest of its row to -inf. logits (B, V); k 0 or >= V is a no-op."""
    if k <= 0 or k >= logits.shape[-1]:
        return logits
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]  # (B, 1)
    return logits.masked_fill(logits < kth, float("-inf"))


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Nucleus filter: keep the smallest set of top tokens whose probability mass reaches ``p``.

    The most likely token of a row is always kept. logits (B, V).
    """
    if p >= 1.0:
        return logits
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)  # (B, V)
    probs = torch.softmax(sorted_logits, dim=-1)
    mass_before = torch.cumsum(probs, dim=-1) - probs  # (B, V) mass of the strictly better tokens
    drop_sorted = mass_before >= p
    drop_sorted[..., 0] = False
    drop = torch.zeros_like(drop_sorted).scatter_(-1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))


class Sampler:
    """Chooses each step's next token for a batch of ``batch_size`` rows under one :class:`GenerationConfig`.

    It keeps, per row, the set of tokens seen (for the repetition penalty) and a generator (for sampling).
    """

    def __init__(self, config: GenerationConfig, batch_size: int, vocab_size: int,
                 device: torch.device | str = "cpu") -> None:
        assert batch_size >= 1 and vocab_size >= 1, f"batch {batch_size}, vocab {vocab_size}"
        self.config = config
        self.vocab_size = vocab_size
        self.device = torch.device(device)
        self.seen: torch.Tensor | None = None
        if config.repetition_penalty != 1.0:
            self.seen = torch.zeros(batch_size, vocab_size, dtype=torch.bool, device=self.device)  # (B, V)
        self.generators: list[torch.Generator] = []
        if not config.greedy:
            seed = config.seed if config.seed is not None else int(torch.seed() % 2**63)
            for _ in range(batch_size):
                gen = torch.Generator(device="cpu")
                gen.manual_seed(seed)
                self.generators.append(gen)

    def observe(self, tokens: torch.Tensor, valid: torch.Tensor | None = None) -> None:
        """Record tokens as seen. tokens (B, T) or (B,) int64; valid the same shape, bool (False = padding)."""
        if self.seen is None:
            return
        if tokens.dim() == 1:
            tokens = tokens[:, None]
            valid = None if valid is None else valid[:, None]
        ids = tokens.clamp(0, self.vocab_size - 1)  # (B, T)
        marks = (tokens < self.vocab_size) & (tokens >= 0)
        if valid is not None:
            marks &= valid.bool()
        rows = torch.arange(ids.shape[0], device=ids.device)[:, None].expand_as(ids)  # (B, T)
        self.seen[rows[marks], ids[marks]] = True

    def select_rows(self, keep: Sequence[int]) -> None:
        """Keep only these batch rows (in this order), when finished rows leave the batch."""
        if self.seen is not None:
            self.seen = self.seen[torch.tensor(list(keep), dtype=torch.long, device=self.seen.device)]
        if self.generators:
            self.generators = [self.generators[b] for b in keep]

    def sample(self, logits: torch.Tensor) -> torch.Tensor:
        """Next token per row. logits (B, V') float with V' >= vocab_size (extra columns are ignored) -> (B,) int64."""
        assert logits.dim() == 2, f"expected (B, V) logits, got {tuple(logits.shape)}"
        logits = logits[:, : self.vocab_size].float()  # (B, V)
        if self.seen is not None:
            logits = apply_repetition_penalty(logits.clone(), self.seen[: logits.shape[0]],
                                              self.config.repetition_penalty)
        if self.config.greedy:
            return torch.argmax(logits, dim=-1)
        logits = logits / self.config.temperature
        logits = top_k_filter(logits, self.config.top_k)
        logits = top_p_filter(logits, self.config.top_p)
        probs = torch.softmax(logits, dim=-1)  # (B, V)
        cdf = torch.cumsum(probs, dim=-1)  # (B, V)
        rows = logits.shape[0]
        assert rows <= len(self.generators), f"{rows} rows but {len(self.generators)} generators"
        draws = torch.cat([torch.rand(1, generator=g) for g in self.generators[:rows]]).to(cdf.device)  # (B,)
        draws = draws * cdf[:, -1]  # stays strictly below each row's total mass
        tokens = torch.searchsorted(cdf, draws[:, None], right=True)[:, 0]  # (B,)
        return tokens.clamp_(max=self.vocab_size - 1)


def validate_token_ids(ids: Sequence[int], vocab_size: int, what: str) -> list[int]:
    """Check a list of token ids against a vocabulary size; a bad id raises ConfigError naming ``what``."""
    out: list[int] = []
    for pos, tok in enumerate(ids):
        if isinstance(tok, bool) or not isinstance(tok, int) or not 0 <= tok < vocab_size:
            raise ConfigError(f"{what}[{pos}]: token id {tok!r} is outside the vocabulary [0, {vocab_size})")
        out.append(tok)
    return out
