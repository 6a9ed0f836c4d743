"""BitNet's end-to-end checks, run by the ``integration`` gate (one check per command line).

* ``bitnet-roundtrip``: a tiny model is made (the bitnet API), saved packed, inspected and run by the
  ``bitnet`` CLI (``info``, ``generate`` twice: greedy is deterministic), converted to the latent form and
  loaded back; the loaded models give the original's logits.
* ``transformers-parity``: our packed checkpoint loads in transformers' ``BitNetForCausalLM`` with the
  same logits (within ``--tol`` relative to the largest logit).

``python -m bno_bitnet.integration_checks {bitnet-roundtrip,transformers-parity} [--tol 1e-4]``
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from bno_foundation.gate_program import (
    CheckFailed,
    checks_main,
    main_guard,
    parse_json_output,
    run_module_cli,
    say,
)

TINY = dict(vocab_size=320, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=128, bos_token_id=1, eos_token_id=2)


def _bitnet(args: list[str], cwd: Path) -> Any:
    return parse_json_output(run_module_cli("bno_bitnet.cli", args, cwd, shown="bitnet"))


def _tiny_model(seed: int = 0) -> Any:
    import torch

    from bno_bitnet import BitNetConfig, BitNetForCausalLM

    torch.manual_seed(seed)
    return BitNetForCausalLM(BitNetConfig(**TINY), "train").eval()  # type: ignore[arg-type]


def _ids() -> Any:
    import torch

    return torch.randint(3, TINY["vocab_size"], (2, 11), generator=torch.Generator().manual_seed(7))


def _max_diff(a: Any, b: Any) -> float:
    return float((a.float() - b.float()).abs().max().item())


def bitnet_roundtrip(tmp: Path, tol: float) -> dict[str, Any]:
    """Make, save, inspect, generate, convert, load."""
    import torch

    from bno_bitnet import from_pretrained, save_pretrained

    model = _tiny_model()
    ids = _ids()
    with torch.no_grad():
        reference = model(ids)  # (B, T, V)
    packed = save_pretrained(model, tmp / "tiny-packed")
    info = _bitnet(["info", str(packed), "--json"], tmp)
    say(f"bitnet info: {json.dumps(info)[:300]}")
    runs = []
    for _ in range(2):
        out = _bitnet(["generate", str(packed), "--prompt", "hello", "--max-new-tokens", "8", "--json",
                       "--ignore-eos"], tmp)
        runs.append(out)
    if runs[0] != runs[1] and _strip_timing(runs[0]) != _strip_timing(runs[1]):
        raise CheckFailed("greedy generation is not deterministic across two runs")
    tokens = _count_tokens(runs[0])
    if tokens != 8:
        raise CheckFailed(f"expected 8 generated tokens, found {tokens}: {json.dumps(runs[0])[:300]}")
    with torch.no_grad():
        diff_train = _max_diff(from_pretrained(packed, mode="train")(ids), reference)
        diff_packed = _max_diff(from_pretrained(packed)(ids), reference)
    latent_dir = tmp / "tiny-latent"
    _bitnet(["convert", str(packed), str(latent_dir), "--to", "latent", "--json"], tmp)
    with torch.no_grad():
        diff_latent = _max_diff(from_pretrained(latent_dir, mode="train")(ids), reference)
    scale = max(1.0, float(reference.abs().max().item()))
    say(f"max |logits diff| vs the original: packed reload (train mode) {diff_train:.3g}, packed reload "
        f"(inference mode, kernels) {diff_packed:.3g}, latent round trip {diff_latent:.3g} (scale {scale:.3g})")
    problems = [f"{name} {value:.3g}" for name, value in (("packed reload in train mode", diff_train),
                ("packed reload in inference mode", diff_packed), ("latent round trip", diff_latent))
                if value > tol * scale]
    if problems:
        raise CheckFailed(f"reloaded logits differ from the original beyond {tol:g}: {', '.join(problems)}")
    return {"generated_tokens": tokens, "diff_train_reload": diff_train, "diff_inference_reload": diff_packed,
            "diff_latent": diff_latent}


def _strip_timing(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _strip_timing(v) for k, v in data.items() if not any(s in k for s in ("time", "_s", "per_s"))}
    if isinstance(data, list):
        return [_strip_timing(v) for v in data]
    return data


def _count_tokens(data: Any) -> int:
    """The number of generated token ids in ``bitnet generate --json`` output (first prompt)."""
    if isinstance(data, dict):
        for key in ("token_ids", "tokens", "generated_ids"):
            if isinstance(data.get(key), list) and all(isinstance(t, int) for t in data[key]):
                return len(data[key])
        for value in data.values():
            found = _count_tokens(value)
            if found >= 0:
                return found
    if isinstance(data, list):
        for value in data:
            found = _count_tokens(value)
            if found >= 0:
                return found
    return -1


def transformers_parity(tmp: Path, tol: float) -> dict[str, Any]:
    """Our packed checkpoint in transformers gives our logits."""
    import torch
    import torch._dynamo

    from bno_bitnet import save_pretrained

    model = _tiny_model(1)
    ids = _ids()
    with torch.no_grad():
        ours = model(ids)
    path = save_pretrained(model, tmp / "for-transformers")
    from transformers import BitNetForCausalLM

    with torch._dynamo.config.patch(disable=True), torch.no_grad():
        theirs_model = BitNetForCausalLM.from_pretrained(str(path), dtype=torch.float32).eval()
        theirs = theirs_model(input_ids=ids).logits.float()
    from bno_bitnet import from_pretrained

    with torch.no_grad():
        ours_inference = from_pretrained(path)(ids)  # what users run: packed weights through the kernels
    diff = _max_diff(ours, theirs)
    diff_inference = _max_diff(ours_inference, theirs)
    scale = max(1.0, float(ours.abs().max().item()))
    agree = float((ours_inference.argmax(-1) == theirs.argmax(-1)).float().mean().item())
    say(f"transformers parity: max |diff| ours (latent) {diff:.3g}, ours (packed, kernels) {diff_inference:.3g} "
        f"(scale {scale:.3g}); argmax agreement {agree:.1%}")
    if max(diff, diff_inference) > tol * scale:
        raise CheckFailed(f"transformers' logits differ from ours: latent {diff:.3g}, packed inference "
                          f"{diff_inference:.3g} (> {tol:g} x {scale:.3g})")
    return {"max_diff_latent": diff, "max_diff_inference": diff_inference, "argmax_agreement": agree}


CHECKS = {"bitnet-roundtrip": bitnet_roundtrip, "transformers-parity": transformers_parity}


def main(argv: list[str] | None = None) -> int:
    """Run one BitNet end-to-end check."""
    for name, value in (("HF_HUB_OFFLINE", "1"), ("TRANSFORMERS_OFFLINE", "1"), ("TRANSFORMERS_VERBOSITY", "error")):
        os.environ.setdefault(name, value)
    return checks_main(CHECKS, argv, description="BitNet end-to-end checks")


if __name__ == "__main__":
    main_guard(main)
