"""Parity with transformers' BitNet, both directions (max |logits difference| <= 1e-4 in fp32).

transformers -> ours: random tiny models built with transformers (offline), saved in the three forms,
loaded here. ours -> transformers: our save_pretrained output loaded by transformers. transformers cannot
load packed weights whose out_features is not a multiple of 4 (its layers expect out/4 packed rows), so
for those configs the packed forms are checked against transformers' latent-form logits, which quantize
to the same ternary weights.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from bno_bitnet.hf import from_pretrained, inspect_checkpoint, save_pretrained
from tests.bitnet.conftest import TinyHfDir
from tests.bitnet.tiny import HF_FORMS, TINY_CONFIGS, hf_logits, load_hf, out_features_divisible_by_4

TOL = 1e-4
_IDS = torch.randint(0, 101, (2, 9), generator=torch.Generator().manual_seed(42))
_REFERENCE: dict[str, torch.Tensor] = {}


def reference_logits(tiny_hf_dir: TinyHfDir, config: str) -> torch.Tensor:
    """transformers' logits for the latent form of ``config`` (computed once)."""
    if config not in _REFERENCE:
        _REFERENCE[config] = hf_logits(tiny_hf_dir("latent", config), _IDS)
    return _REFERENCE[config]


def _ours(path: Path, mode: str = "inference") -> torch.Tensor:
    model = from_pretrained(path, mode=mode)
    with torch.no_grad():
        return model(_IDS)


@pytest.mark.parametrize("config", sorted(TINY_CONFIGS))
@pytest.mark.parametrize("form", HF_FORMS)
def test_transformers_checkpoint_loads_with_same_logits(tiny_hf_dir: TinyHfDir, config: str, form: str) -> None:
    path = tiny_hf_dir(form, config)
    assert inspect_checkpoint(path).form == form
    ref = reference_logits(tiny_hf_dir, config)
    ours = _ours(path)
    assert ours.shape == ref.shape
    assert (ours - ref).abs().max().item() <= TOL
    if form != "latent" and out_features_divisible_by_4(config):
        theirs_packed = hf_logits(path, _IDS)
        assert (ours - theirs_packed).abs().max().item() <= TOL


@pytest.mark.parametrize("form", HF_FORMS)
def test_train_mode_load_matches(tiny_hf_dir: TinyHfDir, form: str) -> None:
    ref = reference_logits(tiny_hf_dir, "odd")
    assert (_ours(tiny_hf_dir(form, "odd"), mode="train") - ref).abs().max().item() <= TOL


@pytest.mark.parametrize(
    ("linear_class", "shard", "mode"),
    [("autobitlinear", None, "inference"), ("bitlinear", None, "inference"), ("autobitlinear", 40_000, "train"),
     ("bitlinear", 40_000, "train")],
)
def test_ours_packed_loads_in_transformers(
    tiny_hf_dir: TinyHfDir, tmp_path: Path, linear_class: str, shard: int | None, mode: str
) -> None:
    model = from_pretrained(tiny_hf_dir("latent", "gqa"), mode=mode)
    out = model.save_pretrained(tmp_path / "out", linear_class=linear_class, max_shard_bytes=shard)
    info = inspect_checkpoint(out)
    assert info.form == f"packed-{linear_class}"
    assert (len(info.files) > 1) == (shard is not None)
    with torch.no_grad():
        ours = model(_IDS)
    theirs = hf_logits(out, _IDS)
    assert (ours - theirs).abs().max().item() <= TOL
    reloaded = (_ours(out) - ours).abs().max().item()
    assert reloaded == 0.0 if mode == "inference" else reloaded <= TOL  # train mode: float fake-quant sums


@pytest.mark.parametrize("config", sorted(TINY_CONFIGS))
def test_ours_latent_loads_in_transformers(tiny_hf_dir: TinyHfDir, tmp_path: Path, config: str) -> None:
    model = from_pretrained(tiny_hf_dir("latent", config), mode="train")
    out = save_pretrained(model, tmp_path / "latent", form="latent")
    assert inspect_checkpoint(out).form == "latent"
    assert (hf_logits(out, _IDS) - reference_logits(tiny_hf_dir, config)).abs().max().item() <= TOL


def test_ours_packed_with_odd_sizes_round_trips(tiny_hf_dir: TinyHfDir, tmp_path: Path) -> None:
    model = from_pretrained(tiny_hf_dir("packed-bitlinear", "odd"))
    out = save_pretrained(model, tmp_path / "odd")
    from safetensors import safe_open

    with safe_open(str(out / "model.safetensors"), framework="pt") as f:
        recorded = f.metadata()["bitnet.packed_out_features"]
        assert '"model.layers.0.mlp.gate_proj.weight": 90' in recorded
        assert tuple(f.get_tensor("model.layers.0.mlp.gate_proj.weight").shape) == (23, 72)
    assert (_ours(out) - reference_logits(tiny_hf_dir, "odd")).abs().max().item() <= TOL


def test_left_padded_batch_matches_transformers(tiny_hf_dir: TinyHfDir) -> None:
    path = tiny_hf_dir("packed-autobitlinear", "gqa")
    mask = torch.ones_like(_IDS)
    mask[1, :4] = 0
    ids = _IDS.clone()
    ids[1, :4] = 0
    theirs_model = load_hf(path)
    position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
    from tests.bitnet.tiny import eager_transformers

    with eager_transformers(), torch.no_grad():
        theirs = theirs_model(input_ids=ids, attention_mask=mask, position_ids=position_ids).logits
    with torch.no_grad():
        ours = from_pretrained(path)(ids, attention_mask=mask)
    real = mask.bool()
    assert (ours[real] - theirs[real]).abs().max().item() <= TOL
