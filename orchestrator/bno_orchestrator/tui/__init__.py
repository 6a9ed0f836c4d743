"""The Textual sprint board: a pure data layer (:mod:`.data`, with the saved filters of :mod:`.filters` and
the add/edit/undo writes of :mod:`.edits`) and a thin app (:mod:`.app`, imported only by ``orchestrator
board``, so nothing else pays for Textual); :mod:`.bench` measures the board on a generated store."""
