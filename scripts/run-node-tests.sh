#!/usr/bin/env bash
# Runs one group of tests (unit | integration) without installing anything: for development.
set -euo pipefail
cd "$(dirname "$0")/.."
# An operator's own CLI config (~/.config/zmesh/config.yaml, /etc/zmesh/cli.yaml) must not change what tests see.
export ZMESH_CONFIG="${ZMESH_CONFIG:-/dev/null}"
shopt -s globstar nullglob
files=(test/"$1"/**/*.test.ts)
shift
exec node --import tsx --test --test-concurrency=1 "$@" "${files[@]}"
