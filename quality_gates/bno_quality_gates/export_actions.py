"""Export the gate DAG as a GitHub Actions workflow whose verdict is the local runner's.

One job per gate, ``needs`` mirroring ``depends``; the job runs ``orchestrator gates run --only GATE
--no-deps`` and publishes the gate's status (passed, failed, errored, skipped, omitted) as the job output
``status``. Dependencies are decided on those outputs, never on ``needs.X.result``: a job's result cannot
tell a failed optional gate from a passed one (the runner exits 0 for both) and ``continue-on-error`` would
report ``success`` for a failure. Each gate job with dependencies runs unless the workflow is cancelled
and decides in ``GATE_DECISION`` (an expression written from :data:`bno_quality_gates.dag.DEPENDENCY_TABLE`,
the table the local runner decides with) whether the gate runs, is skipped (a false condition) or is
omitted (an upstream gate did not give what it needs). A job fails exactly when its gate fails the run
locally: a required gate that failed, errored, was omitted or could not run here. The final
``gates-verdict`` job fails unless every gate job succeeded, so the workflow's conclusion, that one status
check and the local exit code agree (tests/quality_gates/test_export_actions.py simulates both sides).
Actions are pinned to their current majors, all on the node24 runtime.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import yaml

from bno_foundation.atomic import atomic_write
from bno_quality_gates.dag import DEPENDENCY_TABLE, Outcome, build_graph, order, upstream_of
from bno_quality_gates.spec import GatesConfig, GateSpec
from bno_quality_gates.status import Condition, GateStatus

DEFAULT_SETUP = 'python -m pip install --upgrade pip && python -m pip install -e ".[dev]"'
BASE_EXPR = "${{ github.event.pull_request.base.sha || github.event.before || 'HEAD~1' }}"
# current majors of the actions used (all run on node24; v4 and older run on the deprecated node20)
CHECKOUT = "actions/checkout@v7"
SETUP_PYTHON = "actions/setup-python@v7"
UPLOAD_ARTIFACT = "actions/upload-artifact@v7"
SETUP_MINUTES = 15  # added to a gate's own time budget for its job's timeout-minutes: checkout and install
VERDICT_JOB = "gates-verdict"
RUNS_DIR = ".orchestrator/gates/runs"
RUN = "run"  # the value of GATE_DECISION when the gate runs
LINE_WIDTH = 100_000  # keep each expression on one line (PyYAML would fold long ones)

_READ_STATUS = f"""python - <<'PY' >> "$GITHUB_OUTPUT"
import glob, json
records = sorted(glob.glob("{RUNS_DIR}/*/run.json"))
results = json.load(open(records[-1], encoding="utf-8"))["results"] if records else []
print("status=" + (results[0]["status"] if results else "errored"))
PY"""


def job_id(gate: str) -> str:
    """A GitHub job id for a gate name."""
    return "gate-" + gate.replace("_", "-")


def _status_of(gate: str) -> str:
    return f"needs.{job_id(gate)}.outputs.status"


def _any_status(gate: str, statuses: list[GateStatus]) -> str:
    return " || ".join(f"{_status_of(gate)} == '{status}'" for status in statuses)


def decision_expression(ups: list[tuple[str, str]]) -> str | None:
    """The GitHub expression giving ``run``, ``skipped`` or ``omitted`` for a gate with dependencies ``ups``.

    Written from :data:`DEPENDENCY_TABLE` the way :func:`bno_quality_gates.dag.decide` reads it: any false
    condition skips, else any unmet one omits. None when the gate always runs (only ``.always``).
    """
    skip_terms, run_terms = [], []
    for gate, condition in ups:
        table = DEPENDENCY_TABLE[Condition(condition)]
        skipping = [s for s, outcome in table.items() if outcome == Outcome.SKIP]
        running = [s for s, outcome in table.items() if outcome == Outcome.RUN]
        if skipping:
            skip_terms.append(f"({_any_status(gate, skipping)})")
        if len(running) < len(table):
            run_terms.append(f"({_any_status(gate, running)})")
    if not skip_terms and not run_terms:
        return None
    runs = f"{' && '.join(run_terms)} && '{RUN}' || '{GateStatus.OMITTED}'" if run_terms else f"'{RUN}'"
    if skip_terms:
        return "${{ (" + " || ".join(skip_terms) + f") && '{GateStatus.SKIPPED}' || ({runs}) }}}}"
    return "${{ " + runs + " }}"


def _timeout_minutes(spec: GateSpec) -> int:
    """The job's limit: the gate's own budget (its timeout for each attempt) plus checkout and install."""
    return max(1, math.ceil(spec.timeout * (1 + spec.retries) / 60)) + SETUP_MINUTES


def _gate_steps(name: str, spec: GateSpec, python: str, setup: str, decided: bool) -> list[dict[str, Any]]:
    when = f"env.GATE_DECISION == '{RUN}'"
    runs = "\n".join([
        "code=0",
        f'orchestrator gates run --only {name} --no-deps --base "$GATE_BASE" || code=$?',
        _READ_STATUS,
        'exit "$code"',
    ])
    steps: list[dict[str, Any]] = [
        {"name": "check out", "uses": CHECKOUT, "with": {"fetch-depth": 0, "persist-credentials": False}},
        {"name": "set up Python", "uses": SETUP_PYTHON, "with": {"python-version": python}},
        {"name": "install", "run": setup},
        {"id": "gate", "name": f"run gate {name}", "run": runs},
        {
            "name": "upload the run record",
            "if": "${{ !cancelled() }}",
            "uses": UPLOAD_ARTIFACT,
            "with": {"name": f"gate-{name}-record", "path": f"{RUNS_DIR}/", "if-no-files-found": "ignore"},
        },
    ]
    if not decided:
        return steps
    steps = [_with_if(step, "${{ " + when + " }}") for step in steps[:4]] + [
        _with_if(steps[4], "${{ !cancelled() && " + when + " }}")
    ]
    not_run = [
        'echo "status=$GATE_DECISION" >> "$GITHUB_OUTPUT"',
        f'echo "gate {name} $GATE_DECISION (upstream: $GATE_UPSTREAM)"',
    ]
    if spec.required:
        not_run.append(
            f'if [ "$GATE_DECISION" = {GateStatus.OMITTED} ]; then\n'
            f'  echo "::error title=gate {name}::required gate {name} did not run (upstream: $GATE_UPSTREAM)"\n'
            "  exit 1\nfi"
        )
    steps.insert(4, {"id": "skip", "name": f"gate {name} not run", "if": "${{ env.GATE_DECISION != '" + RUN + "' }}",
                     "run": "\n".join(not_run)})
    return steps


def _with_if(step: dict[str, Any], condition: str) -> dict[str, Any]:
    """``step`` with ``if`` right after its id and name (where a reader looks for it)."""
    head: dict[str, Any] = {k: step[k] for k in ("id", "name") if k in step}
    return {**head, "if": condition, **{k: v for k, v in step.items() if k not in head and k != "if"}}


def workflow(
    config: GatesConfig,
    *,
    python: str = "3.11",
    setup: str = DEFAULT_SETUP,
    gpu_labels: tuple[str, ...] = ("self-hosted", "gpu"),
    runner: str = "ubuntu-latest",
    branches: tuple[str, ...] = ("main",),
) -> dict[str, Any]:
    """The workflow as plain data (dump it with :func:`dump`)."""
    graph = build_graph(config)
    jobs: dict[str, Any] = {}
    for name in order(graph):
        spec = config.gates[name]
        ups = upstream_of(graph, name)
        decision = decision_expression(ups)
        job: dict[str, Any] = {"name": f"gate: {name}"}
        env: dict[str, str] = {"SKIP": "", **spec.env, "GATE_BASE": BASE_EXPR}
        if ups:
            job["needs"] = [job_id(u) for u, _ in ups]
            job["if"] = "${{ !cancelled() }}"  # a failed upstream job must not skip this one: it decides itself
            env["GATE_UPSTREAM"] = " ".join(f"{u}=${{{{ {_status_of(u)} }}}}" for u, _ in ups)
        if decision:
            env["GATE_DECISION"] = decision
        job["runs-on"] = list(gpu_labels) if spec.resources.gpu else runner
        job["timeout-minutes"] = _timeout_minutes(spec)
        sources = ["steps.gate.outputs.status", *(["steps.skip.outputs.status"] if decision else [])]
        # no status at all: the job broke before the gate reported (checkout or install failed)
        job["outputs"] = {"status": "${{ " + " || ".join([*sources, f"'{GateStatus.ERRORED}'"]) + " }}"}
        job["env"] = env
        job["steps"] = _gate_steps(name, spec, python, setup, decision is not None)
        jobs[job_id(name)] = job
    gate_jobs = [job_id(n) for n in order(graph)]
    results = "\n".join(f"{j}=${{{{ needs.{j}.result }}}}/${{{{ needs.{j}.outputs.status }}}}" for j in gate_jobs)
    jobs[VERDICT_JOB] = {
        "name": "gates verdict",
        "needs": gate_jobs,
        "if": "${{ !cancelled() }}",
        "runs-on": runner,
        "env": {"GATE_RESULTS": results},
        "steps": [
            {
                "name": "every gate job succeeded (a job fails only when its gate fails the run)",
                "run": "\n".join([
                    "failed=0",
                    "for entry in $GATE_RESULTS; do",
                    '  job="${entry%%=*}"; result="${entry#*=}"',
                    '  echo "$job: job ${result%%/*}, gate ${result#*/}"',
                    '  [ "${result%%/*}" = success ] || failed=1',
                    "done",
                    'exit "$failed"',
                ]),
            }
        ],
    }
    return {
        "name": "quality-gates",
        "on": {"push": {"branches": list(branches)}, "pull_request": {}, "workflow_dispatch": {}},
        "permissions": {"contents": "read"},
        "concurrency": {"group": "gates-${{ github.ref }}", "cancel-in-progress": True},
        "defaults": {"run": {"shell": "bash"}},
        "jobs": jobs,
    }


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the scripts) as literal blocks, so the workflow reads like a hand-written one."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)


_Dumper.add_representer(str, _str)


def dump(data: dict[str, Any]) -> str:
    """YAML text with a header."""
    header = "# generated by `orchestrator gates export --github-actions` from workflows/gates.yaml; do not edit\n"
    return header + yaml.dump(data, Dumper=_Dumper, sort_keys=False, width=LINE_WIDTH)


def export(config: GatesConfig, path: Path, **options: Any) -> Path:
    """Write the workflow file atomically; returns its path."""
    return atomic_write(path, dump(workflow(config, **options)))
