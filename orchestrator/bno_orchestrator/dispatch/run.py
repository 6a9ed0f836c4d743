"""One dispatch: pick a routed task, run its agent in the task's worktree, let the gate DAG decide.

1. The task: an explicit id, or (``--next``) the best-scored ``assigned`` task whose dependencies are done.
   Blocked tasks, unrouted tasks and tasks in other states are refused with the reason.
2. The worktree (:mod:`.worktree`) and the prompt (:mod:`.prompt`), written to
   ``.orchestrator/logs/<task-id>/<attempt>.prompt.md``; the executor's argv is resolved (a missing CLI is
   a UserError) before anything is recorded.
3. In one transaction: ``assigned -> in_development`` (actor ``agent:<primary>``, the role
   ``development.yaml`` gives that move) and a ``dispatch.started`` event (actor ``dispatch``). A retry of a
   task already in development only records the new attempt.
4. The executor runs (:mod:`.executors`); ``dispatch.finished`` records its exit, log, changed files and its
   claim. The claim is never used to decide anything.
5. Verification: the affected gates of the main repository's ``workflows/gates.yaml`` (the trusted copy, not
   the worktree's) run on the worktree against the base commit; results go to the same store. A worktree
   with no change fails verification. ``gates.verified`` is recorded through
   :func:`bno_orchestrator.workflow.record_verification`.
6. Passed: the work is committed on the task branch and the task moves ``in_development -> review``
   (actor ``gates``). Failed: the task stays in development, and the escalation rules are evaluated for
   this task at once (e.g. repeated failed runs -> truth-validator oversight).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bno_orchestrator.dispatch import worktree as wt
from bno_orchestrator.dispatch.executors import (
    KINDS,
    ExecutorOutcome,
    ExecutorRequest,
    display_argv,
    resolve_argv,
)
from bno_orchestrator.dispatch.prompt import build_context, render_prompt
from bno_orchestrator.errors import NotFoundError, UserError
from bno_orchestrator.models import Event, Task, TaskStatus
from bno_orchestrator.paths import data_root, state_dir, store_path

if TYPE_CHECKING:
    from bno_orchestrator.config import Config
    from bno_orchestrator.escalation import Escalation
    from bno_orchestrator.store import Store

ACTOR = "dispatch"
DISPATCHABLE = (TaskStatus.ASSIGNED, TaskStatus.IN_DEVELOPMENT)


@dataclass
class DispatchOptions:
    """What ``orchestrator dispatch`` was asked to do."""

    task_id: str | None = None
    next: bool = False
    dry_run: bool = False
    executor: str | None = None  # override the agent's executor kind
    verify: bool = True
    verify_only: bool = False  # no executor: verify the worktree as it is (after a manual hand-off)
    base: str | None = None  # default HEAD of the repository
    timeout: float | None = None


@dataclass
class Verification:
    """The gates' verdict on a worktree."""

    run_id: str
    passed: bool
    reason: str
    changed_files: list[str] = field(default_factory=list)
    gates: dict[str, str] = field(default_factory=dict)  # gate -> status
    run_dir: str | None = None

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"run_id": self.run_id, "passed": self.passed, "reason": self.reason,
                "changed_files": self.changed_files, "gates": self.gates, "run_dir": self.run_dir}


@dataclass
class DispatchResult:
    """What one dispatch did (or, in a dry run, would do)."""

    task_id: str
    title: str
    agent: str
    executor: str
    attempt: int
    worktree: str
    branch: str
    base: str
    prompt_file: str | None
    argv: list[str]
    dry_run: bool = False
    prompt: str | None = None  # the full prompt (dry runs)
    outcome: ExecutorOutcome | None = None
    verification: Verification | None = None
    commit: str | None = None
    status: str = ""
    escalations: list[Escalation] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready dict (``dispatch --json``)."""
        return {
            "task_id": self.task_id, "title": self.title, "agent": self.agent, "executor": self.executor,
            "attempt": self.attempt, "worktree": self.worktree, "branch": self.branch, "base": self.base,
            "prompt_file": self.prompt_file, "argv": self.argv, "dry_run": self.dry_run, "prompt": self.prompt,
            "outcome": self.outcome.as_json() if self.outcome else None,
            "verification": self.verification.as_json() if self.verification else None,
            "commit": self.commit, "status": self.status,
            "escalations": [e.as_json() for e in self.escalations], "notes": self.notes,
        }


# ------------------------------------------------------------------------------------------ choosing


def ready(task: Task, tasks: dict[str, Task]) -> list[str]:
    """The unfinished dependencies of ``task`` (empty when it may start)."""
    from bno_orchestrator.models import unfinished_dependencies

    return unfinished_dependencies(task, tasks)


def pick_next(store: Store, config: Config) -> Task:
    """The best-scored ``assigned`` task with a primary agent and every dependency done."""
    from bno_orchestrator.scoring import score_tasks

    tasks = store.tasks()
    by_id = {t.id: t for t in tasks}
    scores = score_tasks(tasks, config.scoring, now=store.now())
    candidates = [t for t in tasks if t.status == TaskStatus.ASSIGNED and t.assignees and not ready(t, by_id)]
    if not candidates:
        raise UserError("no routed task is ready to dispatch (none assigned with its dependencies done); "
                        "run `orchestrator route` or name a task")
    candidates.sort(key=lambda t: (-scores[t.id].value, t.id))
    return candidates[0]


def check_dispatchable(task: Task, tasks: dict[str, Task], *, verify_only: bool = False) -> None:
    """Refuse blocked, unrouted and out-of-state tasks, with the reason and what to do."""
    if task.status == TaskStatus.BLOCKED:
        raise UserError(f"{task.id} is blocked ({task.blocked_reason or 'no reason recorded'}): "
                        "unblock it first (`orchestrator task unblock`)")
    if verify_only:
        if task.status != TaskStatus.IN_DEVELOPMENT:
            raise UserError(f"{task.id} is {task.status.value}: --verify-only checks a task in development")
        return
    if task.status not in DISPATCHABLE:
        hint = " (run `orchestrator route` first)" if task.status == TaskStatus.BACKLOG else ""
        raise UserError(f"{task.id} is {task.status.value}: only assigned tasks (or tasks in development, "
                        f"for another attempt) are dispatched{hint}")
    if not task.assignees:
        raise UserError(f"{task.id} has no agent: run `orchestrator route` first")
    waiting = ready(task, tasks)
    if waiting:
        raise UserError(f"{task.id} is blocked by unfinished {', '.join(waiting)}: dispatch those first")


def agent_file(config: Config, name: str) -> Path:
    """Where agent ``name`` was loaded from (for error messages)."""
    own = config.root / "agents" / f"{name}.md"
    return own if own.is_file() else data_root() / "agents" / f"{name}.md"


@contextlib.contextmanager
def task_lock(repo: Path, task_id: str) -> Iterator[None]:
    """An exclusive, non-blocking lock per task: two dispatches of one task never run at once."""
    path = state_dir(repo) / "locks" / f"dispatch-{task_id}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(f"{task_id} is being dispatched by another process (lock {path})") from None
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


# ------------------------------------------------------------------------------------------ verifying


def verify_worktree(repo: Path, worktree: Path, base: str) -> Verification:
    """Run the affected gates of ``repo``'s gates.yaml on ``worktree`` against ``base``; record in the store."""
    from bno_quality_gates.results import new_run_id
    from bno_quality_gates.runner import Runner, RunOptions
    from bno_quality_gates.runner import load_config as load_gates

    changed = wt.changed_files(worktree, base)
    if not changed:
        return Verification(f"no-change-{new_run_id()}", False,
                            "the executor changed no file in the worktree: nothing to verify")
    config = load_gates(repo)  # the repository's own gates, not the copy the agent could edit
    options = RunOptions(repo=worktree, mode="affected", base=base, changed=changed, state_dir=state_dir(repo),
                         db_path=store_path(repo))
    record = Runner(config, options).run()
    gates = {r.gate: str(r.status) for r in record.results}
    if not record.results:
        reason = f"no gate is affected by the {len(changed)} changed file(s)"
    elif record.passed:
        reason = f"gate run {record.run_id} passed: " + ", ".join(f"{g} {s}" for g, s in gates.items())
    else:
        bad = [r for r in record.results if r.required and not r.ok]
        reason = f"gate run {record.run_id} failed: " + "; ".join(
            f"{r.gate} {r.status}" + (f" ({r.reason})" if r.reason else "") for r in bad)
    return Verification(record.run_id, record.passed, reason, changed, gates, record.run_dir)


def escalate_task(store: Store, config: Config, task_id: str) -> list[Escalation]:
    """Evaluate the escalation rules now for ``task_id`` only and record what fires (one transaction)."""
    from bno_orchestrator.escalation import escalation_events, evaluate

    with store.write() as tx:
        due = [e for e in evaluate(tx.tasks(), tx.events(), config.escalation, config.workflow, now=tx.now())
               if e.task_id == task_id]
        for event in escalation_events(due):
            tx.append(event)
    return due


# ------------------------------------------------------------------------------------------ dispatching


def repo_gate_names(repo: Path) -> list[str] | None:
    """The gates of ``repo``'s gates.yaml (what verification runs), or None when it cannot be read."""
    from bno_quality_gates.runner import load_config as load_gates

    try:
        return list(load_gates(repo).gates)
    except UserError:
        return None


def _attempt(store: Store, task_id: str) -> int:
    return 1 + sum(1 for e in store.events(task_id=task_id, kind="dispatch.started"))


def _write_prompt(path: Path, text: str) -> None:
    from bno_foundation.atomic import atomic_write

    atomic_write(path, text)


def dispatch(repo: Path, options: DispatchOptions, *, config: Config | None = None,
             store: Store | None = None) -> DispatchResult:
    """Dispatch one task (see the module docstring for the steps)."""
    from bno_orchestrator.config import load_config
    from bno_orchestrator.store import Store as StoreClass

    repo = Path(repo).resolve()
    if options.executor is not None and options.executor not in KINDS:
        raise UserError(f"unknown executor {options.executor!r}; kinds: {', '.join(KINDS)}")
    if bool(options.task_id) == bool(options.next):
        raise UserError("name a task (TASK_ID) or ask for --next, not both and not neither")
    config = config or load_config(repo)
    owned = store is None
    store = store or StoreClass.open(repo)
    try:
        return _dispatch(repo, options, config, store)
    finally:
        if owned:
            store.close()


def _dispatch(repo: Path, options: DispatchOptions, config: Config, store: Store) -> DispatchResult:
    from bno_orchestrator.scoring import score_tasks
    from bno_orchestrator.workflow import move_in

    wt.open_repo(repo)  # a clear error before anything else when this is no git repository
    task = pick_next(store, config) if options.next else store.task(str(options.task_id))
    tasks = {t.id: t for t in store.tasks()}
    check_dispatchable(task, tasks, verify_only=options.verify_only)
    primary = task.assignees[0] if task.assignees else ""
    agent = config.agents.get(primary)
    if agent is None:
        raise NotFoundError(f"{task.id} is assigned to {primary!r}, which is not an agent of {config.root / 'agents'}")
    kind = options.executor or agent.executor.kind
    score = score_tasks(list(tasks.values()), config.scoring, now=store.now())[task.id].value
    attempt = _attempt(store, task.id)
    logs = state_dir(repo) / "logs" / task.id
    prompt_file = logs / f"{attempt}.prompt.md"
    log_file = logs / f"{attempt}.log"

    if options.verify_only:
        return _verify_only(repo, task, primary, kind, attempt, store, config, options)

    if options.dry_run:
        existing = wt.find_worktree(repo, task.id)
        path = existing or wt.worktree_path(repo, task.id)
        base = wt.resolve_base(repo, options.base)
        context = build_context(task, store.events(task_id=task.id), config.agents, db_path=store_path(repo),
                                attempt=attempt, base=base)
        prompt = render_prompt(agent, task, worktree=path, repo=repo, context=context, priority=score,
                               agent_path=agent_file(config, primary), repo_gates=repo_gate_names(repo))
        request = ExecutorRequest(kind, agent, prompt, prompt_file, path, log_file, task.id, attempt,
                                  options.timeout, agent_file(config, primary))
        notes: list[str] = []
        argv: list[str] = []
        if kind != "manual":
            from bno_orchestrator.dispatch.executors import build_argv, require_binary

            argv = display_argv(build_argv(request), prompt, prompt_file)
            if os.sep not in argv[0]:
                try:
                    require_binary(kind, argv[0])
                except UserError as exc:
                    notes.append(str(exc))
        return DispatchResult(task.id, task.title, primary, kind, attempt, str(path), wt.branch_name(task.id), base,
                              None, argv, dry_run=True, prompt=prompt, status=task.status.value, notes=notes)

    _preflight(ExecutorRequest(kind, agent, "", prompt_file, wt.worktree_path(repo, task.id), log_file, task.id,
                               attempt, options.timeout, agent_file(config, primary)))
    with task_lock(repo, task.id):
        tree = wt.ensure_worktree(repo, task.id, options.base)
        context = build_context(task, store.events(task_id=task.id), config.agents, db_path=store_path(repo),
                                attempt=attempt, base=tree.base)
        agent_path = agent_file(config, primary)
        prompt = render_prompt(agent, task, worktree=tree.path, repo=repo, context=context, priority=score,
                               agent_path=agent_path, repo_gates=repo_gate_names(repo))
        _write_prompt(prompt_file, prompt)
        request = ExecutorRequest(kind, agent, prompt, prompt_file, tree.path, log_file, task.id, attempt,
                                  options.timeout, agent_path)
        argv = resolve_argv(request)  # a missing CLI stops here, before anything is recorded
        shown = display_argv(argv, prompt, prompt_file)
        result = DispatchResult(task.id, task.title, primary, kind, attempt, str(tree.path), tree.branch, tree.base,
                                str(prompt_file), shown)
        with store.write() as tx:
            current = tx.task(task.id)
            if current.status == TaskStatus.ASSIGNED:
                move_in(tx, config.workflow, task.id, TaskStatus.IN_DEVELOPMENT.value, actor=f"agent:{primary}",
                        reason=f"dispatched to {primary} ({kind} executor), attempt {attempt}")
            tx.append(Event(
                actor=ACTOR, kind="dispatch.started", task_id=task.id,
                payload={"attempt": attempt, "agent": primary, "executor": kind, "worktree": str(tree.path),
                         "branch": tree.branch, "base": tree.base, "worktree_created": tree.created,
                         "prompt_file": str(prompt_file), "log_file": str(log_file) if kind != "manual" else None,
                         "argv": shown, "support": list(task.support)},
                reason=f"attempt {attempt}: {kind} executor for {primary} in {tree.path}",
            ))
        if kind == "manual":
            store.append(Event(
                actor=ACTOR, kind="dispatch.handoff", task_id=task.id,
                payload={"attempt": attempt, "agent": primary, "prompt_file": str(prompt_file),
                         "worktree": str(tree.path)},
                reason=f"hand-off to a person: the prompt is in {prompt_file}; work in {tree.path}, then "
                       f"`orchestrator dispatch {task.id} --verify-only`",
            ))
            result.outcome = ExecutorOutcome("manual", [], None, False, 0.0, None, handoff=True,
                                             extra={"prompt_file": str(prompt_file)})
            result.status = store.task(task.id).status.value
            result.notes.append(f"manual hand-off: give {prompt_file} to the person doing {task.id}; they work in "
                                f"{tree.path}; then run `orchestrator dispatch {task.id} --verify-only`")
            return result
        from bno_orchestrator.dispatch.executors import run_executor

        try:
            outcome = run_executor(request, argv)
        except BaseException as exc:  # Ctrl-C / SIGTERM: the process group is dead; say so in the log
            store.append(Event(
                actor=ACTOR, kind="dispatch.finished", task_id=task.id,
                payload={"attempt": attempt, "agent": primary, "kind": kind, "interrupted": True,
                         "log_file": str(log_file), "claim_trusted": False},
                reason=f"attempt {attempt}: interrupted ({type(exc).__name__}); the task stays in development",
            ))
            raise
        result.outcome = outcome
        changed = wt.changed_files(tree.path, tree.base)
        store.append(Event(
            actor=ACTOR, kind="dispatch.finished", task_id=task.id,
            payload={"attempt": attempt, "agent": primary, **outcome.as_json(), "changed_files": changed,
                     "claim_trusted": False},
            reason=(f"attempt {attempt}: {kind} executor "
                    + ("timed out" if outcome.timed_out else f"exited {outcome.exit_code}")
                    + f" after {outcome.duration:.1f}s, {len(changed)} file(s) changed"),
        ))
        if not options.verify:
            result.status = store.task(task.id).status.value
            result.notes.append("not verified (--no-verify): the task stays in development until the gates pass")
            return result
        _verify_and_record(repo, task, primary, tree.path, tree.base, attempt, store, config, result)
        return result


def _preflight(request: ExecutorRequest) -> None:
    """Catch a bad executor config or a missing CLI before a worktree is made or anything is recorded."""
    if request.kind == "manual":
        return
    from bno_orchestrator.dispatch.executors import build_argv, require_binary

    program = build_argv(request)[0]
    if os.sep not in program:
        require_binary(request.kind, program)
    request.effective_timeout()


def _verify_and_record(repo: Path, task: Task, primary: str, path: Path, base: str, attempt: int, store: Store,
                       config: Config, result: DispatchResult) -> None:
    from bno_orchestrator.workflow import move_task, record_verification

    verification = verify_worktree(repo, path, base)
    result.verification = verification
    record_verification(store, task.id, run_id=verification.run_id, passed=verification.passed, agent=primary,
                        reason=f"attempt {attempt}: {verification.reason}")
    if verification.passed:
        result.commit = wt.commit_all(path, f"{task.id}: {task.title}\n\nAttempt {attempt} by agent {primary}; "
                                            f"{verification.reason}.\n")
        move_task(store, config.workflow, task.id, TaskStatus.REVIEW.value, actor="gates",
                  reason=f"{verification.reason}; committed on {wt.branch_name(task.id)}")
    else:
        result.escalations = escalate_task(store, config, task.id)
    result.status = store.task(task.id).status.value


def _verify_only(repo: Path, task: Task, primary: str, kind: str, attempt: int, store: Store, config: Config,
                 options: DispatchOptions) -> DispatchResult:
    with task_lock(repo, task.id):
        path = wt.find_worktree(repo, task.id)
        if path is None:
            raise UserError(f"{task.id} has no worktree to verify (dispatch it first)")
        starts = store.events(task_id=task.id, kind="dispatch.started")
        base = str(starts[-1].payload.get("base")) if starts else wt.ensure_worktree(repo, task.id, options.base).base
        done = max(1, attempt - 1)
        result = DispatchResult(task.id, task.title, primary, kind, done, str(path), wt.branch_name(task.id), base,
                                None, [])
        _verify_and_record(repo, task, primary, path, base, done, store, config, result)
        return result
