// wireguard-go for the tests and the data-plane benchmark: the build on PATH (what scripts/deps.sh installs),
// bookworm's 0.0.20220316 (before batching, which scripts/deps.sh unpacks aside, not installed), and what a
// daemon runs with (its environment, its UDP sockets' receive buffers as `ss` shows them).
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { parseWireguardGoVersion, type WireguardGoBuild } from '../../netns/tuning.ts';

export const BOOKWORM_WIREGUARD_GO = '0.0.20220316-1+b4';

/** The path of bookworm's wireguard-go binary; throws when scripts/deps.sh has not unpacked it. */
export function bookwormWireguardGo(): string {
  const bin = `/var/cache/zmesh/wireguard-go_${BOOKWORM_WIREGUARD_GO}/usr/bin/wireguard-go`;
  if (!existsSync(bin)) throw new Error(`${bin} is missing: run scripts/deps.sh (it unpacks bookworm's wireguard-go there)`);
  return bin;
}

/** The build of the wireguard-go on PATH (`wireguard-go --version`). */
export function pathWireguardGoBuild(): WireguardGoBuild {
  return parseWireguardGoVersion(execFileSync('wireguard-go', ['--version'], { encoding: 'utf8' }));
}

/** The environment a process was started with (/proc/<pid>/environ). */
export function environOf(pid: number): Record<string, string> {
  const out: Record<string, string> = {};
  for (const kv of readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').filter(Boolean)) {
    const i = kv.indexOf('=');
    out[kv.slice(0, i)] = kv.slice(i + 1);
  }
  return out;
}

/** The receive buffer sizes in `ss -uampnH` output (skmem rb), one per socket. */
export function ssRcvbufs(ssOutput: string): number[] {
  return [...ssOutput.matchAll(/skmem:\(r\d+,rb(\d+),/g)].map((m) => Number(m[1]));
}
