"""The docs gate: docstring coverage of the public API, README commands still exist, doctests pass.

* Docstring coverage (with ``ast``, nothing imported): public modules, their public top-level functions and
  classes, and the public methods of public classes. Private means a leading underscore; ``tests`` and
  private modules are out. Fails under ``docstring_min``.
* README commands: every line of a ``bash``/``sh``/``shell``/``console`` (or untagged) fenced block in the
  ``readme`` files is checked: commands of the programs in ``cli_modules`` must name existing subcommands and
  options (their argparse parsers are walked), ``make T`` an existing Makefile target, ``python -m M`` an
  importable module. Other programs are listed as unchecked.
* Doctests: the modules whose source holds ``>>>`` are imported and their doctests run.

``python -m bno_quality_gates.gates.docs [--packages P ...] [--docstring-min 0.8] [--readme README.md ...]``
"""

from __future__ import annotations

import argparse
import ast
import doctest
import importlib
import importlib.util
import io
import re
import shlex
import sys
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bno_foundation.gate_program import (
    GateProgramError,
    finish,
    main_guard,
    say,
    setting,
    workdir,
)

SHELL_LANGS = {"", "bash", "sh", "shell", "console", "zsh"}


@dataclass
class DocstringReport:
    """Public API objects with and without a docstring."""

    documented: int = 0
    missing: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        """All public objects."""
        return self.documented + len(self.missing)

    @property
    def coverage(self) -> float:
        """The documented fraction (1.0 when there is nothing public)."""
        return self.documented / self.total if self.total else 1.0


def _is_public_module(rel: Path) -> bool:
    parts = rel.with_suffix("").parts
    return all(not p.startswith("_") or p == "__init__" for p in parts)


def _count(node: ast.AST, qualname: str, report: DocstringReport) -> None:
    if ast.get_docstring(node, clean=False):  # type: ignore[arg-type]
        report.documented += 1
    else:
        report.missing.append(qualname)


def _is_overload(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    return any(
        (isinstance(d, ast.Name) and d.id == "overload") or (isinstance(d, ast.Attribute) and d.attr == "overload")
        for d in node.decorator_list
    )


def docstring_coverage(root: Path, packages: list[str]) -> dict[str, DocstringReport]:
    """Per package: which public objects are documented."""
    out: dict[str, DocstringReport] = {}
    for package in packages:
        report = DocstringReport()
        base = root / package
        if not base.is_dir():
            raise GateProgramError(f"package directory {base} does not exist")
        for path in sorted(base.rglob("*.py")):
            rel = path.relative_to(base.parent)  # the module path: "bno_bitnet/quant.py"
            if not _is_public_module(path.relative_to(base)) or "tests" in rel.parts:
                continue
            try:
                tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            except SyntaxError as exc:
                report.missing.append(f"{rel}: syntax error line {exc.lineno}")
                continue
            module = ".".join(rel.with_suffix("").parts).removesuffix(".__init__")
            _count(tree, module, report)
            for node in tree.body:
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    if not node.name.startswith("_") and not _is_overload(node):
                        _count(node, f"{module}.{node.name}", report)
                elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                    _count(node, f"{module}.{node.name}", report)
                    for item in node.body:
                        if (
                            isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)
                            and not item.name.startswith("_")
                            and not _is_overload(item)
                        ):
                            _count(item, f"{module}.{node.name}.{item.name}", report)
        out[package] = report
    return out


# README commands ------------------------------------------------------------------------------------------
_FENCE = re.compile(r"^(\s*)(```|~~~)\s*([\w+-]*)")


def shell_lines(text: str) -> list[tuple[int, str]]:
    """(line number, command) of every command line in shell-like fenced blocks.

    >>> shell_lines("text\\n```bash\\n$ make test  # run\\n```\\n")
    [(3, 'make test  # run')]
    """
    out: list[tuple[int, str]] = []
    in_block = False
    shell = False
    fence = ""
    pending = ""
    for number, line in enumerate(text.splitlines(), start=1):
        match = _FENCE.match(line)
        if match and not in_block:
            in_block, fence, shell = True, match.group(2), match.group(3).lower() in SHELL_LANGS
            continue
        if in_block and line.strip().startswith(fence):
            in_block = False
            continue
        if not (in_block and shell):
            continue
        stripped = line.strip()
        if stripped.startswith("$ "):
            stripped = stripped[2:]
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        command = (pending + stripped).strip()
        pending = ""
        out.append((number, command))
    return out


def _split_commands(line: str) -> list[list[str]]:
    lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|")
    lexer.whitespace_split = True
    lexer.commenters = "#"
    commands: list[list[str]] = [[]]
    try:
        for token in lexer:
            if token and set(token) <= set(";&|"):
                commands.append([])
            else:
                commands[-1].append(token)
    except ValueError:
        return [line.split()]
    cleaned = []
    for command in commands:
        while command and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", command[0]):  # FOO=1 cmd
            command = command[1:]
        if command:
            cleaned.append(command)
    return cleaned


def _parser_for(program: str, cli_modules: dict[str, str]) -> argparse.ArgumentParser:
    module = importlib.import_module(cli_modules[program])
    parser: argparse.ArgumentParser = module.build_parser()
    return parser


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def check_cli_command(program: str, args: list[str], cli_modules: dict[str, str]) -> str | None:
    """None when ``program args`` names existing subcommands and options, else what is wrong.

    ``cli_modules`` maps a program name to the module whose ``build_parser()`` builds its parser.
    """
    try:
        parser = _parser_for(program, cli_modules)
    except Exception as exc:
        return f"cannot build the {program} parser: {type(exc).__name__}: {exc}"
    path = [program]
    index = 0
    while index < len(args):
        token = args[index]
        subs = _subparsers(parser)
        if token.startswith("-"):
            break
        if not subs:
            break
        if token not in subs:
            return f"'{' '.join(path)}' has no subcommand {token!r} (has: {', '.join(sorted(subs))})"
        parser = subs[token]
        path.append(token)
        index += 1
    options = {s for a in parser._actions for s in a.option_strings}
    # global options (before the first subcommand) belong to the top parser
    options |= {s for a in _parser_for(program, cli_modules)._actions for s in a.option_strings}
    for token in args[index:]:
        if token.startswith("--"):
            name = token.split("=", 1)[0]
            if name not in options:
                return f"'{' '.join(path)}' has no option {name}"
    return None


def _make_targets(root: Path) -> set[str]:
    makefile = root / "Makefile"
    if not makefile.is_file():
        return set()
    targets = set()
    for line in makefile.read_text(encoding="utf-8").splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-/ ]+):(?!=)", line)
        if match and not line.startswith("\t"):
            targets |= set(match.group(1).split())
    return targets


def check_readme(
    root: Path, files: list[str], cli_modules: dict[str, str] | None = None
) -> tuple[list[str], list[str], list[str]]:
    """(checked, problems, unchecked) over the shell commands of ``files``.

    ``cli_modules``: program name -> module with ``build_parser()`` (the gate's ``cli_modules`` param).
    """
    cli_modules = cli_modules or {}
    checked: list[str] = []
    problems: list[str] = []
    unchecked: list[str] = []
    targets = _make_targets(root)
    for name in files:
        path = root / name
        if not path.is_file():
            problems.append(f"{name}: file not found")
            continue
        for number, line in shell_lines(path.read_text(encoding="utf-8")):
            for argv in _split_commands(line):
                where = f"{name}:{number}: {' '.join(argv)}"
                program = Path(argv[0]).name
                problem: str | None
                if program in cli_modules:
                    problem = check_cli_command(program, argv[1:], cli_modules)
                elif program == "make":
                    wanted = [a for a in argv[1:] if not a.startswith("-") and "=" not in a] or ["<default>"]
                    missing = [t for t in wanted if t != "<default>" and t not in targets]
                    problem = f"no Makefile target {', '.join(missing)}" if missing else None
                    if not (root / "Makefile").is_file():
                        problem = "no Makefile"
                elif program.startswith("python") and len(argv) > 2 and argv[1] == "-m":
                    module = argv[2]
                    problem = None if importlib.util.find_spec(module.split(".")[0]) and _find(module) else (
                        f"module {module} not found"
                    )
                else:
                    unchecked.append(where)
                    continue
                checked.append(where)
                if problem:
                    problems.append(f"{where}: {problem}")
    return checked, problems, unchecked


def _find(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


# doctests -------------------------------------------------------------------------------------------------
def run_doctests(root: Path, packages: list[str]) -> tuple[int, int, list[str]]:
    """(attempted, failed, problems) over the modules of ``packages`` that contain ``>>>``."""
    attempted = failed = 0
    problems: list[str] = []
    for package in packages:
        base = root / package
        for path in sorted(base.rglob("*.py")):
            if ">>>" not in path.read_text(encoding="utf-8", errors="replace"):
                continue
            rel = path.relative_to(base.parent)
            name = ".".join(rel.with_suffix("").parts).removesuffix(".__init__")
            try:
                module = importlib.import_module(name)
            except Exception as exc:
                problems.append(f"{name}: import failed: {type(exc).__name__}: {exc}")
                failed += 1
                continue
            finder = doctest.DocTestFinder()
            runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
            buffer = io.StringIO()
            for test in finder.find(module, name):
                with redirect_stdout(buffer), redirect_stderr(buffer):
                    result = runner.run(test, out=buffer.write)
                attempted += result.attempted
                failed += result.failed
                if result.failed:
                    problems.append(f"{test.name}: {result.failed} of {result.attempted} examples failed")
            if buffer.getvalue().strip() and runner.failures:
                say(buffer.getvalue())
    return attempted, failed, problems


def main(argv: list[str] | None = None) -> int:
    """Run the docs gate."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--packages", nargs="+", default=None)
    parser.add_argument("--docstring-min", dest="docstring_min", type=float, default=None)
    parser.add_argument("--readme", nargs="+", default=None)
    parser.add_argument("--no-doctests", dest="doctests", action="store_false", default=None)
    args = parser.parse_args(argv)
    root = workdir()
    packages: list[str] = setting(args, "packages", None)
    if not packages:
        raise GateProgramError("no packages to check: set params.packages (package directories) in the gates file")
    minimum = float(setting(args, "docstring_min", 0.8))
    readme: list[str] = setting(args, "readme", ["README.md"])
    doctests = bool(setting(args, "doctests", True))
    for parent in dict.fromkeys(str((root / p).parent) for p in packages):
        if parent not in sys.path:
            sys.path.insert(0, parent)

    reports = docstring_coverage(root, packages)
    documented = sum(r.documented for r in reports.values())
    total = sum(r.total for r in reports.values())
    coverage = documented / total if total else 1.0
    say(f"docstring coverage {coverage:.1%} ({documented}/{total}); minimum {minimum:.0%}")
    for package, report in reports.items():
        say(f"  {package}: {report.coverage:.1%} ({report.documented}/{report.total})")
        for name in report.missing[:40]:
            say(f"    undocumented: {name}")

    cli_modules: dict[str, str] = setting(argparse.Namespace(), "cli_modules", {})
    checked, readme_problems, unchecked = check_readme(root, readme, cli_modules)
    say(f"README commands: {len(checked)} checked, {len(readme_problems)} broken, {len(unchecked)} unchecked")
    for problem in readme_problems:
        say(f"  broken: {problem}")
    for item in unchecked:
        say(f"  unchecked (not a known program): {item}")

    attempted, failed, doctest_problems = run_doctests(root, packages) if doctests else (0, 0, [])
    say(f"doctests: {attempted} examples, {failed} failed")
    for problem in doctest_problems:
        say(f"  {problem}")

    reasons = []
    if coverage < minimum:
        reasons.append(f"docstring coverage {coverage:.1%} < {minimum:.0%}")
    if readme_problems:
        reasons.append(f"{len(readme_problems)} README command(s) broken")
    if failed:
        reasons.append(f"{failed} doctest example(s) failed")
    metrics: dict[str, Any] = {
        "docstring_coverage": round(coverage, 4),
        "docstring_min": minimum,
        "docstring_per_package": {p: round(r.coverage, 4) for p, r in reports.items()},
        "undocumented": [n for r in reports.values() for n in r.missing][:100],
        "readme_commands_checked": len(checked),
        "readme_commands_broken": readme_problems,
        "readme_commands_unchecked": len(unchecked),
        "doctest_examples": attempted,
        "doctest_failed": failed,
        "counts": {"passed": attempted - failed, "failed": failed},
    }
    return finish(metrics, reasons)


if __name__ == "__main__":
    main_guard(main)
