"""JUnit XML: read pytest's (counts per component) and write one per gate run (each gate a test case).

The written report is what Jenkins, GitLab and GitHub test reporters read: valid XML 1.0 whatever a gate
printed, valid against Jenkins' junit-10.xsd and the common JUnit.xsd, and its failures plus errors are
non-zero exactly when the run's exit code is 1 (docs/gates-ci.md, "JUnit").
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import re
import socket
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bno_foundation.atomic import atomic_write
from bno_foundation.terminal import escaped
from bno_quality_gates.errors import GateError
from bno_quality_gates.results import GateResult, RunRecord
from bno_quality_gates.status import GateStatus
from bno_quality_gates.summary import verdict_line


@dataclass
class Counts:
    """Test outcome counts."""

    passed: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0
    failures: list[str] = field(default_factory=list)  # ids of failed/errored tests

    @property
    def total(self) -> int:
        """All test cases."""
        return self.passed + self.failed + self.errors + self.skipped

    def as_dict(self) -> dict[str, int]:
        """Plain counts."""
        return {"passed": self.passed, "failed": self.failed, "errors": self.errors, "skipped": self.skipped,
                "total": self.total}


def _case_file(case: ET.Element) -> str:
    """The test file of a pytest test case: the ``file`` attribute, else derived from ``classname``."""
    file_attr = case.get("file")
    if file_attr:
        return file_attr.replace(os.sep, "/")
    classname = case.get("classname", "")
    parts = classname.split(".")
    # pytest: "tests.bitnet.test_quant.TestX" -> tests/bitnet/test_quant.py
    for cut in range(len(parts), 0, -1):
        if parts[cut - 1].startswith("test"):
            return "/".join(parts[:cut]) + ".py"
    return "/".join(parts) + ".py" if classname else ""


def parse_junit(path: str | Path, component_of: Callable[[str], str]) -> tuple[Counts, dict[str, Counts]]:
    """Parse a JUnit XML file: (overall counts, counts per component of the test file)."""
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as exc:
        raise GateError(f"{path}: cannot read JUnit XML: {exc}") from None
    total = Counts()
    per: dict[str, Counts] = {}
    for case in root.iter("testcase"):
        component = component_of(_case_file(case))
        bucket = per.setdefault(component, Counts())
        test_id = f"{case.get('classname', '')}::{case.get('name', '')}"
        if case.find("failure") is not None:
            outcome = "failed"
        elif case.find("error") is not None:
            outcome = "errors"
        elif case.find("skipped") is not None:
            outcome = "skipped"
        else:
            outcome = "passed"
        for counts in (total, bucket):
            setattr(counts, outcome, getattr(counts, outcome) + 1)
            if outcome in ("failed", "errors"):
                counts.failures.append(test_id)
    return total, per


def xml_safe(text: str) -> str:
    """``text`` as valid XML 1.0 character data: ANSI escape sequences removed, other control characters
    (C0 but tab, newline and carriage return; DEL and C1), lone surrogates and U+FFFE/U+FFFF shown as
    ``\\xNN`` / ``\\uNNNN`` text. ElementTree escapes ``&``, ``<``, ``>`` and quotes itself, so ``]]>`` is
    harmless."""
    return _NOT_XML.sub(lambda match: escaped(match.group()), _ANSI.sub("", text))


_ANSI = re.compile(
    r"""
      \x1b\[[0-?]*[ -/]*[@-~]            # CSI: colours, cursor moves, erase
    | \x9b[0-?]*[ -/]*[@-~]              # the same with the one-byte C1 introducer
    | \x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?  # OSC: window titles, hyperlinks (ended by BEL or ST)
    | \x1b[PX^_][^\x1b]*(?:\x1b\\)?       # DCS, SOS, PM and APC strings
    | \x1b[ -/]*[0-~]                     # two- and three-character escapes (charset selection, ESC 7 ...)
    """,
    re.VERBOSE,
)
_NOT_XML = re.compile("[^\t\n\r\x20-\x7e\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
LOG_TAIL_CHARS = 20000  # the end of a gate's output shown in its <failure>, <error> or <skipped> element
SUITE_PACKAGE = "quality_gates"


@dataclass(frozen=True)
class CaseVerdict:
    """How one gate result shows in JUnit: ``element`` is failure, error, skipped, or None for a pass."""

    element: str | None
    type: str = ""
    message: str = ""


def case_verdict(result: GateResult, overridden: Sequence[str] = ()) -> CaseVerdict:
    """The JUnit element for a gate result; failures plus errors are non-zero exactly when the run fails.

    A pass (or a replayed pass) is a plain test case. A required gate that failed is a ``<failure>``, one
    that could not run an ``<error>``, and one omitted (an upstream gate failed) or skipped for want of a
    resource a ``<failure>`` saying why. ``<skipped>``: a gate whose condition was false, a required gate
    skipped on request ($SKIP: the run exits 0, not green), and an optional gate that did not pass (it
    cannot fail the run, so it must not fail the report either; the message says what happened).
    """
    status = GateStatus(result.status)
    why = f": {result.reason}" if result.reason else ""
    if result.ok:
        return CaseVerdict(None)
    if result.not_wanted:
        return CaseVerdict("skipped", "condition-false", f"not wanted in this run{why}")
    if not result.required:
        return CaseVerdict("skipped", f"optional-{status}", f"optional gate {status}{why} (it does not fail the run)")
    if result.gate in overridden:
        return CaseVerdict("skipped", "skipped-on-request",
                           f"required gate skipped on request ($SKIP){why}; the run exits 0 but is not green")
    if status == GateStatus.ERRORED:
        return CaseVerdict("error", "gate-errored", f"errored, the gate could not run{why}")
    if status == GateStatus.FAILED:
        return CaseVerdict("failure", "gate-failed", f"failed{why}")
    return CaseVerdict("failure", f"required-gate-{status}",
                       f"required gate {status}, it did not run{why}; a required gate that does not run fails the run")


def _seconds(value: float) -> str:
    """A duration both schemas accept: non-negative, fixed point, three decimals."""
    return f"{value:.3f}" if math.isfinite(value) and value > 0 else "0.000"


def _tail(text: str) -> str:
    if len(text) <= LOG_TAIL_CHARS:
        return xml_safe(text)
    return f"[... {len(text) - LOG_TAIL_CHARS} characters cut ...]\n" + xml_safe(text[-LOG_TAIL_CHARS:])


def _clean(value: Any) -> Any:
    """``value`` with :func:`xml_safe` applied to every string in it (keys too)."""
    if isinstance(value, str):
        return xml_safe(value)
    if isinstance(value, dict):
        return {xml_safe(str(k)): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def _json(value: Any) -> str:
    """Compact JSON of a gate's counts or metrics, its strings cleaned before they are quoted."""
    return json.dumps(_clean(value), sort_keys=True, default=str, ensure_ascii=False)


def _properties(run: RunRecord) -> list[tuple[str, str]]:
    """Run facts and each gate's record (status, key, counts, metrics) as suite-level properties."""
    props: list[tuple[str, str]] = [
        ("run.id", run.run_id), ("run.mode", run.mode), ("run.hook", run.hook or ""), ("run.base", run.base or ""),
        ("run.head", run.head or ""), ("run.machine", run.machine), ("run.exit_code", str(run.exit_code)),
        ("run.green", str(run.passed).lower()), ("run.overridden", ",".join(run.overridden)),
    ]
    for result in run.results:
        prefix = f"gate.{result.gate}."
        props += [(prefix + "status", str(result.status)), (prefix + "required", str(result.required).lower()),
                  (prefix + "attempts", str(result.attempts))]
        optional = {
            "reason": result.reason, "skip_cause": str(result.skip_cause or ""), "cache_key": result.key or "",
            "cached_from": result.cached_from or "",
            "exit_code": "" if result.exit_code is None else str(result.exit_code),
            "counts": _json(result.counts) if result.counts else "",
            "metrics": _json(result.metrics) if result.metrics else "",
        }
        props += [(prefix + key, value) for key, value in optional.items() if value]
    return props


def run_junit_xml(run: RunRecord, logs: Mapping[str, str] | None = None, *, hostname: str | None = None) -> str:
    """The run as JUnit XML text: one ``<testsuite>``, each gate a ``<testcase>``.

    Valid XML 1.0 whatever the gates printed (:func:`xml_safe` on every text and attribute), and valid
    against both Jenkins' junit-10.xsd and the common (windyroad) JUnit.xsd: metrics live in suite-level
    ``<properties>``, never inside a test case (tests/quality_gates/data/junit/SOURCES.md).
    """
    logs = logs or {}
    verdicts = [case_verdict(r, run.overridden) for r in run.results]
    stamp = _dt.datetime.fromtimestamp(run.started, _dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    suite = ET.Element("testsuite", {
        "name": xml_safe(f"quality-gates run {run.run_id}"),
        "tests": str(len(run.results)),
        "failures": str(sum(v.element == "failure" for v in verdicts)),
        "errors": str(sum(v.element == "error" for v in verdicts)),
        "skipped": str(sum(v.element == "skipped" for v in verdicts)),
        "time": _seconds(run.finished - run.started),
        "timestamp": stamp,
        "hostname": xml_safe(hostname or socket.gethostname() or "localhost"),
        "id": "0",
        "package": SUITE_PACKAGE,
    })
    properties = ET.SubElement(suite, "properties")
    for name, value in _properties(run):
        ET.SubElement(properties, "property", name=xml_safe(name), value=xml_safe(value))
    for result, verdict in zip(run.results, verdicts, strict=True):
        case = ET.SubElement(suite, "testcase", name=xml_safe(result.gate), classname=SUITE_PACKAGE,
                             time=_seconds(result.duration))
        if verdict.element is not None:
            attributes = {"message": xml_safe(verdict.message)}
            if verdict.element != "skipped":
                attributes["type"] = verdict.type
            ET.SubElement(case, verdict.element, attributes).text = _tail(logs.get(result.gate, ""))
    lines = [verdict_line(run)]
    lines += [f"{r.gate}: {r.status}" + (f" ({r.reason})" if r.reason else "") for r in run.results]
    ET.SubElement(suite, "system-out").text = xml_safe("\n".join(lines) + "\n")
    ET.SubElement(suite, "system-err").text = ""
    root = ET.Element("testsuites")
    root.append(suite)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def write_run_junit(run: RunRecord, path: str | Path, logs: Mapping[str, str] | None = None) -> Path:
    """Write the run as JUnit XML (:func:`run_junit_xml`), atomically; returns the path."""
    return atomic_write(Path(path), run_junit_xml(run, logs))
