// Bookworm's wireguard-go (0.0.20220316, before batching), which scripts/deps.sh unpacks aside (not installed):
// the tests check the driver's tuning for that build, and the data-plane benchmark compares both builds.
import { existsSync } from 'node:fs';

export const BOOKWORM_WIREGUARD_GO = '0.0.20220316-1+b4';

/** The path of bookworm's wireguard-go binary; throws when scripts/deps.sh has not unpacked it. */
export function bookwormWireguardGo(): string {
  const bin = `/var/cache/zmesh/wireguard-go_${BOOKWORM_WIREGUARD_GO}/usr/bin/wireguard-go`;
  if (!existsSync(bin)) throw new Error(`${bin} is missing: run scripts/deps.sh (it unpacks bookworm's wireguard-go there)`);
  return bin;
}
