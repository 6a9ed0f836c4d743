"""Run the gate DAG: parallel where the graph allows, process trees killed on timeout, results cached.

What is tested. A pre-commit run (``hook="pre-commit"``) always tests exactly what will be committed: a
snapshot of the index (``git checkout-index`` into a temporary folder), never the working tree, never an
untracked file, whether or not there are unstaged edits; nothing in the working tree or the index changes. A
pre-push run tests each pushed commit (``RunOptions.commit``): a snapshot of its tree (``git read-tree`` into
a temporary index file, then ``git checkout-index``), with the range ``base...commit`` as the change that
selects the affected gates; a local fix in the working tree cannot make a failing pushed commit pass.

Changed files for gates that ask for them. A gate opts in with a placeholder: a command token that is exactly
``{files}`` becomes one argument per file (inside a longer token, the names joined by spaces), and
``{files_file}`` (in a command token or in a value of the gate's ``env``) becomes the path of a file listing
them, one per line. The files are the change's files (the staged files in a pre-commit run, the pushed
range in a pre-push run, the changed files of an affected run) that exist in the tree under test and match
the gate's ``inputs``/``components`` globs (every file when it has none); in ``--all``/``--only`` runs, every
file of the tree that matches. The list is part of such a gate's cache key. Gates that use neither
placeholder get no file list. A very long list can pass the system's limit on the size of a command line:
``{files_file}`` has no such limit.

Environment. A gate sees only allow-listed variables (:data:`bno_quality_gates.cache.BASE_ENV` plus the
gates file's ``env_allowlist``), its own ``env``, the runner's ``GATE_*`` variables (``GATE_HEAD`` names the
pushed commit in a pre-push run) and ``PYTHONPATH`` (the tree's ``python_path`` first, then the runner's
own); every allow-listed variable, and the runner's ``PYTHONPATH``, is part of its cache key
(:mod:`bno_quality_gates.cache`).

Processes. Each command runs with ``subprocess.Popen(argv, start_new_session=True)`` and a private
``GATE_PROCESS_TAG`` in its environment. On Linux the command lines make their process a child subreaper
(``prctl(PR_SET_CHILD_SUBREAPER)``, ``RunOptions.subreaper``), so what a gate orphans (a double fork) is
re-parented to the runner, not to init, and reaped by it. When a command ends, times out or the run is stopped (Ctrl-C, SIGTERM), the
runner kills its whole tree, found through ``/proc``: the command's descendants, its session and process
group, and every process whose environment carries its tag (which survives ``setsid`` and double forks).
Found processes are stopped (SIGSTOP) so that they cannot fork, then killed, repeatedly until none is left.
On a timeout they get SIGTERM first and ``term_grace`` seconds to go. Where there is no ``/proc`` (macOS,
the BSDs) the fallback signals the command's process group only: a process that started its own session
there escapes it.
Statuses (docs/architecture.md, "Quality gates"): ``passed``; ``failed`` (a non-zero exit, or a timeout); ``errored`` (could not run:
the program is missing, or it exited with one of the gate's ``errored_exit_codes``); ``skipped`` (a condition
is false: SKIP requested, no GPU, a ``.failed`` dependency whose gate passed); ``omitted`` (an upstream gate
did not give what the dependency asks for); ``cached`` (a pass replayed from an identical input hash).
A required gate that is not passed or cached fails the run (exit code 1), except when its condition was
false (skipped, not wanted: docs/gates-ci.md) or it was skipped on request through ``$SKIP`` (the run then
exits 0 but is recorded as not green, with the override).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import secrets
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

from bno_foundation import processes, trusted_launch
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

__all__ = ["Plan", "RunOptions", "Runner", "commit_snapshot", "index_snapshot", "kill_group", "kill_tree",
           "new_run_id", "parse_metrics", "skip_from_env"]

METRICS_PREFIX = "GATE-METRICS "
PROCESS_TAG_VAR = "GATE_PROCESS_TAG"
FILES_PLACEHOLDER = "{files}"
FILES_FILE_PLACEHOLDER = "{files_file}"
EventHandler = Callable[[str, str, GateResult | None], None]


@dataclass
class RunOptions:
    """What to run and where.

    ``mode``: ``all`` (every gate), ``affected`` (gates whose inputs changed since ``base``, default the
    uncommitted work), ``only`` (the gates in ``only``) or ``hook`` (``hook`` names which: pre-commit runs
    the affected pre-commit gates of the staged change on a snapshot of the index; pre-push runs the
    pre-push gates on ``commit``'s tree, those affected by ``base...commit`` when ``base`` is known, else
    all of them).
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
    commit: str | None = None  # test this commit's tree (a pre-push run), not the working tree
    # make this process a child subreaper (Linux) so that what gates orphan stays below it: for a process that
    # lives for the run (the command lines); a long-lived caller leaves it off, or the orphans of its other
    # children would wait for it to reap them
    subreaper: bool = False


@dataclass
class Plan:
    """The gates a run will consider, and why others are out."""

    selected: list[str]
    not_affected: list[str]
    changed: list[str]
    staged: bool
    from_change: bool = False  # selected by the change's files (an affected or hook run), not all or only


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


@contextlib.contextmanager
def commit_snapshot(repo: Path, commit: str) -> Iterator[Path]:
    """A temporary directory holding ``commit``'s tree; the repository's index and working tree are untouched.

    ``git read-tree`` fills a temporary index file (``GIT_INDEX_FILE``), ``git checkout-index`` writes it out.
    """
    tmp = Path(tempfile.mkdtemp(prefix="gates-commit-"))
    try:
        env = {**os.environ, "GIT_INDEX_FILE": str(tmp / ".index")}
        tree = tmp / "tree"
        for argv in (["git", "read-tree", f"{commit}^{{tree}}"],
                     ["git", "checkout-index", "--all", "--force", f"--prefix={tree}/"]):
            proc = subprocess.run(argv, cwd=repo, env=env, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                raise GateError(f"cannot snapshot commit {commit} of {repo}: {proc.stderr.strip()}")
        tree.mkdir(exist_ok=True)  # an empty tree writes nothing
        yield tree
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def kill_tree(root: int, tag: str | None, grace: float, *, keep: int | None = None) -> None:
    """Kill everything ``root`` started, the processes carrying ``GATE_PROCESS_TAG=tag`` included
    (:func:`bno_foundation.processes.kill_tree`)."""
    processes.kill_tree(root, _marker(tag), grace, keep=keep)


def process_tree(root: int, tag: str | None) -> tuple[set[int], set[int]]:
    """(live, dead) processes ``root`` started or that carry ``GATE_PROCESS_TAG=tag``."""
    return processes.process_tree(root, _marker(tag))


def _marker(tag: str | None) -> bytes | None:
    return f"{PROCESS_TAG_VAR}={tag}".encode() if tag else None


def kill_group(proc: subprocess.Popen[bytes], grace: float, tag: str | None = None) -> None:
    """SIGTERM everything ``proc`` started (its process group, its session, its descendants, the processes
    carrying ``tag``), then SIGKILL whatever is left after ``grace`` seconds; ``proc`` is waited for."""
    kill_tree(proc.pid, tag, grace, keep=proc.pid)
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
                # a JSON escape can make a lone surrogate ("\ud800"), which no UTF-8 file (summary.md) can hold
                clean = json.dumps(data, ensure_ascii=False).encode("utf-8", "replace").decode("utf-8")
                out.update(json.loads(clean))
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
        self._active: dict[subprocess.Popen[bytes], str] = {}  # running command -> its process tag
        self._active_lock = threading.Lock()
        self._stopping = threading.Event()
        self._base_cache: dict[str, str] | None = None
        self._gate_files: dict[str, list[str]] = {}  # the file lists of the gates that ask for them
        self._changed: list[str] | None = None  # the change's files, when the run was selected by a change

    def stop(self) -> None:
        """Kill every running gate's process tree (on Ctrl-C, SIGTERM or an internal error)."""
        self._stopping.set()
        with self._active_lock:
            active = list(self._active.items())
        for proc, tag in active:
            kill_tree(proc.pid, tag, 0.0, keep=proc.pid)

    # planning ------------------------------------------------------------------------------------------------
    def _globs(self, spec: GateSpec) -> list[str]:
        return aff.gate_globs(spec.inputs, spec.components, self.components)

    def plan(self) -> Plan:
        """Which gates this run considers (affected selection, hooks, --only).

        A pre-push run with a ``commit`` and a ``base`` selects the gates affected by ``base...commit``; with
        no base (a new branch), every pre-push gate.
        """
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
            if opts.hook == "pre-push" and (opts.commit is None or not opts.base) and opts.changed is None:
                # the full DAG; the base (the remote sha) feeds diff coverage and perf
                return Plan(order(self.graph, with_upstream(self.graph, names)), [], [], False)
        elif opts.mode != "affected":
            raise GateError(f"unknown run mode {opts.mode!r}")
        staged = opts.mode == "hook" and opts.hook == "pre-commit"
        if opts.changed is not None:
            changed = list(opts.changed)
        elif staged:
            changed = aff.changed_files(self.repo, staged=True)
        elif opts.commit is not None and opts.base:
            changed = aff.changed_files(self.repo, base=opts.base, head=opts.commit)
        else:
            changed = aff.changed_files(self.repo, base=opts.base or "HEAD")
        hit = self.affected_by(changed, names)
        selected = order(self.graph, with_upstream(self.graph, hit))
        not_affected = [n for n in names if n not in selected]
        return Plan(selected, not_affected, changed, staged, from_change=True)

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

    def compute_keys(self, names: list[str], workdir: Path, changed: list[str] | None = None) -> dict[str, str]:
        """Cache keys of ``names`` (topological order; upstream keys feed downstream ones).

        ``changed``: the change's files (None in ``--all``/``--only`` runs), for the gates that ask for them.
        """
        hasher = cache_mod.InputHasher(workdir)
        tools = {**cache_mod.tool_versions(), "packages": self._packages_digest,
                 "lockfiles": cache_mod.lockfiles_digest(workdir)}
        env = self._visible_env()
        key_env = {**env, "PYTHONPATH (outer)": os.environ.get("PYTHONPATH", "")}
        programs = cache_mod.ProgramHasher(env.get("PATH"))
        keys: dict[str, str] = {}
        for name in order(self.graph, with_upstream(self.graph, names)):
            spec = self.config.gates[name]
            digest, _ = hasher.inputs_digest(self._globs(spec))
            extra = dict(self._base_facts()) if (spec.uses_base or spec.machine_bound) else {}
            if _wants_files(spec):
                files = self._files_for(spec, hasher, changed)
                self._gate_files[name] = files
                extra["files"] = "\n".join(files)
            argvs = [self._argv(argv, workdir, workdir, keep_files=True, launcher=False) for argv in spec.argvs]
            keys[name] = cache_mod.gate_key(
                spec_text=spec.fingerprint(),
                inputs_digest=digest,
                upstream_keys={u: keys[u] for u, _ in upstream_of(self.graph, name)},
                tools=tools,
                env=key_env,
                extra=extra,
                fingerprint=self.machine if spec.machine_bound else None,
                programs=programs.commands(argvs, workdir),
            )
        return keys

    @functools.cached_property
    def _packages_digest(self) -> str:
        """The installed package set (once per run)."""
        return cache_mod.installed_packages_digest()

    def _visible_env(self) -> dict[str, str]:
        """The runner's variables a gate may see (allow-listed and set); all of them are in its key."""
        return cache_mod.allowed_env(cache_mod.gate_env_names(self.config.model.env_allowlist))

    def _files_for(self, spec: GateSpec, hasher: cache_mod.InputHasher, changed: list[str] | None) -> list[str]:
        """The files a gate that asks for them gets: the change's files in the tree that match its globs."""
        globs = self._globs(spec)
        if changed is None:
            return hasher.matching(globs) if globs else list(hasher.files)
        present = set(hasher.files)
        return [f for f in changed if f in present and (not globs or aff.matches(f, globs))]

    def _base_facts(self) -> dict[str, str]:
        """What a base-dependent result depends on: the commits of HEAD and of the base, and the mode."""
        if self._base_cache is None:
            staged = self.options.mode == "hook" and self.options.hook == "pre-commit"
            self._base_cache = {
                "head": self._head() or "",
                "base": _rev(self.repo, self.options.base) if self.options.base else "",
                "base_ref": self.options.base or "",
                "staged": "1" if staged else "",
            }
        return self._base_cache

    # running -------------------------------------------------------------------------------------------------
    def run(self) -> RunRecord:
        """Plan, run, record. Returns the run record (its ``exit_code`` is the CLI's).

        SIGTERM (a cancelled CI job, a killed hook) stops the run like Ctrl-C: every process a running gate
        started is killed and no partial record is left.
        """
        if self.options.subreaper:
            processes.become_subreaper()
        self._reap_leftovers()
        if threading.current_thread() is not threading.main_thread():
            return self._run()
        previous = signal.signal(signal.SIGTERM, _raise_exit)
        try:
            return self._run()
        finally:
            signal.signal(signal.SIGTERM, previous)

    # A ledger of the gate commands running now: one file per process tag, holding the runner's pid. A
    # runner killed outright (kill -9) leaves its files; the next run stops what still carries those tags.
    def _ledger(self) -> Path:
        return self.state_dir / "gates" / "running"

    def _reap_leftovers(self) -> None:
        ledger = self._ledger()
        if not ledger.is_dir():
            return
        for entry in ledger.iterdir():
            try:
                owner = int(entry.read_text().strip() or 0)
            except (OSError, ValueError):
                owner = 0
            if owner and owner != os.getpid() and processes.is_running(owner):
                continue  # a live run's gate: not ours to stop
            processes.stop_processes(processes.processes_with_env(PROCESS_TAG_VAR, entry.name))
            entry.unlink(missing_ok=True)

    def _run(self) -> RunRecord:
        started = time.time()
        plan = self.plan()
        self._changed = plan.changed if plan.from_change else None
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
                head=self._head(),
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

    def _head(self) -> str | None:
        """The commit under test: the pushed commit of a pre-push run, else HEAD."""
        return self._pushed_commit or _git_head(self.repo)

    @functools.cached_property
    def _pushed_commit(self) -> str | None:
        """The full sha of ``options.commit`` (None when the run tests the index or the working tree)."""
        return _rev(self.repo, self.options.commit) if self.options.commit is not None else None

    @contextlib.contextmanager
    def _workdir(self, plan: Plan) -> Iterator[Path]:
        """The tree under test: the pushed commit's tree, the index (pre-commit, ``source="index"``), or the
        working tree."""
        opts = self.options
        if opts.commit is not None:
            with commit_snapshot(self.repo, opts.commit) as snap:
                yield snap
        elif opts.source == "index" or (opts.mode == "hook" and opts.hook == "pre-commit"):
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
        keys = self.compute_keys(selected, workdir, self._changed)
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
        """A skipped/omitted result when the gate must not run, else None.

        The dependencies decide through :func:`bno_quality_gates.dag.decide` (the table the GitHub Actions
        export writes its conditions from): a false condition skips the gate (never a failure), an unmet
        one omits it (a failure when the gate is required). ``$SKIP`` comes first, the GPU check last.
        """
        from bno_quality_gates.dag import Outcome, decide
        from bno_quality_gates.results import SkipCause

        def out(status: GateStatus, reason: str, cause: SkipCause | None = None) -> GateResult:
            return GateResult(gate=spec.name, status=status, required=spec.required, reason=reason,
                              started=time.time(), skip_cause=cause)

        if spec.name in self.options.skip:
            return out(GateStatus.SKIPPED, "skipped on request ($SKIP)", SkipCause.REQUESTED)
        outcome, upstream, status = decide([(u, c, done[u].status) for u, c in ups])
        if outcome == Outcome.SKIP:
            if status in (GateStatus.PASSED, GateStatus.CACHED):
                reason = f"runs only when {upstream} fails; it passed"
            else:
                reason = f"upstream {upstream} {status}; this gate is not wanted either"
            return out(GateStatus.SKIPPED, reason, SkipCause.CONDITION)
        if outcome == Outcome.OMIT:
            return out(GateStatus.OMITTED, f"upstream {upstream} {status}")
        if spec.resources.gpu > gpus:
            return out(GateStatus.SKIPPED, f"needs {spec.resources.gpu} GPU(s); this machine has {gpus}",
                       SkipCause.RESOURCES)
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
        """What a gate sees: the allow-listed variables, its own ``env`` (placeholders filled in), ``GATE_*``."""
        env = self._visible_env()
        env.update({k: self._fill(v, workdir, out_dir, spec.name) for k, v in spec.env.items()})
        env.update(
            {
                "GATE_NAME": spec.name,
                "GATE_REPO": str(self.repo),
                "GATE_WORKDIR": str(workdir),
                "GATE_OUT": str(out_dir),
                "GATE_PARAMS": json.dumps(spec.params, sort_keys=True),
                "GATE_BASE": self.options.base or "",
                "GATE_HEAD": self._pushed_commit or "",
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
    def _trusted_roots(self) -> list[str]:
        return trusted_launch.trusted_roots()

    @functools.cached_property
    def _main_checkout(self) -> Path:
        """The main working tree of the repository (one git call per run, not per gate command)."""
        return main_checkout(self.repo)

    def _files_file(self, run_dir: Path, gate: str) -> Path:
        return run_dir / "gates" / f"{gate}.files"

    def _fill(self, token: str, workdir: Path, out_dir: Path, gate: str, run_dir: Path | None = None) -> str:
        """``token`` with the placeholders ``{python}``, ``{main}``, ``{repo}``, ``{workdir}``, ``{out}``,
        ``{base}``, ``{head}`` and ``{files_file}`` filled in."""
        values = {
            "{python}": sys.executable,
            "{main}": str(self._main_checkout),
            "{repo}": str(self.repo),
            "{workdir}": str(workdir),
            "{out}": str(out_dir),
            "{base}": self.options.base or "",
            "{head}": self._pushed_commit or "",
            FILES_FILE_PLACEHOLDER: str(self._files_file(run_dir or out_dir.parent.parent, gate)),
        }
        for placeholder, value in values.items():
            if placeholder in token:
                token = token.replace(placeholder, value)
        return token

    def _argv(self, argv: list[str], workdir: Path, out_dir: Path, *, gate: str = "", keep_files: bool = False,
              launcher: bool = True) -> list[str]:
        """A command with its placeholders filled in; a token ``{files}`` becomes one argument per file of the
        gate (``keep_files``: left as it is, for the cache key, which holds the list itself). A leading
        ``python`` becomes the trusted launcher (``launcher=False``: this interpreter, for the cache key,
        which hashes the module or script the command names)."""
        files = self._gate_files.get(gate, [])
        result: list[str] = []
        for index, token in enumerate(argv):
            if index == 0 and token in ("python", "python3") and not launcher:
                token = sys.executable
            elif index == 0 and token in ("python", "python3"):
                # tools and gate programs come from the runner's installation, never from the tree under
                # test (bno_foundation.trusted_launch); a gate program of ours is the runner's own copy
                own = len(argv) > 2 and argv[1] == "-m" and argv[2].startswith("bno_quality_gates.")
                result.extend(trusted_launch.command([], roots=self._trusted_roots if own else ()))
                continue
            if not keep_files and token == FILES_PLACEHOLDER:
                result.extend(files)
                continue
            if not keep_files and FILES_PLACEHOLDER in token:
                token = token.replace(FILES_PLACEHOLDER, " ".join(files))
            result.append(self._fill(token, workdir, out_dir, gate))
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
        if spec.name in self._gate_files:
            atomic_write(self._files_file(run_dir, spec.name), "".join(f"{f}\n" for f in self._gate_files[spec.name]))
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
            real = self._argv(argv, workdir, out_dir, gate=spec.name)
            log.write(f"== attempt {number}: {' '.join(real)}\n".encode())
            log.flush()
            if self._stopping.is_set():
                return _Attempt(None, False, "the run was interrupted", _tail(log, start_offset))
            tag = secrets.token_hex(8)
            ledger_entry = self._ledger() / tag
            ledger_entry.parent.mkdir(parents=True, exist_ok=True)
            ledger_entry.write_text(str(os.getpid()))
            try:
                proc = subprocess.Popen(
                    real, cwd=workdir, env={**env, PROCESS_TAG_VAR: tag}, stdin=subprocess.DEVNULL, stdout=log,
                    stderr=subprocess.STDOUT, start_new_session=True,
                    # SIGTERM from the kernel if the runner dies without the chance to kill the tree (kill -9)
                    preexec_fn=processes.parent_death_signal(),
                )
            except OSError as exc:
                ledger_entry.unlink(missing_ok=True)
                message = f"cannot start {real[0]!r}: {exc.strerror or exc}"
                log.write(f"{message}\n".encode())
                return _Attempt(None, False, message, _tail(log, start_offset))
            with self._active_lock:
                self._active[proc] = tag
            try:
                exit_code = proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                kill_group(proc, self.config.defaults.term_grace, tag)
                log.write(f"\n== timed out after {spec.timeout:g}s: every process it started killed ==\n".encode())
                log.flush()
                return _Attempt(None, True, None, _tail(log, start_offset))
            finally:
                kill_tree(proc.pid, tag, 0.0, keep=proc.pid)  # nothing a gate started outlives it
                ledger_entry.unlink(missing_ok=True)
                with self._active_lock:
                    self._active.pop(proc, None)
            if exit_code != 0:
                break
        log.flush()
        return _Attempt(exit_code, False, None, _tail(log, start_offset))


def _wants_files(spec: GateSpec) -> bool:
    """Whether a gate asks for the change's files (``{files}`` or ``{files_file}`` in a command or its env)."""
    texts = [token for argv in spec.argvs for token in argv] + list(spec.env.values())
    return any(FILES_PLACEHOLDER in t or FILES_FILE_PLACEHOLDER in t for t in texts)


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
