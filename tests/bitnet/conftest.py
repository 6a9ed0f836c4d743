"""Fixtures for the BitNet tests (reused by other BitNet helpers' tests).

* ``tiny_config``: our :class:`bno_bitnet.model.BitNetConfig` of the "gqa" tiny shape.
* ``tiny_hf_dir``: a session-wide factory ``tiny_hf_dir(form="packed-autobitlinear", config="gqa", seed=0)``
  returning a directory with a random transformers BitNet model saved in that form (built once, cached).
* ``tiny_input_ids``: a fixed (2, 11) batch of token ids valid for every tiny config.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from bno_bitnet.model import BitNetConfig
from tests.bitnet.tiny import HF_FORMS, config_kwargs, make_tiny_hf_dir

TinyHfDir = Callable[..., Path]


@pytest.fixture(scope="session")
def tiny_hf_dir(tmp_path_factory: pytest.TempPathFactory) -> TinyHfDir:
    """Factory: ``tiny_hf_dir(form, config="gqa", seed=0) -> Path`` (read-only: copy before modifying)."""
    root = tmp_path_factory.mktemp("tiny_hf")
    made: dict[tuple[str, str, int], Path] = {}

    def make(form: str = "packed-autobitlinear", config: str = "gqa", seed: int = 0) -> Path:
        assert form in HF_FORMS, f"unknown form {form!r}; expected one of {HF_FORMS}"
        key = (form, config, seed)
        if key not in made:
            made[key] = make_tiny_hf_dir(root, form, config, seed)
        return made[key]

    return make


@pytest.fixture
def tiny_config() -> BitNetConfig:
    """Our BitNetConfig of the "gqa" tiny shape (2 layers, hidden 64, GQA 4/2, untied)."""
    return BitNetConfig(**{k: v for k, v in config_kwargs("gqa").items()})


@pytest.fixture
def tiny_input_ids() -> torch.Tensor:
    """(2, 11) int64 token ids below 101 (valid for every tiny config)."""
    gen = torch.Generator().manual_seed(1234)
    return torch.randint(0, 101, (2, 11), generator=gen)
