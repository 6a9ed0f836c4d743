"""``orchestrator doctor``: is this machine ready to run the orchestrator and the BitNet gates?"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from bno_foundation.errors import ProjectError
from bno_foundation.sqlite import NewerStoreError
from bno_foundation.toolchain import MISSING, OK, WARN, Check
from bno_orchestrator.paths import state_dir


def store_writable_check(repo: Path) -> Check:
    """Whether ``REPO/.orchestrator`` can be written (checked with a real temporary file when it exists; the
    doctor creates nothing, so a folder not made yet is judged by its parent's rights)."""
    try:
        target = state_dir(repo)
    except ProjectError as exc:
        return Check("store path", MISSING, str(exc), "remove the link")
    if not target.is_dir():
        parent = repo if repo.is_dir() else None
        if parent is not None and os.access(parent, os.W_OK):
            return Check("store path", OK, f"{target} not created yet; {parent} is writable")
        return Check("store path", MISSING, f"{target}: {repo} is missing or not writable",
                     "point --repo at a writable repository")
    try:
        fd, name = tempfile.mkstemp(dir=target, prefix=".doctor-")
        os.close(fd)
        os.unlink(name)
    except OSError as exc:
        return Check("store path", WARN, f"{target}: {exc.strerror or exc}: the store can be read, not written",
                     "make the directory writable")
    return Check("store path", OK, f"{target} is writable")


def _repository_problem(repo: Path) -> str | None:
    """Why ``repo`` is no repository the orchestrator can use yet (the message the other commands give)."""
    from bno_orchestrator.commands.core_support import require_repository

    try:
        require_repository(repo)
    except ProjectError as exc:
        return str(exc)
    return None


def store_check(repo: Path) -> Check:
    """Which store this clone uses (engine, location without password, where the choice came from) and what
    state it is in. A SQLite file is only read (``store check``: never created, migrated or changed): present
    and sound, present but damaged or of a newer schema (with how to recover), or read-only. A PostgreSQL
    store is connected to and its events counted."""
    from bno_orchestrator.commands.store import inspect_sqlite
    from bno_orchestrator.store import Store
    from bno_orchestrator.store_url import POSTGRES, resolve, scrub

    problem = _repository_problem(repo)
    if problem is not None:
        return Check("store", WARN, problem, "run `orchestrator init` in the repository")
    try:
        target = resolve(repo)
    except ProjectError as exc:
        return Check("store", MISSING, str(exc), "fix the store URL")
    where = f"{target.engine} {target.display} (from {target.source})"
    if target.path is not None:
        from bno_foundation.sqlite import write_protection

        if not target.path.exists():
            return Check("store", OK, f"{where}: not created yet (the first command that writes creates it)")
        inspection = inspect_sqlite(target.path)
        if not inspection.ok:
            said = "; ".join(f"{f.name}: {f.detail}" for f in inspection.findings if not f.ok)
            newer = any(f.name == "schema" and "newer" in f.detail for f in inspection.findings)
            state = "present, of a newer schema" if newer else "present but damaged"
            fix = ("upgrade bitnet-orchestrator" if newer else
                   "`orchestrator store check`, then `orchestrator store recover` (rebuilds from the event log "
                   "where it is intact) or restore a copy: docs/store-recovery.md")
            return Check("store", MISSING, f"{where}: {state}: {said}; the file was left as it is", fix)
        counted = next((f.detail for f in inspection.findings if f.name == "event log"), "")
        protection = write_protection(target.path)
        if protection:
            return Check("store", WARN, f"{where}: sound, {counted}, read-only ({protection}): writes are refused",
                         "make it writable to change tasks")
        return Check("store", OK, f"{where}: sound, {counted}")
    try:
        with Store.connect(target.url, repo=repo) as store:
            detail = f"{where}: reachable, schema {store.schema_version()}, {store.event_count()} events"
    except NewerStoreError as exc:
        return Check("store", MISSING, f"{where}: reachable, of a newer schema: {scrub(exc.problem, target.url)}",
                     "upgrade bitnet-orchestrator")
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
