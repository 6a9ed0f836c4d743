"""Lean loading: each Hugging Face form loads with resident memory near the tensors the model keeps.

Measured in a fresh process (``VmRSS`` / ``VmHWM`` of /proc/self/status, the high-water mark reset once
the runtime is loaded: Python, torch, the native kernel's library): the growth during ``from_pretrained`` must stay within the model's own tensors plus a slack
for one projection's temporaries and allocator rounding. A loader that kept the checkpoint's file pages
mapped, or a float copy of the weights, exceeds it by the size of the file.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bno_bitnet.hf import FORMS, save_pretrained
from bno_bitnet.model import BitNetConfig, BitNetForCausalLM
from bno_bitnet.shapes import build_random_model

MIB = 1024 * 1024
# The peak adds one fused projection's temporaries: its parts read in their stored dtype, their
# quantization, the fused int8 matrix and its packing, about 8x the fp32 size of the largest part (measured
# here: ~25 MB over the tensors kept for 3 MB parts). The bound scales with a projection, not with the model:
# a loader holding the file's pages or a float copy of the weights exceeds it by the size of the file.
LARGEST_PART_FP32 = 1536 * 512 * 4  # gate (or up): intermediate x hidden
SLACK = 10 * LARGEST_PART_FP32 + 4 * MIB

PROBE = r"""
import gc, json, sys
import torch
from bno_bitnet.hf import from_pretrained

def status(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise SystemExit("no /proc/self/status")

from bno_bitnet.shapes import build_random_model
build_random_model("tiny", seed=0)  # the runtime: the native kernel's library and the modules a load imports
import safetensors  # noqa: F401  the runtime a load uses, loaded before the baseline:
from bno_bitnet.layers import BitLinear  # the safetensors library and the ternary kernels (~10 MB)

warm = BitLinear(64, 64, mode="inference")
warm.set_ternary(torch.zeros(64, 64, dtype=torch.int8), 1.0)
warm(torch.zeros(1, 64))
del warm
gc.collect()
base = status("VmRSS")
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # reset the high-water mark to the current RSS
model = from_pretrained(sys.argv[1], mode="inference", embed_dtype=torch.bfloat16)
gc.collect()
rss, hwm = status("VmRSS"), status("VmHWM")  # the load's own figures, before a forward pass adds its buffers
report = model.memory_report()
ids = torch.tensor([[1, 2, 3, 4, 5]])
with torch.no_grad():
    logits = model(ids)[0, -1, :8].tolist()
print(json.dumps({"base": base, "rss": rss, "hwm": hwm, "tensors": sum(report.values()), "logits": logits}))
"""


def _config() -> BitNetConfig:
    return BitNetConfig(vocab_size=32000, hidden_size=512, intermediate_size=1536, num_hidden_layers=8,
                        num_attention_heads=8, num_key_value_heads=4, tie_word_embeddings=True)


@pytest.fixture(scope="module")
def model() -> BitNetForCausalLM:
    return build_random_model(_config(), seed=11, dtype=torch.float32, embed_dtype=torch.bfloat16)


def _clear_refs_allowed() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return True


@pytest.mark.parametrize("form", FORMS)
def test_loading_stays_near_the_tensors_kept(model: BitNetForCausalLM, tmp_path: Path, form: str) -> None:
    if not _clear_refs_allowed():
        pytest.skip("this kernel does not let a process reset its RSS high-water mark (/proc/self/clear_refs)")
    kwargs = {"form": "latent"} if form == "latent" else {"form": "packed", "linear_class": form.split("-")[1]}
    directory = save_pretrained(model, tmp_path / form, **kwargs)  # type: ignore[arg-type]
    file_bytes = sum(f.stat().st_size for f in directory.glob("*.safetensors"))
    out = subprocess.run([sys.executable, "-c", PROBE, str(directory)], capture_output=True, text=True, timeout=300,
                         check=False)
    assert out.returncode == 0, out.stderr
    figures = json.loads(out.stdout)
    peak_growth = figures["hwm"] - figures["base"]
    kept_growth = figures["rss"] - figures["base"]
    tensors = figures["tensors"]
    assert kept_growth <= tensors + SLACK, (form, kept_growth / MIB, tensors / MIB)
    assert peak_growth <= tensors + SLACK, (form, peak_growth / MIB, tensors / MIB, file_bytes / MIB)
    # and the lean load computes what this process's load of the same directory computes
    from bno_bitnet.hf import from_pretrained

    reference = from_pretrained(directory, mode="inference", embed_dtype=torch.bfloat16)
    with torch.no_grad():
        expected = reference(torch.tensor([[1, 2, 3, 4, 5]]))[0, -1, :8].tolist()
    assert figures["logits"] == expected  # whatever each process's thread count (beta's mean is summed in fp64)


def test_the_packed_forms_load_the_same_model(model: BitNetForCausalLM, tmp_path: Path) -> None:
    # The two packed forms hold the same ternary weights (beta vs 1/beta): bit-identical logits. The latent
    # form saved from a bf16 model is not compared: its latents are wq * beta rounded to bf16, which
    # re-quantize to the same wq with a beta that may differ in the last bits (so did the previous loader).
    from bno_bitnet.hf import from_pretrained

    logits = []
    for linear_class in ("autobitlinear", "bitlinear"):
        directory = save_pretrained(model, tmp_path / linear_class, form="packed", linear_class=linear_class)
        loaded = from_pretrained(directory, mode="inference", embed_dtype=torch.bfloat16)
        with torch.no_grad():
            logits.append(loaded(torch.tensor([[7, 8, 9, 10]])))
    assert torch.equal(logits[0], logits[1])
