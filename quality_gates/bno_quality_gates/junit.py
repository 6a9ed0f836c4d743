"""JUnit XML: read pytest's (counts per component) and write one per gate run (each gate a test case)."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bno_foundation.atomic import atomic_write
from bno_quality_gates.errors import GateError
from bno_quality_gates.results import RunRecord


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


def write_run_junit(run: RunRecord, path: str | Path, logs: dict[str, str] | None = None) -> Path:
    """Write the run as JUnit XML (a test suite; each gate a test case), atomically."""
    logs = logs or {}
    suite = ET.Element(
        "testsuite",
        name=f"quality-gates {run.run_id}",
        tests=str(len(run.results)),
        failures=str(sum(r.status == "failed" for r in run.results)),
        errors=str(sum(r.status == "errored" for r in run.results)),
        skipped=str(sum(r.status in ("skipped", "omitted") for r in run.results)),
        time=f"{run.finished - run.started:.3f}",
    )
    for result in run.results:
        case = ET.SubElement(
            suite, "testcase", classname="quality_gates", name=result.gate, time=f"{result.duration:.3f}"
        )
        message = f"{result.status}: {result.reason}".strip(": ")
        if result.status == "failed":
            ET.SubElement(case, "failure", message=message).text = logs.get(result.gate, "")[-20000:]
        elif result.status == "errored":
            ET.SubElement(case, "error", message=message).text = logs.get(result.gate, "")[-20000:]
        elif result.status in ("skipped", "omitted"):
            ET.SubElement(case, "skipped", message=message)
        props = ET.SubElement(case, "properties")
        ET.SubElement(props, "property", name="status", value=result.status)
        ET.SubElement(props, "property", name="required", value=str(result.required).lower())
        if result.key:
            ET.SubElement(props, "property", name="cache_key", value=result.key)
    root = ET.Element("testsuites")
    root.append(suite)
    ET.indent(root)
    return atomic_write(Path(path), ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n")

