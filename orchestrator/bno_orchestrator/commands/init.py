"""``orchestrator init``: give a repository its agents/, workflows/ and store.

Copies the shipped ``agents/*.md`` and ``workflows/*.yaml`` into the target repository (an existing file
is kept unless ``--force``), creates ``.orchestrator/state.db`` and adds ``.orchestrator/`` to
``.gitignore``. With ``--profile auto`` (the default) the components, gates and routing components are
made for the repository from what it holds (:mod:`bno_orchestrator.repo_profile`); ``--profile shipped``
copies this project's own (the BitNet code base's). Every file is written atomically.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from bno_foundation.cli import print_json
from bno_foundation.terminal import safe_console, visible
from bno_orchestrator.commands import add_json_flag
from bno_orchestrator.commands.core_support import repo

COPIED = (("agents", "*.md"), ("workflows", "*.yaml"))
IGNORE_LINE = ".orchestrator/"
PROFILES = ("auto", "shipped")


def _texts(source: Path, target: Path, profile: str, report: dict[str, Any]) -> dict[str, str]:
    """``{relative path: text}`` of every file ``init`` writes (shipped, or made for the repository)."""
    texts = {f"{folder}/{src.name}": src.read_text(encoding="utf-8")
             for folder, pattern in COPIED for src in sorted((source / folder).glob(pattern))}
    if profile == "auto" and source.resolve() != target.resolve():
        from bno_orchestrator import repo_profile

        found = repo_profile.detect(target)
        texts["workflows/components.yaml"] = repo_profile.components_yaml(found)
        texts["workflows/gates.yaml"] = repo_profile.gates_yaml(found)
        texts["workflows/routing.yaml"] = repo_profile.routing_yaml(texts["workflows/routing.yaml"], found)
        gate_names = {g.name for g in found.gates}
        for src in sorted((source / "agents").glob("*.md")):
            fitted = _fit_agent(src, set(found.components), gate_names)
            if fitted is not None:
                texts[f"agents/{src.name}"] = fitted
        report["profile"] = {"kind": "auto", "languages": found.languages, "components": sorted(found.components),
                             "gates": [g.name for g in found.gates], "notes": found.notes}
    else:
        report["profile"] = {"kind": "shipped", "languages": [], "components": [], "gates": [], "notes": []}
    return texts


def _fit_agent(path: Path, components: set[str], gates: set[str]) -> str | None:
    """The shipped agent at ``path`` with only the components and gates this repository has, and without this
    project's own command allow-list (its ``tools.allow`` stays); None when nothing needs changing."""
    from bno_orchestrator.agents import dump_agent, load_agent

    spec = load_agent(path)
    kept_components = [c for c in spec.components if c in components]
    kept_gates = [g for g in spec.gates if g in gates]
    options = {k: v for k, v in spec.executor.options.items() if k != "allowedTools"}  # this project's commands
    if (kept_components == list(spec.components) and kept_gates == list(spec.gates)
            and options == spec.executor.options):
        return None
    executor = spec.executor.model_copy(update={"options": options})
    return dump_agent(spec.model_copy(update={"components": kept_components, "gates": kept_gates,
                                              "executor": executor}))


def init_repo(target: Path, *, force: bool = False, profile: str = "auto") -> dict[str, Any]:
    """Do the work of ``init``; returns what was created, overwritten and kept, and the profile used."""
    from bno_foundation.atomic import atomic_write
    from bno_orchestrator.paths import data_root
    from bno_orchestrator.store import Store

    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}, not {profile!r}")
    if not target.is_dir():
        from bno_orchestrator.errors import UserError

        raise UserError(f"{target}: no such directory: init sets up an existing folder (create it, `git init` it, "
                        "then run `orchestrator init` there)")
    source = data_root()
    report: dict[str, Any] = {"repo": str(target), "created": [], "overwritten": [], "kept": [], "same": []}
    for rel, text in _texts(source, target, profile, report).items():
        dst = target / rel
        if (source / rel).resolve() == dst.resolve():
            report["same"].append(rel)
            continue
        if dst.exists():
            if dst.read_text(encoding="utf-8") == text:
                report["same"].append(rel)
                continue
            if not force:
                report["kept"].append(rel)
                continue
            report["overwritten"].append(rel)
        else:
            report["created"].append(rel)
        atomic_write(dst, text)
    with Store.open(target) as store:
        report["store"] = store.location
        report["schema_version"] = store.schema_version()
    ignore = target / ".gitignore"
    lines = ignore.read_text(encoding="utf-8").splitlines() if ignore.exists() else []
    if IGNORE_LINE not in lines and ".orchestrator" not in lines:
        atomic_write(ignore, "\n".join([*lines, IGNORE_LINE]) + "\n")
        report["gitignore"] = f"added {IGNORE_LINE}"
    return report


def run(args: argparse.Namespace) -> int:
    """Handle ``init``."""
    report = init_repo(repo(args), force=args.force, profile=args.profile)
    if args.json:
        print_json(report)
        return 0
    from rich.text import Text

    out = safe_console(file=sys.stdout, soft_wrap=True)  # paths and notes are shown as text, never markup
    out.print(f"initialised {report['repo']}")
    for key in ("created", "overwritten", "kept", "same"):
        if report[key]:
            label = {"kept": "kept (differs; --force replaces)", "same": "already up to date"}.get(key, key)
            names = "" if key == "same" else f": {', '.join(report[key])}"
            out.print(f"  {label}: {len(report[key])} file(s){names}")
    found = report["profile"]
    if found["kind"] == "auto":
        languages = ", ".join(found["languages"]) or "nothing recognised"
        gates = ", ".join(found["gates"]) or "none"
        out.print(f"  this repository: {languages}; gates: {gates}")
        for note in found["notes"]:
            out.print(Text.assemble("  ", ("note:", "yellow"), " ", visible(note)))
    out.print(f"  store: {report['store']} (schema v{report['schema_version']})")
    if "gitignore" in report:
        out.print(f"  .gitignore: {report['gitignore']}")
    return 0


def register(sub: Any) -> None:
    """Add ``init``."""
    parser = sub.add_parser("init", help="write agents/, workflows/ and the store into a repository")
    parser.add_argument("--force", action="store_true", help="overwrite files that exist")
    parser.add_argument("--profile", choices=PROFILES, default="auto",
                        help="auto: components and gates made for this repository (default); shipped: this "
                             "project's own (the BitNet code base)")
    add_json_flag(parser)
    parser.set_defaults(handler=run)
