"""Gate run records and the gate cache, in the orchestrator's SQLite file (own tables, own schema version).

Tables: ``gate_runs`` (one row per run), ``gate_results`` (one row per gate of a run) and ``gate_cache``
(passed results by cache key, with their log, for replay); the version of these tables is the
``quality-gates`` row of the ``schema_version`` table the components sharing the file use. The file is opened
in WAL mode with a busy timeout, so the board and a hook can read while a run writes. Each run is written in
one transaction: a killed run leaves no half-written record.
"""

from __future__ import annotations

import datetime as _dt
import json
import secrets
import sqlite3
import time
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from bno_foundation import sqlite
from bno_foundation.sqlite import Migration
from bno_quality_gates.status import GateStatus

COMPONENT = "quality-gates"  # our row in the shared schema_version table
MAX_CACHED_LOG = 2 * 1024 * 1024  # bytes of log kept for replay

_SCHEMA = """
CREATE TABLE IF NOT EXISTS gate_runs (
    run_id TEXT PRIMARY KEY,
    started REAL NOT NULL,
    finished REAL NOT NULL,
    mode TEXT NOT NULL,
    hook TEXT,
    base TEXT,
    head TEXT,
    passed INTEGER NOT NULL,
    exit_code INTEGER NOT NULL,
    machine TEXT NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS gate_runs_started ON gate_runs (started);
CREATE TABLE IF NOT EXISTS gate_results (
    run_id TEXT NOT NULL REFERENCES gate_runs (run_id),
    gate TEXT NOT NULL,
    status TEXT NOT NULL,
    required INTEGER NOT NULL,
    duration REAL NOT NULL,
    attempts INTEGER NOT NULL,
    key TEXT,
    reason TEXT NOT NULL,
    counts TEXT NOT NULL,
    metrics TEXT NOT NULL,
    started REAL NOT NULL,
    PRIMARY KEY (run_id, gate)
);
CREATE INDEX IF NOT EXISTS gate_results_gate ON gate_results (gate, started);
CREATE TABLE IF NOT EXISTS gate_cache (
    key TEXT PRIMARY KEY,
    gate TEXT NOT NULL,
    status TEXT NOT NULL,
    duration REAL NOT NULL,
    attempts INTEGER NOT NULL,
    counts TEXT NOT NULL,
    metrics TEXT NOT NULL,
    log TEXT NOT NULL,
    machine TEXT NOT NULL,
    machine_bound INTEGER NOT NULL,
    run_id TEXT NOT NULL,
    created REAL NOT NULL
);
"""
MIGRATIONS = (
    Migration(1, "gate runs, results and cache", tuple(s for s in _SCHEMA.split(";") if s.strip())),
)
SCHEMA_VERSION = MIGRATIONS[-1].version


def new_run_id() -> str:
    """A sortable unique run id: UTC time plus a random suffix."""
    return _dt.datetime.now(_dt.UTC).strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3)


class SkipCause(StrEnum):
    """Why a gate was ``skipped``: only a false condition leaves a required gate's run green."""

    CONDITION = "condition"  # a dependency condition is false (or an upstream gate was skipped): not wanted
    REQUESTED = "requested"  # $SKIP: the run may exit 0, but it is not green
    RESOURCES = "resources"  # the machine lacks what the gate needs (a GPU): a required gate fails the run


@dataclass
class GateResult:
    """The outcome of one gate in one run."""

    gate: str
    status: GateStatus
    required: bool
    reason: str = ""
    duration: float = 0.0
    attempts: int = 0
    key: str | None = None
    exit_code: int | None = None
    counts: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    started: float = 0.0
    log_path: str | None = None
    cached_from: str | None = None  # the run whose pass was replayed
    skip_cause: SkipCause | None = None  # set when skipped; records written before it read back as None

    def __post_init__(self) -> None:
        self.status = GateStatus(self.status)  # records read back from JSON carry plain strings
        if self.skip_cause is not None:
            self.skip_cause = SkipCause(self.skip_cause)

    @property
    def ok(self) -> bool:
        """Passed, or a replayed pass."""
        return self.status.ok

    @property
    def not_wanted(self) -> bool:
        """Skipped because a dependency condition is false: neither a pass nor a failure."""
        return self.status == GateStatus.SKIPPED and self.skip_cause == SkipCause.CONDITION

    @property
    def blocks(self) -> bool:
        """A required gate that neither passed nor was left out by a false condition: the run is not green.

        Failed, errored, omitted (an upstream gate did not give what it needs), skipped for want of a
        resource, and skipped on request (``$SKIP``, which :attr:`RunRecord.exit_code` then lets through).
        """
        return self.required and not self.ok and not self.not_wanted

    def to_json(self) -> dict[str, Any]:
        """Plain JSON data."""
        return asdict(self)


@dataclass
class RunRecord:
    """One run of the gate DAG."""

    run_id: str
    started: float
    finished: float
    mode: str  # all | affected | only | hook
    hook: str | None
    base: str | None
    head: str | None
    machine: str
    results: list[GateResult]
    changed_files: list[str] = field(default_factory=list)
    not_affected: list[str] = field(default_factory=list)
    skip_requested: list[str] = field(default_factory=list)  # from $SKIP
    overridden: list[str] = field(default_factory=list)  # required gates skipped on request
    run_dir: str | None = None

    @property
    def passed(self) -> bool:
        """Green: every required gate passed (a replayed pass counts) or was not wanted (a false condition)."""
        return not any(r.blocks for r in self.results)

    @property
    def exit_code(self) -> int:
        """0 when every required gate passed, was not wanted, or was skipped on request ($SKIP), else 1."""
        return 1 if self.blocking() else 0

    def blocking(self) -> list[GateResult]:
        """The required gates that fail the run (a gate skipped on request through $SKIP does not)."""
        return [r for r in self.results if r.blocks and r.gate not in self.overridden]

    def counts(self) -> dict[str, int]:
        """How many gates ended in each status."""
        out: dict[str, int] = {}
        for result in self.results:
            out[result.status] = out.get(result.status, 0) + 1
        return out

    def to_json(self) -> dict[str, Any]:
        """Plain JSON data, with the verdict."""
        data = asdict(self)
        data["passed"] = self.passed
        data["exit_code"] = self.exit_code
        data["duration"] = round(self.finished - self.started, 6)
        return data


def _result_from_row(row: sqlite3.Row) -> dict[str, Any]:
    data = dict(row)
    data["required"] = bool(data["required"])
    data["counts"] = json.loads(data["counts"])
    data["metrics"] = json.loads(data["metrics"])
    return data


class ResultsDB:
    """Gate records and cache in one SQLite file (normally ``.orchestrator/state.db``)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._conn = sqlite.connect(self.path, row_factory=True)
        self._migrate()

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()

    def __enter__(self) -> ResultsDB:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _tx(self) -> AbstractContextManager[sqlite3.Connection]:
        return sqlite.immediate(self._conn)

    def _migrate(self) -> None:
        sqlite.migrate(self._conn, COMPONENT, MIGRATIONS, path=self.path)

    @property
    def schema_version(self) -> int:
        """The version of the gate tables stored in the file."""
        return sqlite.schema_version(self._conn, COMPONENT)

    # records -----------------------------------------------------------------------------------------------
    def record(self, run: RunRecord) -> None:
        """Store a run and its gate results (one transaction)."""
        with self._tx() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO gate_runs (run_id, started, finished, mode, hook, base, head, passed,"
                " exit_code, machine, record) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run.run_id, run.started, run.finished, run.mode, run.hook, run.base, run.head,
                    int(run.passed), run.exit_code, run.machine, json.dumps(run.to_json(), sort_keys=True),
                ),
            )
            conn.execute("DELETE FROM gate_results WHERE run_id = ?", (run.run_id,))
            for r in run.results:
                conn.execute(
                    "INSERT INTO gate_results (run_id, gate, status, required, duration, attempts, key, reason,"
                    " counts, metrics, started) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        run.run_id, r.gate, r.status, int(r.required), r.duration, r.attempts, r.key, r.reason,
                        json.dumps(r.counts, sort_keys=True), json.dumps(r.metrics, sort_keys=True),
                        r.started or run.started,
                    ),
                )

    def runs(self, limit: int = 20) -> list[dict[str, Any]]:
        """The latest runs, newest first: id, times, mode, verdict and the status count of their gates."""
        rows = self._conn.execute(
            "SELECT run_id, started, finished, mode, hook, base, head, passed, exit_code, machine FROM gate_runs"
            " ORDER BY started DESC, run_id DESC LIMIT ?",
            (limit,),
        ).fetchall()
        out = []
        for row in rows:
            data = dict(row)
            data["passed"] = bool(data["passed"])
            statuses = self._conn.execute(
                "SELECT status, COUNT(*) AS n FROM gate_results WHERE run_id = ? GROUP BY status", (row["run_id"],)
            ).fetchall()
            data["statuses"] = {s["status"]: s["n"] for s in statuses}
            out.append(data)
        return out

    def run(self, run_id: str) -> dict[str, Any] | None:
        """The full JSON record of one run (``latest`` for the newest), or None."""
        if run_id == "latest":
            row = self._conn.execute("SELECT record FROM gate_runs ORDER BY started DESC, run_id DESC LIMIT 1").fetchone()
        else:
            row = self._conn.execute("SELECT record FROM gate_runs WHERE run_id = ?", (run_id,)).fetchone()
        return json.loads(row["record"]) if row else None

    def history(self, gate: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """Gate results, newest first (all gates, or one)."""
        sql = "SELECT * FROM gate_results"
        params: tuple[Any, ...] = ()
        if gate:
            sql += " WHERE gate = ?"
            params = (gate,)
        sql += " ORDER BY started DESC, run_id DESC LIMIT ?"
        rows = self._conn.execute(sql, (*params, limit)).fetchall()
        return [_result_from_row(r) for r in rows]

    def pass_rates(self, limit_runs: int = 50) -> dict[str, dict[str, int]]:
        """Per gate over the latest runs: {status: count} (for the reports)."""
        rows = self._conn.execute(
            "SELECT gate, status, COUNT(*) AS n FROM gate_results WHERE run_id IN"
            " (SELECT run_id FROM gate_runs ORDER BY started DESC LIMIT ?) GROUP BY gate, status",
            (limit_runs,),
        ).fetchall()
        out: dict[str, dict[str, int]] = {}
        for row in rows:
            out.setdefault(row["gate"], {})[row["status"]] = row["n"]
        return out

    # cache ---------------------------------------------------------------------------------------------------
    def cache_get(self, key: str, machine: str) -> dict[str, Any] | None:
        """A cached pass for ``key``; machine-bound entries only for the same machine fingerprint."""
        row = self._conn.execute("SELECT * FROM gate_cache WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        if row["machine_bound"] and row["machine"] != machine:
            return None
        data = dict(row)
        data["counts"] = json.loads(data["counts"])
        data["metrics"] = json.loads(data["metrics"])
        return data

    def cache_put(self, result: GateResult, *, log: str, machine: str, machine_bound: bool, run_id: str) -> None:
        """Remember a passed result for replay."""
        assert result.key, "a cached result needs its key"
        assert result.status == "passed", "only passes are cached"
        if len(log) > MAX_CACHED_LOG:
            log = "[... log truncated for the cache ...]\n" + log[-MAX_CACHED_LOG:]
        with self._tx() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO gate_cache (key, gate, status, duration, attempts, counts, metrics, log,"
                " machine, machine_bound, run_id, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    result.key, result.gate, result.status, result.duration, result.attempts,
                    json.dumps(result.counts, sort_keys=True), json.dumps(result.metrics, sort_keys=True), log,
                    machine, int(machine_bound), run_id, time.time(),
                ),
            )

    def cache_clear(self, gate: str | None = None) -> int:
        """Forget cached results (of one gate or all); returns how many."""
        with self._tx() as conn:
            if gate:
                cur = conn.execute("DELETE FROM gate_cache WHERE gate = ?", (gate,))
            else:
                cur = conn.execute("DELETE FROM gate_cache")
            return cur.rowcount
