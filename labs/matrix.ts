// The connectivity matrix: every ordered pair of endpoints, checked from inside the source's namespace with a
// real ping and a real TCP connection (an HTTP request to the echo service, or to a workload's page on port
// 80, with busybox nc; busybox wget is static glibc and crashes resolving names), expected to reach when both
// are in the same tenant network and to be isolated otherwise. A workload source probes from inside its
// container's network namespace.
// In a network with a policy (docs/policy.md) a pair is checked per protocol and port (ICMP; TCP to the target's
// own port and to every port the rules name), each check expected to reach or to be denied as the policy
// compiled for the destination's node decides (checksOf); a denied check holds only when it was tried and
// nothing at all came back (no reply, no answer, no reset).
// "Reached" is decided by identity, not by a reply: tenants may use identical ranges, so an answer from the
// source's own network at the same address (its own resource) is not a breach, and a reply counts as reaching
// the target only when the echo service names the target.
// Dual-stack networks are probed in both families (each row says which: `family`), with the same expectations.
// Names: each source asks its node's resolver (on the gateway) for the name of every target of its network
// ("<workload>.<network>", "<node>.<network>", "<device>.<network>": the target's addresses in both families
// expected) and of every target of other networks (no answer expected); where the source's node runs no
// resolver for the network the row is skipped ("resolver not running"), neither a pass nor a failure.
import { isIPv6 } from 'node:net';
import { evaluate } from '../src/plan/policy.ts';
import { ECHO_PORT, type Layout } from './layout.ts';
import { endpointArgv, endpointPorts, inFamily, netOfId, parseEcho, resolverRunning, type Endpoint } from './endpoints.ts';
import type { LabState } from './state.ts';
import { labScript, python, run } from './sys.ts';

/** reach: the probe must get through; denied: the network's policy drops it; isolated: another network. */
export type Expectation = 'reach' | 'denied' | 'isolated';
/** What a row probes: ping and the identity over TCP together (a network without a policy, and isolation), or
 *  one of them (a network with a policy: ICMP, and TCP per port). */
export type ProbeProto = 'icmp+tcp' | 'icmp' | 'tcp' | 'dns';
/** The address family a row probed over (a name row: the family of the resolver's address). */
export type Family = 4 | 6;
/** A name row's status when it could not be checked. */
export const SKIP_NO_RESOLVER = 'resolver not running';

export interface PairResult {
  from: string;
  to: string;
  expect: Expectation;
  /** The result is what was expected. */
  ok: boolean;
  /** Round-trip time of the ping when the target was reached (ICMP rows). */
  rttMs: number | null;
  proto: ProbeProto;
  /** The TCP port probed (null for ICMP rows; 53 for name rows). */
  port: number | null;
  family: Family;
  /** Rows of a network with a policy: the rule that allows the flow (its index), or null (the default). */
  rule?: number | null;
  /** The target itself answered (by identity), or something outside the source's network answered; for a
   *  denied row: anything got through (a ping reply, an answer, or a TCP reset). */
  reached: boolean;
  ping: boolean;
  /** Identity the echo service at the target address gave, or null. */
  seen: string | null;
  error?: string;
  /** Name rows (proto dns): the name asked, the addresses the resolver answered (sorted; [] for none). */
  name?: string;
  answer?: string[];
  /** Set when the row could not be checked (SKIP_NO_RESOLVER); `ok` is then false and matrixOk ignores it. */
  skip?: string;
}

export interface ProbeResult {
  ping: boolean;
  rttMs: number | null;
  seen: string | null;
  /** The TCP connection was refused (a reset came back: the SYN was not dropped on the way). */
  refused?: boolean;
  /** The probe ran (false: no line for it, e.g. the source's namespace is missing). Default: it ran. */
  tried?: boolean;
  /** A name lookup: the addresses answered (null: NXDOMAIN or no answer). */
  answer?: string[] | null;
}

/** One thing to check for a pair, and what to expect. */
export interface Check {
  proto: ProbeProto;
  port: number | null;
  expect: Expectation;
  /** With a policy: the rule that allows it (index), or null (the default decides). */
  rule?: number | null;
}

/** The prober a source runs (labs/probe.py, one process with every probe of the source at once): per target
 *  ("ADDR" — the echo port —, "ADDR:PORT,PORT…", or "ADDR:" for ping only; an IPv6 address in brackets,
 *  "[ADDR]:PORT…") one ICMP echo and one HTTP request over TCP per port, all bounded (ping 1 s; TCP 1 s to
 *  connect and 1 s between reads — the echo services answer at once and close —; the source's whole run 15 s).
 *  A refused connection reports "refused". "@SERVER" sets the resolver for the following "?NAME" lookups (A and
 *  AAAA, 3 s), each reported "N NAME ADDR,ADDR…", or "!nx" (NXDOMAIN), or "!fail". It replaced a busybox shell
 *  script that forked 3–4 processes per probe: a quickstart matrix (600 checks) took 8–9 s, CPU-bound. */
export function probeArgv(args: string[]): string[] {
  return [python(), '-I', '-S', labScript('probe.py'), `echo=${ECHO_PORT}`, ...args];
}

/** How the probe script names an address: IPv6 in brackets. */
export function probeHost(address: string): string {
  return isIPv6(address) ? `[${address}]` : address;
}

/** What a source dials for a target: its address, with the port when it is not the echo service's. */
export function probeTarget(e: Endpoint): string {
  const h = probeHost(e.address);
  return e.port && e.port !== ECHO_PORT ? `${h}:${e.port}` : h;
}

/** Parses the probe script's output: "P <host> <rtt|->", "T <host:port> <identity text|refused|->" and
 *  "N <name> <addresses|!nx|!fail>" lines, keyed by what the line names (a name: "?name"). */
export function parseProbe(stdout: string): Map<string, ProbeResult> {
  const out = new Map<string, ProbeResult>();
  const get = (a: string) => {
    let r = out.get(a);
    if (!r) out.set(a, (r = { ping: false, rttMs: null, seen: null }));
    return r;
  };
  for (const line of stdout.split('\n')) {
    const m = /^([PTN]) (\S+) (.*)$/.exec(line.trim());
    if (!m) continue;
    if (m[1] === 'N') {
      const v = m[3].trim();
      const r = get(`?${m[2]}`);
      r.answer = v.startsWith('!') || !v ? null : v.split(',').filter(Boolean).sort();
      continue;
    }
    const r = get(m[2]);
    if (m[1] === 'P') {
      const rtt = m[3] === '-' ? NaN : Number(m[3]);
      r.ping = Number.isFinite(rtt);
      r.rttMs = Number.isFinite(rtt) ? rtt : null;
    } else {
      r.seen = parseEcho(m[3]);
      if (m[3].trim() === 'refused') r.refused = true;
    }
  }
  return out;
}

export function expectOf(from: Endpoint, to: Endpoint): 'reach' | 'isolated' {
  return from.net === to.net ? 'reach' : 'isolated';
}

/** The address a source's packets to a target carry: a node's tenant namespace reaches its own workloads over
 *  its bridge (from its gateway) and everything else through its WireGuard interface (from that address). */
export function sourceAddress(from: Endpoint, to: Endpoint): string {
  if (from.kind !== 'resource') return from.address;
  return to.kind === 'workload' && to.host === from.host ? from.address : (from.owns[1] ?? from.address);
}

/**
 * What to check for a pair. Another network: isolated (ping + identity). The same network without a policy:
 * reach (ping + identity). With a policy: ICMP, and TCP to the target's identity port and to every port the
 * rules name, each expected reach or denied as the policy compiled on the target's node decides
 * (src/plan/policy.ts evaluate, the exact model of its nft rules); a target no node guards is reached.
 */
export function checksOf(from: Endpoint, to: Endpoint): Check[] {
  const port = to.port ?? ECHO_PORT;
  if (from.net !== to.net) return [{ proto: 'icmp+tcp', port, expect: 'isolated' }];
  const pol = to.policy;
  if (!pol) return [{ proto: 'icmp+tcp', port, expect: 'reach' }];
  const src = sourceAddress(from, to);
  const check = (proto: 'icmp' | 'tcp', p: number | null): Check => {
    const v = pol.guard ? evaluate(pol.guard, { src, dst: to.address, proto, ...(p !== null ? { port: p } : {}) }) : { allowed: true, rule: null };
    return { proto, port: p, expect: v.allowed ? 'reach' : 'denied', rule: v.rule };
  };
  return [check('icmp', null), ...endpointPorts(to).map((p) => check('tcp', p))];
}

/** Judges one check of a pair from the probe of the target's address. Pure. Without `check`: the pair's
 *  ping + identity, reach in the same network, isolated otherwise. */
export function judge(from: Endpoint, to: Endpoint, probe: ProbeResult | undefined, ownNetAddresses: Set<string>, error?: string, check?: Check, family: Family = 4): PairResult {
  const c = check ?? { proto: 'icmp+tcp', port: to.port ?? ECHO_PORT, expect: expectOf(from, to) };
  const expect = c.expect;
  const seen = probe?.seen ?? null;
  const ping = probe?.ping ?? false;
  const target = seen === to.id;
  let reached: boolean;
  if (expect === 'isolated') {
    // An answer naming an endpoint of another network (or anything the lab does not know), or a ping answered
    // at an address the source's own network does not have, means traffic left the source's network.
    const foreign = seen !== null && netOfId(seen) !== from.net;
    const strayPing = ping && !ownNetAddresses.has(to.address);
    reached = target || foreign || strayPing;
  } else if (expect === 'reach') {
    reached = c.proto === 'icmp' ? ping : c.proto === 'tcp' ? target : ping && target;
  } else {
    // Denied: inside the network the address is the target's; anything back means the policy let it through.
    const tcp = seen !== null || probe?.refused === true;
    reached = c.proto === 'icmp' ? ping : c.proto === 'tcp' ? tcp : ping || tcp;
  }
  // A denied check holds only when it was actually tried (a missing namespace proves nothing).
  const tried = probe !== undefined && probe.tried !== false && !error;
  const ok = expect === 'reach' ? reached : expect === 'denied' ? tried && !reached : !reached;
  const rttMs = c.proto !== 'tcp' && (reached || (expect === 'reach' && ping)) && expect !== 'denied' ? (probe?.rttMs ?? null) : null;
  return {
    from: from.id,
    to: to.id,
    expect,
    ok,
    rttMs,
    proto: c.proto,
    port: c.port,
    family,
    ...(c.rule !== undefined ? { rule: c.rule } : {}),
    reached,
    ping,
    seen,
    ...(error ? { error } : {}),
  };
}

/** The addresses a name should resolve to: the target's, in both families, sorted. */
export function expectedAnswer(to: Endpoint): string[] {
  return [to.address, ...(to.address6 ? [to.address6] : [])].sort();
}

/**
 * Judges a name row. Pure. reach (same network): the resolver answered exactly the target's addresses;
 * isolated (another network): it answered nothing (NXDOMAIN or failure). `skip`: not checked (no resolver).
 */
export function judgeName(from: Endpoint, to: Endpoint, expect: 'reach' | 'isolated', probe: ProbeResult | undefined, error?: string, skip?: string): PairResult {
  const answer = probe?.answer ?? [];
  const want = expectedAnswer(to);
  const exact = answer.length === want.length && answer.every((a, i) => a === want[i]);
  const reached = expect === 'reach' ? exact : answer.length > 0;
  const tried = probe !== undefined && probe.answer !== undefined && !error;
  const ok = !skip && (expect === 'reach' ? reached : tried && !reached);
  return {
    from: from.id,
    to: to.id,
    expect,
    ok,
    rttMs: null,
    proto: 'dns',
    port: 53,
    family: from.resolver && isIPv6(from.resolver.address) ? 6 : 4,
    reached,
    ping: false,
    seen: null,
    name: to.dnsName!,
    answer,
    ...(error && !skip ? { error } : {}),
    ...(skip ? { skip } : {}),
  };
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
  /** Only checks expected to reach (used while waiting for convergence). */
  reachOnly?: boolean;
  /** Sources checked at once (each runs its probes in parallel). */
  parallel?: number;
  /** PIDs of the workload endpoints' containers (endpoints.ts workloadPids); a workload without one is absent. */
  workloadPids?: Map<string, number>;
  /** Results just measured (a reach-only pass): their passing checks are taken as they are, not probed again. */
  reuse?: PairResult[];
  /** Only these sources (endpoint ids); default: every endpoint. */
  sources?: string[];
  /** Probe a failed reach check once more at once (default true). A wait that runs rounds (waitGreen) says false:
   *  its next round probes what failed, after a pause, rather than this round waiting on its slowest sources twice. */
  retry?: boolean;
}

async function probeFrom(from: Endpoint, args: string[], layout: Layout, state: LabState, pids?: Map<string, number>): Promise<{ probes: Map<string, ProbeResult>; error?: string }> {
  const argv = endpointArgv(from, layout, state, probeArgv(args), pids);
  if (!argv) return { probes: new Map(), error: `${from.id}: its namespace is not there` };
  try {
    const r = await run(argv, { okCodes: [0, 1, 2, 127, 137, 143], timeoutMs: 15000 });
    return { probes: parseProbe(r.stdout) };
  } catch (e) {
    return { probes: new Map(), error: (e as Error).message.slice(0, 300) };
  }
}

interface Item {
  /** The target as seen in the item's family (inFamily); a name item: the endpoint itself. */
  to: Endpoint;
  check: Check;
  family: Family;
}

/** Whether `from`'s own network serves the name `to` has (then asking it proves nothing about isolation). */
function ownName(from: Endpoint, to: Endpoint, all: Endpoint[]): boolean {
  return all.some((e) => e.net === from.net && e.dnsName === to.dnsName);
}

/**
 * Runs the matrix over the given endpoints: every ordered pair, each check of it (checksOf). Every probe is
 * bounded (ping 1 s, TCP 1 s to connect and 1 s between reads, a source 15 s); a source probes all its targets at once, each address once with
 * every port asked of it. A check expected to reach that fails gets one more probe (a single lost packet on a
 * lossy underlay is not a broken network); one expected isolated or denied never does (one breach is a breach).
 */
export async function runMatrix(endpoints: Endpoint[], layout: Layout, state: LabState, opts: MatrixOptions = {}): Promise<PairResult[]> {
  const byNet = new Map<string, Set<string>>();
  for (const e of endpoints) {
    if (!byNet.has(e.net)) byNet.set(e.net, new Set());
    for (const a of [...e.owns, ...(e.owns6 ?? [])]) byNet.get(e.net)!.add(a);
  }
  // Whether each source's resolver runs (its node's tenant namespace has UDP port 53 bound), once per run.
  const resolvers = new Map<string, boolean>();
  const resolverUp = (from: Endpoint): boolean => {
    if (!from.resolver) return false;
    const k = `${from.resolver.node}/${from.networkId}`;
    if (!resolvers.has(k)) resolvers.set(k, resolverRunning(state, from.resolver.node, from.networkId) === true);
    return resolvers.get(k)!;
  };
  // A workload's page names "tenant/blueprint/workload": the matrix names it by its endpoint id.
  const byWorkload = new Map(endpoints.filter((e) => e.workload).map((e) => [`wl:${e.workload}`, e.id]));
  const mapSeen = (seen: string | null) => (seen?.startsWith('wl:') ? (byWorkload.get(seen) ?? seen) : seen);
  // One prober process per source (labs/probe.py): cheap enough to run every source of a lab at once.
  const parallel = opts.parallel ?? 32;
  const pids = opts.workloadPids;
  const probeItems = async (from: Endpoint, items: Item[]): Promise<PairResult[]> => {
    const hosts = new Map<string, Set<number>>();
    const names = new Set<string>();
    const dns = items.some((i) => i.check.proto === 'dns') && resolverUp(from);
    for (const { to, check } of items) {
      if (check.proto === 'dns') {
        if (dns) names.add(to.dnsName!);
        continue;
      }
      const ports = hosts.get(to.address) ?? new Set<number>();
      if (check.port !== null) ports.add(check.port);
      hosts.set(to.address, ports);
    }
    const args = [...hosts].map(([h, ports]) => `${probeHost(h)}:${[...ports].sort((a, b) => a - b).join(',')}`);
    if (names.size) args.push(`@${from.resolver!.address}`, ...[...names].map((n) => `?${n}`));
    const { probes, error } = args.length ? await probeFrom(from, args, layout, state, pids) : { probes: new Map<string, ProbeResult>(), error: undefined };
    return items.map(({ to, check, family }) => {
      if (check.proto === 'dns') return judgeName(from, to, check.expect as 'reach' | 'isolated', probes.get(`?${to.dnsName}`), error, dns ? undefined : SKIP_NO_RESOLVER);
      const h = probeHost(to.address);
      const p = probes.get(h);
      const t = check.port !== null ? probes.get(`${h}:${check.port}`) : undefined;
      const tried = (check.proto === 'tcp' || p !== undefined) && (check.proto === 'icmp' || t !== undefined);
      const probe: ProbeResult | undefined =
        p || t ? { ping: p?.ping ?? false, rttMs: p?.rttMs ?? null, seen: mapSeen(t?.seen ?? null), ...(t?.refused ? { refused: true } : {}), tried } : undefined;
      return judge(inFamily(from, family)!, to, probe, byNet.get(from.net)!, error, check, family);
    });
  };
  // Per target: the checks in IPv4, then in IPv6 (both ends dual-stack), then its name.
  const itemsOf = (from: Endpoint): Item[] =>
    endpoints
      .filter((t) => t !== from && (!opts.reachOnly || t.net === from.net))
      .flatMap((to) => {
        const out: Item[] = [];
        for (const family of [4, 6] as const) {
          const f = inFamily(from, family);
          const t = inFamily(to, family);
          if (f && t) out.push(...checksOf(f, t).map((check) => ({ to: t, check, family })));
        }
        if (to.dnsName && from.resolver && (from.net === to.net || !ownName(from, to, endpoints))) {
          out.push({ to, check: { proto: 'dns', port: 53, expect: from.net === to.net ? 'reach' : 'isolated' }, family: 4 });
        }
        return out;
      })
      .filter((i) => !opts.reachOnly || i.check.expect === 'reach');
  const rowKey = (from: string, to: string, c: { proto: ProbeProto; port: number | null; expect: Expectation; family?: Family }) =>
    `${from}|${to}|${c.proto}|${c.port}|${c.expect}|${c.family ?? 4}`;
  const reused = new Map((opts.reuse ?? []).filter((r) => r.ok).map((r) => [rowKey(r.from, r.to, r), r]));
  const sources = opts.sources ? endpoints.filter((e) => opts.sources!.includes(e.id)) : endpoints;
  const results = await pool(sources, parallel, async (from) => {
    const items = itemsOf(from);
    const rows: (PairResult | undefined)[] = items.map((i) => reused.get(rowKey(from.id, i.to.id, { ...i.check, family: i.family })));
    const todo = items.filter((_, j) => !rows[j]);
    const probed = todo.length ? await probeItems(from, todo) : [];
    let k = 0;
    return rows.map((r) => r ?? probed[k++]);
  });
  // One more probe for each check expected to reach that failed.
  if (opts.retry !== false) await pool(sources, parallel, async (from) => {
    const i = sources.indexOf(from);
    const rows = results[i];
    const items = itemsOf(from);
    const failed = rows.map((r, j) => ({ r, j })).filter(({ r }) => r.expect === 'reach' && !r.ok && !r.skip);
    if (!failed.length) return;
    const again = await probeItems(from, failed.map(({ j }) => items[j]));
    failed.forEach(({ j }, k) => (rows[j] = again[k]));
  });
  return results.flat();
}

/** Every row as expected (rows that could not be checked — `skip` — neither pass nor fail it). */
export function matrixOk(results: PairResult[]): boolean {
  return results.length > 0 && results.every((r) => r.ok || r.skip !== undefined);
}
