"""Weekly status reports: a frozen view model built from the store (:mod:`.viewmodel`), deterministic SVG
charts (:mod:`.charts`) and sandboxed Jinja2 templates for Markdown and HTML (:mod:`.render`)."""
