"""A scripted model server on 127.0.0.1 that speaks the real wire protocols of the vendors' model APIs.

The agent CLIs (Claude Code, Codex, Gemini CLI, aider) are real programs; only the model behind them is
a stand-in. A :class:`~bno_orchestrator.scripted_model.scenario.Scenario` says what the "model" does, turn
by turn (write a file through the CLI's own tool, answer with text, fail with an HTTP error); each dialect
module turns a step into that vendor's response format (Anthropic Messages, OpenAI Responses and Chat
Completions, Gemini generateContent), streaming or not, as the CLI asked. Used by the test suite and by
``orchestrator demo --agent NAME``. It binds 127.0.0.1 only and serves a bounded number of requests.
"""

from __future__ import annotations

from bno_orchestrator.scripted_model.scenario import HttpFailure, Reply, Scenario, WriteFile
from bno_orchestrator.scripted_model.server import ScriptedModelServer

__all__ = ["HttpFailure", "Reply", "Scenario", "ScriptedModelServer", "WriteFile"]
