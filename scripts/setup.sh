#!/usr/bin/env bash
# Creates .venv and installs the project with its dev extras. Idempotent: a second run with nothing
# changed only checks a stamp and exits.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
TORCH_PIN=${TORCH_PIN:-torch==2.13.0}
stamp=.venv/.installed
want="$(sha256sum pyproject.toml | cut -d' ' -f1) $TORCH_PIN"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x .venv/bin/orchestrator ]; then
    exit 0
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
export PIP_DISABLE_PIP_VERSION_CHECK=1
# torch first, pinned, so that nothing later resolves it to a multi-GB CUDA build.
.venv/bin/python -m pip install -q "$TORCH_PIN"
.venv/bin/python -m pip install -q -e ".[dev]"
echo "$want" > "$stamp"
