"""``orchestrator init``: give a repository its agents/, workflows/ and store.

Copies the shipped ``agents/*.md`` and ``workflows/*.yaml`` into the target repository (an existing file
is kept unless ``--force``), creates ``.orchestrator/state.db`` and adds ``.orchestrator/`` to
``.gitignore``. Every file is written through a temporary file and ``os.replace``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from bno_foundation.cli import print_json
from bno_orchestrator.commands import add_json_flag
from bno_orchestrator.commands.core_support import console, repo

COPIED = (("agents", "*.md"), ("workflows", "*.yaml"))
IGNORE_LINE = ".orchestrator/"


def init_repo(target: Path, *, force: bool = False) -> dict[str, Any]:
    """Do the work of ``init``; returns what was created, overwritten and kept."""
    from bno_foundation.atomic import atomic_write
    from bno_orchestrator.paths import data_root
    from bno_orchestrator.store import Store

    source = data_root()
    report: dict[str, Any] = {"repo": str(target), "created": [], "overwritten": [], "kept": [], "same": []}
    for folder, pattern in COPIED:
        for src in sorted((source / folder).glob(pattern)):
            dst = target / folder / src.name
            rel = f"{folder}/{src.name}"
            if src.resolve() == dst.resolve():
                report["same"].append(rel)
                continue
            text = src.read_text(encoding="utf-8")
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
        report["store"] = str(store.path)
        report["schema_version"] = store.schema_version()
    ignore = target / ".gitignore"
    lines = ignore.read_text(encoding="utf-8").splitlines() if ignore.exists() else []
    if IGNORE_LINE not in lines and ".orchestrator" not in lines:
        atomic_write(ignore, "\n".join([*lines, IGNORE_LINE]) + "\n")
        report["gitignore"] = f"added {IGNORE_LINE}"
    return report


def run(args: argparse.Namespace) -> int:
    """Handle ``init``."""
    report = init_repo(repo(args), force=args.force)
    if args.json:
        print_json(report)
        return 0
    out = console()
    out.print(f"initialised {report['repo']}")
    for key in ("created", "overwritten", "kept", "same"):
        if report[key]:
            label = {"kept": "kept (differs; --force replaces)", "same": "already up to date"}.get(key, key)
            names = "" if key == "same" else f": {', '.join(report[key])}"
            out.print(f"  {label}: {len(report[key])} file(s){names}")
    out.print(f"  store: {report['store']} (schema v{report['schema_version']})")
    if "gitignore" in report:
        out.print(f"  .gitignore: {report['gitignore']}")
    return 0


def register(sub: Any) -> None:
    """Add ``init``."""
    parser = sub.add_parser("init", help="write agents/, workflows/ and the store into a repository")
    parser.add_argument("--force", action="store_true", help="overwrite files that exist")
    add_json_flag(parser)
    parser.set_defaults(handler=run)
