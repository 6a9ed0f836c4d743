"""What kind of repository ``orchestrator init`` is working on, and the components and gates that fit it.

The shipped ``workflows/`` describe this project (BitNet, its kernels, the framework). A user's own
repository gets components and gates made from what it holds: its language(s), test runner and linter,
detected from the files a project of that kind always has. When nothing is recognised, the gates file
has no gate and ``init`` says so: verification then refuses to pass any change (a change that matches no
gate is never "verified").
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

SKIP_DIRS = {".git", ".orchestrator", ".venv", "venv", "node_modules", "target", "build", "dist", "__pycache__",
             ".agent-clis", ".tox", ".mypy_cache", ".ruff_cache", ".pytest_cache"}


@dataclass(frozen=True)
class GateSuggestion:
    """One gate for the generated gates file."""

    name: str
    description: str
    command: list[str]
    components: list[str]
    hooks: list[str]
    timeout: int = 900


@dataclass
class RepoProfile:
    """The detected languages, components (id -> globs) and gates of a repository."""

    languages: list[str] = field(default_factory=list)
    components: dict[str, dict[str, Any]] = field(default_factory=dict)
    gates: list[GateSuggestion] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def recognised(self) -> bool:
        """Whether any gate could be made."""
        return bool(self.gates)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        return {}


def _source_dirs(repo: Path, suffixes: tuple[str, ...]) -> list[str]:
    """Top-level folders (and files) holding source files with ``suffixes``, tests and docs left out."""
    found: list[str] = []
    for entry in sorted(repo.iterdir()):
        if entry.name in SKIP_DIRS or entry.name.startswith(".") or entry.name in ("tests", "test", "docs", "doc"):
            continue
        if entry.is_file() and entry.suffix in suffixes:
            found.append(entry.name)
        elif entry.is_dir() and any(p.suffix in suffixes for p in _walk(entry, depth=4)):
            found.append(f"{entry.name}/**")
    return found


def _walk(folder: Path, depth: int) -> list[Path]:
    out: list[Path] = []
    if depth < 0:
        return out
    try:
        entries = sorted(folder.iterdir())
    except OSError:
        return out
    for entry in entries:
        if entry.name in SKIP_DIRS:
            continue
        if entry.is_dir():
            out.extend(_walk(entry, depth - 1))
        else:
            out.append(entry)
    return out


def _python(repo: Path, profile: RepoProfile) -> None:
    markers = [n for n in ("pyproject.toml", "setup.py", "setup.cfg", "requirements.txt") if (repo / n).is_file()]
    sources = _source_dirs(repo, (".py",))
    if not markers and not sources:
        return
    profile.languages.append("python")
    pyproject = _read_toml(repo / "pyproject.toml")
    tool = pyproject.get("tool", {}) if isinstance(pyproject.get("tool"), dict) else {}
    profile.components["source"] = {"description": "the Python sources", "paths": sources or ["**/*.py"]}
    tests = [d for d in ("tests", "test") if (repo / d).is_dir()]
    if tests:
        profile.components["tests"] = {"description": "the test suite", "paths": [f"{d}/**" for d in tests]}
    uses_pytest = "pytest" in tool or (repo / "pytest.ini").is_file() or (repo / "conftest.py").is_file() or any(
        "pytest" in (repo / f).read_text(encoding="utf-8", errors="replace")
        for f in markers if f != "setup.py")
    test_files = [f for d in tests for f in _walk(repo / d, depth=4) if f.suffix == ".py"]
    # plain `def test_...` files are pytest's; a suite whose every file imports unittest is unittest's
    only_unittest = bool(test_files) and all(
        "unittest" in f.read_text(encoding="utf-8", errors="replace") for f in test_files)
    uses_pytest = uses_pytest or (bool(test_files) and not only_unittest)
    comps = ["source", *(["tests"] if tests else [])]
    # the repository's own environment when it has one ({main}: the main checkout, also for a worktree)
    venv = next((d for d in (".venv", "venv") if (repo / d / "bin" / "python").is_file()), None)
    python = f"{{main}}/{venv}/bin/python" if venv else "python3"
    if venv is None:
        profile.notes.append("no .venv/ or venv/ in the repository: the gates run `python3` from PATH; point "
                             "them at your environment in workflows/gates.yaml if that is not it")
    if uses_pytest or tests:
        runner = "pytest" if uses_pytest else "unittest"
        command = [python, "-m", "pytest", "-q"] if runner == "pytest" else [python, "-m", "unittest", "discover"]
        profile.gates.append(GateSuggestion("test", f"the test suite ({runner})", command, comps, ["pre-push"], 1800))
    else:
        profile.gates.append(GateSuggestion("compile", "every Python file compiles", [python, "-m", "compileall", "-q", "."],
                                            comps, ["pre-commit", "pre-push"], 300))
        profile.notes.append("no test suite found (no tests/ folder, no pytest configuration): the only gate "
                             "compiles the sources; add a test gate to workflows/gates.yaml")
    if "ruff" in tool or (repo / "ruff.toml").is_file() or (repo / ".ruff.toml").is_file():
        profile.gates.append(GateSuggestion("lint", "ruff", [python, "-m", "ruff", "check", "."], comps,
                                            ["pre-commit", "pre-push"], 300))


def _node(repo: Path, profile: RepoProfile) -> None:
    path = repo / "package.json"
    if not path.is_file():
        return
    profile.languages.append("javascript")
    try:
        scripts = json.loads(path.read_text(encoding="utf-8")).get("scripts", {}) or {}
    except (OSError, json.JSONDecodeError, AttributeError):
        scripts = {}
    profile.components.setdefault("source", {"description": "the sources", "paths": []})
    profile.components["source"]["paths"] += _source_dirs(repo, (".js", ".ts", ".mjs", ".cjs", ".jsx", ".tsx"))
    test = str(scripts.get("test", ""))
    if test and "no test specified" not in test:
        profile.gates.append(GateSuggestion("npm-test", "npm test", ["npm", "test", "--silent"], ["source"],
                                            ["pre-push"], 1800))
    if scripts.get("lint"):
        profile.gates.append(GateSuggestion("npm-lint", "npm run lint", ["npm", "run", "lint", "--silent"], ["source"],
                                            ["pre-commit", "pre-push"], 600))


def _simple(repo: Path, profile: RepoProfile) -> None:
    known = (
        ("Cargo.toml", "rust", (".rs",), GateSuggestion("cargo-test", "cargo test", ["cargo", "test", "--quiet"],
                                                        ["source"], ["pre-push"], 3600)),
        ("go.mod", "go", (".go",), GateSuggestion("go-test", "go test", ["go", "test", "./..."], ["source"],
                                                  ["pre-push"], 1800)),
    )
    for marker, language, suffixes, gate in known:
        if (repo / marker).is_file():
            profile.languages.append(language)
            profile.components.setdefault("source", {"description": "the sources", "paths": []})
            profile.components["source"]["paths"] += [*_source_dirs(repo, suffixes), marker]
            profile.gates.append(gate)


def _make(repo: Path, profile: RepoProfile) -> None:
    makefile = repo / "Makefile"
    if profile.gates or not makefile.is_file():
        return
    text = makefile.read_text(encoding="utf-8", errors="replace")
    if re.search(r"^test\s*:", text, flags=re.M):
        profile.components.setdefault("source", {"description": "the sources", "paths": ["**"]})
        profile.gates.append(GateSuggestion("make-test", "make test", ["make", "test"], ["source"], ["pre-push"], 1800))


def detect(repo: Path) -> RepoProfile:
    """The profile of ``repo`` (languages, components, gates), from its files alone."""
    profile = RepoProfile()
    _python(repo, profile)
    _node(repo, profile)
    _simple(repo, profile)
    _make(repo, profile)
    if "source" in profile.components:
        paths = profile.components["source"]["paths"]
        profile.components["source"]["paths"] = sorted(dict.fromkeys(paths)) or ["**"]
    docs = [p for p in ("README.md", "README.rst", "docs/**", "CHANGELOG.md") if (repo / p.removesuffix("/**")).exists()]
    if docs:
        profile.components["docs"] = {"description": "user documentation", "paths": docs}
    if not profile.gates:
        profile.notes.append("no language or test runner recognised: workflows/gates.yaml has no gate, so a "
                             "dispatched task can never be verified; add your build and test commands there")
    return profile


def components_yaml(profile: RepoProfile) -> str:
    """The text of the generated ``workflows/components.yaml``."""
    header = ("# Component id -> path globs (repository-relative; ** spans directories), made by `orchestrator init`\n"
              f"# from what this repository holds ({', '.join(profile.languages) or 'nothing recognised'}).\n"
              "# Edit freely: gates select their work by these globs, the router maps components to agents.\n")
    body = {"version": 1, "components": profile.components or {"everything": {"description": "every file",
                                                                              "paths": ["**"]}}}
    return header + yaml.safe_dump(body, sort_keys=False, width=110)


def gates_yaml(profile: RepoProfile) -> str:
    """The text of the generated ``workflows/gates.yaml``."""
    header = ("# The quality-gate DAG of this repository, made by `orchestrator init` from what it holds.\n"
              "# Each gate: argv command(s) ({main} is the main checkout, also when a task's worktree is tested),\n"
              "# components"
              " (affected selection and cache key), timeout, hooks. A change that matches no gate is not verified.\n")
    gates = {g.name: {"description": g.description, "command": g.command, "components": g.components,
                      "timeout": g.timeout, "hooks": g.hooks} for g in profile.gates}
    body = {"version": 1, "defaults": {"workers": 2, "term_grace": 10}, "components_file": "components.yaml",
            "gates": gates}
    return header + yaml.safe_dump(body, sort_keys=False, width=110)


ROUTING_FOR = {
    "source": ("the sources", "code", ["best-practices"]),
    "tests": ("the test suite", "test-utilities", ["error-handling"]),
    "docs": ("documentation", "documentation", ["ask"]),
    "everything": ("every file", "code", ["best-practices"]),
}


def routing_yaml(shipped_text: str, profile: RepoProfile) -> str:
    """The shipped routing file with its ``components`` section replaced by this repository's components."""
    data = yaml.safe_load(shipped_text)
    components = profile.components or {"everything": {}}
    data["components"] = {
        cid: {"label": ROUTING_FOR.get(cid, (cid, "code", []))[0], "primary": ROUTING_FOR.get(cid, (cid, "code", []))[1],
              "secondary": ROUTING_FOR.get(cid, (cid, "code", []))[2]}
        for cid in components
    }
    for rule in data.get("support_rules", []) or []:
        if "components" in rule:
            rule["components"] = [c for c in rule["components"] if c in data["components"]] or ["docs"]
    data["support_rules"] = [r for r in data.get("support_rules", []) or []
                             if not r.get("components") or set(r["components"]) <= set(data["components"])]
    header = ("# Task routing (task type, component, complexity -> agents), made by `orchestrator init`; the\n"
              "# components section is this repository's (workflows/components.yaml).\n")
    return header + yaml.safe_dump(data, sort_keys=False, width=110, allow_unicode=True)
