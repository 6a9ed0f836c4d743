"""The test gate: pytest with JUnit XML and coverage; counts and coverage per component; diff coverage.

* pytest runs with ``--junitxml`` and pytest-cov (``relative_files``, so paths are repository-relative).
* The JUnit XML is parsed into passed/failed/errors/skipped per component: a test file maps to the component
  of the source it mirrors (``tests/bitnet/test_quant.py`` -> ``bitnet/quant.py`` -> ``bitnet-quant``), or of
  its package directory, else ``tests``; ``test_map`` in the params overrides (glob -> component).
* Line coverage per component from coverage.xml.
* Diff coverage: the added/changed lines of the change (``git diff -U0``: the staged diff in a pre-commit
  run, else against ``--base``, else against HEAD) that coverage measures must be covered at least
  ``diff_coverage_min``: "new features must include tests".

``python -m bno_quality_gates.gates.test [--base REF] [--diff-coverage-min 0.8] [--paths tests] [-- PYTEST ARGS]``
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from bno_foundation import trusted_launch
from bno_foundation.gate_program import (
    GateProgramError,
    components_file,
    finish,
    main_guard,
    out_dir,
    repo,
    say,
    setting,
    workdir,
)
from bno_quality_gates.affected import components_of, load_components, matches
from bno_quality_gates.junit import parse_junit

_HUNK = re.compile(r"^@@ -\d+(?:,\d+)? \+(\d+)(?:,(\d+))? @@")


def component_of_test(test_file: str, components: dict[str, list[str]], test_map: dict[str, str]) -> str:
    """The component a test file exercises (see the module docstring)."""
    for glob, component in test_map.items():
        if matches(test_file, [glob]):
            return component
    parts = Path(test_file).parts
    if len(parts) >= 2 and parts[0] == "tests":
        inner = list(parts[1:])
        stem = inner[-1].removeprefix("test_")
        candidates = ["/".join([*inner[:-1], stem])]
        # tests/bitnet/test_quant_extra.py -> bitnet/quant.py
        pieces = stem.removesuffix(".py").split("_")
        for cut in range(len(pieces) - 1, 0, -1):
            candidates.append("/".join([*inner[:-1], "_".join(pieces[:cut]) + ".py"]))
        for candidate in candidates:
            found = [c for c in components_of(candidate, components) if c not in ("tests", "architecture")]
            if found:
                return found[0]
        if len(inner) >= 2:
            found = [
                c for c in components_of("/".join([*inner[:-1], "__init__.py"]), components)
                if c not in ("tests", "architecture")
            ]
            if found:
                return found[0]
            package_dir = "/".join(inner[:-1]) + "/"
            for name, globs in components.items():
                if name not in ("tests", "architecture") and any(g.startswith(package_dir) for g in globs):
                    return name
    return "tests"


def coverage_lines(path: Path) -> dict[str, dict[int, int]]:
    """coverage.xml -> {file: {line: hits}} (repository-relative paths)."""
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as exc:
        raise GateProgramError(f"{path}: cannot read coverage XML: {exc}") from None
    out: dict[str, dict[int, int]] = {}
    for cls in root.iter("class"):
        filename = cls.get("filename", "").replace(os.sep, "/")
        lines = out.setdefault(filename, {})
        for line in cls.iter("line"):
            lines[int(line.get("number", "0"))] = int(line.get("hits", "0"))
    return out


def changed_lines(diff_text: str) -> dict[str, set[int]]:
    """Added or changed line numbers (new side) per file from a ``git diff -U0`` text.

    >>> changed_lines("+++ b/a.py\\n@@ -1,0 +2,2 @@\\n+x\\n+y\\n")
    {'a.py': {2, 3}}
    """
    out: dict[str, set[int]] = {}
    current: str | None = None
    for line in diff_text.splitlines():
        if line.startswith("+++ "):
            target = line[4:].strip()
            current = None if target == "/dev/null" else target.removeprefix("b/")
            continue
        match = _HUNK.match(line)
        if match and current is not None:
            start = int(match.group(1))
            count = int(match.group(2)) if match.group(2) is not None else 1
            out.setdefault(current, set()).update(range(start, start + count))
    return out


class MissingBase(Exception):
    """The base ref of the change is not in the local repository."""


def diff_text(git_repo: Path, *, staged: bool, base: str | None, head: str | None = None) -> str:
    """The ``git diff -U0`` of the change under test (``head``: the pushed commit of a pre-push run)."""
    if not staged and base:
        check = subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"{base}^{{commit}}"], cwd=git_repo,
                               capture_output=True, text=True, check=False)
        if check.returncode != 0:
            raise MissingBase(base)
    args = ["git", "diff", "-U0", "--no-color", "--no-ext-diff", "--no-renames"]
    if staged:
        args.append("--cached")
    elif head:
        args += [base or f"{head}~1", head]
    else:
        args.append(base or "HEAD")
    proc = subprocess.run(args, cwd=git_repo, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise GateProgramError(f"{' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout


def untracked_lines(git_repo: Path, root: Path) -> dict[str, set[int]]:
    """Every line of the untracked (not ignored) files: new files are changes too."""
    proc = subprocess.run(
        ["git", "ls-files", "--others", "--exclude-standard", "-z"], cwd=git_repo, capture_output=True, text=True,
        check=False,
    )
    out: dict[str, set[int]] = {}
    for rel in filter(None, proc.stdout.split("\0")):
        path = root / rel
        if rel.endswith(".py") and path.is_file():
            count = len(path.read_text(encoding="utf-8", errors="replace").splitlines())
            out[rel] = set(range(1, count + 1))
    return out


def diff_coverage(changed: dict[str, set[int]], covered: dict[str, dict[int, int]]) -> dict[str, Any]:
    """Covered / measurable changed lines, and the uncovered ones."""
    measurable = 0
    hit = 0
    uncovered: dict[str, list[int]] = {}
    for file, lines in changed.items():
        measured = covered.get(file)
        if measured is None:
            continue
        for number in sorted(lines):
            if number in measured:
                measurable += 1
                if measured[number] > 0:
                    hit += 1
                else:
                    uncovered.setdefault(file, []).append(number)
    return {
        "lines": measurable,
        "covered": hit,
        "ratio": (hit / measurable) if measurable else None,
        "uncovered": uncovered,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the test gate."""
    raw = sys.argv[1:] if argv is None else argv
    extra: list[str] = []
    if "--" in raw:
        cut = raw.index("--")
        raw, extra = raw[:cut], raw[cut + 1 :]
    parser = argparse.ArgumentParser(description="pytest, coverage per component and diff coverage")
    parser.add_argument("--base", default=None)
    parser.add_argument("--diff-coverage-min", dest="diff_coverage_min", type=float, default=None)
    parser.add_argument("--paths", nargs="+", default=None)
    parser.add_argument("--sources", nargs="+", default=None)
    args = parser.parse_args(raw)
    root = workdir()
    out = out_dir()
    base = args.base or os.environ.get("GATE_BASE") or None
    staged = bool(os.environ.get("GATE_STAGED"))
    minimum = float(setting(args, "diff_coverage_min", 0.8))
    paths: list[str] = setting(args, "paths", ["tests"])
    sources: list[str] = setting(args, "sources", None)
    if not sources:
        raise GateProgramError("no sources to measure: set params.sources (top-level folders) in the gates file")
    pytest_args: list[str] = [*setting(argparse.Namespace(), "pytest_args", []), *extra]
    test_map: dict[str, str] = setting(argparse.Namespace(), "test_map", {})
    components = load_components(components_file())

    junit_path = out / "junit.xml"
    cov_xml = out / "coverage.xml"
    rc_file = out / "coveragerc"
    # measure from the root so that file names are repository-relative ("bitnet/quant.py"), and leave out
    # every top-level entry that is not a measured source
    omit = [f"{p.name}/*" if p.is_dir() else p.name for p in sorted(root.iterdir()) if p.name not in sources]
    rc_file.write_text(
        "[run]\nrelative_files = True\nsource = .\nomit =\n" + "".join(f"    {o}\n" for o in omit)
        + f"data_file = {out / '.coverage'}\n"
    )
    argv_pytest = [  # pytest from the trusted installation; the tree under test stays importable
        *trusted_launch.command(["-m", "pytest"]), *paths, f"--junitxml={junit_path}", "-o", "junit_family=xunit1",
        f"--cov-config={rc_file}", "--cov=.", f"--cov-report=xml:{cov_xml}",
        "--cov-report=", "-p", "no:cacheprovider", "-q", *pytest_args,
    ]
    say("$ " + " ".join(argv_pytest))
    proc = subprocess.run(argv_pytest, cwd=root, check=False)
    if not junit_path.is_file():
        raise GateProgramError(f"pytest wrote no JUnit XML (exit code {proc.returncode})")
    total, per = parse_junit(junit_path, lambda f: component_of_test(f, components, test_map))
    say(f"tests: {total.as_dict()}")
    for component, counts in sorted(per.items()):
        say(f"  {component}: {counts.as_dict()}")

    coverage_per: dict[str, float] = {}
    measured: dict[str, dict[int, int]] = {}
    if cov_xml.is_file():
        measured = coverage_lines(cov_xml)
        sums: dict[str, list[int]] = {}
        for file, lines in measured.items():
            for component in components_of(file, components) or ["unassigned"]:
                bucket = sums.setdefault(component, [0, 0])
                bucket[0] += sum(1 for hits in lines.values() if hits > 0)
                bucket[1] += len(lines)
        coverage_per = {c: round(h / n, 4) for c, (h, n) in sorted(sums.items()) if n}
        for component, ratio in coverage_per.items():
            say(f"  line coverage {component}: {ratio:.1%}")
    total_lines = sum(len(v) for v in measured.values())
    total_hit = sum(sum(1 for h in v.values() if h > 0) for v in measured.values())

    base_missing = None
    try:
        pushed = os.environ.get("GATE_HEAD") or None  # a pre-push run: the pushed commit, not the work tree
        changed = changed_lines(diff_text(repo(), staged=staged, base=base, head=pushed))
        if not staged and pushed is None:
            changed.update(untracked_lines(repo(), root))
    except MissingBase as exc:
        base_missing = str(exc)
        say(f"diff coverage not measured: base {base_missing!r} is not a commit here (fetch it)")
        changed = {}
    diff = diff_coverage(changed, measured)
    if diff["ratio"] is None:
        say("diff coverage: no measurable changed lines")
    else:
        say(f"diff coverage: {diff['covered']}/{diff['lines']} = {diff['ratio']:.1%} (minimum {minimum:.0%})")
        for file, lines in diff["uncovered"].items():
            say(f"  uncovered changed lines {file}: {lines[:40]}")

    reasons = []
    if total.failed or total.errors:
        reasons.append(f"{total.failed} failed, {total.errors} errors")
    if proc.returncode not in (0, 1):
        reasons.append(f"pytest exit code {proc.returncode}")
    if total.total == 0:
        reasons.append("no test ran")
    if diff["ratio"] is not None and diff["ratio"] < minimum:
        reasons.append(f"diff coverage {diff['ratio']:.1%} < {minimum:.0%}: changed lines need tests")
    metrics: dict[str, Any] = {
        "counts": total.as_dict(),
        "per_component": {c: v.as_dict() for c, v in sorted(per.items())},
        "failures": total.failures[:50],
        "line_coverage": round(total_hit / total_lines, 4) if total_lines else None,
        "line_coverage_per_component": coverage_per,
        "diff_coverage": None if diff["ratio"] is None else round(diff["ratio"], 4),
        "diff_lines": diff["lines"],
        "diff_coverage_min": minimum,
        "diff_base": "staged" if staged else (base or "HEAD"),
        "diff_base_missing": base_missing,
        "diff_uncovered": {f: v[:40] for f, v in diff["uncovered"].items()},
        "junit": str(junit_path),
        "coverage_xml": str(cov_xml),
    }
    return finish(metrics, reasons)


if __name__ == "__main__":
    main_guard(main)
