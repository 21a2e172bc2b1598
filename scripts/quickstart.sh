#!/usr/bin/env bash
# Quick start: install, make a tenant key, sign the example blueprint, verify it, and plan it over the
# example inventory. Prints the plan summary. Files go to .tmp/quickstart/ (keys and plan are mode 0600).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
out=.tmp/quickstart
rm -rf "$out" && mkdir -p "$out"
zmesh() { node dist/src/cli/main.js "$@"; }
echo "== tenant key"
zmesh keygen tenant "$out/acme.key"
echo "== sign examples/tenant-blueprint.yaml"
zmesh sign examples/tenant-blueprint.yaml --key "$out/acme.key" > "$out/shop.signed.json"
zmesh verify "$out/shop.signed.json"
echo "== plan over examples/nodes.yaml"
zmesh plan "$out/shop.signed.json" --nodes examples/nodes.yaml --out "$out/plan.json" --access-out "$out/devices" --summary
echo
echo "plan: $out/plan.json   device configs: $out/devices/   node-a's part: zmesh plan … --part node-a"
