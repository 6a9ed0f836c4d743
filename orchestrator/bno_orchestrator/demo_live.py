"""``orchestrator demo --agent claude|codex|gemini``: the demo sprint through a real installed agent CLI.

The CLI runs for real (its own tools, permissions and output format, in the task's worktree); only the model
behind it is scripted: a :class:`~bno_orchestrator.scripted_model.ScriptedModelServer` on 127.0.0.1 speaks the
vendor's API (Anthropic Messages, OpenAI Responses, Gemini generateContent) and answers each dispatch with
the demo's recipe as a file-writing tool call, then a claim. No network is used and no real key is read:
for the demo's duration the vendor's base URL and key variables point at the local server, and every other
credential variable is hidden from the CLI.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bno_orchestrator.errors import UserError

LIVE_KINDS = ("claude", "codex", "gemini")
KEY = "demo-scripted-key"
MODELS = {"claude": None, "codex": "gpt-5.5", "gemini": "gemini-2.5-flash"}


@dataclass(frozen=True)
class LiveAgent:
    """The CLI the demo drives, and the executor options that point it at the scripted model."""

    kind: str
    binary: Path
    url: str

    def options(self) -> dict[str, object]:
        """``executor.options`` for the demo's agents."""
        options: dict[str, object] = {"binary": str(self.binary), "timeout": 180, "max_turns": 8}
        if MODELS[self.kind]:
            options["model"] = MODELS[self.kind]
        return options


def demo_steps(slice_files: dict[str, str], recipes: dict[str, tuple[str, str, str, str]],
               order: list[str]) -> list[object]:
    """The scripted model's answers, one dispatch after another: the recipe's file as a write, then its claim."""
    from bno_orchestrator.scripted_model import Reply, WriteFile

    steps: list[object] = []
    for task in order:
        path, old, new, claim = recipes[task]
        steps += [WriteFile(path, slice_files[path].replace(old, new)), Reply(claim)]
    return steps


@contextlib.contextmanager
def live_agent(kind: str, steps: list[object]) -> Iterator[LiveAgent]:
    """Start the scripted model server for ``kind`` and point the CLI's environment at it."""
    from bno_orchestrator.dispatch.cli_agents import CREDENTIAL_ENV, LOGINS
    from bno_orchestrator.dispatch.clis import CLIS, find_binary
    from bno_orchestrator.dispatch.preflight import BASE_URL_ENV
    from bno_orchestrator.scripted_model import Scenario, ScriptedModelServer

    if kind not in LIVE_KINDS:
        raise UserError(f"demo --agent takes {', '.join(LIVE_KINDS)}, not {kind!r}")
    binary = find_binary(kind, Path(__file__).resolve().parents[2])
    if binary is None:
        raise UserError(f"the {kind} CLI is not installed: {CLIS[kind].install_hint} (or `make agent-clis` in a "
                        "checkout of this repository), then run the demo again")
    with ScriptedModelServer(Scenario(list(steps)), api_key=KEY) as server:  # type: ignore[arg-type]
        url = server.url + ("/v1" if kind == "codex" else "")
        saved = {name: os.environ.get(name) for name in CREDENTIAL_ENV}
        try:
            for name in CREDENTIAL_ENV:
                os.environ.pop(name, None)
            os.environ[BASE_URL_ENV[kind]] = url
            os.environ[LOGINS[kind].key_env[0]] = KEY
            yield LiveAgent(kind, binary, url)
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
