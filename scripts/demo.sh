#!/usr/bin/env bash
# The main job on the embedded defaults (SQLite store, the bundled BitNet code, no network):
# check the toolchain, then run a demo sprint end to end in a throw-away repository (init, backlog import,
# scoring, routing, dispatch to a deterministic shell agent, verification by the gates, escalation,
# status), every figure read back from the store.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/orchestrator doctor
.venv/bin/orchestrator demo
