#!/usr/bin/env bash
# Installs the agent CLIs the tests drive, at the versions pinned in bno_orchestrator/dispatch/clis.py,
# into the project-local prefix .agent-clis/ (npm packages; aider in its own venv, because its exact pins
# would fight the project's). Idempotent: a stamp of the pinned specs makes a second run a no-op.
# BNO_SKIP_AIDER=1 leaves aider out.
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=.agent-clis
npm_specs=$(.venv/bin/python -m bno_orchestrator.dispatch.clis npm)
pypi_specs=$(.venv/bin/python -m bno_orchestrator.dispatch.clis pypi)
want="$npm_specs $pypi_specs skip_aider=${BNO_SKIP_AIDER:-0}"
stamp=$prefix/.installed
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
    echo "install_agent_clis: npm is not installed (Node.js 20 with npm is needed for the agent CLIs)" >&2
    exit 1
fi
mkdir -p "$prefix"
[ -f "$prefix/package.json" ] || echo '{"name": "bno-agent-clis", "private": true}' > "$prefix/package.json"
# shellcheck disable=SC2086 # one spec per word
npm install --prefix "$prefix" --no-audit --no-fund --save-exact --loglevel=error $npm_specs
if [ "${BNO_SKIP_AIDER:-0}" != 1 ]; then
    [ -x "$prefix/aider/bin/python" ] || "${PYTHON:-python3}" -m venv "$prefix/aider"
    # shellcheck disable=SC2086
    PIP_DISABLE_PIP_VERSION_CHECK=1 "$prefix/aider/bin/python" -m pip install -q $pypi_specs
fi
echo "$want" > "$stamp"
