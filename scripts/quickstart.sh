#!/usr/bin/env bash
# Quick start: install what is missing (Debian packages, npm dependencies, the build), then build the
# quickstart lab (labs/quickstart.yaml) on this machine — three nodes in network namespaces, one behind a NAT
# router, two tenants on the same range, one laptop with wg-quick, and per tenant a web server container on
# every node (a private dockerd per node; the image is built offline from busybox), blue's network under a policy
# (its web tier reaches only the "database") — wait until every pair of endpoints is reached, denied by the
# policy or isolated as it should be, print the matrix, and say how to look around and take it down.
# Run as root. Running it again reconciles the running lab. Nothing leaves the machine: the lab's "internet"
# is a namespace without a way out.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ $EUID -ne 0 ]]; then
  echo "quickstart: run as root (labs create network namespaces)" >&2
  exit 1
fi
bash scripts/deps.sh

zmesh() { node dist/src/cli/main.js "$@"; }
stale=$(find src netns topology runtime labs -name '*.ts' -newer dist/src/cli/main.js -print -quit 2>/dev/null || echo missing)
if [[ ! -x dist/src/cli/main.js || -n "$stale" ]]; then
  echo "zmesh: building" >&2
  if ! npm run --silent build >&2; then
    echo "zmesh: the build failed; running from the TypeScript sources instead" >&2
    zmesh() { node --import tsx src/cli/main.ts "$@"; }
  fi
fi

echo "== zmesh lab up labs/quickstart.yaml"
status=0
zmesh lab up labs/quickstart.yaml || status=$?

echo
echo "(from this directory, \`zmesh\` above is \`npx zmesh\`; labs live in ${ZMESH_LAB_DIR:-/var/lib/zmesh-labs})"
exit "$status"
