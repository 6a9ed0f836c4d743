#!/usr/bin/env bash
# The main job on the embedded defaults (SQLite store, the bundled BitNet code, no network).
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/orchestrator doctor
