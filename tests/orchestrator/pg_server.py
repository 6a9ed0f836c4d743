"""A throw-away PostgreSQL server for the store's tests: one per test session, on a unix socket.

``initdb`` makes a cluster in a fresh temporary directory and ``pg_ctl`` starts it listening on no TCP
address at all (``listen_addresses=''``), only on a socket in that directory. PostgreSQL refuses to run as
root, so when the tests run as root the cluster belongs to the unprivileged ``nobody`` user and the
server commands run through ``runuser``. Every wait is bounded (``pg_ctl -w -t``). Where the binaries are
absent the tests that need the server are skipped with a message saying what to install.

Each store a test opens gets its own schema (:func:`fresh_schema`), so tests never see each other's rows.
:func:`new_store_url` is the store suite's parametrised fixture: every test using it runs on both engines.
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest

START_TIMEOUT_S = 60
SUPERUSER = "postgres"
UNPRIVILEGED = "nobody"
DATABASE = "bno_test"  # the session's database; each store gets a schema of its own in it
_counter = itertools.count(1)


@dataclass(frozen=True)
class PgServer:
    """A running test server: its socket directory and superuser."""

    socket_dir: Path
    data_dir: Path

    def url(self, database: str = "postgres", user: str = SUPERUSER) -> str:
        """A ``postgresql://`` URL reaching ``database`` as ``user`` over the socket (trust auth)."""
        return f"postgresql://{quote(user)}@/{quote(database)}?host={quote(str(self.socket_dir))}"


def binaries() -> tuple[str, str] | None:
    """``initdb`` and ``pg_ctl`` from PATH (or the Debian package's bin directory), or None."""
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb and pg_ctl:
        return initdb, pg_ctl
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (candidate / "initdb").is_file() and (candidate / "pg_ctl").is_file():
            return str(candidate / "initdb"), str(candidate / "pg_ctl")
    return None


def _as_server_user(argv: list[str]) -> list[str]:
    """``argv`` run as the unprivileged user when we are root (PostgreSQL refuses root)."""
    if os.geteuid() != 0:
        return argv
    return ["runuser", "-u", UNPRIVILEGED, "--", *argv]


def _run(argv: list[str], what: str) -> None:
    proc = subprocess.run(_as_server_user(argv), capture_output=True, text=True, timeout=START_TIMEOUT_S + 30,
                          stdin=subprocess.DEVNULL, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed ({proc.returncode}): {proc.stdout}\n{proc.stderr}")


# Stops the server and removes its directory once its stdin reaches end of file: when the test session
# closes the pipe, or when the session dies in any way (a timeout, kill -9), since the kernel closes it then.
_WATCHDOG = """
import shutil, subprocess, sys
sys.stdin.buffer.read()
subprocess.run(sys.argv[2:], capture_output=True, timeout=90, stdin=subprocess.DEVNULL, check=False)
shutil.rmtree(sys.argv[1], ignore_errors=True)
"""


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """One PostgreSQL server for the whole session, stopped (and its directory removed) at the end, or by a
    watchdog process when the session is killed before its teardown runs."""
    found = binaries()
    if found is None:
        pytest.skip("PostgreSQL's initdb and pg_ctl are not installed (apt-get install postgresql, then put "
                    "/usr/lib/postgresql/<version>/bin on PATH)")
    initdb, pg_ctl = found
    root = Path(tempfile.mkdtemp(prefix="bno-pg-"))
    if os.geteuid() == 0:
        entry = pwd.getpwnam(UNPRIVILEGED)
        os.chown(root, entry.pw_uid, entry.pw_gid)
    data = root / "data"
    server = PgServer(socket_dir=root, data_dir=data)
    stop = _as_server_user([pg_ctl, "-D", str(data), "-m", "fast", "-w", "-t", str(START_TIMEOUT_S), "stop"])
    read_end, write_end = os.pipe()  # neither end is inherited by other children (PEP 446)
    watchdog = subprocess.Popen([sys.executable, "-c", _WATCHDOG, str(root), *stop], stdin=read_end,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    os.close(read_end)
    try:
        _run([initdb, "-D", str(data), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8", "--no-sync",
              "--locale=C"], "initdb")
        options = f"-k {root} -c listen_addresses='' -c fsync=off -c synchronous_commit=off -c max_connections=60"
        _run([pg_ctl, "-D", str(data), "-l", str(root / "server.log"), "-o", options, "-w", "-t",
              str(START_TIMEOUT_S), "start"], "pg_ctl start")
        import psycopg

        with psycopg.connect(server.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{DATABASE}"'.encode())
        yield server
    finally:
        os.close(write_end)  # the watchdog stops the server and removes the directory
        watchdog.wait(START_TIMEOUT_S + 60)


def fresh_schema(server: PgServer) -> str:
    """Create an empty schema in the session's test database; returns a URL whose ``search_path`` is it, so
    a store opened on it starts empty (schemas are cheap: one per store a test opens)."""
    import psycopg

    name = f"s_{os.getpid()}_{next(_counter)}"
    with psycopg.connect(server.url(DATABASE), autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{name}"'.encode())
    return f"{server.url(DATABASE)}&options={quote(f'-csearch_path={name}')}"


NewStoreUrl = Callable[[], str]


@pytest.fixture(params=["sqlite", "postgresql"])
def new_store_url(request: pytest.FixtureRequest, tmp_path: Path) -> NewStoreUrl:
    """The store suite's one parametrised fixture: a function returning the URL of a new, empty store on
    the engine of this run (a SQLite file under tmp_path, or a fresh schema on the session's server)."""
    if request.param == "sqlite":
        counter = itertools.count(1)
        return lambda: f"sqlite:///{tmp_path / f'store-{next(counter)}' / 'state.db'}"
    server: PgServer = request.getfixturevalue("pg_server")
    return lambda: fresh_schema(server)
