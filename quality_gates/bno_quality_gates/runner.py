"""Run the gate DAG: parallel where the graph allows, process groups killed on timeout, results cached.

Each gate runs its command(s) with ``subprocess.Popen(argv, start_new_session=True)``: on timeout the whole
process group gets SIGTERM, then SIGKILL after a grace period, so nothing a gate started survives it.
Statuses (docs/architecture.md, "Quality gates"): ``passed``; ``failed`` (a non-zero exit, or a timeout); ``errored`` (could not run:
the program is missing, or it exited with one of the gate's ``errored_exit_codes``); ``skipped`` (a condition
is false: SKIP requested, no GPU, a ``.failed`` dependency whose gate passed); ``omitted`` (an upstream gate
did not give what the dependency asks for); ``cached`` (a pass replayed from an identical input hash).
A required gate that is not passed or cached fails the run (exit code 1), except when it was skipped on
request through ``$SKIP`` (the run then exits 0 but is recorded as not green, with the override).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import networkx as nx

from bno_foundation.atomic import atomic_write
from bno_quality_gates import affected as aff
from bno_quality_gates import cache as cache_mod
from bno_quality_gates.dag import build_graph, order, upstream_of, with_dependents, with_upstream
from bno_quality_gates.errors import GateError
from bno_quality_gates.fastpath import skip_from_env
from bno_quality_gates.junit import write_run_junit
from bno_quality_gates.results import GateResult, ResultsDB, RunRecord, new_run_id
from bno_quality_gates.spec import GatesConfig, GateSpec
from bno_quality_gates.status import GateStatus
from bno_quality_gates.summary import markdown

__all__ = ["Plan", "RunOptions", "Runner", "index_snapshot", "kill_group", "new_run_id",
           "parse_metrics", "skip_from_env"]

METRICS_PREFIX = "GATE-METRICS "
EventHandler = Callable[[str, str, GateResult | None], None]


@dataclass
class RunOptions:
    """What to run and where.

    ``mode``: ``all`` (every gate), ``affected`` (gates whose inputs changed since ``base``, default the
    uncommitted work), ``only`` (the gates in ``only``) or ``hook`` (``hook`` names which: pre-commit runs
    the affected pre-commit gates of the staged change, pre-push every pre-push gate).
    """

    repo: Path
    mode: str = "all"
    hook: str | None = None
    base: str | None = None
    only: list[str] = field(default_factory=list)
    no_deps: bool = False  # with mode "only": do not pull in upstream gates (CI jobs, whose `needs` did)
    use_cache: bool = True
    workers: int | None = None
    skip: list[str] = field(default_factory=list)
    source: str = "worktree"  # worktree | index (a read-only snapshot of the staged content)
    state_dir: Path | None = None  # default REPO/.orchestrator
    db_path: Path | None = None  # default STATE/state.db
    record: bool = True
    changed: list[str] | None = None  # precomputed changed files (tests); else asked from git


@dataclass
class Plan:
    """The gates a run will consider, and why others are out."""

    selected: list[str]
    not_affected: list[str]
    changed: list[str]
    staged: bool


@contextlib.contextmanager
def index_snapshot(repo: Path) -> Iterator[Path]:
    """A temporary directory holding the staged content (``git checkout-index``); the repo is untouched.

    Unstaged work stays where it is: nothing is stashed or checked out in the working tree.
    """
    tmp = Path(tempfile.mkdtemp(prefix="gates-index-"))
    try:
        proc = subprocess.run(
            ["git", "checkout-index", "--all", "--force", f"--prefix={tmp}/"],
            cwd=repo,
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise GateError(f"cannot snapshot the index of {repo}: {proc.stderr.strip()}")
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def kill_group(proc: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM the process group of ``proc``, then SIGKILL it after ``grace`` seconds."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)


def parse_metrics(text: str) -> dict[str, Any]:
    """Merge every ``GATE-METRICS {json}`` line of a gate's output (later keys win)."""
    out: dict[str, Any] = {}
    for line in text.splitlines():
        if line.startswith(METRICS_PREFIX):
            try:
                data = json.loads(line[len(METRICS_PREFIX) :])
            except json.JSONDecodeError:
                continue
            if isinstance(data, dict):
                out.update(data)
    return out


@dataclass
class _Attempt:
    exit_code: int | None
    timed_out: bool
    error: str | None  # could not start
    output: str


class Runner:
    """Runs a gates config against a repository."""

    def __init__(
        self,
        config: GatesConfig,
        options: RunOptions,
        *,
        on_event: EventHandler | None = None,
        components: dict[str, list[str]] | None = None,
    ) -> None:
        self.config = config
        self.options = options
        self.repo = options.repo.resolve()
        self.graph: nx.DiGraph = build_graph(config)
        self.on_event = on_event
        if components is None:
            path = config.components_path()
            components = aff.load_components(path) if path.is_file() else {}
        self.components = components
        config.check_components(set(components))
        for name in options.only:
            if name not in config.gates:
                raise GateError(f"unknown gate {name!r} (known: {', '.join(config.gates)})")
        self.state_dir = options.state_dir or (self.repo / ".orchestrator")
        self.db_path = options.db_path or (self.state_dir / "state.db")
        self.machine = cache_mod.machine_fingerprint()
        self._active: set[subprocess.Popen[bytes]] = set()
        self._active_lock = threading.Lock()
        self._stopping = threading.Event()
        self._base_cache: dict[str, str] | None = None

    def stop(self) -> None:
        """Kill every running gate's process group (on Ctrl-C, SIGTERM or an internal error)."""
        self._stopping.set()
        with self._active_lock:
            active = list(self._active)
        for proc in active:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)

    # planning ------------------------------------------------------------------------------------------------
    def _globs(self, spec: GateSpec) -> list[str]:
        return aff.gate_globs(spec.inputs, spec.components, self.components)

    def plan(self) -> Plan:
        """Which gates this run considers (affected selection, hooks, --only)."""
        opts = self.options
        names = list(self.config.gates)
        if opts.mode == "only":
            chosen = set(opts.only) if opts.no_deps else with_upstream(self.graph, opts.only)
            return Plan(order(self.graph, chosen), [], [], False)
        if opts.mode == "all":
            return Plan(order(self.graph), [], [], False)
        if opts.mode == "hook":
            if opts.hook not in ("pre-commit", "pre-push"):
                raise GateError(f"unknown hook {opts.hook!r} (pre-commit or pre-push)")
            names = [n for n in names if opts.hook in self.config.gates[n].hooks]
            if opts.hook == "pre-push":  # the full DAG; the base (the remote sha) feeds diff coverage and perf
                return Plan(order(self.graph, with_upstream(self.graph, names)), [], [], False)
        elif opts.mode != "affected":
            raise GateError(f"unknown run mode {opts.mode!r}")
        staged = opts.mode == "hook" and opts.hook == "pre-commit"
        if opts.changed is not None:
            changed = list(opts.changed)
        elif staged:
            changed = aff.changed_files(self.repo, staged=True)
        else:
            changed = aff.changed_files(self.repo, base=opts.base or "HEAD")
        hit = self.affected_by(changed, names)
        selected = order(self.graph, with_upstream(self.graph, hit))
        not_affected = [n for n in names if n not in selected]
        return Plan(selected, not_affected, changed, staged)

    def affected_by(self, changed: list[str], candidates: list[str] | None = None) -> set[str]:
        """Gates (among ``candidates``) whose inputs match a changed file, plus their dependents."""
        candidates = list(self.config.gates) if candidates is None else candidates
        config_files = {self._rel(self.config.path), self._rel(self.config.components_path())}
        if config_files & set(changed):
            return set(candidates)
        direct = {n for n in self.config.gates if any(aff.matches(f, self._globs(self.config.gates[n])) for f in changed)}
        return with_dependents(self.graph, direct) & set(candidates)

    def _rel(self, path: Path) -> str:
        try:
            return path.resolve().relative_to(self.repo).as_posix()
        except ValueError:
            return path.as_posix()

    def compute_keys(self, names: list[str], workdir: Path) -> dict[str, str]:
        """Cache keys of ``names`` (topological order; upstream keys feed downstream ones)."""
        hasher = cache_mod.InputHasher(workdir)
        tools = cache_mod.tool_versions()
        env = cache_mod.allowed_env(self.config.model.env_allowlist)
        keys: dict[str, str] = {}
        for name in order(self.graph, with_upstream(self.graph, names)):
            spec = self.config.gates[name]
            digest, _ = hasher.inputs_digest(self._globs(spec))
            keys[name] = cache_mod.gate_key(
                spec_text=spec.fingerprint(),
                inputs_digest=digest,
                upstream_keys={u: keys[u] for u, _ in upstream_of(self.graph, name)},
                tools=tools,
                env=env,
                extra=self._base_facts() if (spec.uses_base or spec.machine_bound) else None,
                fingerprint=self.machine if spec.machine_bound else None,
            )
        return keys

    def _base_facts(self) -> dict[str, str]:
        """What a base-dependent result depends on: the commits of HEAD and of the base, and the mode."""
        if self._base_cache is None:
            staged = self.options.mode == "hook" and self.options.hook == "pre-commit"
            self._base_cache = {
                "head": _git_head(self.repo) or "",
                "base": _rev(self.repo, self.options.base) if self.options.base else "",
                "base_ref": self.options.base or "",
                "staged": "1" if staged else "",
            }
        return self._base_cache

    # running -------------------------------------------------------------------------------------------------
    def run(self) -> RunRecord:
        """Plan, run, record. Returns the run record (its ``exit_code`` is the CLI's).

        SIGTERM (a cancelled CI job, a killed hook) stops the run like Ctrl-C: every gate's process group is
        killed and no partial record is left.
        """
        if threading.current_thread() is not threading.main_thread():
            return self._run()
        previous = signal.signal(signal.SIGTERM, _raise_exit)
        try:
            return self._run()
        finally:
            signal.signal(signal.SIGTERM, previous)

    def _run(self) -> RunRecord:
        started = time.time()
        plan = self.plan()
        run_id = new_run_id()
        runs_root = self.state_dir / "gates" / "runs"
        partial = runs_root / f".{run_id}.partial"
        (partial / "logs").mkdir(parents=True, exist_ok=True)
        final_dir = runs_root / run_id
        db: ResultsDB | None = None
        try:
            if plan.selected:
                db = ResultsDB(self.db_path) if (self.options.use_cache or self.options.record) else None
                with self._workdir(plan) as workdir:
                    results = self._run_selected(plan.selected, workdir, partial, final_dir, run_id, db)
            else:
                results = []
            record = RunRecord(
                run_id=run_id,
                started=started,
                finished=time.time(),
                mode=self.options.mode,
                hook=self.options.hook,
                base=self.options.base,
                head=_git_head(self.repo),
                machine=self.machine,
                results=results,
                changed_files=plan.changed,
                not_affected=plan.not_affected,
                skip_requested=list(self.options.skip),
                overridden=[r.gate for r in results if r.required and r.status == GateStatus.SKIPPED and r.gate in self.options.skip],
                run_dir=str(final_dir),
            )
            logs = {r.gate: _read(partial / "logs" / f"{r.gate}.log") for r in results}
            atomic_write(partial / "run.json", json.dumps(record.to_json(), indent=2, sort_keys=True) + "\n")
            write_run_junit(record, partial / "junit.xml", logs)
            atomic_write(partial / "summary.md", markdown(record))
            os.replace(partial, final_dir)
            if self.options.record:
                db = db or ResultsDB(self.db_path)
                db.record(record)
            return record
        finally:
            if partial.exists():
                shutil.rmtree(partial, ignore_errors=True)
            if db is not None:
                db.close()

    @contextlib.contextmanager
    def _workdir(self, plan: Plan) -> Iterator[Path]:
        if self.options.source == "index" and aff.unstaged_changes(self.repo):
            with index_snapshot(self.repo) as snap:
                yield snap
        else:
            yield self.repo

    def _emit(self, event: str, name: str, result: GateResult | None) -> None:
        if self.on_event is not None:
            self.on_event(event, name, result)

    def _run_selected(
        self, selected: list[str], workdir: Path, run_dir: Path, final_dir: Path, run_id: str, db: ResultsDB | None
    ) -> list[GateResult]:
        keys = self.compute_keys(selected, workdir)
        gpus = cache_mod.gpu_count() if any(self.config.gates[n].resources.gpu for n in selected) else 0
        workers = self.options.workers or self.config.defaults.workers
        done: dict[str, GateResult] = {}
        pending = list(selected)  # topological order; waiting for their upstream
        queue: list[str] = []  # decided to run, waiting for a worker (or the GPU, or to run alone)
        running: dict[Future[GateResult], str] = {}
        gpu_busy = 0
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="gate") as pool:
            try:
                while pending or queue or running:
                    for name in list(pending):
                        ups = [(u, c) for u, c in upstream_of(self.graph, name) if u in selected]
                        if not all(u in done for u, _ in ups):
                            continue
                        pending.remove(name)
                        spec = self.config.gates[name]
                        decided = self._decide(spec, ups, done, gpus)
                        if decided is None and db is not None and self.options.use_cache and spec.cache:
                            decided = self._replay(spec, keys[name], db, run_dir, final_dir)
                        if decided is None:
                            queue.append(name)
                            continue
                        decided.key = keys[name]
                        done[name] = decided
                        self._emit("finish", name, decided)
                    for name in list(queue):
                        spec = self.config.gates[name]
                        alone = any(self.config.gates[n].exclusive for n in running.values())
                        gpu_ok = not running or gpu_busy + spec.resources.gpu <= gpus
                        if alone or len(running) >= workers or (spec.exclusive and running) or not gpu_ok:
                            break  # keep the order: a gate waiting to run alone is not overtaken
                        queue.remove(name)
                        gpu_busy += spec.resources.gpu
                        self._emit("start", name, None)
                        future = pool.submit(self._execute, spec, keys[name], workdir, run_dir, final_dir, run_id)
                        running[future] = name
                    if not running:
                        if queue or pending:
                            raise RuntimeError(f"scheduler stalled: queued {queue}, pending {pending}")
                        break
                    finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
                    for future in finished:
                        name = running.pop(future)
                        spec = self.config.gates[name]
                        gpu_busy -= spec.resources.gpu
                        result = future.result()
                        done[name] = result
                        if result.status == GateStatus.PASSED and db is not None and spec.cache:
                            db.cache_put(
                                result,
                                log=_read(run_dir / "logs" / f"{name}.log"),
                                machine=self.machine,
                                machine_bound=spec.machine_bound,
                                run_id=run_id,
                            )
                        self._emit("finish", name, result)
            except BaseException:
                self.stop()  # before the pool waits for its threads, which wait for the gates
                raise
        return [done[n] for n in selected]

    def _decide(
        self, spec: GateSpec, ups: list[tuple[str, str]], done: dict[str, GateResult], gpus: int
    ) -> GateResult | None:
        """A skipped/omitted result when the gate must not run, else None."""
        def out(status: GateStatus, reason: str) -> GateResult:
            return GateResult(gate=spec.name, status=status, required=spec.required, reason=reason, started=time.time())

        if spec.name in self.options.skip:
            return out(GateStatus.SKIPPED, "skipped on request ($SKIP)")
        for upstream, condition in ups:
            r = done[upstream]
            outcome = GateStatus.PASSED if r.ok else r.status
            if condition == "always":
                continue
            if condition == "passed" and outcome != "passed":
                return out(GateStatus.OMITTED, f"upstream {upstream} {r.status}")
            if condition == "completed" and outcome not in ("passed", "failed"):
                return out(GateStatus.OMITTED, f"upstream {upstream} {r.status}")
            if condition == "failed":
                if outcome == "passed":
                    return out(GateStatus.SKIPPED, f"runs only when {upstream} fails; it passed")
                if outcome != "failed":
                    return out(GateStatus.OMITTED, f"upstream {upstream} {r.status}")
        if spec.resources.gpu > gpus:
            return out(GateStatus.SKIPPED, f"needs {spec.resources.gpu} GPU(s); this machine has {gpus}")
        return None

    def _replay(self, spec: GateSpec, key: str, db: ResultsDB, run_dir: Path, final_dir: Path) -> GateResult | None:
        hit = db.cache_get(key, self.machine)
        if hit is None:
            return None
        log_path = run_dir / "logs" / f"{spec.name}.log"
        atomic_write(log_path, f"[cached: replay of the pass in run {hit['run_id']}]\n{hit['log']}")
        return GateResult(
            gate=spec.name,
            status=GateStatus.CACHED,
            required=spec.required,
            reason=f"replayed pass of run {hit['run_id']}",
            duration=0.0,
            attempts=0,
            counts=hit["counts"],
            metrics=hit["metrics"],
            started=time.time(),
            log_path=str(final_dir / "logs" / f"{spec.name}.log"),
            cached_from=hit["run_id"],
        )

    def _gate_env(self, spec: GateSpec, workdir: Path, out_dir: Path) -> dict[str, str]:
        env = dict(os.environ)
        env.update(spec.env)
        env.update(
            {
                "GATE_NAME": spec.name,
                "GATE_REPO": str(self.repo),
                "GATE_WORKDIR": str(workdir),
                "GATE_OUT": str(out_dir),
                "GATE_PARAMS": json.dumps(spec.params, sort_keys=True),
                "GATE_BASE": self.options.base or "",
                "GATE_STAGED": "1" if (self.options.mode == "hook" and self.options.hook == "pre-commit") else "",
                "GATE_COMPONENTS_FILE": str(self.config.components_path().resolve()),
                "PYTHONPATH": os.pathsep.join([*(str(workdir / p) for p in self.config.model.python_path),
                                               *filter(None, [os.environ.get("PYTHONPATH")])]),
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.pop("SKIP", None)
        return env

    @functools.cached_property
    def _main_checkout(self) -> Path:
        """The main working tree of the repository (one git call per run, not per gate command)."""
        return main_checkout(self.repo)

    def _argv(self, argv: list[str], workdir: Path, out_dir: Path) -> list[str]:
        values = {
            "{python}": sys.executable,
            "{main}": str(self._main_checkout),
            "{repo}": str(self.repo),
            "{workdir}": str(workdir),
            "{out}": str(out_dir),
            "{base}": self.options.base or "",
        }
        result = []
        for index, token in enumerate(argv):
            if index == 0 and token in ("python", "python3"):
                token = sys.executable
            for placeholder, value in values.items():
                token = token.replace(placeholder, value)
            result.append(token)
        return result

    def _execute(
        self, spec: GateSpec, key: str, workdir: Path, run_dir: Path, final_dir: Path, run_id: str
    ) -> GateResult:
        started = time.time()
        try:
            return self._execute_inner(spec, key, workdir, run_dir, final_dir, started)
        except Exception as exc:  # the runner's own failure around a gate: errored, never a crash
            return GateResult(gate=spec.name, status=GateStatus.ERRORED, required=spec.required, key=key,
                              reason=f"runner error: {type(exc).__name__}: {exc}", started=started,
                              duration=time.time() - started)

    def _execute_inner(
        self, spec: GateSpec, key: str, workdir: Path, run_dir: Path, final_dir: Path, started: float
    ) -> GateResult:
        log_path = run_dir / "logs" / f"{spec.name}.log"
        out_dir = run_dir / "gates" / spec.name
        out_dir.mkdir(parents=True, exist_ok=True)
        env = self._gate_env(spec, workdir, out_dir)
        transient_patterns = [re.compile(p) for p in spec.transient.patterns]
        attempts = 0
        status: GateStatus = GateStatus.ERRORED
        reason, output, exit_code = "did not run", "", None
        with open(log_path, "ab") as log:
            while attempts <= spec.retries:
                attempts += 1
                attempt = self._attempt(spec, workdir, out_dir, env, log, attempts)
                output = attempt.output
                exit_code = attempt.exit_code
                if attempt.error is not None:
                    status, reason = GateStatus.ERRORED, attempt.error
                    break  # a missing program is not transient
                if attempt.timed_out:
                    status, reason = GateStatus.FAILED, f"timed out after {spec.timeout:g}s (process group killed)"
                    transient = spec.transient.timeout
                elif attempt.exit_code == 0:
                    status, reason = GateStatus.PASSED, ""
                    break
                elif attempt.exit_code in spec.errored_exit_codes:
                    status, reason = GateStatus.ERRORED, f"exit code {attempt.exit_code} (could not run)"
                    transient = attempt.exit_code in spec.transient.exit_codes
                else:
                    status, reason = GateStatus.FAILED, f"exit code {attempt.exit_code}"
                    transient = attempt.exit_code in spec.transient.exit_codes or any(
                        p.search(output) for p in transient_patterns
                    )
                if not transient or attempts > spec.retries:
                    break
                log.write(f"\n== transient failure ({reason}); retrying ==\n".encode())
                log.flush()
        metrics = parse_metrics(output)
        counts = metrics.pop("counts", {}) if isinstance(metrics.get("counts"), dict) else {}
        if status == "passed" and metrics.get("verdict") in ("failed", "errored"):
            status, reason = GateStatus.FAILED, str(metrics.get("reason", "the program reported a failed verdict"))
        if metrics.get("reason") and (not reason or reason.startswith("exit code")):
            reason = str(metrics["reason"])  # the program's own words beat its exit code
        return GateResult(
            gate=spec.name,
            status=status,
            required=spec.required,
            reason=reason,
            duration=time.time() - started,
            attempts=attempts,
            key=key,
            exit_code=exit_code,
            counts=counts,
            metrics=metrics,
            started=started,
            log_path=str(final_dir / "logs" / f"{spec.name}.log"),
        )

    def _attempt(
        self, spec: GateSpec, workdir: Path, out_dir: Path, env: dict[str, str], log: Any, number: int
    ) -> _Attempt:
        deadline = time.monotonic() + spec.timeout
        start_offset = log.tell()
        exit_code: int | None = None
        for argv in spec.argvs:
            real = self._argv(argv, workdir, out_dir)
            log.write(f"== attempt {number}: {' '.join(real)}\n".encode())
            log.flush()
            if self._stopping.is_set():
                return _Attempt(None, False, "the run was interrupted", _tail(log, start_offset))
            try:
                proc = subprocess.Popen(
                    real, cwd=workdir, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            except OSError as exc:
                message = f"cannot start {real[0]!r}: {exc.strerror or exc}"
                log.write(f"{message}\n".encode())
                return _Attempt(None, False, message, _tail(log, start_offset))
            with self._active_lock:
                self._active.add(proc)
            try:
                exit_code = proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                kill_group(proc, self.config.defaults.term_grace)
                log.write(f"\n== timed out after {spec.timeout:g}s: process group {proc.pid} killed ==\n".encode())
                log.flush()
                return _Attempt(None, True, None, _tail(log, start_offset))
            finally:
                # nothing a gate started outlives it
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
                with self._active_lock:
                    self._active.discard(proc)
            if exit_code != 0:
                break
        log.flush()
        return _Attempt(exit_code, False, None, _tail(log, start_offset))


def _raise_exit(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def _tail(log: Any, offset: int) -> str:
    log.flush()
    with open(log.name, "rb") as handle:
        handle.seek(offset)
        return handle.read().decode("utf-8", errors="replace")


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _git_head(repo: Path) -> str | None:
    try:
        proc = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=False)
    except OSError:
        return None
    return proc.stdout.strip() or None if proc.returncode == 0 else None


def _rev(repo: Path, ref: str) -> str:
    try:
        proc = subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], cwd=repo,
                              capture_output=True, text=True, check=False)
    except OSError:
        return ref
    return proc.stdout.strip() or ref


def main_checkout(repo: Path) -> Path:
    """The main working tree of ``repo``'s repository (``repo`` itself unless it is a linked worktree).

    Gates use it (``{main}`` in a command) to run with the main checkout's environment, e.g.
    ``{main}/.venv/bin/python``, when they test an agent's worktree.
    """
    proc = subprocess.run(["git", "rev-parse", "--path-format=absolute", "--git-common-dir"], cwd=repo,
                          capture_output=True, text=True, check=False)
    common = Path(proc.stdout.strip()) if proc.returncode == 0 and proc.stdout.strip() else None
    if common is None or common.name != ".git":
        return repo
    return common.parent
