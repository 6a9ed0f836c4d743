"""The Textual sprint board: a pure data layer (:mod:`.data`) and a thin app (:mod:`.app`, imported only by
``orchestrator board``, so nothing else pays for Textual)."""
