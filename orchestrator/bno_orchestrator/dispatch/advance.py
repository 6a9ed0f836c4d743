"""The pipeline after development: review -> integration -> qa -> testing -> done, decided by gates.

``development.yaml`` names the pipeline (``pipeline:``) and, per state, the gates that must pass for the
task to move on (``gates:``: gate names, ``affected`` or ``all``), whether the target branch is first merged
into the task branch (``integrate: true``) and whether a person approves the move (``approve: human``).
:func:`advance` walks a task along it, one state at a time, in the task's worktree:

1. the worktree must hold no uncommitted change (the task's work was committed when it was verified);
2. ``integrate``: merge the target into the task branch; a conflict aborts the merge and sends the task
   back to development with the conflicting files named (``merge.conflict``);
3. the state's gates run on the worktree (the main repository's gates.yaml, never the worktree's), the
   change being everything since the target (or the dispatch base); the verdict is a ``gates.verified``
   event with its ``stage``. Failed: back to development (actor ``gates``), the escalation rules are
   evaluated. Passed and ``approve: human`` without ``--approve``: the task waits;
4. the move on (actor ``gates``); when the next state is the last of the pipeline the task branch lands in
   its target (:mod:`.landing`, the strategy of ``workflows/dispatch.yaml``), re-integrating and re-testing
   first when the target moved meanwhile (what lands is what was tested), then the worktree is removed and
   the branch deleted as configured (``task.landed``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bno_orchestrator.dispatch import landing
from bno_orchestrator.dispatch import worktree as wt
from bno_orchestrator.dispatch.verdict import Verification, escalate_task, gate_verdict
from bno_orchestrator.errors import UserError
from bno_orchestrator.events import EventKind, MergeConflict, TaskLanded
from bno_orchestrator.models import Event

if TYPE_CHECKING:
    from bno_orchestrator.config import Config
    from bno_orchestrator.escalation import Escalation
    from bno_orchestrator.models import Task
    from bno_orchestrator.store import Store

ACTOR = "gates"
MAX_RETESTS = 3  # how often the last state re-integrates a target that keeps moving before it gives up


@dataclass
class StageResult:
    """One pipeline state's step: its gates' verdict and where the task went."""

    state: str
    verification: Verification | None
    moved_to: str | None
    note: str = ""

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"state": self.state, "verification": self.verification.as_json() if self.verification else None,
                "moved_to": self.moved_to, "note": self.note}


@dataclass
class AdvanceResult:
    """What :func:`advance` did to one task."""

    task_id: str
    start: str
    status: str = ""
    stages: list[StageResult] = field(default_factory=list)
    landing: landing.Landing | None = None
    conflicts: list[str] = field(default_factory=list)
    waiting: str | None = None  # why the task stopped without a failure (approval, nothing to do)
    failed: str | None = None  # why the task was sent back or could not move on
    escalations: list[Escalation] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Nothing failed (the task is done, or waits for a person)."""
        return self.failed is None

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready dict (``advance --json``)."""
        return {"task_id": self.task_id, "start": self.start, "status": self.status, "ok": self.ok,
                "stages": [s.as_json() for s in self.stages],
                "landing": self.landing.as_json() if self.landing else None, "conflicts": self.conflicts,
                "waiting": self.waiting, "failed": self.failed,
                "escalations": [e.as_json() for e in self.escalations]}


def pipeline(config: Config) -> list[str]:
    """The pipeline of ``development.yaml`` (a UserError when it names none)."""
    states = list(config.workflow.spec.pipeline)
    if len(states) < 2:
        raise UserError("workflows/development.yaml names no pipeline (e.g. `pipeline: [in_development, review, "
                        "integration, qa, testing, done]`): nothing moves a task on after development")
    return states


def dispatch_base(store: Store, task_id: str) -> str | None:
    """The commit the task's worktree was first made from (its first ``dispatch.started``)."""
    starts = store.events(task_id=task_id, kind=EventKind.DISPATCH_STARTED)
    return str(starts[0].payload.get("base")) if starts else None


def advance(repo: Path, store: Store, config: Config, task_id: str, *, approve: bool = False) -> AdvanceResult:
    """Walk ``task_id`` along the pipeline as far as its gates allow (see the module docstring).

    The caller holds the task's dispatch lock."""
    from bno_orchestrator.dispatch.run import primary_agent

    states = pipeline(config)
    task = store.task(task_id)
    result = AdvanceResult(task_id, task.status.value)
    if task.status.value not in states[1:-1]:
        result.status = task.status.value
        result.waiting = (f"{task_id} is {task.status.value}: only tasks in "
                          f"{', '.join(states[1:-1])} advance (dispatch it first)"
                          if task.status.value != states[-1] else f"{task_id} is already {states[-1]}")
        return result
    tree = wt.find_worktree(repo, task_id)
    if tree is None:
        tree = wt.ensure_worktree(repo, task_id).path  # the task branch, checked out again
    dirty = wt.uncommitted_files(tree)
    if dirty:
        raise UserError(f"{tree} has uncommitted changes ({', '.join(dirty[:5])}): the gates verified a committed "
                        f"state; commit them on {wt.branch_name(task_id)} (and `orchestrator dispatch {task_id} "
                        "--verify-only`) or remove them")
    settings = config.dispatch.merge
    target = landing.default_target(repo, settings.target)
    agent = primary_agent(task)
    while True:
        task = store.task(task_id)
        state = task.status.value
        if state not in states[1:-1]:
            break
        spec = config.workflow.spec.states[state]
        if spec.integrate and not _integrate(repo, store, config, task, tree, target, state, result):
            break
        verification = _run_stage(repo, store, task, tree, target, state, spec.gates, agent, result)
        if verification is None:
            break
        if not verification.passed:
            _send_back(store, config, task, states[0], f"{state} gates failed: {verification.reason}", result)
            break
        if spec.approve == "human" and not approve:
            result.waiting = (f"the {state} gates passed; a person approves the move on: "
                              f"`orchestrator advance {task_id} --approve`")
            result.stages[-1].note = "waiting for approval"
            break
        approve = False  # an approval moves one state on, not the whole pipeline
        following = states[states.index(state) + 1]
        if following == states[-1]:
            _land(repo, store, config, task, tree, target, state, spec.gates, agent, result)
            break
        _move(store, config, task_id, following, f"{state} gates passed ({verification.reason})")
        result.stages[-1].moved_to = following
    result.status = store.task(task_id).status.value
    return result


def _move(store: Store, config: Config, task_id: str, to: str, reason: str) -> None:
    from bno_orchestrator.workflow import move_task

    move_task(store, config.workflow, task_id, to, actor=ACTOR, reason=reason)


def _send_back(store: Store, config: Config, task: Task, to: str, reason: str, result: AdvanceResult) -> None:
    """Back to development with ``reason``; the escalation rules are evaluated for the task."""
    _move(store, config, task.id, to, reason)
    if result.stages:
        result.stages[-1].moved_to = to
    result.failed = reason
    result.escalations = escalate_task(store, config, task.id)


def _integrate(repo: Path, store: Store, config: Config, task: Task, tree: Path, target: str, state: str,
               result: AdvanceResult) -> bool:
    """Merge the target into the task branch; False (and the task sent back) on a conflict."""
    merged = landing.integrate(repo, tree, target)
    if merged.clean:
        return True
    store.append(Event.of(MergeConflict(state, target, merged.target_sha, merged.conflicts), actor=ACTOR,
                          task_id=task.id, reason=f"{target} conflicts with {wt.branch_name(task.id)} in "
                                                  f"{', '.join(merged.conflicts)}"))
    result.conflicts = merged.conflicts
    result.stages.append(StageResult(state, None, None, "merge conflict"))
    _send_back(store, config, task, pipeline(config)[0],
               f"merging {target} into {wt.branch_name(task.id)} conflicts in {', '.join(merged.conflicts)}: "
               f"dispatch it again (the agent's prompt names the conflict), or resolve it by hand in {tree} "
               f"(`git merge {target}`, fix, commit) and run `orchestrator dispatch {task.id} --verify-only`", result)
    return False


def _run_stage(repo: Path, store: Store, task: Task, tree: Path, target: str, state: str, gates: list[str],
               agent: str, result: AdvanceResult) -> Verification | None:
    """Run the state's gates and record the verdict; None (the task stays) when no gate could run."""
    import git

    from bno_orchestrator.workflow import record_verification

    handle = wt.open_repo(repo)
    head = git.Repo(tree).head.commit.hexsha
    try:
        base = str(handle.git.merge_base(head, target))
    except git.GitCommandError:  # no shared history with the target: the dispatch base
        base = dispatch_base(store, task.id) or head
    verification = gate_verdict(repo, tree, base, gates)
    result.stages.append(StageResult(state, verification, None))
    if not verification.ran:
        result.failed = (f"{task.id} stays {state}: {verification.reason} (the {state} gates of "
                         "workflows/development.yaml selected nothing to run)")
        return None
    record_verification(store, task.id, run_id=verification.run_id, passed=verification.passed, agent=agent,
                        reason=f"{state}: {verification.reason}", stage=state)
    return verification


def _land(repo: Path, store: Store, config: Config, task: Task, tree: Path, target: str, state: str,
          gates: list[str], agent: str, result: AdvanceResult) -> None:
    """Land the task branch (re-integrating and re-testing while the target moves), then clean up."""
    import git

    settings = config.dispatch.merge
    handle = wt.open_repo(repo)
    branch = wt.branch_name(task.id)
    done = pipeline(config)[-1]
    for _ in range(MAX_RETESTS):
        target_sha = str(handle.git.rev_parse(target))
        if handle.is_ancestor(handle.commit(target_sha), git.Repo(tree).head.commit):
            break
        if not _integrate(repo, store, config, task, tree, target, state, result):
            return
        verification = _run_stage(repo, store, task, tree, target, state, gates, agent, result)
        if verification is None:
            return
        if not verification.passed:
            _send_back(store, config, task, pipeline(config)[0],
                       f"{state} gates failed after {target} moved on: {verification.reason}", result)
            return
    else:
        result.failed = f"{target} kept moving while {task.id} was re-tested {MAX_RETESTS} times: advance it again"
        return
    message = f"Merge {branch}: {task.id} {task.title}\n\nLanded by the BitNet Orchestrator after the {state} gates passed.\n"
    try:
        landed = landing.land(repo, branch, target, settings.strategy, message, title=f"{task.id}: {task.title}",
                              body=f"{task.id}: {task.title}\n\n{task.description}".strip())
    except landing.LandingError as exc:
        result.failed = f"{task.id} stays {state}: {exc}"
        return
    result.landing = landed
    result.stages[-1].moved_to = done
    removed = deleted = False
    if settings.remove_worktree:  # a branch still checked out in its worktree cannot be deleted
        report = wt.cleanup(repo, task.id, delete_branch=settings.delete_branch and landed.strategy != "pr")
        removed, deleted = bool(report["removed"]), bool(report["branch_deleted"])
    how = f"opened {landed.pr_url}" if landed.pr_url else f"{landed.strategy} into {target} at {str(landed.commit)[:12]}"
    with store.write() as tx:
        from bno_orchestrator.workflow import move_in

        tx.append(Event.of(TaskLanded(branch, landed.strategy, target, landed.commit, landed.pr_url, removed, deleted),
                           actor=ACTOR, task_id=task.id, reason=f"{branch} landed: {how}"))
        move_in(tx, config.workflow, task.id, done, actor=ACTOR, reason=f"{state} gates passed; {branch} landed: {how}")


def advance_task(repo: Path, task_id: str | None, *, approve: bool = False, every: bool = False) -> list[AdvanceResult]:
    """``orchestrator advance``: advance ``task_id`` (or, with ``every``, each task in a pipeline state, in id
    order), each under its dispatch lock."""
    from bno_orchestrator.config import load_config
    from bno_orchestrator.dispatch.run import task_lock
    from bno_orchestrator.store import Store

    repo = Path(repo).resolve()
    if bool(task_id) == every:
        raise UserError("name a task (TASK_ID) or ask for --all, not both and not neither")
    config = load_config(repo)
    states = pipeline(config)
    with Store.open(repo) as store:
        ids = [task_id] if task_id else [t.id for t in sorted(store.tasks(), key=lambda t: t.id)
                                         if t.status.value in states[1:-1]]
        results = []
        for name in ids:
            with task_lock(repo, name):
                results.append(advance(repo, store, config, name, approve=approve))
        return results
