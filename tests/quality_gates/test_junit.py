"""The gate run's junit.xml: valid XML whatever the gates print, valid against Jenkins' junit-10.xsd and the
common JUnit.xsd, read by junitparser, and its failures plus errors non-zero exactly when the run fails."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import xmlschema
from hypothesis import given, settings
from hypothesis import strategies as st
from junitparser import Error, Failure, JUnitXml, Skipped

from bno_quality_gates.junit import case_verdict, run_junit_xml, write_run_junit, xml_safe
from bno_quality_gates.results import GateResult, RunRecord, SkipCause
from bno_quality_gates.runner import Runner, RunOptions
from bno_quality_gates.spec import load_gates
from bno_quality_gates.status import GateStatus
from tests.quality_gates.conftest import pyc, write_gates

DATA = Path(__file__).parent / "data" / "junit"
HOSTILE = (
    "\x1b[31;1mred\x1b[0m NUL\x00 ESC\x1b VT\x0b FF\x0c BEL\x07 DEL\x7f C1\x85\x9b "
    "lone\ud800surrogate\udfff ]]> <tag attr=\"q\"> & \x1b]8;;https://example.org\x07link\x1b]8;;\x07 "
    "\ufffe\uffff tab\tnewline\ncarriage\rend é 🙂"
)


@pytest.fixture(scope="module")
def schemas() -> dict[str, xmlschema.XMLSchema]:
    """Jenkins' junit-10.xsd (xUnit plugin) and the common windyroad JUnit.xsd."""
    return {name: xmlschema.XMLSchema(str(DATA / name)) for name in ("junit-10.xsd", "JUnit.xsd")}


def result(gate: str, status: str, *, required: bool = True, reason: str = HOSTILE,
           cause: SkipCause | None = None) -> GateResult:
    return GateResult(gate=gate, status=GateStatus(status), required=required, reason=reason, duration=0.25, attempts=1,
                      key="k" + gate, exit_code=1 if status == "failed" else None, skip_cause=cause,
                      counts={"passed": 3, "failed": 1}, metrics={"note": HOSTILE, "ratio": 1.5})


def record(results: list[GateResult], overridden: tuple[str, ...] = ()) -> RunRecord:
    return RunRecord(run_id="20261204T000000-abcdef", started=1_800_000_000.0, finished=1_800_000_012.5,
                     mode="all", hook=None, base="main", head="abc", machine=HOSTILE, results=results,
                     overridden=list(overridden), skip_requested=list(overridden))


# (runs, the elements of their test cases in order: failure / error / skipped / None for a pass)
RUNS: dict[str, tuple[RunRecord, list[str | None]]] = {
    "all passed": (record([result("a", "passed"), result("b", "cached")]), [None, None]),
    "required failed": (record([result("a", "failed")]), ["failure"]),
    "required errored": (record([result("a", "errored")]), ["error"]),
    "required omitted": (record([result("a", "failed"), result("b", "omitted")]), ["failure", "failure"]),
    "required skipped for want of a GPU": (
        record([result("a", "skipped", cause=SkipCause.RESOURCES)]), ["failure"]),
    "legacy skip without a cause": (record([result("a", "skipped")]), ["failure"]),
    "condition false": (record([result("a", "passed"), result("b", "skipped", cause=SkipCause.CONDITION)]),
                        [None, "skipped"]),
    "skipped on request": (
        record([result("a", "skipped", cause=SkipCause.REQUESTED)], overridden=("a",)), ["skipped"]),
    "optional failures": (record([result("a", "passed"), result("b", "failed", required=False),
                                  result("c", "errored", required=False), result("d", "omitted", required=False)]),
                          [None, "skipped", "skipped", "skipped"]),
}


@pytest.mark.parametrize("name", list(RUNS))
def test_report_is_valid_and_its_totals_give_the_exit_code(
    name: str, schemas: dict[str, xmlschema.XMLSchema], tmp_path: Path
) -> None:
    run, expected = RUNS[name]
    logs = {r.gate: f"output of {r.gate}: {HOSTILE}" for r in run.results}
    path = write_run_junit(run, tmp_path / "junit.xml", logs)
    text = path.read_text(encoding="utf-8")
    for schema_name, schema in schemas.items():
        errors = [str(e) for e in schema.iter_errors(text)]
        assert errors == [], f"{name}: invalid against {schema_name}: {errors[:1]}"
    root = ET.fromstring(text.encode("utf-8"))
    assert root.tag == "testsuites" and not root.attrib
    assert not root.findall(".//testcase/properties"), "Jenkins' xUnit drops <properties> inside <testcase>"
    elements = []
    for case in root.iter("testcase"):
        children = [child.tag for child in case]
        assert len(children) <= 1, children
        elements.append(children[0] if children else None)
    assert elements == expected
    suite = next(iter(JUnitXml.fromfile(str(path))))
    assert suite.tests == len(run.results)
    kinds = [type(case.result[0]) if case.result else None for case in suite]
    assert kinds == [{"failure": Failure, "error": Error, "skipped": Skipped, None: None}[e] for e in expected]
    assert (suite.failures + suite.errors > 0) == (run.exit_code == 1), (name, suite.failures, suite.errors)
    assert suite.skipped == expected.count("skipped")
    for bad in ("\x1b", "\x00", "\x0b", "\ud800", "\x7f", "\uffff"):
        assert bad not in text
    assert "\\x00" in text and "\\x0b" in text and "\\ud800" in text, "control characters are made visible"
    assert "[31;1m" not in text, "ANSI colour sequences are removed"


def test_required_gates_that_did_not_run_say_why() -> None:
    omitted = case_verdict(result("test", "omitted", reason="upstream build failed"))
    assert (omitted.element, omitted.type) == ("failure", "required-gate-omitted")
    assert "upstream build failed" in omitted.message and "fails the run" in omitted.message
    gpu = case_verdict(result("perf", "skipped", reason="needs 1 GPU(s)", cause=SkipCause.RESOURCES))
    assert gpu.element == "failure" and "needs 1 GPU" in gpu.message
    wanted = case_verdict(result("diag", "skipped", reason="runs only when build fails; it passed",
                                 cause=SkipCause.CONDITION))
    assert wanted.element == "skipped" and "runs only when build fails" in wanted.message
    optional = case_verdict(result("lint", "failed", required=False, reason="exit code 1"))
    assert optional.element == "skipped" and optional.message.startswith("optional gate failed: exit code 1")


def test_metrics_go_to_suite_properties() -> None:
    run = record([result("perf", "passed")])
    root = ET.fromstring(run_junit_xml(run, hostname="ci-box").encode("utf-8"))
    suite = root.find("testsuite")
    assert suite is not None and suite.get("hostname") == "ci-box" and suite.get("timestamp") == "2027-01-15T08:00:00"
    props = {p.get("name"): p.get("value") for p in suite.iterfind("properties/property")}
    assert props["gate.perf.status"] == "passed" and props["gate.perf.cache_key"] == "kperf"
    assert props["run.exit_code"] == "0" and props["run.green"] == "true"
    assert '"ratio": 1.5' in (props["gate.perf.metrics"] or "")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=0x10FFFF), max_size=60).map(lambda cs: "".join(map(chr, cs))))
def test_any_text_becomes_parseable_xml(text: str) -> None:
    safe = xml_safe(text)
    element = ET.Element("t", a=safe)
    element.text = safe
    parsed = ET.fromstring(ET.tostring(element, encoding="unicode").encode("utf-8"))
    assert (parsed.text or "") == safe.replace("\r\n", "\n").replace("\r", "\n"), "XML reads CR as LF in text"
    assert parsed.get("a") == safe
    assert not any(0xD800 <= ord(c) <= 0xDFFF for c in safe), "no lone surrogate survives"


def test_a_real_run_with_hostile_output(repo: Path, schemas: dict[str, xmlschema.XMLSchema]) -> None:
    """Gates that print ANSI colour, NUL, ESC, VT and invalid UTF-8, and put ANSI in their reason.

    (Lone surrogates reach the report only through a gate's metrics; the records above carry them.)"""
    noisy = (
        "import sys; out = sys.stdout.buffer; "
        "out.write(b'\\x1b[1;31merror\\x1b[0m \\x00\\x0b\\x1b ]]> \\xff\\xfe bad utf-8\\n'); "
        "out.write(b'GATE-METRICS {\"reason\": \"said \\\\u001b[1mloudly\\\\u001b[0m\"}\\n'); out.flush(); sys.exit(1)"
    )
    write_gates(
        repo,
        f"""
        gates:
          noisy:
            command: {pyc(noisy)}
          after:
            command: [python, -c, pass]
            depends: [noisy.passed]
          on-failure:
            command: [python, -c, "print('diagnosis')"]
            depends: [noisy.failed]
            required: false
        """,
    )
    config = load_gates(repo / "workflows" / "gates.yaml")
    run = Runner(config, RunOptions(repo=repo, use_cache=False, record=False)).run()
    assert {r.gate: r.status for r in run.results} == {"noisy": "failed", "after": "omitted", "on-failure": "passed"}
    assert run.run_dir is not None
    path = Path(run.run_dir) / "junit.xml"
    for schema in schemas.values():
        schema.validate(str(path))
    suite = next(iter(JUnitXml.fromfile(str(path))))
    assert (suite.tests, suite.failures, suite.errors, suite.skipped) == (3, 2, 0, 0)
    assert run.exit_code == 1
    text = path.read_text(encoding="utf-8")
    assert "\x1b" not in text and "\x00" not in text and "\x0b" not in text
    assert "error \\x00\\x0b" in text, "the coloured word lost its colour codes, NUL and VT are visible"
    assert "said loudly" in text, "the reason's colour codes are gone"
    assert "required gate omitted" in text and "upstream noisy failed" in text
