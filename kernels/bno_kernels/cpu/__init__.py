"""The native CPU backend: packed layout (:mod:`.layout`), JIT build (:mod:`.build`), wrappers (:mod:`.ops`)."""
