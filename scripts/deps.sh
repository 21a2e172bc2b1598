#!/usr/bin/env bash
# Installs what zmesh needs on a Debian bookworm host (as root): system packages, then npm dependencies.
# Safe to run again: installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(wireguard-tools wireguard-go iproute2 nftables iputils-ping iperf3 busybox-static procps util-linux prometheus graphviz python3-minimal docker.io btrfs-progs etcd-server etcd-client nebula perl-base man-db groff-base zsh fish dnsmasq-base)
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

# wireguard-go with batched I/O (recvmmsg/sendmmsg, tun offloads; 0.0.20230223 and later) carries about five
# times what bookworm's 0.0.20220316 does (docs/benchmarks.md). Bookworm has only the old one, so take trixie's
# package (a static Go binary needing libc6 >= 2.34) through a source list used for this one install, verified
# by apt against Debian's archive keys like any other package. ZMESH_WIREGUARD_GO=distro keeps bookworm's.
WG_GO_BATCHED=0.0.20230223
wg_go_version=$(dpkg-query -W -f='${Version}' wireguard-go 2>/dev/null || true)
if [[ "${ZMESH_WIREGUARD_GO:-batched}" != distro ]] && ! dpkg --compare-versions "${wg_go_version:-0}" ge "$WG_GO_BATCHED"; then
  echo "zmesh: installing wireguard-go >= $WG_GO_BATCHED from Debian trixie (have ${wg_go_version:-none})" >&2
  export DEBIAN_FRONTEND=noninteractive
  trixie=$(mktemp -d)
  trap 'rm -rf "$trixie"' EXIT
  printf '%s\n' 'Types: deb' 'URIs: http://deb.debian.org/debian' 'Suites: trixie' 'Components: main' \
    'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg' >"$trixie/trixie.sources"
  apt_trixie=(-o "Dir::Etc::SourceList=$trixie/trixie.sources" -o Dir::Etc::SourceParts=/nonexistent -o APT::Get::List-Cleanup=false)
  if apt-get "${apt_trixie[@]}" update -qq && apt-get "${apt_trixie[@]}" install -y -qq --no-install-recommends wireguard-go/trixie >/dev/null; then
    echo "zmesh: wireguard-go $(dpkg-query -W -f='${Version}' wireguard-go) installed" >&2
  else
    echo "zmesh: could not install trixie's wireguard-go; keeping ${wg_go_version:-none} (tunnels will be slower, everything else works)" >&2
  fi
fi

# Keep trixie's wireguard-go updated, and nothing else from trixie: a permanent source for trixie (with its
# updates and security suites) pinned so that apt never picks a trixie package (priority -10) except wireguard-go
# (990): `apt-get upgrade` then follows trixie's (security) updates of wireguard-go and moves nothing else.
# `zmesh status` warns about daemons still running a replaced binary (docs/agent.md).
TRIXIE_SOURCES=/etc/apt/sources.list.d/zmesh-trixie.sources
TRIXIE_PIN=/etc/apt/preferences.d/zmesh-wireguard-go
if [[ "${ZMESH_WIREGUARD_GO:-batched}" != distro ]] && dpkg --compare-versions "$(dpkg-query -W -f='${Version}' wireguard-go 2>/dev/null || echo 0)" ge "$WG_GO_BATCHED"; then
  want_pin=$(for suite in trixie trixie-updates trixie-security; do
    printf '%s\n' "Explanation: zmesh: nothing from $suite unless named below" 'Package: *' "Pin: release n=$suite" 'Pin-Priority: -10' ''
    printf '%s\n' "Explanation: zmesh: wireguard-go follows $suite (batched I/O, security updates)" 'Package: wireguard-go' "Pin: release n=$suite" 'Pin-Priority: 990' ''
  done)
  want_sources=$(printf '%s\n' 'Types: deb' 'URIs: http://deb.debian.org/debian' 'Suites: trixie trixie-updates' 'Components: main' \
    'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg' '' 'Types: deb' 'URIs: http://deb.debian.org/debian-security' \
    'Suites: trixie-security' 'Components: main' 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg')
  # The pin first: a source without it would offer all of trixie to the next upgrade.
  if [[ "$(cat "$TRIXIE_PIN" 2>/dev/null)" != "$want_pin" ]]; then printf '%s\n' "$want_pin" >"$TRIXIE_PIN"; fi
  if [[ "$(cat "$TRIXIE_SOURCES" 2>/dev/null)" != "$want_sources" ]]; then
    printf '%s\n' "$want_sources" >"$TRIXIE_SOURCES"
    echo "zmesh: pinned wireguard-go to trixie ($TRIXIE_PIN); updating apt's lists" >&2
    apt-get update -qq || echo "zmesh: apt-get update failed; wireguard-go updates will show after the next successful one" >&2
  fi
fi

# Bookworm's wireguard-go (before batching), unpacked aside, not installed: the tests check the driver's tuning
# for that build too, and the benchmark compares both builds.
WG_GO_BOOKWORM=0.0.20220316-1+b4
wg_go_old="/var/cache/zmesh/wireguard-go_$WG_GO_BOOKWORM"
if [[ ! -x "$wg_go_old/usr/bin/wireguard-go" ]]; then
  echo "zmesh: unpacking bookworm's wireguard-go $WG_GO_BOOKWORM into $wg_go_old" >&2
  rm -rf "$wg_go_old" && mkdir -p "$wg_go_old"
  (cd "$wg_go_old" && { apt-get download -qq "wireguard-go=$WG_GO_BOOKWORM" 2>/dev/null || { apt-get update -qq && apt-get download -qq "wireguard-go=$WG_GO_BOOKWORM"; }; } &&
    dpkg-deb -x wireguard-go_*.deb . && rm -f wireguard-go_*.deb)
fi

if [[ ! -d node_modules ]] || [[ package-lock.json -nt node_modules/.package-lock.json ]]; then
  echo "zmesh: installing npm dependencies" >&2
  npm ci --no-audit --no-fund --loglevel=error
elif [[ ! -x dist/src/cli/main.js ]]; then
  npm run --silent build
fi
