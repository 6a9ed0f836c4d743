"""The agent CLIs the orchestrator drives, and the versions it is tested with (the one place they are pinned).

``scripts/setup.sh`` installs exactly these into the project-local prefix ``.agent-clis/`` (npm packages
under ``.agent-clis/node_modules``, aider in its own venv ``.agent-clis/aider``), the test suite runs them
against the scripted model server, and preflight compares a user's installed version with the tested one.

    python -m bno_orchestrator.dispatch.clis npm      # the npm specs, one per line (for setup.sh)
    python -m bno_orchestrator.dispatch.clis pypi     # the PyPI specs
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class AgentCli:
    """One agent CLI: its executor kind, binary name, package and the version the tests ran."""

    kind: str
    binary: str
    registry: str  # npm | pypi
    package: str
    tested_version: str

    @property
    def spec(self) -> str:
        """``package@version`` (npm) or ``package==version`` (PyPI)."""
        return f"{self.package}@{self.tested_version}" if self.registry == "npm" else f"{self.package}=={self.tested_version}"

    @property
    def install_hint(self) -> str:
        """How a user installs the tested version."""
        if self.registry == "npm":
            return f"npm install -g {self.spec}"
        return f"python -m pip install {self.spec}  (best in its own venv, e.g. with pipx)"


CLIS: dict[str, AgentCli] = {
    "claude": AgentCli("claude", "claude", "npm", "@anthropic-ai/claude-code", "2.1.197"),
    "codex": AgentCli("codex", "codex", "npm", "@openai/codex", "0.171.0"),
    "gemini": AgentCli("gemini", "gemini", "npm", "@google/gemini-cli", "0.61.0"),
    "aider": AgentCli("aider", "aider", "pypi", "aider-chat", "0.86.2"),
}

LOCAL_PREFIX = ".agent-clis"  # relative to a checkout of this repository
BIN_DIR_ENV = "BNO_AGENT_BIN_DIR"  # extra directories searched first (os.pathsep separated)


def local_bin_dirs(root: Path) -> list[Path]:
    """Where ``setup.sh`` puts the CLIs in a checkout at ``root`` (npm's .bin, aider's venv bin); in a linked
    worktree (a task's), also the main checkout's, so its tests see the same CLIs as the main checkout."""
    roots = [root]
    main = main_checkout_of(root)
    if main is not None and main != root:
        roots.append(main)
    return [d for r in roots for d in (r / LOCAL_PREFIX / "node_modules" / ".bin", r / LOCAL_PREFIX / "aider" / "bin")]


def main_checkout_of(root: Path) -> Path | None:
    """The main checkout of the linked worktree at ``root`` (its ``.git`` file says ``gitdir:
    MAIN/.git/worktrees/NAME``); None when ``root`` is no linked worktree. Reads one file, runs no git."""
    marker = root / ".git"
    if not marker.is_file():
        return None
    try:
        text = marker.read_text(encoding="utf-8").strip()
    except OSError:
        return None
    if not text.startswith("gitdir:"):
        return None
    gitdir = (root / text[len("gitdir:"):].strip()).resolve()
    if gitdir.parent.name != "worktrees":
        return None
    return gitdir.parent.parent.parent


def search_path(extra: list[Path] | None = None) -> str:
    """A PATH with ``$BNO_AGENT_BIN_DIR`` and ``extra`` first, then the user's PATH."""
    dirs = [d for d in os.environ.get(BIN_DIR_ENV, "").split(os.pathsep) if d]
    dirs += [str(p) for p in extra or []]
    return os.pathsep.join([*dirs, os.environ.get("PATH", "")])


def install_root() -> Path:
    """The checkout this package runs from, where ``scripts/setup.sh`` puts ``.agent-clis/`` (for an
    installed wheel: a directory that has none, so only ``$BNO_AGENT_BIN_DIR`` and PATH count)."""
    return Path(__file__).resolve().parents[3]


def find_program(name: str, root: Path | None = None) -> Path | None:
    """The executable ``name`` (a program name, not a path): in ``$BNO_AGENT_BIN_DIR``, the project-local
    install under ``root`` (default :func:`install_root`), then PATH; None when it is nowhere."""
    import shutil

    found = shutil.which(name, path=search_path(local_bin_dirs(root if root is not None else install_root())))
    return Path(found) if found else None


def find_binary(kind: str, root: Path) -> Path | None:
    """The executable of the CLI ``kind``: in ``$BNO_AGENT_BIN_DIR``, the project-local install under
    ``root`` (:func:`local_bin_dirs`), then PATH; None when it is nowhere."""
    return find_program(CLIS[kind].binary, root)


VERSION = re.compile(r"\b(\d+\.\d+\.\d+(?:[-+][0-9A-Za-z.-]+)?)\b")


def parse_version(text: str) -> str | None:
    """The first ``X.Y.Z`` version in what ``--version`` printed (``2.1.197 (Claude Code)``,
    ``codex-cli 0.171.0``, ``0.61.0``), or None."""
    match = VERSION.search(text)
    return match.group(1) if match else None


def main(argv: list[str] | None = None) -> int:
    """Print the package specs of one registry, one per line."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0] not in ("npm", "pypi"):
        print("usage: python -m bno_orchestrator.dispatch.clis {npm|pypi}", file=sys.stderr)
        return 2
    for cli in CLIS.values():
        if cli.registry == args[0]:
            print(cli.spec)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
