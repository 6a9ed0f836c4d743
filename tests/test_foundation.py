"""The foundation: both CLIs start, map errors to exit codes, and doctor tells the truth."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bno_foundation import cli as cliutil
from bno_orchestrator.cli import main as orchestrator_main
from bno_orchestrator.errors import ConfigError


def test_config_error_names_file_line_column_and_field() -> None:
    err = ConfigError("expected an integer", path="workflows/gates.yaml", line=12, column=5, field="timeout")
    assert str(err) == "workflows/gates.yaml:12:5: field 'timeout': expected an integer"


def test_bad_argument_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        orchestrator_main(["no-such-command"])
    assert info.value.code == cliutil.EXIT_USER_ERROR
    assert "invalid choice" in capsys.readouterr().err


def test_run_cli_maps_exceptions_to_exit_codes(tmp_path: object, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    parser = cliutil.CliArgumentParser(prog="x")
    parser.add_argument("--what")

    def handler(args: object) -> int:
        what = getattr(args, "what", "")
        if what == "user":
            raise ValueError("bad value in field 'x'")
        if what == "interrupt":
            raise KeyboardInterrupt
        raise RuntimeError("boom")

    parser.set_defaults(handler=handler)
    assert cliutil.run_cli("x", parser, ["--what", "user"], (ValueError,)) == 2
    assert capsys.readouterr().err.strip() == "x: error: bad value in field 'x'"
    assert cliutil.run_cli("x", parser, ["--what", "interrupt"], (ValueError,)) == 130
    capsys.readouterr()
    assert cliutil.run_cli("x", parser, ["--what", "internal"], (ValueError,)) == 3
    err = capsys.readouterr().err
    assert "internal error: RuntimeError: boom" in err
    log_path = err.split("the traceback is in ")[1].split(" (rerun")[0]
    with open(log_path, encoding="utf-8") as fh:
        assert "RuntimeError: boom" in fh.read()


@pytest.mark.parametrize("program", ["orchestrator", "bitnet"])
def test_doctor_json_is_truthful(program: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", f"bno_{program}.cli", "doctor", "--quick", "--json"],
        capture_output=True, text=True, timeout=120,
    )
    report = json.loads(proc.stdout)
    names = {c["name"]: c for c in report["checks"]}
    assert {"python", "torch", "triton", "c++ compiler"} <= set(names)
    import torch

    assert names["torch"]["detail"] == torch.__version__
    assert proc.returncode == (0 if report["ok"] else 1)


def test_orchestrator_cli_does_not_import_torch() -> None:
    code = "import sys, bno_orchestrator.cli; bno_orchestrator.cli.build_parser(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
