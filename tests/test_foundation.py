"""The foundation: both CLIs start, map errors to exit codes, and doctor tells the truth."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

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


def test_store_files_are_judged_by_their_header_before_sqlite_opens_them(tmp_path: Path) -> None:
    from bno_foundation import sqlite

    sound = tmp_path / "sound.db"
    conn = sqlite.connect(sound)
    conn.execute("CREATE TABLE t (x TEXT)")
    conn.executemany("INSERT INTO t VALUES (?)", [("x" * 500,)] * 100)
    conn.close()
    assert sqlite.inspect_file(sound) is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sound.db"]  # made under a temporary name, then linked
    assert sqlite.inspect_file(tmp_path / "absent.db") is None
    cases = {"empty.db": (b"", sqlite.EMPTY), "garbage.db": (b"\x00not sqlite" * 50, sqlite.NOT_A_DATABASE),
             "truncated.db": (sound.read_bytes()[:5000], sqlite.TRUNCATED)}
    for name, (data, kind) in cases.items():
        (tmp_path / name).write_bytes(data)
        found = sqlite.inspect_file(tmp_path / name)
        assert found is not None and found.kind == kind, name
        with pytest.raises(sqlite.DamagedStoreError) as info:
            sqlite.connect(tmp_path / name, hint="restore a copy")
        assert str(info.value).startswith(f"{tmp_path / name}: ") and str(info.value).endswith("; restore a copy")
        assert (tmp_path / name).read_bytes() == data
    with pytest.raises(sqlite.MissingStoreError):
        sqlite.connect(tmp_path / "absent.db", create=False)
    assert not (tmp_path / "absent.db").exists()


def test_an_untrusted_store_is_a_user_error_exit_2_and_still_a_store_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from bno_foundation import sqlite
    from bno_foundation.errors import StoreError, UserError

    error = sqlite.DamagedStoreError(tmp_path / "state.db", sqlite.EMPTY, "the file is empty", "restore it")
    assert isinstance(error, StoreError) and isinstance(error, UserError)
    parser = cliutil.CliArgumentParser(prog="x")

    def handler(args: object) -> int:
        raise error

    parser.set_defaults(handler=handler)
    assert cliutil.run_cli("x", parser, [], (UserError,)) == cliutil.EXIT_USER_ERROR
    assert capsys.readouterr().err == f"x: error: {tmp_path / 'state.db'}: the file is empty; restore it\n"


def test_a_write_protected_store_reads_and_refuses_writes(tmp_path: Path) -> None:
    import os

    from bno_foundation import sqlite

    path = tmp_path / "state.db"
    conn = sqlite.connect(path)
    conn.execute("CREATE TABLE t (x INTEGER)")
    conn.execute("INSERT INTO t VALUES (1)")
    conn.close()
    os.chmod(path, 0o444)
    try:
        conn = sqlite.connect(path)
        assert conn.read_only is not None and "mode 0444" in conn.read_only
        assert conn.execute("SELECT x FROM t").fetchall() == [(1,)]
        with pytest.raises(sqlite.ReadOnlyStoreError, match="read-only"), sqlite.immediate(conn):
            conn.execute("INSERT INTO t VALUES (2)")
        conn.close()
    finally:
        os.chmod(path, 0o644)
