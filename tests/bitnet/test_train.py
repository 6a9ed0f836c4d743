"""Training: the b1.58 schedule, configs and presets, checkpoints (atomic, verified, exact resume), the loop."""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch

from bno_bitnet.cli import main as cli_main
from bno_bitnet.data import CORPUS_DIR
from bno_bitnet.errors import CheckpointError, ConfigError
from bno_bitnet.training.checkpoint import (
    CHECKPOINTS_SUBDIR,
    META_FILE,
    STATE_FILE,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
)
from bno_bitnet.training.config import check_resume_compatible, config_hash, preset_config
from bno_bitnet.training.loop import LOG_FILE, evaluate, read_log, train
from bno_bitnet.training.schedule import TwoStageSchedule

# one short novel keeps corpus loading quick
CORPUS = [CORPUS_DIR / "austen_northanger_abbey.txt.gz"]


@pytest.fixture(autouse=True)
def _one_thread() -> Any:
    """Tiny models gain nothing from more threads, and a busy machine makes extra threads wait."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _tree_digest(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` (to prove a failed operation changed nothing)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------------------------------ schedule


def test_schedule_values_two_stages_cosine() -> None:
    s = TwoStageSchedule(total_steps=101, peak_lr=1.0, stage2_lr=0.4, warmup_steps=10, final_lr=0.0,
                         weight_decay=0.1)
    assert s.stage2_start == 50
    # linear warmup reaching the peak on the last warmup step
    assert s.lr(0) == pytest.approx(0.1)
    assert s.lr(9) == pytest.approx(1.0)
    # stage 1: a cosine from the peak over the whole post-warmup run (steps 10..100), cut at the split
    assert s.lr(10) == pytest.approx(1.0)
    assert s.lr(49) == pytest.approx(0.5 * (1 + math.cos(math.pi * 39 / 90)))
    # the sharp drop at the midpoint, then a cosine from stage2_lr to final_lr over steps 50..100
    assert s.lr(50) == pytest.approx(0.4)
    assert s.lr(75) == pytest.approx(0.2)
    assert s.lr(100) == pytest.approx(0.0, abs=1e-12)
    assert s.lr(49) - s.lr(50) > 0.2
    # weight decay 0.1 in stage 1, 0 in stage 2
    assert [s.weight_decay_at(i) for i in (0, 49, 50, 100)] == [0.1, 0.1, 0.0, 0.0]
    stage2 = [s.lr(i) for i in range(50, 101)]
    assert all(a >= b for a, b in itertools.pairwise(stage2)), "stage 2 must not rise"


def test_schedule_linear_shape_and_final_lr() -> None:
    s = TwoStageSchedule(total_steps=11, peak_lr=2.0, stage2_lr=0.5, final_lr=0.1, shape="linear",
                         stage_split=0.6)
    assert s.stage2_start == 7
    assert s.lr(0) == pytest.approx(2.0)
    assert s.lr(5) == pytest.approx(0.1 + 1.9 * (1 - 5 / 10))
    assert s.lr(7) == pytest.approx(0.5)
    assert s.lr(10) == pytest.approx(0.1)
    assert s.weight_decay_at(6) == 0.1 and s.weight_decay_at(7) == 0.0
    with pytest.raises(ValueError, match="outside"):
        s.lr(11)


def test_schedule_rejects_bad_settings_naming_the_field() -> None:
    with pytest.raises(ConfigError, match="stage2_lr"):
        TwoStageSchedule(total_steps=100, peak_lr=1e-3, stage2_lr=2e-3)  # no drop
    with pytest.raises(ConfigError, match="warmup_steps"):
        TwoStageSchedule(total_steps=10, peak_lr=1e-3, stage2_lr=1e-4, warmup_steps=10)
    with pytest.raises(ConfigError, match="stage_split"):
        TwoStageSchedule(total_steps=10, peak_lr=1e-3, stage2_lr=1e-4, stage_split=0.0)


# ------------------------------------------------------------------------------------------ config


def test_presets_validate_and_unknown_preset_lists_known() -> None:
    for name in ("test", "tiny", "small"):
        cfg = preset_config(name)
        assert cfg.preset == name and cfg.schedule().stage2_start > 0
    with pytest.raises(ConfigError, match=r"unknown preset 'huge'; known presets: small, test, tiny"):
        preset_config("huge")
    with pytest.raises(ConfigError, match=r"batch_size"):
        preset_config("test", batch_size=0)
    with pytest.raises(ConfigError, match=r"num_attention_heads"):
        preset_config("test", model={"hidden_size": 30, "num_attention_heads": 4})
    with pytest.raises(ConfigError, match=r"stage2_lr"):
        preset_config("test", stage2_lr=1.0)


def test_resume_compatibility_names_the_field() -> None:
    base = preset_config("test")
    check_resume_compatible(base, preset_config("test", log_every=1, checkpoint_every=3), source="ck")
    with pytest.raises(CheckpointError, match=r"model\.hidden_size: the checkpoint has 32, this run asks for 64"):
        check_resume_compatible(base, preset_config("test", model={"hidden_size": 64}), source="ck")
    with pytest.raises(CheckpointError, match=r"peak_lr"):
        check_resume_compatible(base, preset_config("test", peak_lr=5e-3), source="ck")


# ------------------------------------------------------------------------------------------ checkpoints


def test_checkpoint_roundtrip_keep_and_atomic_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = preset_config("test")
    meta = {"config": cfg.model_dump(mode="json"), "config_hash": config_hash(cfg), "world_size": 1}
    state = {"model": {"w": torch.arange(4.0)}, "optimizer": {}, "sampler": {}, "rng": {}}
    ck = tmp_path / "ck"
    for step in (1, 2, 3):
        save_checkpoint(ck, step, state, meta, keep=2)
    assert [p.name for p in list_checkpoints(ck)] == ["step-00000002", "step-00000003"]
    loaded = load_checkpoint(tmp_path / "ck")
    assert loaded.step == 3 and torch.equal(loaded.state["model"]["w"], torch.arange(4.0))
    before = _tree_digest(ck)

    def exploding_save(obj: Any, f: Any) -> None:
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", exploding_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(ck, 4, state, meta, keep=2)
    assert _tree_digest(ck) == before, "a failed save must leave the previous checkpoints untouched"
    assert sorted(p.name for p in ck.iterdir()) == ["step-00000002", "step-00000003"], "no temp dir left"


def test_checkpoint_of_another_version_is_refused(tmp_path: Path) -> None:
    cfg = preset_config("test")
    meta = {"config": cfg.model_dump(mode="json"), "config_hash": config_hash(cfg), "world_size": 1}
    ck = save_checkpoint(tmp_path / "ck", 1, {"model": {}, "optimizer": {}, "sampler": {}, "rng": {}}, meta)
    stored = json.loads((ck / META_FILE).read_text(encoding="utf-8"))
    (ck / META_FILE).write_text(json.dumps({**stored, "version": 1}), encoding="utf-8")
    with pytest.raises(CheckpointError, match=r"meta\.json: version: 1, this build reads 2"):
        load_checkpoint(ck)


def test_corrupt_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    cfg = preset_config("test", steps=6)
    out = tmp_path / "run"
    train(cfg, out, until_step=3, corpus_paths=CORPUS)
    ckpt = list_checkpoints(out / CHECKPOINTS_SUBDIR)[-1]
    state = ckpt / STATE_FILE
    data = bytearray(state.read_bytes())
    data[len(data) // 2] ^= 0xFF
    state.write_bytes(bytes(data))
    before = _tree_digest(out)
    with pytest.raises(CheckpointError, match=r"state\.pt: corrupt \(sha256"):
        train(cfg, out, resume=out, corpus_paths=CORPUS)
    assert _tree_digest(out) == before, "a refused resume must not touch the run directory"
    state.write_bytes(bytes(data[: len(data) // 3]))  # truncated
    with pytest.raises(CheckpointError, match=r"state\.pt: corrupt"):
        load_checkpoint(out)
    (ckpt / META_FILE).write_text("{ not json", encoding="utf-8")
    before = _tree_digest(out)
    with pytest.raises(CheckpointError, match=r"meta\.json: line 1: corrupt JSON"):
        train(cfg, out, resume=out, corpus_paths=CORPUS)
    assert _tree_digest(out) == before, "a refused resume must not touch the run directory"
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "nowhere")
    with pytest.raises(CheckpointError, match="holds no checkpoint"):
        load_checkpoint(tmp_path)


def test_incompatible_resume_names_the_field_and_leaves_checkpoint_intact(tmp_path: Path) -> None:
    cfg = preset_config("test", steps=6)
    out = tmp_path / "run"
    train(cfg, out, until_step=2, corpus_paths=CORPUS)
    before = _tree_digest(out)
    wider = preset_config("test", steps=6, model={"hidden_size": 64})
    with pytest.raises(CheckpointError, match=r"model\.hidden_size: the checkpoint has 32, this run asks for 64"):
        train(wider, out, resume=out, corpus_paths=CORPUS)
    with pytest.raises(CheckpointError, match=r"seq_len"):
        train(preset_config("test", steps=6, seq_len=16), out, resume=out, corpus_paths=CORPUS)
    assert _tree_digest(out) == before


def test_init_from_missing_model_directory(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"model directory does not exist"):
        train(preset_config("test", steps=4), tmp_path / "run", init_from=tmp_path / "missing",
              corpus_paths=CORPUS)


# ------------------------------------------------------------------------------------------ training


def test_loss_falls(tmp_path: Path) -> None:
    cfg = preset_config("test", steps=40, warmup_steps=4, log_every=10)
    result = train(cfg, tmp_path / "run", until_step=39, corpus_paths=CORPUS)
    assert len(result.losses) == 39
    assert result.losses[0] == pytest.approx(math.log(258), abs=0.3), "starts near uniform over 258 ids"
    first, last = sum(result.losses[:5]) / 5, sum(result.losses[-5:]) / 5
    assert last < first - 1.2, f"loss did not fall enough: {first:.3f} -> {last:.3f}"
    records = read_log(tmp_path / "run" / LOG_FILE)
    assert [r["step"] for r in records] == [10, 20, 30, 39]
    assert {"loss", "lr", "weight_decay", "grad_norm", "tokens", "elapsed_s"} <= set(records[0])
    assert records[0]["weight_decay"] == 0.1 and records[-1]["weight_decay"] == 0.0


def test_resume_continues_identically(tmp_path: Path) -> None:
    cfg = preset_config("test", steps=16, log_every=2, eval_every=4)
    straight = train(cfg, tmp_path / "a", until_step=15, corpus_paths=CORPUS)
    part1 = train(cfg, tmp_path / "b", until_step=7, corpus_paths=CORPUS)
    # a run killed after its checkpoint logged steps beyond it: the resume drops them
    with (tmp_path / "b" / LOG_FILE).open("a", encoding="utf-8") as fh:
        fh.write(json.dumps({"kind": "train", "step": 8, "loss": 99.0}) + "\n")
    part2 = train(cfg, tmp_path / "b", resume=tmp_path / "b", until_step=15, corpus_paths=CORPUS)
    assert part2.start_step == 7
    assert straight.losses == part1.losses + part2.losses, "losses after resume must be bit-identical"
    wa = load_checkpoint(tmp_path / "a").state
    wb = load_checkpoint(tmp_path / "b").state
    for key, tensor in wa["model"].items():
        assert torch.equal(tensor, wb["model"][key]), f"weight {key} differs after resume"
    assert wa["sampler"] == wb["sampler"]
    log_a = {(r["kind"], r["step"]): r.get("loss", r.get("val_loss")) for r in read_log(tmp_path / "a" / LOG_FILE)}
    log_b = {(r["kind"], r["step"]): r.get("loss", r.get("val_loss")) for r in read_log(tmp_path / "b" / LOG_FILE)}
    assert 99.0 not in log_b.values()
    assert log_b.items() >= {k: v for k, v in log_a.items() if k[1] != 7}.items()


# ------------------------------------------------------------------------------------------ CLI


def test_cli_unknown_preset_and_bad_resume(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["train", "--preset", "nope", "--out", str(tmp_path / "x")]) == 2
    assert "unknown preset 'nope'; known presets: small, test, tiny" in capsys.readouterr().err
    assert cli_main(["train", "--out", str(tmp_path / "x"), "--resume"]) == 2
    assert "no such checkpoint or output directory" in capsys.readouterr().err


def test_cli_trains_and_resumes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    args = ["train", "--preset", "test", "--steps", "8", "--out", str(out), "--corpus", str(CORPUS[0]),
            "--no-progress"]
    assert cli_main([*args, "--until-step", "4", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["end_step"] == 4 and summary["model_dir"] is None
    before = _tree_digest(out)
    assert cli_main(["train", "--out", str(out), "--resume", "--hidden-size", "64", "--until-step", "6"]) == 2
    assert "model.hidden_size: the checkpoint has 32, this run asks for 64" in capsys.readouterr().err
    assert _tree_digest(out) == before
    assert cli_main(["train", "--out", str(out), "--resume", "--until-step", "6", "--corpus", str(CORPUS[0]),
                     "--log-every", "1"]) == 0
    captured = capsys.readouterr()
    assert "trained steps 4..6 of 8" in captured.out and "bitnet train --out" in captured.out
    # progress goes to stderr: a bar on a terminal, one line per logged step elsewhere
    assert "step 5: loss" in captured.err and "step 6: loss" in captured.err


def test_finished_run_exports_a_model_that_generate_loads(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    from bno_bitnet.data import ByteWindowDataset, load_corpus
    from bno_bitnet.hf import from_pretrained

    cfg = preset_config("test", steps=12, eval_batches=2)
    out = tmp_path / "run"
    result = train(cfg, out, corpus_paths=CORPUS)
    assert result.model_dir == str(out / "model") and result.end_step == 12
    final_val = result.val_losses[12]
    # the exported packed model computes the same loss as the trained model (up to kernel rounding)
    model = from_pretrained(out / "model", mode="inference")
    val = ByteWindowDataset(load_corpus(CORPUS, val_fraction=cfg.val_fraction).val, cfg.seq_len)
    exported_val = evaluate(model, val, batches=cfg.eval_batches, batch_size=cfg.batch_size)
    assert exported_val == pytest.approx(final_val, rel=2e-2)
    assert model.config.vocab_size == 258 and model.config.eos_token_id == 257
    assert cli_main(["generate", str(out / "model"), "--prompt", "It is a truth", "--max-new-tokens", "6",
                     "--json"]) == 0
    generated = json.loads(capsys.readouterr().out)["results"][0]
    assert 1 <= len(generated["token_ids"]) <= 6
    assert all(0 <= t < 258 for t in generated["token_ids"])


def test_fresh_run_refuses_a_directory_with_checkpoints_and_init_from_latent(tmp_path: Path) -> None:
    cfg = preset_config("test", steps=30, export_form="latent")
    out = tmp_path / "run"
    first = train(cfg, out, corpus_paths=CORPUS)
    before = _tree_digest(out)
    with pytest.raises(ConfigError, match=r"already holds checkpoints \(step-00000030\).*--overwrite"):
        train(cfg, out, corpus_paths=CORPUS)
    assert _tree_digest(out) == before
    # a new run started from the exported latent model begins where the first one ended
    second = train(preset_config("test", steps=4, seed=1), tmp_path / "more", init_from=out / "model",
                   corpus_paths=CORPUS)
    assert second.losses[0] < first.losses[0] - 1.0
    assert second.losses[0] == pytest.approx(first.losses[-1], abs=0.6)
    with pytest.raises(CheckpointError, match=r"hidden_size: the model has 32, the training config asks for 64"):
        train(preset_config("test", steps=4, model={"hidden_size": 64}), tmp_path / "bad", init_from=out / "model",
              corpus_paths=CORPUS)
    redo = train(cfg, out, corpus_paths=CORPUS, overwrite=True, until_step=2)
    assert [p.name for p in list_checkpoints(out / CHECKPOINTS_SUBDIR)] == ["step-00000002"]
    assert redo.end_step == 2
