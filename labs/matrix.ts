// The connectivity matrix: every ordered pair of endpoints, checked from inside the source's namespace with a
// real ping and a real TCP connection (an HTTP request to the echo service, or to a workload's page on port
// 80, with busybox nc; busybox wget is static glibc and crashes resolving names), expected to reach when both
// are in the same tenant network and to be isolated otherwise. A workload source probes from inside its
// container's network namespace.
// "Reached" is decided by identity, not by a reply: tenants may use identical ranges, so an answer from the
// source's own network at the same address (its own resource) is not a breach, and a reply counts as reaching
// the target only when the echo service names the target.
import { ECHO_PORT, type Layout } from './layout.ts';
import { endpointArgv, netOfId, parseEcho, type Endpoint } from './endpoints.ts';
import type { LabState } from './state.ts';
import { run } from './sys.ts';

export interface PairResult {
  from: string;
  to: string;
  expect: 'reach' | 'isolated';
  /** The result is what was expected. */
  ok: boolean;
  /** Round-trip time of the ping when the target was reached. */
  rttMs: number | null;
  /** The target itself answered (by identity), or something outside the source's network answered. */
  reached: boolean;
  ping: boolean;
  /** Identity the echo service at the target address gave, or null. */
  seen: string | null;
  error?: string;
}

export interface ProbeResult {
  ping: boolean;
  rttMs: number | null;
  seen: string | null;
}

/** The shell script a source runs: per target ("ADDR", the echo port, or "ADDR:PORT") one background ping
 *  and one background HTTP request over TCP, all bounded (ping 1 s; nc 1 s to connect and between reads, 2 s
 *  in all). */
export const PROBE_SCRIPT = [
  'for a in "$@"; do',
  `  h=\${a%%:*}; o=\${a#*:}; [ "$o" = "$a" ] && o=${ECHO_PORT}`,
  '  ( p=$(busybox ping -n -q -c 1 -W 1 "$h" 2>/dev/null | busybox sed -n "s#^round-trip[^=]*= *\\([0-9.]*\\)/\\([0-9.]*\\)/.*#\\2#p"); echo "P $a ${p:--}" ) &',
  '  ( i=$(printf "GET / HTTP/1.0\\r\\n\\r\\n" | busybox timeout 2 busybox nc -w 1 "$h" "$o" 2>/dev/null | busybox grep -o -E "zmesh-(lab-echo|wl) [^ ]*" | busybox head -n 1); echo "T $a ${i:--}" ) &',
  'done',
  'wait',
].join('\n');

/** What a source dials for a target: its address, with the port when it is not the echo service's. */
export function probeTarget(e: Endpoint): string {
  return e.port && e.port !== ECHO_PORT ? `${e.address}:${e.port}` : e.address;
}

/** Parses the probe script's output: "P <target> <rtt|->" and "T <target> <identity text|->" lines. */
export function parseProbe(stdout: string): Map<string, ProbeResult> {
  const out = new Map<string, ProbeResult>();
  const get = (a: string) => {
    let r = out.get(a);
    if (!r) out.set(a, (r = { ping: false, rttMs: null, seen: null }));
    return r;
  };
  for (const line of stdout.split('\n')) {
    const m = /^([PT]) (\S+) (.*)$/.exec(line.trim());
    if (!m) continue;
    const r = get(m[2]);
    if (m[1] === 'P') {
      const rtt = m[3] === '-' ? NaN : Number(m[3]);
      r.ping = Number.isFinite(rtt);
      r.rttMs = Number.isFinite(rtt) ? rtt : null;
    } else r.seen = parseEcho(m[3]);
  }
  return out;
}

export function expectOf(from: Endpoint, to: Endpoint): 'reach' | 'isolated' {
  return from.net === to.net ? 'reach' : 'isolated';
}

/** Judges one pair from the probe of the target's address. Pure. */
export function judge(from: Endpoint, to: Endpoint, probe: ProbeResult | undefined, ownNetAddresses: Set<string>, error?: string): PairResult {
  const expect = expectOf(from, to);
  const seen = probe?.seen ?? null;
  const ping = probe?.ping ?? false;
  const target = seen === to.id;
  // An answer naming an endpoint of another network (or anything the lab does not know), or a ping answered at
  // an address the source's own network does not have, means traffic left the source's network.
  const foreign = seen !== null && netOfId(seen) !== from.net;
  const strayPing = ping && !ownNetAddresses.has(to.address);
  const reached = expect === 'reach' ? ping && target : target || foreign || strayPing;
  const ok = expect === 'reach' ? reached : !reached;
  return { from: from.id, to: to.id, expect, ok, rttMs: reached || (expect === 'reach' && ping) ? (probe?.rttMs ?? null) : null, reached, ping, seen, ...(error ? { error } : {}) };
}

async function pool<T, R>(items: T[], limit: number, fn: (t: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]);
    }
  });
  await Promise.all(workers);
  return out;
}

export interface MatrixOptions {
  /** Only pairs expected to reach (used while waiting for convergence). */
  reachOnly?: boolean;
  /** Sources checked at once (each runs its probes in parallel). */
  parallel?: number;
  /** PIDs of the workload endpoints' containers (endpoints.ts workloadPids); a workload without one is absent. */
  workloadPids?: Map<string, number>;
}

async function probeFrom(from: Endpoint, addrs: string[], layout: Layout, state: LabState, pids?: Map<string, number>): Promise<{ probes: Map<string, ProbeResult>; error?: string }> {
  const argv = endpointArgv(from, layout, state, ['busybox', 'sh', '-c', PROBE_SCRIPT, 'probe', ...addrs], pids);
  if (!argv) return { probes: new Map(), error: `${from.id}: its namespace is not there` };
  try {
    const r = await run(argv, { okCodes: [0, 1, 2, 127, 137, 143], timeoutMs: 15000 });
    return { probes: parseProbe(r.stdout) };
  } catch (e) {
    return { probes: new Map(), error: (e as Error).message.slice(0, 300) };
  }
}

/**
 * Runs the matrix over the given endpoints. Every probe is bounded (ping 1 s, TCP 2 s, a source 15 s).
 * A pair expected to reach that fails gets one more probe (a single lost packet on a lossy underlay is not a
 * broken network); a pair expected to be isolated never does (one breach is a breach).
 */
export async function runMatrix(endpoints: Endpoint[], layout: Layout, state: LabState, opts: MatrixOptions = {}): Promise<PairResult[]> {
  const byNet = new Map<string, Set<string>>();
  for (const e of endpoints) {
    if (!byNet.has(e.net)) byNet.set(e.net, new Set());
    for (const a of e.owns) byNet.get(e.net)!.add(a);
  }
  // A workload's page names "tenant/blueprint/workload": the matrix names it by its endpoint id.
  const byWorkload = new Map(endpoints.filter((e) => e.workload).map((e) => [`wl:${e.workload}`, e.id]));
  const probeOf = (probes: Map<string, ProbeResult>, to: Endpoint): ProbeResult | undefined => {
    const p = probes.get(probeTarget(to));
    return p && p.seen?.startsWith('wl:') ? { ...p, seen: byWorkload.get(p.seen) ?? p.seen } : p;
  };
  const parallel = opts.parallel ?? 8;
  const pids = opts.workloadPids;
  const results = await pool(endpoints, parallel, async (from) => {
    const targets = endpoints.filter((t) => t !== from && (!opts.reachOnly || t.net === from.net));
    if (!targets.length) return [];
    const { probes, error } = await probeFrom(from, [...new Set(targets.map(probeTarget))], layout, state, pids);
    return targets.map((to) => judge(from, to, probeOf(probes, to), byNet.get(from.net)!, error));
  });
  const flat = results.flat();
  const retry = endpoints.filter((e) => flat.some((r) => r.from === e.id && r.expect === 'reach' && !r.ok));
  await pool(retry, parallel, async (from) => {
    const failed = flat.filter((r) => r.from === from.id && r.expect === 'reach' && !r.ok);
    const tos = failed.map((r) => endpoints.find((e) => e.id === r.to)!);
    const { probes, error } = await probeFrom(from, [...new Set(tos.map(probeTarget))], layout, state, pids);
    for (const to of tos) {
      const i = flat.findIndex((r) => r.from === from.id && r.to === to.id);
      flat[i] = judge(from, to, probeOf(probes, to), byNet.get(from.net)!, error);
    }
  });
  return flat;
}

export function matrixOk(results: PairResult[]): boolean {
  return results.length > 0 && results.every((r) => r.ok);
}
