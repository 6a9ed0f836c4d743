"""Run a Python tool or gate program from the trusted installation, never from the tree under test.

A gate runs in the tree it verifies (an agent's worktree), with that tree's packages on ``PYTHONPATH`` so
the code under test can be imported. Started plainly, ``python -m ruff`` would import a ``ruff`` package the
agent placed in its tree (the current directory and ``PYTHONPATH`` come before site-packages), and
``python -m bno_quality_gates.gates.test`` would run the tree's own copy of the gate program: either way
the change under review decides its own verdict. This launcher is run by path with ``python -P`` (no
current directory on ``sys.path``) in place of ``python``::

    python -P /path/to/trusted_launch.py -m ruff check .
    python -P /path/to/trusted_launch.py -c "from importlinter.cli import ..."

It moves the ``PYTHONPATH`` entries (the tree under test) to the end of ``sys.path``, so that every tool
installed beside the interpreter is imported from there first, while the tree's own packages, which are
installed nowhere else, are still found for the code under test. With ``--roots FOLDERS`` first (the runner
passes where its own ``bno_foundation`` and ``bno_quality_gates`` come from, for a gate program of its own),
those folders come first and both packages are imported from them before the target runs, so a gate
program and the helpers it imports are the runner's, whatever the tree holds. (An argument, not an
environment variable: what the gate program starts in turn, such as pytest on the tree, must not inherit
it.)
"""

from __future__ import annotations

import importlib
import os
import runpy
import sys
from collections.abc import Sequence

ROOTS_OPTION = "--roots"
TRUSTED_PACKAGES = ("bno_foundation", "bno_quality_gates")


def command(args: Sequence[str], *, python: str | None = None, roots: Sequence[str] = ()) -> list[str]:
    """The argv that runs ``python ARGS`` (``-m MODULE ...``, ``-c CODE ...`` or ``SCRIPT ...``) through this
    launcher; ``roots``: folders whose ``bno_*`` packages must be the ones imported (see the module doc)."""
    prefix = [ROOTS_OPTION, os.pathsep.join(roots)] if roots else []
    return [python or sys.executable, "-P", os.path.abspath(__file__), *prefix, *args]


def trusted_roots() -> list[str]:
    """The folders this process imports ``bno_foundation`` and ``bno_quality_gates`` from (for ``--roots``);
    a package that cannot be found is left out."""
    import importlib.util

    roots: list[str] = []
    for name in TRUSTED_PACKAGES:
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.submodule_search_locations:
            root = os.path.dirname(os.path.abspath(next(iter(spec.submodule_search_locations))))
            if root not in roots:
                roots.append(root)
    return roots


def _order_path(roots: list[str]) -> None:
    untrusted = {os.path.abspath(p) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p}
    tree = [p for p in sys.path if p and os.path.abspath(p) in untrusted]
    rest = [p for p in sys.path if not (p and os.path.abspath(p) in untrusted)]
    sys.path[:] = [*roots, *[p for p in rest if p not in roots], *tree]
    if roots:
        for name in TRUSTED_PACKAGES:
            importlib.import_module(name)


def main(argv: Sequence[str]) -> None:
    """Run ``argv`` (what would follow ``python``) with the trusted installation first."""
    args = list(argv)
    roots: list[str] = []
    if args[:1] == [ROOTS_OPTION] and len(args) > 1:
        roots = [p for p in args[1].split(os.pathsep) if p]
        args = args[2:]
    if not args:
        raise SystemExit("usage: trusted_launch.py [--roots FOLDERS] (-m MODULE | -c CODE | SCRIPT) [ARGS...]")
    _order_path(roots)
    first, rest = args[0], args[1:]
    if first == "-m" and rest:
        module = rest[0]
        sys.argv = [module, *rest[1:]]
        importlib.import_module(module.split(".")[0])  # the tool's package, from the trusted installation
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    elif first == "-c" and rest:
        sys.argv = ["-c", *rest[1:]]
        exec(compile(rest[0], "<string>", "exec"), {"__name__": "__main__", "__builtins__": __builtins__})
    else:
        sys.argv = [first, *rest]
        runpy.run_path(first, run_name="__main__")


if __name__ == "__main__":
    main(sys.argv[1:])
