"""``orchestrator doctor``: is this machine ready to run the orchestrator and the BitNet gates?"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path
from typing import Any

from bno_foundation.toolchain import MISSING, OK, WARN, Check, git_check, report, toolchain_checks
from bno_orchestrator.commands import add_json_flag, repo_from_args
from bno_orchestrator.paths import state_dir


def store_writable_check(repo: Path) -> Check:
    """Whether ``REPO/.orchestrator`` can be created and written (checked with a real temporary file)."""
    target = state_dir(repo)
    try:
        target.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=target, prefix=".doctor-")
        os.close(fd)
        os.unlink(name)
    except OSError as exc:
        return Check("store path", MISSING, f"{target}: {exc.strerror or exc}", "make the directory writable")
    return Check("store path", OK, f"{target} is writable")


def store_check(repo: Path) -> Check:
    """Which store this clone uses (engine, location without password, where the choice came from) and
    whether it is reachable: it is opened, migrated if needed, and its events counted."""
    from bno_foundation.errors import ProjectError
    from bno_orchestrator.store import Store
    from bno_orchestrator.store_url import POSTGRES, resolve, scrub

    try:
        target = resolve(repo)
    except ProjectError as exc:
        return Check("store", MISSING, str(exc), "fix the store URL")
    where = f"{target.engine} {target.display} (from {target.source})"
    if target.path is not None and not target.path.exists():
        return Check("store", OK, f"{where}: not created yet (the first command that writes creates it)")
    try:
        with Store.connect(target.url, repo=repo) as store:
            detail = f"{where}: reachable, schema {store.schema_version()}, {store.event_count()} events"
    except ProjectError as exc:
        hint = ("check the server, the URL, and the password in ~/.pgpass or PGPASSWORD"
                if target.engine == POSTGRES else "see the message")
        return Check("store", MISSING, f"{where}: unreachable: {scrub(str(exc), target.url)}", hint)
    return Check("store", OK, detail)


def agent_cli_checks(repo: Path) -> list[Check]:
    """Each agent CLI: installed or not, and its version against the one the tests ran (optional rows)."""
    import subprocess

    from bno_orchestrator.dispatch.clis import CLIS, find_binary

    checks = []
    for cli in CLIS.values():
        binary = find_binary(cli.kind, repo)
        if binary is None:
            checks.append(Check(f"agent: {cli.kind}", WARN, "not installed", cli.install_hint, required=False))
            continue
        try:
            proc = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30,
                                  stdin=subprocess.DEVNULL)
            said = (proc.stdout.strip() or proc.stderr.strip()).splitlines()[-1:] or ["?"]
        except (OSError, subprocess.TimeoutExpired) as exc:
            said = [f"--version failed: {exc}"]
        tested = cli.tested_version in said[0]
        detail = f"{said[0]} ({binary})" + ("" if tested else f"; tested with {cli.tested_version}")
        checks.append(Check(f"agent: {cli.kind}", OK if tested else WARN, detail,
                            "" if tested else cli.install_hint, required=False))
    return checks


def run(args: argparse.Namespace) -> int:
    """The framework's view of the doctor: the toolchain, git, the store path, the store in use and whether
    it is reachable, and the agent CLIs."""
    repo = repo_from_args(args)
    checks = [*toolchain_checks(include_slow=not args.quick), git_check(), store_writable_check(repo),
              store_check(repo), *agent_cli_checks(repo)]
    return report("orchestrator", checks, as_json=args.json)


def register(sub: Any) -> None:
    parser = sub.add_parser("doctor", help="check the toolchain, git, the store and the agent CLIs")
    parser.add_argument("--quick", action="store_true", help="skip the slow probes (CUDA, Triton interpreter)")
    add_json_flag(parser)
    parser.set_defaults(handler=run)
