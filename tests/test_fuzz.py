"""Fuzzing the loaders of untrusted files: every generated input loads or is refused with the project's
user error (file, line, field); nothing else may escape (no traceback, exit 3), and nothing may hang.

Four targets: an agent file (front matter + body, loaded and rendered), a gates file, a task import file,
and a model's ``config.json``. Inputs are the shipped files mutated by hypothesis (fragments YAML and JSON
parsers trip on: bad tags, aliases, control characters, unbalanced brackets, huge numbers, NaN, template
delimiters, long names; deleted, duplicated and replaced lines), so most cases are nearly valid and reach
the validators, not only the parser.

Every CI run does a bounded smoke (``BNO_FUZZ_EXAMPLES``, default 150 per target); the full run is opt-in:
``BNO_FUZZ_EXAMPLES=10000 .venv/bin/python -m pytest -q tests/test_fuzz.py -s`` (see README). The slowest
case of each target is printed (a hang is caught by the per-test timeout, never by a timing assertion).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import hypothesis
import hypothesis.strategies as st
import pytest

from bno_foundation.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = int(os.environ.get("BNO_FUZZ_EXAMPLES", "150"))
SETTINGS = hypothesis.settings(max_examples=EXAMPLES, deadline=None, derandomize=EXAMPLES <= 1000,
                               suppress_health_check=list(hypothesis.HealthCheck), database=None)

YAML_FRAGMENTS = [
    "!!timestamp 2026-13-45", "!!int x", "!!float nope", "!!binary @@", "!!python/object:os.system",
    "&a ", "*a", "*undefined", "<<: *a", "? ", "\x07", "\x00", "\x1b[31m", "\t", "\ufeff", "\u2028",
    "{", "}", "[", "]", ": ", "- ", "'", '"', "\n", "---\n", "...\n", "%YAML 1.1\n", "|", ">", "#",
    "{{ x }}", "{% endraw %}", "{%", "x" * 300, "1e9", "-1", ".inf", ".nan", "NaN", "true", "null", "~",
    "2026-13-45", "0x1F", "1_000", "[*a, *a, *a]", "a: &a [b, *a]", "\\u0000",
]
JSON_VALUES = [None, True, False, 0, -1, 1, 3, 7, 2**31, 2**63, 10**30, 1e9, -1.5, 0.0, "1e9", "", "x" * 300,
               [], [1, 2], {}, {"a": {"b": [1]}}, float("nan"), float("inf")]


def mutated(seed: str) -> st.SearchStrategy[str]:
    """``seed`` with one to four edits: a fragment inserted, a span deleted, a line duplicated or replaced."""

    def apply(text: str, edits: list[tuple[int, int, int, str]]) -> str:
        for kind, at, span, fragment in edits:
            at = at % (len(text) + 1)
            lines = text.splitlines(keepends=True) or [""]
            if kind == 0:
                text = text[:at] + fragment + text[at:]
            elif kind == 1:
                text = text[:at] + text[at + span % 40:]
            elif kind == 2:
                index = at % len(lines)
                text = "".join(lines[: index + 1] + lines[index:])
            else:
                index = at % len(lines)
                key = lines[index].split(":", 1)[0]
                text = "".join([*lines[:index], f"{key}: {fragment}\n", *lines[index + 1:]])
        return text

    edit = st.tuples(st.integers(0, 3), st.integers(0, 10**6), st.integers(1, 200),
                     st.sampled_from(YAML_FRAGMENTS) | st.text(max_size=20))
    return st.lists(edit, min_size=1, max_size=4).map(lambda edits: apply(seed, edits))


class Tally:
    """How many cases a target ran, and its slowest one (printed, never asserted)."""

    def __init__(self, name: str) -> None:
        self.name, self.cases, self.refused, self.slowest = name, 0, 0, 0.0

    def run(self, load: Callable[[], object]) -> None:
        started = time.perf_counter()
        try:
            load()
        except UserError:
            self.refused += 1
        finally:
            self.cases += 1
            self.slowest = max(self.slowest, time.perf_counter() - started)

    def report(self) -> None:
        print(f"\nfuzz {self.name}: {self.cases} cases, {self.refused} refused with a user error, 0 crashes, "
              f"slowest case {self.slowest * 1000:.0f} ms")


@pytest.mark.timeout(1800)
def test_agent_files(tmp_path: Path) -> None:
    from bno_orchestrator.agents.loader import load_agent
    from bno_orchestrator.agents.render import render_body, sample_task

    seed = (ROOT / "agents" / "architect.md").read_text(encoding="utf-8")
    tally = Tally("agent file")

    @SETTINGS
    @hypothesis.given(mutated(seed))
    def case(text: str) -> None:
        path = tmp_path / "architect.md"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")

        def load() -> None:
            spec = load_agent(path)
            render_body(spec, sample_task(spec), path=path)

        tally.run(load)

    case()
    tally.report()
    assert tally.cases >= EXAMPLES // 2


@pytest.mark.timeout(1800)
def test_gates_files() -> None:
    from bno_quality_gates.spec import parse_gates

    seed = (ROOT / "workflows" / "gates.yaml").read_text(encoding="utf-8")
    tally = Tally("gates file")

    @SETTINGS
    @hypothesis.given(mutated(seed))
    def case(text: str) -> None:
        tally.run(lambda: parse_gates(text, "gates.yaml"))

    case()
    tally.report()
    assert tally.cases >= EXAMPLES // 2


@pytest.mark.timeout(1800)
def test_task_import_files(tmp_path: Path) -> None:
    from bno_orchestrator.store import Store
    from bno_orchestrator.workflow import create_task
    from bno_orchestrator.yamlexport import dump_export, import_tasks
    from tests.orchestrator.core_fixtures import FakeClock, shipped_workflow

    workflow = shipped_workflow()
    store = Store(tmp_path / "state.db", clock=FakeClock())
    create_task(store, {"title": "design", "type": "architecture", "labels": ["api"]}, actor="human:a")
    create_task(store, {"title": "build", "depends_on": ["T-0001"], "complexity": "high"}, actor="human:a")
    tasks, _ = store.snapshot()
    seed = dump_export(tasks)
    tally = Tally("task import")

    @SETTINGS
    @hypothesis.given(mutated(seed))
    def case(text: str) -> None:
        path = tmp_path / "tasks.yaml"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        tally.run(lambda: import_tasks(store, workflow, path, actor="human:a", dry_run=True,
                                       known_agents={"architect", "builder"}))

    try:
        case()
    finally:
        store.close()
    tally.report()
    assert tally.cases >= EXAMPLES // 2


@pytest.mark.timeout(1800)
def test_model_configs(tmp_path: Path) -> None:
    from bno_bitnet.model import BitNetConfig
    from bno_foundation.jsonfile import read_json_object

    seed = BitNetConfig(vocab_size=120, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                        num_attention_heads=4, num_key_value_heads=2).to_hf_dict()
    keys = sorted(seed)
    tally = Tally("model config")
    edit = st.tuples(st.sampled_from([*keys, "rope_parameters", "extra"]), st.sampled_from(JSON_VALUES))

    @SETTINGS
    @hypothesis.given(st.lists(edit, min_size=1, max_size=4), st.sampled_from(["", "}", "{", "\x00", ",]"]))
    def case(edits: list[tuple[str, object]], tail: str) -> None:
        config = dict(seed)
        for key, value in edits:
            config[key] = value
        path = tmp_path / "config.json"
        path.write_text(json.dumps(config) + tail, encoding="utf-8")

        def load() -> None:
            BitNetConfig.from_hf_dict(read_json_object(path, error=UserError), str(path))

        tally.run(load)

    case()
    tally.report()
    assert tally.cases >= EXAMPLES // 2
