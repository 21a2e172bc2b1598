#!/usr/bin/env bash
# The whole test suite: install, lint, typecheck, unit tests, then integration tests (real namespaces, as root).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
echo "== lint" && npx eslint .
echo "== typecheck" && npx tsc --noEmit -p tsconfig.json
echo "== build" && npm run --silent build
echo "== tests"
# An operator's own CLI config (~/.config/zmesh/config.yaml, /etc/zmesh/cli.yaml) must not change what tests see.
export ZMESH_CONFIG="${ZMESH_CONFIG:-/dev/null}"
shopt -s globstar nullglob
files=(test/unit/**/*.test.ts test/integration/**/*.test.ts test/torture/**/*.test.ts)
# Integration tests create namespaces and processes: run files one at a time for clean accounting.
exec node --import tsx --test --test-concurrency=1 --test-reporter=spec "${files[@]}"
