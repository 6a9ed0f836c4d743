# The two commands of the README, plus lint. Every target sets up .venv first (idempotent, fast when done).
PY := .venv/bin/python


.PHONY: setup agent-clis dev-tools demo test lint fuzz
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

# the full fuzz run of the loaders of untrusted files (every `make test` runs a bounded smoke of it)
fuzz: setup
	BNO_FUZZ_EXAMPLES=$${BNO_FUZZ_EXAMPLES:-10000} $(PY) -m pytest -q -s -p no:cacheprovider tests/test_fuzz.py

lint: setup
	.venv/bin/ruff check .
	.venv/bin/mypy
	.venv/bin/lint-imports
