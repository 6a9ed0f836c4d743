"""The demo sprint (``orchestrator demo``): the README's main job, offline, on the embedded defaults.

Steps, each one a real ``orchestrator`` command run in-process against a throw-away git repository:

1. ``git init``; a slice of BitNet b1.58 code (pure-Python quantization and the Hugging Face 2-bit packed
   layout) with its tests, two of which fail (a known bug, and a function still to write);
   ``orchestrator init``; the demo's own gate DAG (``syntax``, ``test-quant``, ``test-packing``, each
   selected by the files a change touches); one commit.
2. ``orchestrator import`` of the shipped BitNet backlog (:file:`demo_backlog.yaml`), ``task list`` (scores),
   ``route`` (primary/support agents, strategy).
3. The routed primaries of BN-1 and BN-2 get a *scripted* executor (``shell``: a deterministic Python
   program standing in for an LLM agent, no network): it fixes BN-1 correctly and gets BN-2 wrong while
   claiming success.
4. ``dispatch BN-1`` (worktree, prompt, executor, gates pass -> committed on its branch; then the pipeline:
   review, integration (main merged in), qa and testing gates pass -> merged into main, worktree removed, done),
   ``dispatch BN-2`` twice (gates fail twice -> the failed-gates escalation adds the truth validator).
5. ``status`` (the board) and ``task explain`` of the top-scored task.

Everything printed comes from the store (the commands read it back). :func:`run_demo` returns a summary
whose ``ok`` says whether the store holds every expected event.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bno_orchestrator.errors import UserError
from bno_orchestrator.events import EventKind

if TYPE_CHECKING:
    from bno_orchestrator.demo_live import LiveAgent

BACKLOG = Path(__file__).resolve().parent / "demo_backlog.yaml"
PASSING_TASK = "BN-1"
FAILING_TASK = "BN-2"
DEMO_ACTOR = "human:demo"
DEMO_COLUMNS = 150

# task -> (file, old text, new text, the claim the agent makes); BN-2's edit is wrong on purpose
RECIPES: dict[str, tuple[str, str, str, str]] = {
    "BN-1": (
        "bitnet_lite/quant.py",
        "    return sum(flat) / len(flat)\n",
        "    return max(sum(flat) / len(flat), EPS)\n",
        "Fixed BN-1: absmean_scale now clamps beta at EPS; all tests pass.",
    ),
    # the classic mistake: consecutive rows per byte instead of the block layout (row i*R + r)
    "BN-2": (
        "bitnet_lite/packing.py",
        '    raise NotImplementedError("BN-2: unpack the Hugging Face 2-bit layout")\n',
        "    rows: list[list[int]] = []\n"
        "    for byte_row in packed:\n"
        "        for i in range(4):\n"
        "            if len(rows) < out:\n"
        "                rows.append([((b >> (2 * i)) & 3) - 1 for b in byte_row])\n"
        "    return rows\n",
        "Implemented BN-2: unpack_ternary inverts pack_ternary; all tests pass.",
    ),
}


SLICE: dict[str, str] = {
    ".gitignore": ".orchestrator/\n__pycache__/\n.pytest_cache/\n",
    "README.md": (
        "# bitnet-lite (orchestrator demo)\n\nA pure-Python slice of BitNet b1.58: absmean ternary weights, absmax int8\n"
        "activations and the Hugging Face 2-bit packed layout. Built by `orchestrator demo`.\n"
    ),
    "bitnet_lite/__init__.py": '"""A pure-Python slice of BitNet b1.58 quantization (the orchestrator demo)."""\n',
    "bitnet_lite/quant.py": '''"""BitNet b1.58 quantization: ternary weights (per-tensor absmean), int8 activations (per-token absmax)."""

from __future__ import annotations

EPS = 1e-5


def absmean_scale(weights: list[list[float]]) -> float:
    """beta = mean(|W|), floored at EPS (the reference clamps it: ``.clamp(min=1e-5)``)."""
    flat = [abs(w) for row in weights for w in row]
    return sum(flat) / len(flat)


def ternarize(weights: list[list[float]]) -> tuple[list[list[int]], float]:
    """Wq = round(W / beta).clamp(-1, 1) and beta."""
    beta = absmean_scale(weights)
    return [[max(-1, min(1, round(w / beta))) for w in row] for row in weights], beta


def absmax_int8(x: list[float]) -> tuple[list[int], float]:
    """s = 127 / max(|x|) (floored at EPS), xq = round(x * s).clamp(-128, 127)."""
    scale = 127 / max(max(abs(v) for v in x), EPS)
    return [max(-128, min(127, round(v * scale))) for v in x], scale
''',
    "bitnet_lite/packing.py": '''"""The Hugging Face packed ternary layout: {-1, 0, 1} stored as {0, 1, 2}, four values per byte.

Packed along dim 0 in blocks: for ``R = ceil(out / 4)``, packed row ``r`` bits ``[2i, 2i+1]`` hold original
row ``i * R + r``. Shape ``[R, in]``.
"""

from __future__ import annotations


def pack_ternary(rows: list[list[int]]) -> list[list[int]]:
    """Pack a ternary matrix ``[out, in]`` into bytes ``[ceil(out / 4), in]``."""
    out, cols = len(rows), len(rows[0])
    blocks = (out + 3) // 4
    packed = [[0] * cols for _ in range(blocks)]
    for i in range(4):
        for r in range(blocks):
            source = i * blocks + r
            if source >= out:
                continue
            for c in range(cols):
                packed[r][c] |= (rows[source][c] + 1) << (2 * i)
    return packed


def unpack_ternary(packed: list[list[int]], out: int) -> list[list[int]]:
    """The inverse of :func:`pack_ternary`: ``[ceil(out / 4), in]`` bytes -> ``[out, in]`` in {-1, 0, 1}."""
    raise NotImplementedError("BN-2: unpack the Hugging Face 2-bit layout")
''',
    "tests/__init__.py": "",
    "tests/test_quant.py": '''import unittest

from bitnet_lite.quant import EPS, absmax_int8, absmean_scale, ternarize


class TernaryWeights(unittest.TestCase):
    def test_ternary_values_and_scale(self) -> None:
        q, beta = ternarize([[0.5, -1.5, 0.1], [2.0, 0.0, -0.2]])
        assert abs(beta - 0.7166666) < 1e-6
        assert q == [[1, -1, 0], [1, 0, 0]]

    def test_all_zero_weight(self) -> None:
        q, beta = ternarize([[0.0, 0.0], [0.0, 0.0]])
        assert beta == EPS
        assert q == [[0, 0], [0, 0]]
        assert absmean_scale([[0.0]]) == EPS


class Int8Activations(unittest.TestCase):
    def test_int8_activations(self) -> None:
        xq, scale = absmax_int8([0.5, -1.0, 0.25])
        assert scale == 127.0
        assert xq == [64, -127, 32]
''',
    "tests/test_packing.py": '''import unittest

from bitnet_lite.packing import pack_ternary, unpack_ternary


class PackedLayout(unittest.TestCase):
    def test_known_byte(self) -> None:
        # out = 4, R = 1: row i sits in bits [2i, 2i+1] of the one packed row
        assert pack_ternary([[1], [0], [-1], [1]]) == [[2 | 1 << 2 | 0 << 4 | 2 << 6]]

    def test_round_trip_with_partial_block(self) -> None:
        rows = [[1, 0, -1], [0, 0, 1], [-1, 1, 1], [1, -1, 0], [0, 1, 0], [-1, -1, -1]]
        packed = pack_ternary(rows)
        assert len(packed) == 2
        self.assertEqual(unpack_ternary(packed, out=6), rows)
''',
    "demo_agents/scripted_agent.py": '''"""A scripted stand-in for an LLM agent (orchestrator demo): deterministic edits, no network.

argv: TASK_ID PROMPT_FILE WORKTREE. It reads the prompt the orchestrator rendered, applies the edit it
knows for the task, and prints a JSON claim like a coding agent would. The claim is not trusted: the
gates run afterwards decide.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

RECIPES = __RECIPES__


def main() -> int:
    task_id, prompt_file, worktree = sys.argv[1:4]
    prompt = Path(prompt_file).read_text(encoding="utf-8")
    if task_id not in prompt:
        print(f"the prompt does not mention {task_id}", file=sys.stderr)
        return 2
    print(f"read a {len(prompt)}-character prompt for {task_id}")
    path, old, new, claim = RECIPES[task_id]
    target = Path(worktree) / path
    text = target.read_text(encoding="utf-8")
    if old in text:
        target.write_text(text.replace(old, new), encoding="utf-8")
        print(f"edited {path}")
    else:
        print(f"{path}: already edited")
    print(json.dumps({"type": "result", "result": claim, "is_error": False}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
'''.replace("__RECIPES__", repr(RECIPES)),
}

DEMO_GATES = """# The demo repository's gate DAG: each gate is selected by the files a change touches.
# The tests run under {runner_name}.
version: 1
defaults:
  workers: 2
  term_grace: 2
components_file: components.yaml
gates:
  syntax:
    description: every module compiles
    command: [python, -m, compileall, -q, bitnet_lite, tests]
    inputs: ["bitnet_lite/**", "tests/**"]
    timeout: 60
    hooks: [pre-commit, pre-push]
  test-quant:
    description: the quantization tests
    command: [python, -m, {runner}tests/test_quant.py]
    inputs: ["bitnet_lite/quant.py", "tests/test_quant.py"]
    timeout: 120
    hooks: [pre-push]
  test-packing:
    description: the packed-layout tests
    command: [python, -m, {runner}tests/test_packing.py]
    inputs: ["bitnet_lite/packing.py", "tests/test_packing.py"]
    timeout: 120
    hooks: [pre-push]
"""

def demo_gates() -> str:
    """The demo's gates.yaml: the tests run under pytest when it is installed, else unittest (stdlib)."""
    import importlib.util

    if importlib.util.find_spec("pytest") is not None:
        return DEMO_GATES.replace("{runner_name}", "pytest").replace("{runner}", "pytest, -q, -p, no:cacheprovider, ")
    return DEMO_GATES.replace("{runner_name}", "unittest (pytest is not installed)").replace("{runner}", "unittest, ")


SCRIPTED_ARGV = ["python", "demo_agents/scripted_agent.py", "{task_id}", "{prompt_file}", "{worktree}"]


class Step:
    """Runs ``orchestrator`` commands in-process against the demo repository and echoes them."""

    def __init__(self, repo: Path, out: io.TextIOBase | Any) -> None:
        self.repo = repo
        self.out = out

    def say(self, text: str = "") -> None:
        """Print a line of the demo's own narration (paths and argv with their control characters visible)."""
        from bno_foundation.terminal import visible

        print(visible(text), file=self.out, flush=True)

    def cli(self, *argv: str, expect: tuple[int, ...] = (0,)) -> int:
        """``orchestrator --repo REPO ARGV...``; its output goes to the demo's output."""
        from bno_orchestrator.cli import main

        self.say(f"\n$ orchestrator {' '.join(argv)}")
        with _stdout_to(self.out):
            code = main(["--repo", str(self.repo), *argv])
        if code not in expect:
            raise UserError(f"demo step `orchestrator {' '.join(argv)}` exited {code} (expected {expect})")
        return code


@contextlib.contextmanager
def _stdout_to(out: Any) -> Iterator[None]:
    if out is sys.stdout:
        yield
        return
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        yield


def _write_slice(repo: Path) -> None:
    from bno_foundation.atomic import atomic_write

    for rel, text in SLICE.items():
        atomic_write(repo / rel, text)


def _commit(repo: Path, message: str) -> str:
    from bno_orchestrator.dispatch.worktree import commit_all

    sha = commit_all(repo, message)
    assert sha is not None, f"the demo commit {message!r} found nothing to commit"
    return sha


def _use_executor(repo: Path, agents: list[str], kind: str, options: dict[str, Any]) -> list[str]:
    """Give ``agents`` (files in the demo repo) the executor ``kind`` with ``options``; returns the files changed."""
    from bno_foundation.atomic import atomic_write
    from bno_orchestrator.agents import ExecutorSpec, dump_agent, load_agent

    changed = []
    for name in sorted(set(agents)):
        path = repo / "agents" / f"{name}.md"
        spec = load_agent(path)
        spec = spec.model_copy(update={"executor": ExecutorSpec(kind=kind, options=options)})  # type: ignore[arg-type]
        atomic_write(path, dump_agent(spec))
        changed.append(f"agents/{name}.md")
    return changed


def _prepare_dir(directory: Path | None) -> tuple[Path, bool]:
    if directory is None:
        return Path(tempfile.mkdtemp(prefix="orchestrator-demo-")).resolve(), True
    directory = directory.resolve()
    if directory.exists() and any(directory.iterdir()):
        raise UserError(f"{directory} is not empty: the demo builds a new repository (give an empty or new --dir)")
    directory.mkdir(parents=True, exist_ok=True)
    return directory, False


def _demo_pipeline(repo: Path) -> None:
    """The demo's testing state runs the affected gates, not ``all``: the slice's main line carries BN-2's
    failing test on purpose, and ``all`` would (rightly) keep anything from landing on a red main line."""
    path = repo / "workflows" / "development.yaml"
    text = path.read_text(encoding="utf-8")
    shipped = "    gates: [all]"
    if text.count(shipped) != 1:
        raise UserError(f"{path}: the demo expected one `gates: [all]` (the testing state) to adapt")
    path.write_text(text.replace(shipped, "    gates: [affected]  # the demo: main is red on purpose (BN-2)"),
                    encoding="utf-8")


def expected_events(events: list[Any]) -> dict[str, bool]:
    """Which of the demo's milestones the event log holds."""
    from bno_orchestrator.models import TaskStatus

    def has(kind: str, task: str | None = None, **payload: Any) -> bool:
        """Whether an event of ``kind`` (for ``task``, with these payload values) is in the log."""
        return any(e.kind == kind and (task is None or e.task_id == task)
                   and all(e.payload.get(k) == v for k, v in payload.items()) for e in events)

    return {
        "routed": has(EventKind.TASK_ROUTED, PASSING_TASK) and has(EventKind.TASK_ROUTED, FAILING_TASK),
        "dispatched": has(EventKind.DISPATCH_STARTED, PASSING_TASK) and has(EventKind.DISPATCH_STARTED, FAILING_TASK),
        "verified_passed": has(EventKind.GATES_VERIFIED, PASSING_TASK, passed=True),
        "verified_failed": has(EventKind.GATES_VERIFIED, FAILING_TASK, passed=False),
        "escalated": has(EventKind.TASK_ESCALATED, FAILING_TASK),
        "moved_to_review": has(EventKind.TASK_MOVED, PASSING_TASK, to=TaskStatus.REVIEW.value),
        "landed": has(EventKind.TASK_LANDED, PASSING_TASK, target="main"),
        "done": has(EventKind.TASK_MOVED, PASSING_TASK, to=TaskStatus.DONE.value),
    }


def run_demo(directory: Path | None = None, *, keep: bool = False, quiet: bool = False,
             agent: str | None = None) -> dict[str, Any]:
    """Run the demo sprint; returns a summary (``ok``, the repository, the milestones, event counts).

    ``quiet`` sends the commands' output to a buffer instead of stdout (``demo --json``). ``agent`` (claude,
    codex or gemini) runs the sprint through that real CLI against a scripted model on 127.0.0.1
    (:mod:`bno_orchestrator.demo_live`) instead of the scripted shell agent.
    """
    started = time.monotonic()
    repo, temporary = _prepare_dir(directory)
    out: Any = io.StringIO() if quiet else sys.stdout
    step = Step(repo, out)
    with contextlib.ExitStack() as stack:
        if not out.isatty() and "COLUMNS" not in os.environ:
            stack.enter_context(_env("COLUMNS", str(DEMO_COLUMNS)))  # readable tables in a log or a pipe
        live = None
        if agent is not None:
            from bno_orchestrator.demo_live import demo_steps, live_agent

            steps = demo_steps(SLICE, RECIPES, [PASSING_TASK, FAILING_TASK, FAILING_TASK])
            live = stack.enter_context(live_agent(agent, steps))
        return _run(step, repo, temporary, keep=keep, started=started, live=live)


@contextlib.contextmanager
def _env(name: str, value: str) -> Iterator[None]:
    old = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old


def _run(step: Step, repo: Path, temporary: bool, *, keep: bool, started: float,
         live: LiveAgent | None = None) -> dict[str, Any]:
    import git

    from bno_orchestrator.config import load_config
    from bno_orchestrator.scoring import rank, score_tasks
    from bno_orchestrator.store import Store

    out = step.out
    try:
        step.say(f"== demo sprint in {repo} (offline: SQLite store, scripted agents, local gates)")
        git.Repo.init(repo, initial_branch="main")
        _write_slice(repo)
        step.cli("init", "--profile", "shipped")
        (repo / "workflows" / "gates.yaml").write_text(demo_gates(), encoding="utf-8")
        _demo_pipeline(repo)
        base = _commit(repo, "demo: BitNet slice, orchestrator config and gates")
        step.say(f"committed the slice as {base[:12]}: tests/test_quant.py::test_all_zero_weight and "
                 "tests/test_packing.py fail on it")
        step.cli("gates", "graph")
        step.cli("import", str(BACKLOG), "--actor", DEMO_ACTOR)
        step.cli("task", "list")
        step.cli("route")
        with Store.open(repo) as store:
            primaries = {t.id: (t.assignees[0] if t.assignees else None) for t in store.tasks()}
        missing = [t for t in (PASSING_TASK, FAILING_TASK) if not primaries.get(t)]
        if missing:
            raise UserError(f"the router left {', '.join(missing)} unassigned; the demo needs them routed")
        scripted = [str(primaries[PASSING_TASK]), str(primaries[FAILING_TASK])]
        if live is None:
            files = _use_executor(repo, scripted, "shell", {"argv": SCRIPTED_ARGV, "timeout": 120})
            _commit(repo, "demo: scripted executors for " + ", ".join(sorted(set(scripted))))
            step.say(f"\n{', '.join(files)}: executor set to `shell` running demo_agents/scripted_agent.py "
                     "(a deterministic stand-in for an LLM agent; it gets BN-2 wrong and claims success)")
        else:
            files = _use_executor(repo, scripted, live.kind, live.options())
            _commit(repo, f"demo: {live.kind} executor for " + ", ".join(sorted(set(scripted))))
            step.say(f"\n{', '.join(files)}: executor set to `{live.kind}` ({live.binary}), the real CLI; its "
                     f"model is scripted on {live.url} (it gets BN-2 wrong and claims success)")
        step.cli("dispatch", PASSING_TASK)
        step.cli("dispatch", FAILING_TASK, expect=(1,))
        step.say("\nBN-2 again: the prompt now carries the failures of the last gate run")
        step.cli("dispatch", FAILING_TASK, expect=(1,))
        step.cli("task", "show", FAILING_TASK)
        step.cli("gates", "history", "--limit", "5")
        step.cli("status")
        with Store.open(repo) as store:
            tasks = store.tasks()
            events = store.events()
            scores = score_tasks(tasks, load_config(repo).scoring, now=store.now())
        top = rank(scores)[0]
        step.cli("task", "explain", top)
        milestones = expected_events(events)
        kinds: dict[str, int] = {}
        for event in events:
            kinds[event.kind] = kinds.get(event.kind, 0) + 1
        ok = all(milestones.values())
        elapsed = time.monotonic() - started
        step.say(f"\n== demo {'finished' if ok else 'INCOMPLETE'} in {elapsed:.1f}s: {len(events)} events; "
                 + ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in milestones.items()))
        kept = keep or not temporary
        if kept:
            step.say(f"the demo repository is kept at {repo} (try: orchestrator --repo {repo} task show {FAILING_TASK})")
        return {"ok": ok, "repo": str(repo), "kept": kept, "milestones": milestones, "event_kinds": kinds,
                "top_task": top, "seconds": round(elapsed, 2),
                "output": out.getvalue() if isinstance(out, io.StringIO) else None}
    finally:
        if temporary and not keep:
            shutil.rmtree(repo, ignore_errors=True)
