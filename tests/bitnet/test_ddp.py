"""Data-parallel training with 2 processes on the CPU (gloo): ``bitnet train --nproc 2`` and ``torchrun``."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bno_bitnet.cli import main as cli_main
from bno_bitnet.data import CORPUS_DIR
from bno_bitnet.training.checkpoint import load_checkpoint
from bno_bitnet.training.loop import LOG_FILE, SUMMARY_FILE, read_log

CORPUS = CORPUS_DIR / "austen_northanger_abbey.txt.gz"


def test_two_processes_train_and_resume_with_torchrun(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ddp"
    common = ["--preset", "test", "--steps", "10", "--log-every", "2", "--out", str(out), "--corpus", str(CORPUS),
              "--no-progress"]
    # 1) bitnet train --nproc 2 (torch.multiprocessing spawns the ranks)
    assert cli_main(["train", *common, "--nproc", "2", "--until-step", "6", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["world_size"] == 2 and summary["end_step"] == 6
    assert summary["replicas_identical"] is True, "both ranks must end with identical weights"
    records = read_log(out / LOG_FILE)
    assert [r["step"] for r in records if r["kind"] == "train"] == [2, 4, 6]
    assert all(math.isfinite(r["loss"]) for r in records)
    assert records[-1]["tokens"] == 6 * 4 * 32 * 2, "global batch = per-rank batch x 2 ranks"
    ckpt = load_checkpoint(out)
    assert ckpt.step == 6 and ckpt.meta["world_size"] == 2

    # a 1-process resume of a 2-process checkpoint is refused, naming the field
    assert cli_main(["train", "--out", str(out), "--resume", "--until-step", "8"]) == 2
    assert "world_size: the checkpoint was written by 2 process(es), this run asks for 1" in capsys.readouterr().err

    # 2) torchrun resumes it with 2 processes (env:// rendezvous on the loopback interface)
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or "torchrun"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [torchrun, "--standalone", "--nproc-per-node", "2", "-m", "bno_bitnet.cli", "train", "--out", str(out),
         "--resume", "--corpus", str(CORPUS), "--no-progress", "--json"],
        capture_output=True, text=True, timeout=300, env=env, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    resumed = json.loads((out / SUMMARY_FILE).read_text(encoding="utf-8"))
    assert resumed["start_step"] == 6 and resumed["end_step"] == 10 and resumed["world_size"] == 2
    assert resumed["replicas_identical"] is True
    steps = [r["step"] for r in read_log(out / LOG_FILE) if r["kind"] == "train"]
    assert steps == [2, 4, 6, 8, 10]
    losses = [r["loss"] for r in read_log(out / LOG_FILE) if r["kind"] == "train"]
    assert losses[-1] < losses[0], f"loss did not fall over the 2-process run: {losses}"
    assert (out / "model" / "config.json").is_file(), "rank 0 exports the model at the end"
