# The two commands of the README, plus lint. Every target sets up .venv first (idempotent, fast when done).
PY := .venv/bin/python


.PHONY: setup demo test lint
setup:
	@bash scripts/setup.sh

demo: setup
	@bash scripts/demo.sh

test: setup
	$(PY) -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

lint: setup
	.venv/bin/ruff check .
	.venv/bin/mypy
	.venv/bin/lint-imports
