"""The integration gate: end-to-end checks, one per command line (gates.yaml lists them as ``commands``).

* ``bitnet-roundtrip``: a tiny model is made (the bitnet API), saved packed, inspected and run by the
  ``bitnet`` CLI (``info``, ``generate`` twice: greedy is deterministic), converted to the latent form and
  loaded back; the loaded models give the original's logits.
* ``transformers-parity``: our packed checkpoint loads in transformers' ``BitNetForCausalLM`` with the
  same logits (within ``--tol`` relative to the largest logit).
* ``orchestrator-flow``: in a fresh git repository, the ``orchestrator`` CLI initialises, adds and routes a
  task, runs a gate DAG twice (the second run replays from the cache), records history, installs and
  removes the hooks, and exports the GitHub Actions workflow.

``python -m bno_quality_gates.gates.integration {bitnet-roundtrip,transformers-parity,orchestrator-flow}``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bno_quality_gates.gates.common import (
    EXIT_FAILED,
    EXIT_PASSED,
    clean_env,
    emit,
    main_guard,
    say,
    workdir,
)

TINY = dict(vocab_size=320, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=128, bos_token_id=1, eos_token_id=2)


class CheckFailed(Exception):
    """An integration check saw something wrong."""


def _cli(program: str, args: list[str], cwd: Path, *, expect: int = 0, timeout: float = 300) -> str:
    module = {"bitnet": "bno_bitnet.cli", "orchestrator": "bno_orchestrator.cli"}[program]
    env = clean_env({"PYTHONPATH": str(workdir()), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
    env.pop("SKIP", None)
    env.pop("ORCHESTRATOR_REPO", None)
    argv = [sys.executable, "-m", module, *args]
    say("$ " + " ".join([program, *args]))
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != expect:
        raise CheckFailed(
            f"`{program} {' '.join(args)}` exited {proc.returncode} (expected {expect}): "
            + (proc.stderr.strip() or proc.stdout.strip())[-2000:]
        )
    return proc.stdout


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CheckFailed(f"expected JSON output: {exc}: {text[:300]!r}") from None


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
    info = _json(_cli("bitnet", ["info", str(packed), "--json"], tmp))
    say(f"bitnet info: {json.dumps(info)[:300]}")
    runs = []
    for _ in range(2):
        out = _json(_cli("bitnet", ["generate", str(packed), "--prompt", "hello", "--max-new-tokens", "8", "--json",
                                    "--ignore-eos"], tmp))
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
    _cli("bitnet", ["convert", str(packed), str(latent_dir), "--to", "latent", "--json"], tmp)
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


TOY_GATES = """\
version: 1
gates:
  unit:
    command: [python, -c, "import pathlib; assert pathlib.Path('src/app.py').read_text()"]
    inputs: ["src/**"]
    hooks: [pre-commit, pre-push]
  package:
    command: [python, -c, "print('packaged')"]
    depends: [unit.passed]
    inputs: ["src/**"]
"""


def orchestrator_flow(tmp: Path, tol: float) -> dict[str, Any]:
    """The orchestrator CLI end to end in a fresh repository."""
    repo = tmp / "project"
    (repo / "src").mkdir(parents=True)
    (repo / "src" / "app.py").write_text("print('app')\n")
    (repo / ".gitignore").write_text(".orchestrator/\n")
    env = {**os.environ, "GIT_AUTHOR_NAME": "gate", "GIT_AUTHOR_EMAIL": "gate@localhost",
           "GIT_COMMITTER_NAME": "gate", "GIT_COMMITTER_EMAIL": "gate@localhost"}
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "init"]):
        subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True)
    repo_flag = ["--repo", str(repo)]
    _cli("orchestrator", [*repo_flag, "init", "--json"], repo)
    (repo / "workflows" / "gates.yaml").write_text(TOY_GATES)
    added = _json(_cli("orchestrator", [*repo_flag, "task", "add", "Add a fused kernel", "--type", "implementation",
                                        "--component", "kernels", "--json"], repo))
    routed = _json(_cli("orchestrator", [*repo_flag, "route", "--json"], repo))
    first = _json(_cli("orchestrator", [*repo_flag, "gates", "run", "--all", "--json"], repo))
    statuses = {r["gate"]: r["status"] for r in first["results"]}
    if statuses != {"unit": "passed", "package": "passed"} or first["exit_code"] != 0:
        raise CheckFailed(f"first gate run: {statuses}")
    second = _json(_cli("orchestrator", [*repo_flag, "gates", "run", "--all", "--json"], repo))
    statuses = {r["gate"]: r["status"] for r in second["results"]}
    if statuses != {"unit": "cached", "package": "cached"}:
        raise CheckFailed(f"second gate run should replay from the cache: {statuses}")
    history = _json(_cli("orchestrator", [*repo_flag, "gates", "history", "--json"], repo))
    if len(history) < 2:
        raise CheckFailed(f"history should list both runs: {history}")
    _cli("orchestrator", [*repo_flag, "hooks", "install", "--json"], repo)
    (repo / "src" / "app.py").write_text("print('app v2')\n")
    subprocess.run(["git", "add", "-A"], cwd=repo, env=env, check=True, capture_output=True)
    t0 = time.monotonic()
    commit = subprocess.run(["git", "commit", "-q", "-m", "v2"], cwd=repo, env={**env, **clean_env()},
                            capture_output=True, text=True, check=False)
    hook_seconds = time.monotonic() - t0
    if commit.returncode != 0:
        raise CheckFailed(f"commit through the pre-commit hook failed: {commit.stderr[-1000:]}")
    hooks = _json(_cli("orchestrator", [*repo_flag, "hooks", "status", "--json"], repo))
    _cli("orchestrator", [*repo_flag, "hooks", "uninstall", "--json"], repo)
    out = repo / "ci.yml"
    _cli("orchestrator", [*repo_flag, "gates", "export", "--github-actions", "--output", str(out)], repo)
    import yaml

    workflow = yaml.safe_load(out.read_text())
    if workflow["jobs"]["gate-package"]["needs"] != ["gate-unit"]:
        raise CheckFailed("the exported workflow does not mirror the DAG")
    # the orchestrator's own store still works beside the gate tables in the same SQLite file
    board = _json(_cli("orchestrator", [*repo_flag, "status", "--json"], repo))
    return {
        "board_ok": bool(board),
        "task": added.get("id") if isinstance(added, dict) else None,
        "routed": bool(routed),
        "hooks_installed": [h["state"] for h in hooks["hooks"]],
        "commit_through_hook_s": round(hook_seconds, 3),
    }


CHECKS = {
    "bitnet-roundtrip": bitnet_roundtrip,
    "transformers-parity": transformers_parity,
    "orchestrator-flow": orchestrator_flow,
}


def main(argv: list[str] | None = None) -> int:
    """Run one integration check."""
    parser = argparse.ArgumentParser(description="end-to-end checks")
    parser.add_argument("check", choices=sorted(CHECKS))
    parser.add_argument("--tol", type=float, default=1e-4, help="logit tolerance, relative to the largest logit")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    root = workdir()
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    key = args.check.replace("-", "_")
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"gate-{args.check}-") as tmp:
        try:
            result = CHECKS[args.check](Path(tmp), args.tol)
        except CheckFailed as exc:
            say(f"FAILED {args.check}: {exc}")
            emit({key: {"ok": False, "reason": str(exc)}, "reason": f"{args.check}: {exc}"})
            return EXIT_FAILED
    result["seconds"] = round(time.monotonic() - t0, 2)
    say(f"passed {args.check}: {json.dumps(result)}")
    emit({key: {"ok": True, **result}})
    return EXIT_PASSED


if __name__ == "__main__":
    main_guard(main)
