#!/usr/bin/env bash
# Installs what zmesh needs on a Debian bookworm host (as root): system packages, then npm dependencies.
# Safe to run again: installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(wireguard-tools wireguard-go iproute2 nftables iputils-ping iperf3 busybox-static procps util-linux prometheus graphviz python3-minimal docker.io btrfs-progs etcd-server etcd-client nebula perl-base)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "zmesh: installing Debian packages: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [[ ! -d node_modules ]] || [[ package-lock.json -nt node_modules/.package-lock.json ]]; then
  echo "zmesh: installing npm dependencies" >&2
  npm ci --no-audit --no-fund --loglevel=error
elif [[ ! -x dist/src/cli/main.js ]]; then
  npm run --silent build
fi
