"""The vendor dialects the server speaks (one module each)."""

from __future__ import annotations

from bno_orchestrator.scripted_model.server import Dialect


def all_dialects() -> list[Dialect]:
    """Every dialect, in the order requests are matched."""
    from bno_orchestrator.scripted_model.anthropic import AnthropicMessages
    from bno_orchestrator.scripted_model.gemini import GeminiGenerateContent
    from bno_orchestrator.scripted_model.openai import OpenAIChatCompletions, OpenAIResponses

    return [AnthropicMessages(), OpenAIResponses(), OpenAIChatCompletions(), GeminiGenerateContent()]
