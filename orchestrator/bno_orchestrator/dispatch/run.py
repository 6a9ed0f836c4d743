"""One dispatch: pick a routed task, run its agent in the task's worktree, let the gate DAG decide.

A dispatch is a chain of small named steps; each reads the :class:`Plan` and none changes it:

1. :func:`choose`: the task (an explicit id, or with ``--next`` the best-scored ``assigned`` task whose
   dependencies are done), from ONE scoring of the task list. Blocked tasks, unrouted tasks and tasks in
   other states are refused with the reason.
2. :func:`executor_request`: the routed primary agent, its executor (``--executor`` overrides its kind),
   the attempt number and the files of the attempt (``.orchestrator/logs/<task-id>/<attempt>.prompt.md``
   and ``.log``). :func:`preflight` refuses a bad executor config or a missing CLI (a UserError) before a
   worktree is made or anything is recorded.
3. :func:`make_plan`: the worktree (:mod:`.worktree`; for a dry run, the one it would use) and the prompt
   (:mod:`.prompt`) rendered into the request: the :class:`Plan`. :func:`dry_run` shows it and stops.
4. :func:`record_start`: in one transaction ``assigned -> in_development`` (actor ``agent:<primary>``, the
   role ``development.yaml`` gives that move) and a ``dispatch.started`` event (actor ``dispatch``). A retry
   of a task already in development only records the new attempt.
5. :func:`hand_off` (the manual executor: a person takes the prompt file) or :func:`execute` (:mod:`.executors`;
   ``dispatch.finished`` records its exit, log, changed files and its claim, which never decides anything).
6. :func:`verify`: the affected gates of the main repository's ``workflows/gates.yaml`` (the trusted copy,
   not the worktree's) run on the worktree against the base commit; results go to the same store. A
   worktree with no change fails verification. ``gates.verified`` is recorded through
   :func:`bno_orchestrator.workflow.record_verification`. Passed: the work is committed on the task branch
   and the task moves ``in_development -> review`` (actor ``gates``). Failed: the task stays in development,
   and the escalation rules are evaluated for this task at once (e.g. repeated failed runs ->
   truth-validator oversight).

``--verify-only`` runs step 6 alone on the task's worktree (after a manual hand-off).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bno_foundation.atomic import atomic_write
from bno_orchestrator.dispatch import worktree as wt
from bno_orchestrator.dispatch.executors import (
    KINDS,
    ExecutorOutcome,
    ExecutorRequest,
    build_argv,
    display_argv,
    require_binary,
    resolve_argv,
    run_executor,
)
from bno_orchestrator.dispatch.leftover import reap_leftover
from bno_orchestrator.dispatch.prompt import build_context, render_prompt
from bno_orchestrator.dispatch.verdict import Verification, escalate_task, gate_verdict
from bno_orchestrator.errors import NotFoundError, UserError
from bno_orchestrator.events import (
    DispatchFinished,
    DispatchHandoff,
    DispatchInterrupted,
    DispatchStarted,
    EventKind,
)
from bno_orchestrator.models import Event, Task, TaskStatus, unfinished_dependencies
from bno_orchestrator.paths import data_root, state_dir, store_path

if TYPE_CHECKING:
    from bno_orchestrator.config import Config
    from bno_orchestrator.dispatch.advance import AdvanceResult
    from bno_orchestrator.dispatch.progress import ProgressCallback
    from bno_orchestrator.escalation import Escalation
    from bno_orchestrator.scoring import Score
    from bno_orchestrator.store import Store

ACTOR = "dispatch"
MANUAL = "manual"  # the executor kind that runs nothing: the prompt file is a hand-off to a person
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
    advance: bool = True  # after the gates pass: walk the task along the pipeline (review ... done)
    resume: bool = False  # continue the CLI session of the task's last attempt (claude, codex, gemini)


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
    advanced: AdvanceResult | None = None  # the pipeline after review (None: not run)

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
            "advanced": self.advanced.as_json() if self.advanced else None,
        }


@dataclass(frozen=True)
class Plan:
    """One dispatch, decided before anything runs: the task, the worktree it is worked in, and the executor
    request (the agent, the executor kind, the attempt, the rendered prompt, the prompt and log files).

    Made once by :func:`make_plan`; every later step reads it, none changes it."""

    task: Task
    worktree: wt.Worktree
    request: ExecutorRequest

    @property
    def primary(self) -> str:
        """The routed primary agent."""
        return primary_agent(self.task)

    @property
    def kind(self) -> str:
        """The executor kind."""
        return self.request.kind

    @property
    def attempt(self) -> int:
        """1 for the task's first dispatch, 2 for the next..."""
        return self.request.attempt

    @property
    def prompt(self) -> str:
        """The prompt, rendered for the task in its worktree."""
        return self.request.prompt

    @property
    def prompt_file(self) -> Path:
        """Where the prompt is written (``.orchestrator/logs/<task-id>/<attempt>.prompt.md``)."""
        return self.request.prompt_file


# ------------------------------------------------------------------------------------------ choosing


def choose(store: Store, config: Config, options: DispatchOptions) -> tuple[Task, float]:
    """The task to dispatch and its score: the named one, or (``--next``) the best ready one; refused
    (UserError) when it may not be dispatched. The task list is read and scored once."""
    from bno_orchestrator.scoring import score_tasks

    named = None if options.next else store.task(str(options.task_id))
    tasks = store.tasks()
    by_id = {t.id: t for t in tasks}
    scores = score_tasks(tasks, config.scoring, now=store.now())
    task = named or best_ready(tasks, by_id, scores)
    check_dispatchable(task, by_id, verify_only=options.verify_only)
    return task, scores[task.id].value


def best_ready(tasks: Sequence[Task], by_id: Mapping[str, Task], scores: Mapping[str, Score]) -> Task:
    """The best-scored ``assigned`` task with a primary agent and every dependency done (ties: by id)."""
    candidates = [t for t in tasks
                  if t.status == TaskStatus.ASSIGNED and t.assignees and not unfinished_dependencies(t, by_id)]
    if not candidates:
        raise UserError("no routed task is ready to dispatch (none assigned with its dependencies done); "
                        "run `orchestrator route` or name a task")
    return min(candidates, key=lambda t: (-scores[t.id].value, t.id))


def check_dispatchable(task: Task, tasks: Mapping[str, Task], *, verify_only: bool = False) -> None:
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
    waiting = unfinished_dependencies(task, tasks)
    if waiting:
        raise UserError(f"{task.id} is blocked by unfinished {', '.join(waiting)}: dispatch those first")


def primary_agent(task: Task) -> str:
    """The routed primary agent of ``task`` (empty when it has none)."""
    return task.assignees[0] if task.assignees else ""


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


# ------------------------------------------------------------------------------------------ planning


def executor_request(repo: Path, store: Store, config: Config, task: Task,
                     options: DispatchOptions) -> ExecutorRequest:
    """The executor request of the task's next attempt, its prompt not yet rendered (:func:`make_plan`
    renders it). NotFoundError when the primary agent is no agent of the configuration."""
    primary = primary_agent(task)
    agent = config.agents.get(primary)
    if agent is None:
        raise NotFoundError(f"{task.id} is assigned to {primary!r}, which is not an agent of {config.root / 'agents'}")
    if options.executor and options.executor != agent.executor.kind:
        # --executor KIND: the repository's default options when KIND is the default executor's kind
        from bno_orchestrator.agents import ExecutorSpec

        default = config.dispatch.default_executor
        chosen = dict(default.options) if default.kind == options.executor else {}
        agent = agent.model_copy(update={"executor": ExecutorSpec(kind=options.executor,  # type: ignore[arg-type]
                                                                  options=chosen)})
    attempt = 1 + len(store.events(task_id=task.id, kind=EventKind.DISPATCH_STARTED))
    logs = state_dir(repo) / "logs" / task.id
    return ExecutorRequest(options.executor or agent.executor.kind, agent, "", logs / f"{attempt}.prompt.md",
                           wt.worktree_path(repo, task.id), logs / f"{attempt}.log", task.id, attempt,
                           options.timeout, agent_file(config, primary))


def preflight(repo: Path, request: ExecutorRequest) -> list[str]:
    """Before a worktree is made or anything is recorded: a bad executor config, a missing CLI, no key or
    login, a model endpoint that does not answer, a CLI whose version does not run, a session that cannot be
    resumed (:func:`bno_orchestrator.dispatch.preflight.check_cli`: a PreflightError, never a gate failure).
    The notes for the user (an untested version, a login file in use)."""
    from bno_orchestrator.dispatch.preflight import PREFLIGHT_KINDS, check_cli

    if request.kind == MANUAL:
        return []
    request.effective_timeout()
    notes = check_cli(request, repo)
    if request.kind not in PREFLIGHT_KINDS:  # shell: check_cli found no binary to look for
        program = build_argv(request)[0]
        if os.sep not in program:
            require_binary(request.kind, program)
    return notes


def resume_session(store: Store, task: Task, kind: str) -> str:
    """The CLI session of the task's last attempt that recorded one (``--resume``); a UserError when there is
    none, or when it was another executor's."""
    for event in reversed(store.events(task_id=task.id, kind=EventKind.DISPATCH_FINISHED)):
        session = event.payload.get("session_id")
        if session:
            recorded = str(event.payload.get("kind") or "")
            if recorded != kind:
                raise UserError(f"{task.id}'s last session {session} is a {recorded} session, not {kind}: resume it "
                                f"with --executor {recorded}, or dispatch without --resume")
            return str(session)
    raise UserError(f"{task.id} has no agent session to resume (no attempt recorded a session id): dispatch it "
                    "without --resume")


def planned_worktree(repo: Path, task_id: str, base: str | None) -> wt.Worktree:
    """The worktree a dispatch of ``task_id`` would use (for a dry run: nothing is made)."""
    return wt.Worktree(task_id, wt.worktree_path(repo, task_id), wt.branch_name(task_id),
                       wt.resolve_base(repo, base), created=False)


def repo_gate_names(repo: Path) -> list[str] | None:
    """The gates of ``repo``'s gates.yaml (what verification runs), or None when it cannot be read."""
    from bno_orchestrator.paths import gates_file
    from bno_quality_gates.spec import load_gates

    try:
        return list(load_gates(gates_file(repo)).gates)
    except UserError:
        return None


def make_plan(repo: Path, store: Store, config: Config, task: Task, score: float, request: ExecutorRequest,
              tree: wt.Worktree) -> Plan:
    """The plan: the prompt for ``task`` in ``tree`` (with its support agents and last gate failures),
    rendered into ``request``."""
    context = build_context(task, store.events(task_id=task.id), config.agents, db_path=store_path(repo),
                            attempt=request.attempt, base=tree.base)
    prompt = render_prompt(request.agent, task, worktree=tree.path, repo=repo, context=context, priority=score,
                           agent_path=request.agent_path, repo_gates=repo_gate_names(repo))
    return Plan(task, tree, dataclasses.replace(request, prompt=prompt, worktree=tree.path))


# ------------------------------------------------------------------------------------------ the steps


def dry_run(plan: Plan) -> DispatchResult:
    """What the dispatch would do: the prompt, the argv and the worktree. Nothing is run, made or
    recorded; a missing CLI is a note, not an error."""
    notes: list[str] = []
    argv: list[str] = []
    if plan.kind != MANUAL:
        argv = display_argv(build_argv(plan.request), plan.prompt, plan.prompt_file)
        if os.sep not in argv[0]:
            try:
                require_binary(plan.kind, argv[0])
            except UserError as exc:
                notes.append(str(exc))
    task, tree = plan.task, plan.worktree
    return DispatchResult(task.id, task.title, plan.primary, plan.kind, plan.attempt, str(tree.path), tree.branch,
                          tree.base, None, argv, dry_run=True, prompt=plan.prompt, status=task.status.value,
                          notes=notes)


def prepare(plan: Plan) -> list[str]:
    """Write the prompt file and resolve the executor's argv: a missing CLI stops here, before anything is
    recorded. Empty for the manual executor."""
    atomic_write(plan.prompt_file, plan.prompt)
    return resolve_argv(plan.request)


def record_start(store: Store, config: Config, plan: Plan, argv: list[str]) -> DispatchResult:
    """Record the attempt (and ``assigned -> in_development`` on the first one) in one transaction; the
    result so far."""
    from bno_orchestrator.workflow import move_in

    task, tree, primary, kind, attempt = plan.task, plan.worktree, plan.primary, plan.kind, plan.attempt
    shown = display_argv(argv, plan.prompt, plan.prompt_file)
    started = DispatchStarted(
        attempt=attempt, agent=primary, executor=kind, worktree=str(tree.path), branch=tree.branch, base=tree.base,
        worktree_created=tree.created, prompt_file=str(plan.prompt_file),
        log_file=str(plan.request.log_file) if kind != MANUAL else None, argv=shown, support=task.support,
    )
    with store.write() as tx:
        if tx.task(task.id).status == TaskStatus.ASSIGNED:
            move_in(tx, config.workflow, task.id, TaskStatus.IN_DEVELOPMENT.value, actor=f"agent:{primary}",
                    reason=f"dispatched to {primary} ({kind} executor), attempt {attempt}")
        tx.append(Event.of(started, actor=ACTOR, task_id=task.id,
                           reason=f"attempt {attempt}: {kind} executor for {primary} in {tree.path}"))
    return DispatchResult(task.id, task.title, primary, kind, attempt, str(tree.path), tree.branch, tree.base,
                          str(plan.prompt_file), shown)


def hand_off(store: Store, plan: Plan, result: DispatchResult) -> DispatchResult:
    """The manual executor: record the hand-off; a person works in the worktree, then ``--verify-only``."""
    task_id, prompt_file, path = plan.task.id, plan.prompt_file, plan.worktree.path
    store.append(Event.of(
        DispatchHandoff(plan.attempt, plan.primary, str(prompt_file), str(path)), actor=ACTOR, task_id=task_id,
        reason=f"hand-off to a person: the prompt is in {prompt_file}; work in {path}, then "
               f"`orchestrator dispatch {task_id} --verify-only`",
    ))
    result.outcome = run_executor(plan.request)  # reports the hand-off, runs nothing
    result.status = store.task(task_id).status.value
    result.notes.append(f"manual hand-off: give {prompt_file} to the person doing {task_id}; they work in "
                        f"{path}; then run `orchestrator dispatch {task_id} --verify-only`")
    return result


def execute(store: Store, plan: Plan, argv: list[str], on_progress: ProgressCallback | None = None) -> ExecutorOutcome:
    """Run the executor and record how it ended (``dispatch.finished``, also when interrupted)."""
    task_id, attempt, primary, kind = plan.task.id, plan.attempt, plan.primary, plan.kind
    try:
        outcome = run_executor(plan.request, argv, on_progress=on_progress)
    except BaseException as exc:  # Ctrl-C, SIGTERM, SIGHUP: the process group is dead; say so in the log
        from bno_foundation.cli import Terminated

        cause = (exc.args[0] if isinstance(exc, Terminated) else
                 "SIGINT" if isinstance(exc, KeyboardInterrupt) else type(exc).__name__)
        store.append(Event.of(
            DispatchInterrupted(attempt, primary, kind, str(plan.request.log_file), str(cause)), actor=ACTOR,
            task_id=task_id, reason=f"attempt {attempt}: interrupted ({cause}); the agent's process group was "
                                    "stopped and the task stays in development",
        ))
        raise
    changed = wt.changed_files(plan.worktree.path, plan.worktree.base)
    ended = "timed out" if outcome.timed_out else f"exited {outcome.exit_code}"
    store.append(Event.of(
        DispatchFinished(attempt, primary, outcome.as_json(), changed), actor=ACTOR, task_id=task_id,
        reason=f"attempt {attempt}: {kind} executor {ended} after {outcome.duration:.1f}s, "
               f"{len(changed)} file(s) changed",
    ))
    return outcome


def executor_failed(store: Store, result: DispatchResult) -> DispatchResult:
    """The CLI itself failed (not logged in, network, turn limit ...): no gate runs, nothing counts toward
    escalation, and the task stays in development for a retry."""
    outcome = result.outcome
    assert outcome is not None and outcome.error_kind is not None
    result.status = store.task(result.task_id).status.value
    result.notes.append(f"executor error ({outcome.error_kind}): {outcome.error or 'no message'}; the gates did "
                        f"not run and the task stays {result.status}: fix the cause and dispatch it again")
    return result


def unverified(store: Store, result: DispatchResult) -> DispatchResult:
    """``--no-verify``: the task stays in development until the gates pass."""
    result.status = store.task(result.task_id).status.value
    result.notes.append("not verified (--no-verify): the task stays in development until the gates pass")
    return result


def verify(repo: Path, store: Store, config: Config, result: DispatchResult) -> DispatchResult:
    """Let the gates judge the attempt's worktree and record their verdict. Passed: commit the work on the
    task branch and move the task to review. Failed: it stays in development; escalate it if a rule fires."""
    from bno_orchestrator.workflow import move_task, record_verification

    task_id, path, attempt, agent = result.task_id, Path(result.worktree), result.attempt, result.agent
    verification = gate_verdict(repo, path, result.base)
    result.verification = verification
    record_verification(store, task_id, run_id=verification.run_id, passed=verification.passed, agent=agent,
                        reason=f"attempt {attempt}: {verification.reason}")
    if verification.passed:
        result.commit = wt.commit_all(path, f"{task_id}: {result.title}\n\nAttempt {attempt} by agent {agent}; "
                                            f"{verification.reason}.\n")
        move_task(store, config.workflow, task_id, TaskStatus.REVIEW.value, actor="gates",
                  reason=f"{verification.reason}; committed on {wt.branch_name(task_id)}")
    else:
        result.escalations = escalate_task(store, config, task_id)
    result.status = store.task(task_id).status.value
    return result


def verify_only(repo: Path, store: Store, config: Config, task: Task, request: ExecutorRequest,
                options: DispatchOptions) -> DispatchResult:
    """``--verify-only``: verify the task's worktree as it is (after a manual hand-off), against the base
    of its last dispatch; the attempt verified is the last one started."""
    with task_lock(repo, task.id):
        reap_leftover(store, task.id)  # never verify a tree an orphaned agent may still be writing
        path = wt.find_worktree(repo, task.id)
        if path is None:
            raise UserError(f"{task.id} has no worktree to verify (dispatch it first)")
        starts = store.events(task_id=task.id, kind=EventKind.DISPATCH_STARTED)
        fork = str(starts[-1].payload.get("base")) if starts else wt.ensure_worktree(repo, task.id, options.base).base
        result = DispatchResult(task.id, task.title, primary_agent(task), request.kind, max(1, request.attempt - 1),
                                str(path), wt.branch_name(task.id), fork, None, [])
        return then_advance(repo, store, config, options, verify(repo, store, config, result))


# ------------------------------------------------------------------------------------------ the chain


def dispatch(repo: Path, options: DispatchOptions, *, config: Config | None = None,
             store: Store | None = None, on_progress: ProgressCallback | None = None) -> DispatchResult:
    """Dispatch one task (see the module docstring for the steps). ``on_progress`` gets each live progress
    record of the agent while it runs (claude, codex, gemini: from their event streams)."""
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
        return _dispatch(repo, options, config, store, on_progress)
    finally:
        if owned:
            store.close()


def _dispatch(repo: Path, options: DispatchOptions, config: Config, store: Store,
              on_progress: ProgressCallback | None) -> DispatchResult:
    """The chain of steps (the module docstring says what each does)."""
    wt.open_repo(repo)  # a clear error before anything else when this is no git repository
    task, score = choose(store, config, options)
    request = executor_request(repo, store, config, task, options)
    if options.verify_only:
        return verify_only(repo, store, config, task, request, options)
    if options.dry_run:
        return dry_run(make_plan(repo, store, config, task, score, request,
                                 planned_worktree(repo, task.id, options.base)))
    if options.resume:
        request = dataclasses.replace(request, resume_session=resume_session(store, task, request.kind))
    notes = preflight(repo, request)  # nothing is made or recorded before this check
    with task_lock(repo, task.id):
        leftover = reap_leftover(store, task.id)  # an attempt whose orchestrator died: stop what it left
        if leftover is not None:
            notes.append(leftover)
        tree = wt.ensure_worktree(repo, task.id, options.base)
        plan = make_plan(repo, store, config, task, score, request, tree)
        argv = prepare(plan)
        result = record_start(store, config, plan, argv)
        result.notes += notes
        if plan.kind == MANUAL:
            return hand_off(store, plan, result)
        result.outcome = execute(store, plan, argv, on_progress)
        if result.outcome.error_kind is not None:
            return executor_failed(store, result)
        if not options.verify:
            return unverified(store, result)
        return then_advance(repo, store, config, options, verify(repo, store, config, result))


def then_advance(repo: Path, store: Store, config: Config, options: DispatchOptions,
                 result: DispatchResult) -> DispatchResult:
    """After a pass: walk the task along the pipeline (:mod:`.advance`) unless ``--no-advance``. The caller
    holds the task's lock."""
    if options.advance and result.verification is not None and result.verification.passed:
        from bno_orchestrator.dispatch.advance import advance

        result.advanced = advance(repo, store, config, result.task_id)
        result.status = result.advanced.status
    return result
