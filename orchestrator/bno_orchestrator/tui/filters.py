"""Saved filter sets of the sprint board: named queries in ``REPO/.orchestrator/board-filters.json``.

The file maps a name to a filter query (the language of :func:`bno_orchestrator.tui.data.parse_filter`);
every query is checked before it is saved, and the file is replaced atomically, so two boards saving at
once never leave half a file. No Textual here.
"""

from __future__ import annotations

import json
from pathlib import Path

from bno_foundation.atomic import atomic_write
from bno_orchestrator.errors import UserError
from bno_orchestrator.paths import state_dir
from bno_orchestrator.tui.data import parse_filter

FILTERS_FILE = "board-filters.json"


def filters_path(repo: Path) -> Path:
    """``REPO/.orchestrator/board-filters.json``."""
    return state_dir(repo) / FILTERS_FILE


def load_filters(path: Path) -> dict[str, str]:
    """The saved filters by name (nothing when the file does not exist; UserError when it is damaged)."""
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise UserError(f"{path}: not valid JSON ({exc}); fix or remove it") from None
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
        raise UserError(f"{path}: expected an object of name -> filter query")
    return dict(data)


def _write(path: Path, filters: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(dict(sorted(filters.items())), indent=2, ensure_ascii=False) + "\n")


def save_filter(path: Path, name: str, query: str) -> dict[str, str]:
    """Save ``query`` as ``name`` (replacing one of that name); returns every saved filter. A blank name or
    a query the filter language refuses raises UserError and writes nothing."""
    name = " ".join(name.split())
    if not name:
        raise UserError("a saved filter needs a name")
    if not query.strip():
        raise UserError("nothing to save: the filter is empty")
    parse_filter(query)
    filters = load_filters(path)
    filters[name] = query.strip()
    _write(path, filters)
    return filters


def delete_filter(path: Path, name: str) -> dict[str, str]:
    """Remove the saved filter ``name`` (UserError when there is none); returns the rest."""
    filters = load_filters(path)
    if name not in filters:
        raise UserError(f"no saved filter {name!r}")
    del filters[name]
    _write(path, filters)
    return filters
