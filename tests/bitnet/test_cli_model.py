"""``bitnet info`` / ``bitnet convert`` on test-made models, atomic writes, and bad-input errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from bno_bitnet.cli import main
from bno_bitnet.errors import CheckpointError, ConfigError
from bno_bitnet.hf import from_pretrained, inspect_checkpoint
from bno_foundation.cli import EXIT_OK, EXIT_USER_ERROR
from tests.bitnet.conftest import TinyHfDir

_IDS = torch.randint(0, 101, (1, 8), generator=torch.Generator().manual_seed(5))


def _logits(path: Path) -> torch.Tensor:
    with torch.no_grad():
        return from_pretrained(path)(_IDS)


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_info_json(tiny_hf_dir: TinyHfDir, capsys: pytest.CaptureFixture[str]) -> None:
    path = tiny_hf_dir("packed-bitlinear", "mha_tied")
    assert main(["info", str(path), "--json"]) == EXIT_OK
    report = json.loads(capsys.readouterr().out)
    assert report["format"] == "packed-bitlinear"
    assert report["config"]["intermediate_size"] == 90 and report["config"]["tie_word_embeddings"] is True
    params = report["parameters"]
    assert params["lm_head"] == 0 and params["embedding"] == 101 * 48
    assert params["ternary"] == 2 * (4 * 48 * 48 + 3 * 48 * 90)
    resident = report["resident_bytes"]
    assert resident["embedding"] == 101 * 48 * 4 and resident["latent_weights"] == 0
    assert resident["total"] == sum(v for k, v in resident.items() if k != "total")
    assert 2.0 <= report["bits_per_ternary_weight"] < report["bits_per_ternary_weight_with_scales"]


def test_info_text_and_int8_head(tiny_hf_dir: TinyHfDir, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", str(tiny_hf_dir("latent", "gqa")), "--lm-head-int8"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "format      latent" in out and "lm_head_int8" in out and "bits/weight packed" in out


def test_convert_round_trip(tiny_hf_dir: TinyHfDir, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tiny_hf_dir("packed-autobitlinear", "odd")
    (tmp_path / "src").mkdir()
    src = _copy(src, tmp_path / "src" / "m")
    (src / "tokenizer.json").write_text("{}", encoding="utf-8")
    latent, packed = tmp_path / "latent", tmp_path / "packed"
    assert main(["convert", str(src), str(latent), "--to", "latent", "--json"]) == EXIT_OK
    result = json.loads(capsys.readouterr().out)
    assert result["dst_format"] == "latent" and result["copied"] == ["tokenizer.json"]
    assert (latent / "tokenizer.json").exists()
    assert main(["convert", str(latent), str(packed), "--to", "packed", "--linear-class", "bitlinear"]) == EXIT_OK
    assert inspect_checkpoint(packed).form == "packed-bitlinear"
    ref = _logits(src)
    assert (_logits(latent) - ref).abs().max().item() <= 1e-4
    assert (_logits(packed) - ref).abs().max().item() <= 1e-4
    # DST exists: refused without --force, replaced with it
    assert main(["convert", str(src), str(packed), "--to", "packed"]) == EXIT_USER_ERROR
    assert "--force" in capsys.readouterr().err
    assert main(["convert", str(src), str(packed), "--to", "packed", "--force", "--max-shard-bytes", "30000"]) == 0
    assert inspect_checkpoint(packed).form == "packed-autobitlinear" and len(inspect_checkpoint(packed).files) > 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latent", "packed", "src"]  # no temp dirs left


def test_failed_convert_leaves_nothing(tiny_hf_dir: TinyHfDir, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import bno_bitnet.hf

    def boom(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(bno_bitnet.hf, "_write_checkpoint", boom)
    with pytest.raises(OSError, match="disk full"):
        bno_bitnet.hf.save_pretrained(from_pretrained(tiny_hf_dir("latent", "gqa")), tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_save_racing_another_writer_is_refused(tiny_hf_dir: TinyHfDir, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A target that appears while the checkpoint is written is not replaced without overwrite."""
    import bno_bitnet.hf
    from bno_bitnet.errors import BitNetError

    def someone_else_wrote(new: Path, target: Path, *, overwrite: bool) -> None:
        raise FileExistsError(str(target))

    monkeypatch.setattr(bno_bitnet.hf, "swap_directory", someone_else_wrote)
    with pytest.raises(BitNetError, match=r"out: already exists \(pass overwrite=True / --force"):
        bno_bitnet.hf.save_pretrained(from_pretrained(tiny_hf_dir("latent", "gqa")), tmp_path / "out")
    assert list(tmp_path.iterdir()) == [], "the staged directory is removed"


# -------------------------------------------------------------------- bad input
def _edit_config(path: Path, **changes: object) -> None:
    cfg = json.loads((path / "config.json").read_text())
    for key, value in changes.items():
        if value is None:
            cfg.pop(key, None)
        else:
            cfg[key] = value
    (path / "config.json").write_text(json.dumps(cfg))


def _rewrite_tensor(path: Path, name: str, tensor: torch.Tensor) -> None:
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(path / "model.safetensors"))
    tensors[name] = tensor
    save_file(tensors, str(path / "model.safetensors"), metadata={"format": "pt"})


def test_missing_and_corrupt_files(tiny_hf_dir: TinyHfDir, tmp_path: Path) -> None:
    path = _copy(tiny_hf_dir("packed-autobitlinear", "gqa"), tmp_path / "m")
    data = (path / "model.safetensors").read_bytes()
    (path / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"model\.safetensors: not a readable safetensors file"):
        from_pretrained(path)
    (path / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"no model\.safetensors"):
        from_pretrained(path)
    (path / "config.json").write_text("{ not json")
    with pytest.raises(CheckpointError, match=r"config\.json:1:3: invalid JSON"):
        from_pretrained(path)


def test_bad_tensors_name_file_and_tensor(tiny_hf_dir: TinyHfDir, tmp_path: Path) -> None:
    path = _copy(tiny_hf_dir("packed-autobitlinear", "gqa"), tmp_path / "m")
    name = "model.layers.1.mlp.down_proj.weight"
    _rewrite_tensor(path, name, torch.zeros(17, 96, dtype=torch.uint8))
    with pytest.raises(CheckpointError, match=rf"model\.safetensors: tensor '{name}' has shape \[17, 96\], expected \[16, 96\]"):
        from_pretrained(path)
    _rewrite_tensor(path, name, torch.zeros(16, 96, dtype=torch.float32))
    with pytest.raises(CheckpointError, match=rf"tensor '{name}' has dtype F32, expected one of \['U8'\]"):
        from_pretrained(path)
    _rewrite_tensor(path, name, torch.full((16, 96), 0xFF, dtype=torch.uint8))
    with pytest.raises(CheckpointError, match=rf"tensor '{name}': .*code 3"):
        from_pretrained(path)
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(path / "model.safetensors"))
    del tensors["model.layers.0.self_attn.q_proj.weight_scale"]
    save_file(tensors, str(path / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"tensor 'model\.layers\.0\.self_attn\.q_proj\.weight_scale' is missing"):
        from_pretrained(path)


def test_sharded_index_errors(tiny_hf_dir: TinyHfDir, tmp_path: Path) -> None:
    src = tiny_hf_dir("latent", "gqa")
    out = tmp_path / "sharded"
    assert main(["convert", str(src), str(out), "--to", "packed", "--max-shard-bytes", "30000"]) == EXIT_OK
    index = json.loads((out / "model.safetensors.index.json").read_text())
    shard = sorted(set(index["weight_map"].values()))[-1]
    (out / shard).unlink()
    with pytest.raises(CheckpointError, match=rf"{shard}: file not found \(listed in .*index\.json\)"):
        from_pretrained(out)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"quantization_config": {"quant_method": "bitnet", "linear_class": "fancylinear"}},
         r"config\.json: field 'quantization_config\.linear_class' has unknown value 'fancylinear'"),
        ({"quantization_config": {"quant_method": "bitnet", "linear_class": "bitlinear", "use_rms_norm": True}},
         r"field 'quantization_config\.use_rms_norm'"),
        ({"num_hidden_layers": None}, r"config\.json: required field 'num_hidden_layers' is missing"),
        ({"num_key_value_heads": 3}, r"config\.json: field 'num_key_value_heads'"),
    ],
)
def test_bad_config(tiny_hf_dir: TinyHfDir, tmp_path: Path, changes: dict[str, object], message: str) -> None:
    path = _copy(tiny_hf_dir("packed-autobitlinear", "gqa"), tmp_path / "m")
    _edit_config(path, **changes)
    with pytest.raises((CheckpointError, ConfigError), match=message):
        from_pretrained(path)


def test_cli_reports_bad_input_as_user_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", str(tmp_path / "nope")]) == EXIT_USER_ERROR
    assert "not a directory" in capsys.readouterr().err
