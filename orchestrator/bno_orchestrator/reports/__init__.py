"""Status reports (weekly, daily or any range): a frozen view model built from the store (:mod:`.viewmodel`),
deterministic SVG and text charts (:mod:`.charts`), sandboxed Jinja2 templates for Markdown and HTML
(:mod:`.render`), dated report files kept in one folder (:mod:`.publish`) and the cron entry or GitHub
Actions workflow that writes them on a schedule (:mod:`.schedule`). See docs/reports.md."""
