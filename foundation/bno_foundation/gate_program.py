"""The gate-program protocol, shared by the runner and every gate program of any package: parameters
from ``$GATE_PARAMS``, the tree under test, the metrics line, exit codes (0 passed, 1 failed, 3 errored)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

EXIT_PASSED = 0
EXIT_FAILED = 1
EXIT_ERRORED = 3
METRICS_PREFIX = "GATE-METRICS "


class GateProgramError(Exception):
    """The gate could not run (missing tool, bad parameters): exit code 3, ``errored``."""


def params() -> dict[str, Any]:
    """The gate's ``params`` from ``$GATE_PARAMS`` (JSON), or an empty mapping."""
    text = os.environ.get("GATE_PARAMS", "")
    if not text:
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise GateProgramError(f"$GATE_PARAMS is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise GateProgramError("$GATE_PARAMS must be a JSON object")
    return data


def workdir() -> Path:
    """The tree under test: ``$GATE_WORKDIR`` (the working tree or a snapshot of the index), else cwd."""
    return Path(os.environ.get("GATE_WORKDIR") or os.getcwd()).resolve()


def repo() -> Path:
    """The git repository (for git queries; the tree under test may be a snapshot without ``.git``)."""
    return Path(os.environ.get("GATE_REPO") or workdir()).resolve()


def head() -> str | None:
    """The commit under test in a pre-push run (``$GATE_HEAD``; the tree under test is a snapshot of it), else
    None: the tree under test is the index (``$GATE_STAGED``) or the working tree."""
    return os.environ.get("GATE_HEAD") or None


def file_list(path: str | Path) -> list[str]:
    """The repository-relative paths in a file list the runner wrote (``{files_file}``: one path per line)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise GateProgramError(f"cannot read the file list {path}: {exc.strerror or exc}") from None
    return [line for line in text.splitlines() if line]


def out_dir() -> Path:
    """Where the gate writes its files: ``$GATE_OUT``, else a fresh temporary directory."""
    env = os.environ.get("GATE_OUT")
    path = Path(env) if env else Path(tempfile.mkdtemp(prefix="gate-out-"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def components_file() -> Path:
    """The components file: ``$GATE_COMPONENTS_FILE``, else ``workflows/components.yaml`` of the tree."""
    env = os.environ.get("GATE_COMPONENTS_FILE")
    return Path(env) if env else workdir() / "workflows" / "components.yaml"


def emit(metrics: dict[str, Any]) -> None:
    """Print the metrics line the runner records."""
    sys.stdout.write(METRICS_PREFIX + json.dumps(metrics, sort_keys=True, default=str) + "\n")
    sys.stdout.flush()


def finish(metrics: dict[str, Any], reasons: list[str]) -> int:
    """Emit ``metrics`` (with ``reason``, the ``reasons`` joined, when there are any) and return the exit
    code: failed when any reason was found, else passed."""
    if reasons:
        metrics["reason"] = "; ".join(reasons)
    emit(metrics)
    return EXIT_FAILED if reasons else EXIT_PASSED


def say(message: str) -> None:
    """A progress line in the gate's log."""
    sys.stdout.write(message.rstrip() + "\n")
    sys.stdout.flush()


def run(argv: Sequence[str | Path], *, cwd: Path | None = None, env: dict[str, str] | None = None,
        timeout: float | None = None, capture: bool = False) -> subprocess.CompletedProcess[str]:
    """Run a command, echoing it; output goes to the gate log (or is captured)."""
    say("$ " + " ".join(str(a) for a in argv))
    try:
        return subprocess.run(
            [str(a) for a in argv], cwd=cwd, env=env, timeout=timeout, text=True, check=False,
            stdout=subprocess.PIPE if capture else None, stderr=subprocess.STDOUT if capture else None,
        )
    except FileNotFoundError as exc:
        raise GateProgramError(f"cannot run {argv[0]!r}: {exc.strerror}") from None


def clean_env(extra: dict[str, str] | None = None, *, drop_pythonpath: bool = False) -> dict[str, str]:
    """The environment for a child process, without the runner's private variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATE_")}
    if drop_pythonpath:
        env.pop("PYTHONPATH", None)
    env.update(extra or {})
    return env


def param_parser(description: str) -> argparse.ArgumentParser:
    """An argparse parser for a gate program."""
    return argparse.ArgumentParser(description=description)


def setting(args: argparse.Namespace, name: str, default: Any) -> Any:
    """A setting: the command-line value when given, else ``params[name]``, else ``default``."""
    value = getattr(args, name, None)
    if value is not None:
        return value
    return params().get(name, default)


def main_guard(body: Callable[[], int]) -> None:
    """Run a gate program's body and exit with its code; an error that stops it exits 3 (errored)."""
    try:
        code = body()
    except GateProgramError as exc:
        say(f"gate could not run: {exc}")
        emit({"verdict": "errored", "reason": str(exc)})
        code = EXIT_ERRORED
    except KeyboardInterrupt:
        code = 130
    except Exception as exc:
        traceback.print_exc()
        emit({"verdict": "errored", "reason": f"{type(exc).__name__}: {exc}"})
        code = EXIT_ERRORED
    raise SystemExit(code)


# end-to-end checks ---------------------------------------------------------------------------------------
class CheckFailed(Exception):
    """An end-to-end check saw something wrong (the gate fails with this reason)."""


Check = Callable[[Path, float], dict[str, Any]]


def run_module_cli(module: str, args: list[str], cwd: Path, *, shown: str, expect: int = 0,
                   timeout: float = 300, env: dict[str, str] | None = None) -> str:
    """Run ``python -m MODULE ARGS`` (a command line under test) in ``cwd``; its stdout, or CheckFailed.

    ``shown`` is the program name printed in the log and in the failure reason.
    """
    child_env = clean_env({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", **(env or {})})
    for private in ("SKIP", "ORCHESTRATOR_REPO"):
        child_env.pop(private, None)
    say("$ " + " ".join([shown, *args]))
    proc = subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=child_env, capture_output=True,
                          text=True, timeout=timeout, check=False)
    if proc.returncode != expect:
        raise CheckFailed(
            f"`{shown} {' '.join(args)}` exited {proc.returncode} (expected {expect}): "
            + (proc.stderr.strip() or proc.stdout.strip())[-2000:]
        )
    return proc.stdout


def parse_json_output(text: str) -> Any:
    """The JSON a command printed, or CheckFailed quoting the start of what it printed instead."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CheckFailed(f"expected JSON output: {exc}: {text[:300]!r}") from None


def checks_main(checks: Mapping[str, Check], argv: list[str] | None = None, *, description: str) -> int:
    """Run the one check named on the command line in a temporary folder; emit its metrics line.

    Each check takes (temporary folder, tolerance) and returns its metrics, or raises CheckFailed.
    """
    import time

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("check", choices=sorted(checks))
    parser.add_argument("--tol", type=float, default=1e-4, help="numeric tolerance, relative to the largest value")
    args = parser.parse_args(argv)
    key = args.check.replace("-", "_")
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"gate-{args.check}-") as tmp:
        try:
            result = checks[args.check](Path(tmp), args.tol)
        except CheckFailed as exc:
            say(f"FAILED {args.check}: {exc}")
            emit({key: {"ok": False, "reason": str(exc)}, "reason": f"{args.check}: {exc}"})
            return EXIT_FAILED
    result["seconds"] = round(time.monotonic() - t0, 2)
    say(f"passed {args.check}: {json.dumps(result)}")
    emit({key: {"ok": True, **result}})
    return EXIT_PASSED
